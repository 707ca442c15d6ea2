//! A `metrics.samples` record, read as remote-write 1.0 and as 2.0, through
//! the join: it never panics, and every batch it writes is a remote-write 2.0
//! request whose every series carries the labels the join adds, its labels
//! sorted by name.
#![no_main]

use std::sync::OnceLock;

use correlator::bindings::Bindings;
use correlator::join::{Destination, JoinSettings, Joiner, Origin};
use correlator::output::read_batch;
use libfuzzer_sys::fuzz_target;
use proto::records::Component;

const POD: &str = "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p";

fn joiner() -> Joiner {
    let mut joiner = Joiner::new(Bindings::kubernetes_defaults(), JoinSettings::default());
    let component = Component {
        tenant: "acme".into(),
        external_id: POD.into(),
        type_name: "pod".into(),
        name: "node-exporter-x7k2p".into(),
        identifiers: vec![POD.into()],
        ..Default::default()
    };
    joiner.upsert_component(&format!("acme/k/demo-cluster/{POD}"), component);
    joiner
}

fuzz_target!(|data: &[u8]| {
    static LABELS: OnceLock<proto::OutputLabels> = OnceLock::new();
    let labels = LABELS.get_or_init(proto::OutputLabels::default);
    let mut joiner = joiner();
    for content_type in [proto::CONTENT_TYPE_V1, proto::CONTENT_TYPE_V2] {
        let origin = Origin {
            partition: 0,
            offset: 1,
        };
        let Ok(mut outputs) = joiner.process("acme", content_type, data, origin, 0) else {
            continue;
        };
        outputs.extend(joiner.expire_pending(i64::MAX));
        for output in outputs {
            let batch = read_batch(proto::CONTENT_TYPE_V2, &output.payload)
                .expect("the join writes readable batches");
            assert_eq!(batch.len(), output.series);
            let added = match output.destination {
                Destination::Bound => &labels.external_id,
                Destination::Unbound => &labels.unbound_reason,
            };
            for series in &batch {
                assert!(series.label(added).is_some(), "{series:?}");
                let names: Vec<&str> = series.labels.iter().map(|(n, _)| n.as_str()).collect();
                // Sorted; repeated only where the record itself repeated a
                // name (ingest refuses such series; another writer may not).
                assert!(names.windows(2).all(|pair| pair[0] <= pair[1]), "{names:?}");
            }
        }
    }
});
