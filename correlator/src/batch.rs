//! Writing the join's outputs as remote-write 2.0 requests: one request per
//! component (or unbound reason) and input record, each with its own symbol
//! table, so any remote-write 2.0 receiver can take it as it is.
//!
//! Label strings are interned once ([`Interner`], kept across records with
//! the series cache); each output request then maps the ids it uses to its
//! own symbol table ([`RequestWriter`]), an array lookup per label rather
//! than a hash.

use std::collections::HashMap;
use std::sync::Arc;

use proto::EXPORTED_PREFIX;
pub(crate) use proto::fields::v2 as field;
use proto::wire;

/// Label strings, each once, by id (id 0 is ""): kept across records, so a
/// cached series holds its labels as ids and a record of known series needs
/// neither UTF-8 checks nor hashing of its label strings.
pub struct Interner {
    strings: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
}

impl Interner {
    pub fn new() -> Interner {
        let mut interner = Interner {
            strings: Vec::new(),
            ids: HashMap::default(),
        };
        interner.intern("");
        interner
    }

    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = self.strings.len() as u32;
        let shared: Arc<str> = Arc::from(text);
        self.strings.push(shared.clone());
        self.ids.insert(shared, id);
        id
    }

    pub fn get(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Forgets every string but "": ids handed out before mean nothing now.
    pub fn clear(&mut self) {
        self.strings.clear();
        self.ids.clear();
        self.intern("");
    }
}

impl Default for Interner {
    fn default() -> Self {
        Interner::new()
    }
}

/// What the request being written knows of each interner string: kept
/// across requests (stamped with the request that wrote it), so starting one
/// clears nothing.
#[derive(Default)]
pub struct Remap {
    slots: Vec<Slot>,
    current: u32,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Its index in the request's symbol table, when `symbol_stamp` is the request's.
    symbol_stamp: u32,
    symbol: u32,
    /// As a label name, when `place_stamp` is the request's: how many of the
    /// request's added labels sort before it, or [`CONFLICT`].
    place_stamp: u32,
    place: u32,
}

/// The place of a label name that an added label also has.
const CONFLICT: u32 = u32::MAX;

impl Slot {
    /// The symbol index of interner string `id`, whose slot this is, in the
    /// request stamped `current`: added to `symbols` on first use.
    #[inline]
    fn symbol_of(
        &mut self,
        id: u32,
        current: u32,
        interner: &Interner,
        symbols: &mut SymbolTable,
    ) -> u32 {
        if self.symbol_stamp != current {
            self.symbol = symbols.push(interner.get(id));
            self.symbol_stamp = current;
        }
        self.symbol
    }

    /// Where the request's added labels (sorted by name) go around label
    /// name `id`: how many sort before it, or [`CONFLICT`] when one has that
    /// name. Worked out once per request and name.
    #[inline]
    fn place_of(&mut self, id: u32, current: u32, interner: &Interner, added: &[Added<'_>]) -> u32 {
        if self.place_stamp != current {
            let name = interner.get(id);
            self.place = match added.binary_search_by(|a| a.name.cmp(name)) {
                Ok(_) => CONFLICT,
                Err(before) => before as u32,
            };
            self.place_stamp = current;
        }
        self.place
    }
}

/// A request's symbol table as it is encoded, and how many it holds.
struct SymbolTable {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for SymbolTable {
    fn default() -> Self {
        SymbolTable {
            bytes: Vec::with_capacity(1024),
            count: 0,
        }
    }
}

impl SymbolTable {
    fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
    }

    /// Adds `text`; its index.
    fn push(&mut self, text: &str) -> u32 {
        wire::put_len_field(&mut self.bytes, field::REQUEST_SYMBOLS, text.as_bytes());
        self.count += 1;
        self.count - 1
    }
}

impl Remap {
    fn next_request(&mut self, strings: usize) {
        if self.slots.len() < strings {
            self.slots.resize(strings, Slot::default());
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.slots
                .iter_mut()
                .for_each(|slot| *slot = Slot::default());
            self.current = 1;
        }
    }
}

/// A series' metadata: remote-write 2.0's, its strings as interner ids, or
/// remembered from a 1.0 metadata entry.
#[derive(Debug, Clone, Copy)]
pub enum SeriesMetadata<'m> {
    Ids {
        kind: i32,
        help: u32,
        unit: u32,
    },
    Text {
        kind: i32,
        help: &'m str,
        unit: &'m str,
    },
}

/// An exemplar: its labels as (name, value) text (a trace id is seldom seen twice).
#[derive(Debug, Clone, Copy)]
pub struct ExemplarRef<'l> {
    pub labels: &'l [(&'l str, &'l str)],
    pub value: f64,
    pub timestamp: i64,
}

/// One point of a series as written out.
#[derive(Debug, Clone, Copy)]
pub enum PointBytes<'p> {
    /// An encoded `Sample` (1.0 and 2.0 share fields 1 and 2; 2.0's start
    /// timestamp, field 3, rides along).
    Sample(&'p [u8]),
    /// An encoded `Histogram` (fields 1 to 16 are the same in both versions).
    Histogram(&'p [u8]),
    Exemplar(ExemplarRef<'p>),
}

/// A label a request adds to its series: a name of the settings, and a value
/// whose symbol is written once per request.
#[derive(Debug, Clone, Copy)]
struct Added<'n> {
    name: &'n str,
    name_ref: u32,
    value_ref: u32,
}

/// Writes one `io.prometheus.write.v2.Request` from an interner's strings.
/// Symbols are encoded as they are first used, so the table needs no strings
/// kept alive beyond the call that adds them.
pub struct RequestWriter<'i> {
    interner: &'i Interner,
    remap: &'i mut Remap,
    symbols: SymbolTable,
    /// Strings not of the interner (metadata of 1.0 families, details), each once.
    extra: HashMap<String, u32, foldhash::fast::RandomState>,
    /// Labels every series of the request gets, sorted by name.
    added: Vec<Added<'i>>,
    /// `added` plus one label of the series' own (the unbound detail).
    series_added: Vec<Added<'i>>,
    timeseries: Vec<u8>,
    series: Vec<u8>,
    refs: Vec<u32>,
    /// A series' metadata as it is encoded.
    metadata: Vec<u8>,
    pub series_written: usize,
}

impl<'i> RequestWriter<'i> {
    pub fn new(interner: &'i Interner, remap: &'i mut Remap) -> RequestWriter<'i> {
        RequestWriter {
            interner,
            remap,
            symbols: SymbolTable::default(),
            extra: HashMap::default(),
            added: Vec::new(),
            series_added: Vec::new(),
            timeseries: Vec::with_capacity(1024),
            series: Vec::with_capacity(512),
            refs: Vec::with_capacity(64),
            metadata: Vec::with_capacity(16),
            series_written: 0,
        }
    }

    /// Starts a request whose series all get the `added` labels (empty
    /// names or values are left out).
    pub fn begin(&mut self, added: &[(&'i str, &str)]) {
        self.remap.next_request(self.interner.len());
        self.symbols.clear();
        self.extra.clear();
        self.symbol(0);
        self.timeseries.clear();
        self.series_written = 0;
        self.added.clear();
        for (name, value) in added {
            if name.is_empty() || value.is_empty() || self.added.iter().any(|a| a.name == *name) {
                continue;
            }
            let name_ref = self.new_symbol(name);
            let value_ref = self.new_symbol(value);
            self.added.push(Added {
                name,
                name_ref,
                value_ref,
            });
        }
        self.added.sort_by(|a, b| a.name.cmp(b.name));
    }

    fn new_symbol(&mut self, text: &str) -> u32 {
        self.symbols.push(text)
    }

    /// The symbol index of interner string `id` in this request.
    #[inline]
    fn symbol(&mut self, id: u32) -> u32 {
        let current = self.remap.current;
        let slot = &mut self.remap.slots[id as usize];
        slot.symbol_of(id, current, self.interner, &mut self.symbols)
    }

    /// The symbol index of a string not of the interner.
    fn extra_symbol(&mut self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        if let Some(index) = self.extra.get(text) {
            return *index;
        }
        let index = self.new_symbol(text);
        self.extra.insert(text.to_string(), index);
        index
    }

    /// Adds one series: its own labels (sorted by name) with the request's
    /// added labels, and `own_added` if given, merged in; its points in
    /// order, its metadata and start timestamp.
    pub fn series<'p>(
        &mut self,
        labels: &[(u32, u32)],
        own_added: Option<(&'i str, &str)>,
        points: impl Iterator<Item = PointBytes<'p>>,
        metadata: Option<SeriesMetadata<'_>>,
        created_timestamp: i64,
    ) {
        self.series_added.clear();
        if let Some((name, value)) = own_added
            && !name.is_empty()
            && !value.is_empty()
            && !self.added.iter().any(|a| a.name == name)
        {
            let name_ref = self.extra_symbol(name);
            let value_ref = self.extra_symbol(value);
            self.series_added.extend_from_slice(&self.added);
            self.series_added.push(Added {
                name,
                name_ref,
                value_ref,
            });
            self.series_added.sort_by(|a, b| a.name.cmp(b.name));
        }
        self.series.clear();
        self.refs.clear();
        if self.series_added.is_empty() {
            self.write_labels_added(labels);
        } else {
            let series_added = std::mem::take(&mut self.series_added);
            self.write_labels(labels, &series_added);
            self.series_added = series_added;
        }
        wire::put_packed_uint32(&mut self.series, field::TIME_SERIES_LABELS_REFS, &self.refs);
        for point in points {
            match point {
                PointBytes::Sample(bytes) => {
                    wire::put_len_field(&mut self.series, field::TIME_SERIES_SAMPLES, bytes)
                }
                PointBytes::Histogram(bytes) => {
                    wire::put_len_field(&mut self.series, field::TIME_SERIES_HISTOGRAMS, bytes)
                }
                PointBytes::Exemplar(exemplar) => self.write_exemplar(exemplar),
            }
        }
        if let Some(metadata) = metadata {
            let (kind, help, unit) = match metadata {
                SeriesMetadata::Ids { kind, help, unit } => {
                    let help = if help == 0 { 0 } else { self.symbol(help) };
                    let unit = if unit == 0 { 0 } else { self.symbol(unit) };
                    (kind, help, unit)
                }
                SeriesMetadata::Text { kind, help, unit } => {
                    (kind, self.extra_symbol(help), self.extra_symbol(unit))
                }
            };
            let encoded = &mut self.metadata;
            encoded.clear();
            wire::put_int64(encoded, field::METADATA_TYPE, i64::from(kind));
            wire::put_int64(encoded, field::METADATA_HELP_REF, i64::from(help));
            wire::put_int64(encoded, field::METADATA_UNIT_REF, i64::from(unit));
            if !encoded.is_empty() {
                wire::put_len_field(&mut self.series, field::TIME_SERIES_METADATA, encoded);
            }
        }
        wire::put_int64(
            &mut self.series,
            field::TIME_SERIES_CREATED_TIMESTAMP,
            created_timestamp,
        );
        wire::put_len_field(
            &mut self.timeseries,
            field::REQUEST_TIMESERIES,
            &self.series,
        );
        self.series_written += 1;
    }

    /// The series' label refs into `self.refs` with the request's added
    /// labels merged in by name.
    fn write_labels_added(&mut self, labels: &[(u32, u32)]) {
        // Places pay off from a request's second series on; a request of
        // one series merges by comparing names, as cheap as working them out.
        if self.series_written == 0 {
            let added = std::mem::take(&mut self.added);
            self.write_labels(labels, &added);
            self.added = added;
            return;
        }
        if !self.write_labels_placed(labels) {
            self.refs.clear();
            let added = std::mem::take(&mut self.added);
            self.write_labels_renaming(labels, &added);
            self.added = added;
        }
    }

    /// The merge of [`Self::write_labels_added`] with the added labels'
    /// places known per name: one slot per label string, no string
    /// comparison. False if a label of the series is named like an added one.
    fn write_labels_placed(&mut self, labels: &[(u32, u32)]) -> bool {
        let RequestWriter {
            interner,
            remap,
            symbols,
            added,
            refs,
            ..
        } = self;
        let current = remap.current;
        let slots = &mut remap.slots;
        refs.reserve(2 * (labels.len() + added.len()));
        let mut before = 0;
        for &(name, value) in labels {
            let slot = &mut slots[name as usize];
            let place = slot.place_of(name, current, interner, added);
            if place == CONFLICT {
                return false;
            }
            let name_ref = slot.symbol_of(name, current, interner, symbols);
            let value_ref = slots[value as usize].symbol_of(value, current, interner, symbols);
            let place = place as usize;
            if place > before {
                for label in &added[before..place] {
                    refs.push(label.name_ref);
                    refs.push(label.value_ref);
                }
                before = place;
            }
            refs.push(name_ref);
            refs.push(value_ref);
        }
        for label in &added[before..] {
            refs.push(label.name_ref);
            refs.push(label.value_ref);
        }
        true
    }

    /// The series' label refs into `self.refs`, `added` (sorted by name)
    /// merged in by name; a label of its own named like an added one becomes
    /// `exported_<name>`.
    fn write_labels(&mut self, labels: &[(u32, u32)], added: &[Added<'i>]) {
        let interner = self.interner;
        let conflict = labels.iter().any(|(name, _)| {
            let name = interner.get(*name);
            added.iter().any(|a| a.name == name)
        });
        if conflict {
            return self.write_labels_renaming(labels, added);
        }
        self.refs.reserve(2 * (labels.len() + added.len()));
        let mut before = 0;
        for (name, value) in labels {
            let name_text = interner.get(*name);
            while before < added.len() && added[before].name < name_text {
                self.refs.push(added[before].name_ref);
                self.refs.push(added[before].value_ref);
                before += 1;
            }
            let name_ref = self.symbol(*name);
            let value_ref = self.symbol(*value);
            self.refs.push(name_ref);
            self.refs.push(value_ref);
        }
        for label in &added[before..] {
            self.refs.push(label.name_ref);
            self.refs.push(label.value_ref);
        }
    }

    /// The rare path: some of the series' own labels are renamed, as
    /// Prometheus does with `honor_labels: false`.
    fn write_labels_renaming(&mut self, labels: &[(u32, u32)], added: &[Added<'i>]) {
        let interner = self.interner;
        let taken = |name: &str, added: &[Added<'_>]| {
            labels.iter().any(|(n, _)| interner.get(*n) == name)
                || added.iter().any(|a| a.name == name)
        };
        // (name, name symbol, value symbol), then sorted by name.
        let mut merged: Vec<(String, u32, u32)> = Vec::with_capacity(labels.len() + 4);
        for (name, value) in labels {
            let name_text = interner.get(*name);
            let value_ref = self.symbol(*value);
            if !added.iter().any(|a| a.name == name_text) {
                let name_ref = self.symbol(*name);
                merged.push((name_text.to_string(), name_ref, value_ref));
                continue;
            }
            let mut renamed = format!("{EXPORTED_PREFIX}{name_text}");
            while taken(&renamed, added) || merged.iter().any(|m| m.0 == renamed) {
                renamed.insert_str(0, EXPORTED_PREFIX);
            }
            let name_ref = self.new_symbol(&renamed);
            merged.push((renamed, name_ref, value_ref));
        }
        for label in added {
            merged.push((label.name.to_string(), label.name_ref, label.value_ref));
        }
        merged.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, name_ref, value_ref) in merged {
            self.refs.extend([name_ref, value_ref]);
        }
    }

    fn write_exemplar(&mut self, exemplar: ExemplarRef<'_>) {
        let mut refs = Vec::with_capacity(exemplar.labels.len() * 2);
        for (name, value) in exemplar.labels {
            refs.push(self.extra_symbol(name));
            refs.push(self.extra_symbol(value));
        }
        let mut encoded = Vec::with_capacity(24 + refs.len());
        wire::put_packed_uint32(&mut encoded, field::EXEMPLAR_LABELS_REFS, &refs);
        // Written even at 0.0: the value is kept to its bits, -0.0 included.
        wire::put_fixed64(
            &mut encoded,
            field::EXEMPLAR_VALUE,
            exemplar.value.to_bits(),
        );
        wire::put_int64(&mut encoded, field::EXEMPLAR_TIMESTAMP, exemplar.timestamp);
        wire::put_len_field(&mut self.series, field::TIME_SERIES_EXEMPLARS, &encoded);
    }

    /// The request: its symbol table, then its series.
    pub fn finish(&mut self) -> Vec<u8> {
        let symbols = &self.symbols.bytes;
        let mut request = Vec::with_capacity(symbols.len() + self.timeseries.len());
        request.extend_from_slice(symbols);
        request.extend_from_slice(&self.timeseries);
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::Message;
    use proto::v2;

    fn labels_of(request: &v2::Request, series: &v2::TimeSeries) -> Vec<(String, String)> {
        series
            .labels_refs
            .chunks(2)
            .map(|pair| {
                (
                    request.symbols[pair[0] as usize].clone(),
                    request.symbols[pair[1] as usize].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn added_labels_are_merged_in_order_and_own_ones_renamed() {
        let mut interner = Interner::new();
        let own = [
            ("__name__", "up"),
            ("component_name", "mine"),
            ("exported_component_name", "older"),
            ("pod", "p1"),
        ];
        let labels: Vec<(u32, u32)> = own
            .iter()
            .map(|(n, v)| (interner.intern(n), interner.intern(v)))
            .collect();
        let plain: Vec<(u32, u32)> = [("__name__", "up"), ("pod", "p1")]
            .iter()
            .map(|(n, v)| (interner.intern(n), interner.intern(v)))
            .collect();
        let sample = v2::Sample {
            value: 1.5,
            timestamp: 7,
            start_timestamp: 3,
        }
        .encode_to_vec();
        let mut remap = Remap::default();
        let mut writer = RequestWriter::new(&interner, &mut remap);
        writer.begin(&[
            ("component_name", "p1"),
            ("component_external_id", "urn:p1"),
            ("component_type", ""),
        ]);
        writer.series(
            &plain,
            None,
            [PointBytes::Sample(&sample)].into_iter(),
            None,
            0,
        );
        writer.series(
            &labels,
            Some(("detail", "why")),
            std::iter::empty(),
            None,
            0,
        );
        let request = v2::Request::decode(writer.finish().as_slice()).unwrap();
        assert_eq!(request.symbols[0], "");
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            labels_of(&request, &request.timeseries[0]),
            pairs(&[
                ("__name__", "up"),
                ("component_external_id", "urn:p1"),
                ("component_name", "p1"),
                ("pod", "p1")
            ])
        );
        assert_eq!(request.timeseries[0].samples[0].start_timestamp, 3);
        assert_eq!(
            labels_of(&request, &request.timeseries[1]),
            pairs(&[
                ("__name__", "up"),
                ("component_external_id", "urn:p1"),
                ("component_name", "p1"),
                ("detail", "why"),
                ("exported_component_name", "older"),
                ("exported_exported_component_name", "mine"),
                ("pod", "p1")
            ])
        );
        // The series' own strings once each, though both series use them
        // (an added value may repeat one: "p1" is the pod and the name).
        for text in ["__name__", "up", "pod", "component_name", "mine"] {
            assert_eq!(
                request.symbols.iter().filter(|s| *s == text).count(),
                1,
                "{text}"
            );
        }
    }

    #[test]
    fn metadata_and_exemplars_reference_the_requests_own_table() {
        let mut interner = Interner::new();
        let labels = vec![(interner.intern("__name__"), interner.intern("x_total"))];
        let trace = [("trace_id", "abc")];
        let help = interner.intern("Things counted.");
        let mut remap = Remap::default();
        let mut writer = RequestWriter::new(&interner, &mut remap);
        writer.begin(&[]);
        let exemplar = PointBytes::Exemplar(ExemplarRef {
            labels: &trace,
            value: 2.0,
            timestamp: 9,
        });
        let metadata = SeriesMetadata::Ids {
            kind: 1,
            help,
            unit: 0,
        };
        writer.series(&labels, None, [exemplar].into_iter(), Some(metadata), 5);
        let text = SeriesMetadata::Text {
            kind: 2,
            help: "Remembered.",
            unit: "bytes",
        };
        writer.series(&labels, None, std::iter::empty(), Some(text), 0);
        let request = v2::Request::decode(writer.finish().as_slice()).unwrap();
        let series = &request.timeseries[0];
        let metadata = series.metadata.unwrap();
        assert_eq!(metadata.r#type, 1);
        assert_eq!(
            request.symbols[metadata.help_ref as usize],
            "Things counted."
        );
        assert_eq!(metadata.unit_ref, 0);
        assert_eq!(series.created_timestamp, 5);
        let exemplar = &series.exemplars[0];
        assert_eq!(request.symbols[exemplar.labels_refs[1] as usize], "abc");
        assert_eq!((exemplar.value, exemplar.timestamp), (2.0, 9));
        let remembered = request.timeseries[1].metadata.unwrap();
        assert_eq!(request.symbols[remembered.help_ref as usize], "Remembered.");
        assert_eq!(request.symbols[remembered.unit_ref as usize], "bytes");
    }
}
