//! Validation of one series: its labels (shared by both protocols, over byte
//! slices so nothing is copied) and its native histograms.

use std::fmt::Write as _;

use proto::v2;

use crate::config::SeriesLimits;

/// Why a series (or a metadata entry) was left out of a request. Also the
/// `reason` label of `ingest_series_rejected_total` and `ingest_refused_total`,
/// so the set is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    NoLabels,
    MissingMetricName,
    EmptyLabelName,
    InvalidUtf8,
    DuplicateLabelName,
    TooManyLabels,
    LabelNameTooLong,
    LabelValueTooLong,
    SymbolOutOfRange,
    SamplesAndHistograms,
    Empty,
    InvalidHistogram,
}

impl Rejection {
    pub const ALL: [Rejection; 12] = [
        Rejection::NoLabels,
        Rejection::MissingMetricName,
        Rejection::EmptyLabelName,
        Rejection::InvalidUtf8,
        Rejection::DuplicateLabelName,
        Rejection::TooManyLabels,
        Rejection::LabelNameTooLong,
        Rejection::LabelValueTooLong,
        Rejection::SymbolOutOfRange,
        Rejection::SamplesAndHistograms,
        Rejection::Empty,
        Rejection::InvalidHistogram,
    ];

    /// A stable snake_case name, used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NoLabels => "no_labels",
            Rejection::MissingMetricName => "missing_metric_name",
            Rejection::EmptyLabelName => "empty_label_name",
            Rejection::InvalidUtf8 => "invalid_utf8",
            Rejection::DuplicateLabelName => "duplicate_label_name",
            Rejection::TooManyLabels => "too_many_labels",
            Rejection::LabelNameTooLong => "label_name_too_long",
            Rejection::LabelValueTooLong => "label_value_too_long",
            Rejection::SymbolOutOfRange => "symbol_out_of_range",
            Rejection::SamplesAndHistograms => "samples_and_histograms",
            Rejection::Empty => "empty_series",
            Rejection::InvalidHistogram => "invalid_histogram",
        }
    }

    /// What a person reading the 400 body needs to know.
    fn describe(self) -> &'static str {
        match self {
            Rejection::NoLabels => "without labels",
            Rejection::MissingMetricName => "without a __name__ label",
            Rejection::EmptyLabelName => "with an empty label name",
            Rejection::InvalidUtf8 => "with a label that is not UTF-8",
            Rejection::DuplicateLabelName => "with a duplicate label name",
            Rejection::TooManyLabels => "with too many labels",
            Rejection::LabelNameTooLong => "with a label name over the length limit",
            Rejection::LabelValueTooLong => "with a label value over the length limit",
            Rejection::SymbolOutOfRange => "with a symbol reference out of range",
            Rejection::SamplesAndHistograms => "with both samples and histograms",
            Rejection::Empty => "with neither samples, histograms nor exemplars",
            Rejection::InvalidHistogram => "with an invalid native histogram",
        }
    }
}

/// What a series or metadata entry carries, counted by kind: what a request
/// had refused (the `kind` label of `ingest_refused_total`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Items {
    pub samples: usize,
    pub histograms: usize,
    pub exemplars: usize,
    pub metadata: usize,
}

impl Items {
    /// What a rejected 1.0 metadata entry takes with it.
    pub const ONE_METADATA: Items = Items {
        samples: 0,
        histograms: 0,
        exemplars: 0,
        metadata: 1,
    };

    pub fn add(&mut self, other: Items) {
        self.samples += other.samples;
        self.histograms += other.histograms;
        self.exemplars += other.exemplars;
        self.metadata += other.metadata;
    }

    /// (kind, count) in the order the metrics list them.
    pub fn by_kind(&self) -> [(&'static str, usize); 4] {
        [
            ("sample", self.samples),
            ("histogram", self.histograms),
            ("exemplar", self.exemplars),
            ("metadata", self.metadata),
        ]
    }
}

/// The series (and metadata entries) of a request that were left out, by
/// reason, with the first offender of each reason for the error message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RejectionReport {
    entries: Vec<RejectedEntries>,
}

#[derive(Debug, Clone, PartialEq)]
struct RejectedEntries {
    reason: Rejection,
    /// Series or metadata entries.
    count: usize,
    items: Items,
    first: String,
}

impl RejectionReport {
    pub fn reject(&mut self, reason: Rejection, items: Items, example: impl FnOnce() -> String) {
        if let Some(entry) = self.entries.iter_mut().find(|entry| entry.reason == reason) {
            entry.count += 1;
            entry.items.add(items);
            return;
        }
        self.entries.push(RejectedEntries {
            reason,
            count: 1,
            items,
            first: example(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Series and metadata entries rejected.
    pub fn series(&self) -> usize {
        self.entries.iter().map(|entry| entry.count).sum()
    }

    /// (reason, series or entries, what they carried) for the metrics.
    pub fn counts(&self) -> impl Iterator<Item = (Rejection, usize, Items)> + '_ {
        self.entries
            .iter()
            .map(|entry| (entry.reason, entry.count, entry.items))
    }

    /// The first reason and its first offender, for the log line.
    pub fn first(&self) -> Option<(Rejection, &str)> {
        self.entries
            .first()
            .map(|entry| (entry.reason, entry.first.as_str()))
    }

    /// The 400 body: how many were rejected of how many, why, and an example each.
    pub fn message(&self, total_series: usize) -> String {
        let mut message = format!("{} of {} series rejected", self.series(), total_series);
        for entry in &self.entries {
            let _ = write!(
                message,
                "; {} {} (first: {})",
                entry.count,
                entry.reason.describe(),
                entry.first
            );
        }
        message
    }
}

/// Checks a series' labels and sorts them by name in place (unsorted labels
/// are sorted, not rejected). Returns whether they were already sorted.
/// `all_ascii` says the caller has seen that every name and value is ASCII,
/// which spares the UTF-8 check of each one.
pub fn check_labels(
    labels: &mut [(&[u8], &[u8])],
    limits: &SeriesLimits,
    all_ascii: bool,
) -> Result<bool, Rejection> {
    if labels.is_empty() {
        return Err(Rejection::NoLabels);
    }
    if labels.len() > limits.max_labels_per_series {
        return Err(Rejection::TooManyLabels);
    }
    // Strictly ascending names cannot repeat: one comparison per pair answers
    // both questions for the series senders send (sorted, as the spec asks).
    let strictly_sorted = labels
        .windows(2)
        .all(|pair| name_less(pair[0].0, pair[1].0));
    if !strictly_sorted {
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    let mut has_name = false;
    for (index, (name, value)) in labels.iter().enumerate() {
        if name.is_empty() {
            return Err(Rejection::EmptyLabelName);
        }
        if !strictly_sorted && index > 0 && labels[index - 1].0 == *name {
            return Err(Rejection::DuplicateLabelName);
        }
        if name.len() > limits.max_label_name_length {
            return Err(Rejection::LabelNameTooLong);
        }
        if value.len() > limits.max_label_value_length {
            return Err(Rejection::LabelValueTooLong);
        }
        if !all_ascii && (std::str::from_utf8(name).is_err() || std::str::from_utf8(value).is_err())
        {
            return Err(Rejection::InvalidUtf8);
        }
        if *name == b"__name__" {
            has_name = !value.is_empty();
        }
    }
    if !has_name {
        return Err(Rejection::MissingMetricName);
    }
    Ok(strictly_sorted)
}

/// `a < b`, deciding on the first bytes when they differ (names mostly do)
/// without a call to `memcmp`.
#[inline(always)]
fn name_less(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// Renders labels as `{a="b", c="d"}`, shortened, for error messages.
pub fn describe_labels(labels: &[(&[u8], &[u8])]) -> String {
    const MAX: usize = 160;
    let mut text = String::from("{");
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        let _ = write!(
            text,
            "{}={:?}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(value)
        );
        if text.len() > MAX {
            let mut cut = MAX;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
            break;
        }
    }
    text.push('}');
    text
}

/// Checks a native histogram the way Prometheus does before appending it:
/// schema in range, spans matching buckets, no negative bucket, and for integer
/// histograms the buckets adding up to the count. (The v1 and v2 messages share
/// these field numbers, so a v1 histogram is checked through the v2 type.)
pub fn check_histogram(histogram: &v2::Histogram) -> Result<(), String> {
    use v2::histogram::{Count, ZeroCount};

    const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
    let custom = histogram.schema == CUSTOM_BUCKETS_SCHEMA;
    if !custom && !(-4..=8).contains(&histogram.schema) {
        return Err(format!(
            "schema {} is not -53 or in -4..=8",
            histogram.schema
        ));
    }
    let is_float = matches!(histogram.count, Some(Count::CountFloat(_)));
    if is_float && (!histogram.negative_deltas.is_empty() || !histogram.positive_deltas.is_empty())
    {
        return Err("float histogram carries integer bucket deltas".into());
    }
    if !is_float && (!histogram.negative_counts.is_empty() || !histogram.positive_counts.is_empty())
    {
        return Err("integer histogram carries float bucket counts".into());
    }
    if custom {
        if !histogram.negative_spans.is_empty()
            || !histogram.negative_deltas.is_empty()
            || !histogram.negative_counts.is_empty()
        {
            return Err("custom-bucket histogram has negative buckets".into());
        }
        if histogram
            .custom_values
            .windows(2)
            .any(|pair| pair[0].partial_cmp(&pair[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err("custom bucket bounds are not strictly increasing".into());
        }
    }

    let negative_buckets = histogram.negative_deltas.len() + histogram.negative_counts.len();
    let positive_buckets = histogram.positive_deltas.len() + histogram.positive_counts.len();
    check_spans("negative", &histogram.negative_spans, negative_buckets)?;
    check_spans("positive", &histogram.positive_spans, positive_buckets)?;
    if custom {
        let max_index = histogram.positive_spans.iter().fold(0i64, |end, span| {
            end + i64::from(span.offset) + i64::from(span.length)
        });
        if max_index > histogram.custom_values.len() as i64 + 1 {
            return Err("more custom buckets than bounds".into());
        }
    }

    if is_float {
        for count in histogram
            .negative_counts
            .iter()
            .chain(&histogram.positive_counts)
        {
            if count.is_nan() || *count < 0.0 {
                return Err(format!("bucket count {count} is negative or NaN"));
            }
        }
        return Ok(());
    }
    let negative = absolute_counts("negative", &histogram.negative_deltas)?;
    let positive = absolute_counts("positive", &histogram.positive_deltas)?;
    let zero = match histogram.zero_count {
        Some(ZeroCount::ZeroCountInt(count)) => count,
        Some(ZeroCount::ZeroCountFloat(_)) => {
            return Err("integer histogram has a float zero count".into());
        }
        None => 0,
    };
    let count = match histogram.count {
        Some(Count::CountInt(count)) => count,
        _ => 0,
    };
    let in_buckets = negative.saturating_add(positive).saturating_add(zero);
    // With a NaN sum some observations were NaN: they count but land in no bucket.
    if histogram.sum.is_nan() {
        if in_buckets > count {
            return Err(format!(
                "{in_buckets} observations in buckets, more than the count {count}"
            ));
        }
    } else if in_buckets != count {
        return Err(format!(
            "{in_buckets} observations in buckets, but the count is {count}"
        ));
    }
    Ok(())
}

fn check_spans(side: &str, spans: &[v2::BucketSpan], buckets: usize) -> Result<(), String> {
    let mut spanned = 0usize;
    for (index, span) in spans.iter().enumerate() {
        if index > 0 && span.offset < 0 {
            return Err(format!(
                "{side} span {index} has negative offset {}",
                span.offset
            ));
        }
        spanned += span.length as usize;
    }
    if spanned != buckets {
        return Err(format!(
            "{side} spans cover {spanned} buckets but {buckets} are given"
        ));
    }
    Ok(())
}

fn absolute_counts(side: &str, deltas: &[i64]) -> Result<u64, String> {
    let mut current: i64 = 0;
    let mut total: u64 = 0;
    for delta in deltas {
        current = current
            .checked_add(*delta)
            .ok_or_else(|| format!("{side} bucket count overflows"))?;
        if current < 0 {
            return Err(format!("{side} bucket has negative count {current}"));
        }
        total = total.saturating_add(current as u64);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use v2::histogram::{Count, ZeroCount};

    fn check(labels: &[(&str, &str)]) -> Result<bool, Rejection> {
        let pairs: Vec<(&[u8], &[u8])> = labels
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        let checked = check_labels(&mut pairs.clone(), &SeriesLimits::default(), false);
        let all_ascii = labels.iter().all(|(n, v)| n.is_ascii() && v.is_ascii());
        if all_ascii {
            // The ASCII shortcut must give the same verdict.
            assert_eq!(
                check_labels(&mut pairs.clone(), &SeriesLimits::default(), true),
                checked
            );
        }
        checked
    }

    #[test]
    fn labels_are_checked_and_sorted() {
        assert_eq!(check(&[("__name__", "up"), ("job", "a")]), Ok(true));
        assert_eq!(check(&[("job", "a"), ("__name__", "up")]), Ok(false));
        assert_eq!(check(&[]), Err(Rejection::NoLabels));
        assert_eq!(check(&[("job", "a")]), Err(Rejection::MissingMetricName));
        assert_eq!(
            check(&[("__name__", ""), ("job", "a")]),
            Err(Rejection::MissingMetricName)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("job", "a"), ("job", "b")]),
            Err(Rejection::DuplicateLabelName)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("", "a")]),
            Err(Rejection::EmptyLabelName)
        );
        let long = "x".repeat(5000);
        assert_eq!(
            check(&[("__name__", "up"), ("job", &long)]),
            Err(Rejection::LabelValueTooLong)
        );
        // UTF-8 names are valid since Prometheus 3.
        assert_eq!(
            check(&[("__name__", "my.metric with spaces"), ("ünï", "ok")]),
            Ok(true)
        );
    }

    #[test]
    fn a_rejection_message_counts_and_shows_an_example() {
        let mut report = RejectionReport::default();
        let samples = |samples| Items {
            samples,
            ..Items::default()
        };
        report.reject(Rejection::MissingMetricName, samples(1), || {
            "{job=\"a\"}".into()
        });
        report.reject(Rejection::MissingMetricName, samples(2), || unreachable!());
        report.reject(Rejection::NoLabels, samples(1), || "{}".into());
        assert_eq!(
            report.message(10),
            "3 of 10 series rejected; 2 without a __name__ label (first: {job=\"a\"}); 1 without labels (first: {})"
        );
        let counts: Vec<_> = report.counts().collect();
        assert_eq!(
            counts,
            [
                (Rejection::MissingMetricName, 2, samples(3)),
                (Rejection::NoLabels, 1, samples(1))
            ]
        );
        assert_eq!(
            report.first(),
            Some((Rejection::MissingMetricName, "{job=\"a\"}"))
        );
    }

    fn integer_histogram(count: u64) -> v2::Histogram {
        v2::Histogram {
            count: Some(Count::CountInt(count)),
            sum: 10.0,
            schema: 0,
            zero_count: Some(ZeroCount::ZeroCountInt(1)),
            positive_spans: vec![
                v2::BucketSpan {
                    offset: 0,
                    length: 2,
                },
                v2::BucketSpan {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_deltas: vec![2, 1, -2], // absolute 2, 3, 1
            ..Default::default()
        }
    }

    #[test]
    fn histogram_counts_must_add_up() {
        assert_eq!(check_histogram(&integer_histogram(7)), Ok(()));
        assert!(
            check_histogram(&integer_histogram(99))
                .unwrap_err()
                .contains("count is 99")
        );
        let mut nan_sum = integer_histogram(9);
        nan_sum.sum = f64::NAN;
        assert_eq!(check_histogram(&nan_sum), Ok(()));
        let mut negative = integer_histogram(7);
        negative.positive_deltas = vec![2, -3, 2];
        assert!(check_histogram(&negative).is_err());
        let mut short_spans = integer_histogram(7);
        short_spans.positive_spans.pop();
        assert!(check_histogram(&short_spans).is_err());
        assert_eq!(check_histogram(&v2::Histogram::default()), Ok(()));
    }
}
