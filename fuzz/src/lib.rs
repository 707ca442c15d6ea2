//! Invariants shared by the fuzz targets. Each target is a thin call into the
//! real library code; what must hold of its output is checked here.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use ingest::config::SeriesLimits;
use ingest::partition::{PartitionedBatch, carries_metadata, partition_of_series};
use ingest::validate::Items;
use prost::Message;
use proto::prometheus::WriteRequest;
use proto::v2;

/// The tenant every target writes as.
pub const TENANT: &str = "tenant";
/// The partition count every target splits into.
pub const PARTITIONS: u32 = 8;

/// A decompressed 1.0 body split as ingest splits it; what is accepted must
/// hold together and count what the body holds.
pub fn split_v1_and_check(data: &[u8]) {
    if let Ok(batch) =
        ingest::partition::split_v1(data, TENANT, &SeriesLimits::default(), PARTITIONS)
    {
        check_v1_batch(&batch, PARTITIONS);
        check_v1_counts(data, &batch);
    }
}

/// The same for a decompressed 2.0 body.
pub fn split_v2_and_check(data: &[u8]) {
    if let Ok(batch) =
        ingest::partition::split_v2(data, TENANT, &SeriesLimits::default(), PARTITIONS)
    {
        check_v2_batch(&batch, PARTITIONS);
        check_v2_counts(data, &batch);
    }
}

/// Records come one per partition, in partition order, each non-empty and in range.
fn check_record_partitions(batch: &PartitionedBatch, partitions: u32) {
    let mut previous = -1;
    for (partition, record) in &batch.records {
        assert!(
            (0..partitions as i32).contains(partition),
            "partition {partition} out of range"
        );
        assert!(
            *partition > previous,
            "records not one per partition, in order"
        );
        assert!(!record.is_empty(), "empty record for partition {partition}");
        previous = *partition;
    }
    assert!(batch.written.series <= batch.total_series);
    // Rejections count series and (v1) metadata entries.
    assert!(batch.written.series + batch.rejected.series() >= batch.total_series);
}

/// The partition a series belongs in, and the check that it has one home only.
fn check_series_home(
    homes: &mut HashMap<Vec<(String, String)>, i32>,
    labels: Vec<(String, String)>,
    partition: i32,
    partitions: u32,
) {
    assert!(
        labels.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "labels not sorted and unique: {labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|(name, value)| name == "__name__" && !value.is_empty()),
        "series without __name__ written: {labels:?}"
    );
    let borrowed: Vec<(&[u8], &[u8])> = labels
        .iter()
        .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
        .collect();
    assert_eq!(
        partition_of_series(TENANT, &borrowed, partitions),
        partition,
        "series {labels:?} in the wrong partition"
    );
    match homes.entry(labels) {
        Entry::Occupied(entry) => assert_eq!(
            *entry.get(),
            partition,
            "series {:?} in two partitions",
            entry.key()
        ),
        Entry::Vacant(entry) => {
            entry.insert(partition);
        }
    }
}

/// A remote-write 1.0 split: every record is a `WriteRequest` prost reads, the
/// counts add up, and no series lands in two partitions.
pub fn check_v1_batch(batch: &PartitionedBatch, partitions: u32) {
    check_record_partitions(batch, partitions);
    let mut homes = HashMap::new();
    let (mut series, mut samples, mut histograms, mut exemplars) = (0, 0, 0, 0);
    for (partition, record) in &batch.records {
        let request = WriteRequest::decode(record.as_slice()).unwrap_or_else(|error| {
            panic!("the record of partition {partition} is no WriteRequest: {error}")
        });
        for timeseries in request.timeseries {
            assert!(
                !timeseries.samples.is_empty()
                    || !timeseries.histograms.is_empty()
                    || !timeseries.exemplars.is_empty(),
                "series written with neither samples, histograms nor exemplars"
            );
            series += 1;
            samples += timeseries.samples.len();
            histograms += timeseries.histograms.len();
            exemplars += timeseries.exemplars.len();
            let labels = timeseries
                .labels
                .into_iter()
                .map(|label| (label.name, label.value))
                .collect();
            check_series_home(&mut homes, labels, *partition, partitions);
        }
        for entry in &request.metadata {
            assert!(!entry.metric_family_name.is_empty());
        }
        // A request's metadata entries go to every partition's record.
        assert_eq!(
            request.metadata.len(),
            batch.written.metadata,
            "metadata of partition {partition}"
        );
    }
    assert_eq!(series, batch.written.series, "written.series");
    assert_eq!(samples, batch.written.samples, "written.samples");
    assert_eq!(histograms, batch.written.histograms, "written.histograms");
    assert_eq!(exemplars, batch.written.exemplars, "written.exemplars");
}

/// A remote-write 2.0 split: every record is a `Request` prost reads, with
/// symbols[0] == "" and every reference in range, and the counts add up.
pub fn check_v2_batch(batch: &PartitionedBatch, partitions: u32) {
    check_record_partitions(batch, partitions);
    let mut homes = HashMap::new();
    let (mut series, mut samples, mut histograms, mut exemplars, mut metadata) = (0, 0, 0, 0, 0);
    for (partition, record) in &batch.records {
        let request = v2::Request::decode(record.as_slice()).unwrap_or_else(|error| {
            panic!("the record of partition {partition} is no v2 Request: {error}")
        });
        let symbols = &request.symbols;
        assert_eq!(symbols.first().map(String::as_str), Some(""), "symbols[0]");
        let mut unique = std::collections::HashSet::new();
        assert!(
            symbols.iter().all(|symbol| unique.insert(symbol)),
            "a symbol is interned twice"
        );
        let in_range = |reference: u32| (reference as usize) < symbols.len();
        assert!(!request.timeseries.is_empty());
        for timeseries in &request.timeseries {
            series += 1;
            samples += timeseries.samples.len();
            histograms += timeseries.histograms.len();
            exemplars += timeseries.exemplars.len();
            assert_eq!(timeseries.labels_refs.len() % 2, 0, "odd labels_refs");
            assert!(
                timeseries.labels_refs.iter().all(|r| in_range(*r)),
                "label reference out of range"
            );
            for exemplar in &timeseries.exemplars {
                assert!(
                    exemplar.labels_refs.iter().all(|r| in_range(*r)),
                    "exemplar reference out of range"
                );
            }
            if let Some(metadata) = &timeseries.metadata {
                assert!(in_range(metadata.help_ref) && in_range(metadata.unit_ref));
            }
            assert!(
                timeseries.samples.is_empty() || timeseries.histograms.is_empty(),
                "series written with both samples and histograms"
            );
            assert!(
                !timeseries.samples.is_empty()
                    || !timeseries.histograms.is_empty()
                    || !timeseries.exemplars.is_empty(),
                "series written with neither samples, histograms nor exemplars"
            );
            metadata += usize::from(carries_metadata(timeseries.metadata.as_ref()));
            let labels = timeseries
                .labels_refs
                .chunks_exact(2)
                .map(|pair| {
                    (
                        symbols[pair[0] as usize].clone(),
                        symbols[pair[1] as usize].clone(),
                    )
                })
                .collect();
            check_series_home(&mut homes, labels, *partition, partitions);
        }
    }
    assert_eq!(series, batch.written.series, "written.series");
    assert_eq!(samples, batch.written.samples, "written.samples");
    assert_eq!(histograms, batch.written.histograms, "written.histograms");
    assert_eq!(exemplars, batch.written.exemplars, "written.exemplars");
    assert_eq!(metadata, batch.written.metadata, "written.metadata");
}

/// Nothing of a request goes uncounted: what its series (and 1.0 metadata
/// entries) carry is either written or refused, kind by kind. `sent` is what
/// prost reads in the request.
fn check_counts_conserved(batch: &PartitionedBatch, sent: Items) {
    let mut accounted = batch.written.items();
    for (_, _, refused) in batch.rejected.counts() {
        accounted.add(refused);
    }
    assert_eq!(accounted, sent, "written plus refused is not what was sent");
}

/// [`check_counts_conserved`] for a 1.0 request prost reads.
pub fn check_v1_counts(data: &[u8], batch: &PartitionedBatch) {
    let Ok(request) = WriteRequest::decode(data) else {
        return;
    };
    let mut sent = Items {
        metadata: request.metadata.len(),
        ..Items::default()
    };
    for timeseries in &request.timeseries {
        sent.samples += timeseries.samples.len();
        sent.histograms += timeseries.histograms.len();
        sent.exemplars += timeseries.exemplars.len();
    }
    check_counts_conserved(batch, sent);
}

/// [`check_counts_conserved`] for a 2.0 request (split_v2 reads what prost reads).
pub fn check_v2_counts(data: &[u8], batch: &PartitionedBatch) {
    let request = v2::Request::decode(data).expect("split_v2 took what prost refuses");
    let mut sent = Items::default();
    for timeseries in &request.timeseries {
        sent.samples += timeseries.samples.len();
        sent.histograms += timeseries.histograms.len();
        sent.exemplars += timeseries.exemplars.len();
        sent.metadata += usize::from(carries_metadata(timeseries.metadata.as_ref()));
    }
    check_counts_conserved(batch, sent);
}
