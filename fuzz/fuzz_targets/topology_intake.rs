//! The StackState Agent intake payload, split into `topology.raw` records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_fuzz::TENANT;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(records) = ingest::topology::parts_to_records(data, TENANT) else {
        return;
    };
    // Accepted means a JSON object whose `topologies` is null, absent or an
    // array with one record per part.
    let payload: Value = serde_json::from_slice(data).expect("accepted payloads are JSON");
    let parts = match payload.get("topologies") {
        Some(Value::Array(parts)) => parts.len(),
        None | Some(Value::Null) => 0,
        Some(other) => panic!("topologies accepted as {other}"),
    };
    assert_eq!(records.len(), parts, "one record per part");
    for (key, value) in &records {
        let part: Value = serde_json::from_slice(value).expect("record values are JSON");
        let part = part.as_object().expect("record values are objects");
        assert_eq!(
            part.get("tenant").and_then(Value::as_str),
            Some(TENANT),
            "tenant not overwritten"
        );
        assert!(
            part.get("collection_timestamp")
                .is_some_and(Value::is_number),
            "no collection_timestamp"
        );
        let instance = &part["instance"];
        let (Some(kind), Some(url)) = (instance["type"].as_str(), instance["url"].as_str()) else {
            panic!("part accepted without instance type and url: {part:?}");
        };
        assert!(!kind.is_empty() && !url.is_empty());
        assert_eq!(
            *key,
            proto::keys::record_key(TENANT, kind, url),
            "record key"
        );
        // What ingest accepts, the correlator's materializer can read.
        serde_json::from_slice::<correlator::snapshot::TopologyPart>(value)
            .expect("accepted parts are readable by the materializer");
    }
});
