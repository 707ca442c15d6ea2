//! The remote-write 2.0 split as it was before the borrowing walker: prost
//! decodes the request into owned structs (a `String` per symbol), and each
//! partition's record is re-encoded by prost. Kept as the reference the new
//! path is compared with, byte for byte (`tests/v2_differential.rs`), and
//! measured against (`benches/decode.rs`).

#![allow(dead_code)]

use std::collections::HashMap;

use ingest::config::SeriesLimits;
use ingest::partition::{PartitionedBatch, carries_metadata, partition_of_series};
use ingest::validate::{self, Items, Rejection};
use proto::{Message, v2};

/// A v2 message under construction for one partition, with its own symbols.
#[derive(Default)]
struct V2PartitionBuilder<'a> {
    symbols: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
    series: Vec<v2::TimeSeries>,
}

impl<'a> V2PartitionBuilder<'a> {
    fn intern(&mut self, symbol: &'a str) -> u32 {
        if self.symbols.is_empty() {
            self.symbols.push("");
            self.index.insert("", 0);
        }
        if let Some(&reference) = self.index.get(symbol) {
            return reference;
        }
        let reference = self.symbols.len() as u32;
        self.symbols.push(symbol);
        self.index.insert(symbol, reference);
        reference
    }

    fn encode(self) -> Vec<u8> {
        let request = v2::Request {
            symbols: self.symbols.into_iter().map(str::to_owned).collect(),
            timeseries: self.series,
        };
        request.encode_to_vec()
    }
}

/// Splits a decompressed `io.prometheus.write.v2.Request`.
pub fn split_v2_prost(
    raw: &[u8],
    tenant: &str,
    limits: &SeriesLimits,
    partitions: u32,
) -> Result<PartitionedBatch, prost::DecodeError> {
    let v2::Request {
        symbols,
        timeseries,
    } = v2::Request::decode(raw)?;
    let symbols = &symbols;
    let mut builders: Vec<V2PartitionBuilder<'_>> = (0..partitions.max(1))
        .map(|_| V2PartitionBuilder::default())
        .collect();
    let mut batch = PartitionedBatch::default();
    let mut labels: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    for mut series in timeseries {
        batch.total_series += 1;
        let items = Items {
            samples: series.samples.len(),
            histograms: series.histograms.len(),
            exemplars: series.exemplars.len(),
            metadata: usize::from(carries_metadata(series.metadata.as_ref())),
        };
        if let Err((reason, detail)) = check_v2_series(&series, symbols, limits, &mut labels) {
            batch.rejected.reject(reason, items, || {
                let described = validate::describe_labels(&labels);
                if detail.is_empty() {
                    described
                } else {
                    format!("{described}: {detail}")
                }
            });
            continue;
        }
        let partition = partition_of_series(tenant, &labels, partitions);
        let builder = &mut builders[partition as usize];
        // Labels go out sorted; every reference is remapped into this partition's symbols.
        series.labels_refs.clear();
        for (name, value) in &labels {
            let name = std::str::from_utf8(name).expect("checked");
            let value = std::str::from_utf8(value).expect("checked");
            let name_ref = builder.intern(name);
            let value_ref = builder.intern(value);
            series.labels_refs.push(name_ref);
            series.labels_refs.push(value_ref);
        }
        for exemplar in &mut series.exemplars {
            for reference in &mut exemplar.labels_refs {
                *reference = builder.intern(&symbols[*reference as usize]);
            }
        }
        if let Some(metadata) = &mut series.metadata {
            metadata.help_ref = builder.intern(&symbols[metadata.help_ref as usize]);
            metadata.unit_ref = builder.intern(&symbols[metadata.unit_ref as usize]);
        }
        batch.written.series += 1;
        batch.written.samples += series.samples.len();
        batch.written.histograms += series.histograms.len();
        batch.written.exemplars += series.exemplars.len();
        batch.written.metadata += items.metadata;
        builder.series.push(series);
    }
    batch.records = builders
        .into_iter()
        .enumerate()
        .filter(|(_, builder)| !builder.series.is_empty())
        .map(|(partition, builder)| (partition as i32, builder.encode()))
        .collect();
    Ok(batch)
}

/// Checks one v2 series; on success `labels` holds its labels sorted by name.
fn check_v2_series<'a>(
    series: &v2::TimeSeries,
    symbols: &'a [String],
    limits: &SeriesLimits,
    labels: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<(), (Rejection, String)> {
    labels.clear();
    let symbol = |reference: u32| symbols.get(reference as usize).map(|s| s.as_bytes());
    if series.labels_refs.len() % 2 != 0 {
        return Err((
            Rejection::SymbolOutOfRange,
            format!(
                "odd number of label references ({})",
                series.labels_refs.len()
            ),
        ));
    }
    for pair in series.labels_refs.chunks_exact(2) {
        match (symbol(pair[0]), symbol(pair[1])) {
            (Some(name), Some(value)) => labels.push((name, value)),
            _ => {
                let detail = format!(
                    "label reference {} or {} not below {} symbols",
                    pair[0],
                    pair[1],
                    symbols.len()
                );
                return Err((Rejection::SymbolOutOfRange, detail));
            }
        }
    }
    for exemplar in &series.exemplars {
        if exemplar.labels_refs.len() % 2 != 0
            || exemplar.labels_refs.iter().any(|r| symbol(*r).is_none())
        {
            return Err((
                Rejection::SymbolOutOfRange,
                "exemplar label reference out of range".into(),
            ));
        }
    }
    if let Some(metadata) = &series.metadata {
        if symbol(metadata.help_ref).is_none() || symbol(metadata.unit_ref).is_none() {
            return Err((
                Rejection::SymbolOutOfRange,
                "metadata help or unit reference out of range".into(),
            ));
        }
    }
    validate::check_labels(labels, limits, false).map_err(|reason| (reason, String::new()))?;
    match (series.samples.is_empty(), series.histograms.is_empty()) {
        (false, false) => return Err((Rejection::SamplesAndHistograms, String::new())),
        (true, true) if series.exemplars.is_empty() => {
            return Err((Rejection::Empty, String::new()));
        }
        _ => {}
    }
    for histogram in &series.histograms {
        validate::check_histogram(histogram)
            .map_err(|detail| (Rejection::InvalidHistogram, detail))?;
    }
    Ok(())
}
