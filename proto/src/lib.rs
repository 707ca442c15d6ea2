//! Wire formats of the pipeline: Prometheus remote-write 1.0 and 2.0 as senders
//! put them on the wire, the pipeline's own records, a zero-copy protobuf
//! field reader for the hot paths that must not allocate per label, and the
//! shard of partitions a tenant writes to (which ingest and the correlator
//! must compute alike), the records' keys and headers, and the shape of a
//! `topology.raw` record.

pub mod fixtures;
pub mod keys;
pub mod shard;
pub mod topology;
pub mod wire;

/// Field numbers of every message, generated from the `.proto` files by
/// `build.rs` (from the descriptors protox builds for prost): named
/// `MESSAGE_FIELD`, e.g. `fields::v2::TIME_SERIES_LABELS_REFS`. Hand-written
/// wire code names its fields with these, never with a literal.
pub mod fields {
    include!(concat!(env!("OUT_DIR"), "/fields.rs"));
}

/// Remote-write 1.0: `prometheus.WriteRequest`.
pub mod prometheus {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Remote-write 2.0 lives in package `io.prometheus.write.v2`; see [`v2`].
pub mod io {
    pub mod prometheus {
        pub mod write {
            pub mod v2 {
                include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
            }
        }
    }
}

/// Remote-write 2.0: `io.prometheus.write.v2.Request`.
pub use io::prometheus::write::v2;

/// Package `pipeline.v1`; see [`records`].
pub mod pipeline {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/pipeline.v1.rs"));
    }
}

/// The pipeline's own records (`topology.components`) and the unbound reasons.
pub use pipeline::v1 as records;

pub use prost::Message;

/// Names of the labels the correlator adds to the series it writes to
/// `metrics.bound` and `metrics.unbound` (its `COMPONENT_LABEL_*` and
/// `UNBOUND_LABEL_*` settings), for it and for the readers of its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLabels {
    /// The component's externalId, on bound series.
    pub external_id: String,
    /// The component's type; empty: not added.
    pub component_type: String,
    /// The component's name; empty: not added.
    pub component_name: String,
    /// The reason, on unbound series.
    pub unbound_reason: String,
    /// What a person needs to know of the reason, on unbound series.
    pub unbound_detail: String,
}

impl Default for OutputLabels {
    fn default() -> OutputLabels {
        OutputLabels {
            external_id: "component_external_id".into(),
            component_type: "component_type".into(),
            component_name: "component_name".into(),
            unbound_reason: "unbound_reason".into(),
            unbound_detail: "unbound_detail".into(),
        }
    }
}

/// What a series' own label is renamed with when an added label takes its
/// name (Prometheus's `honor_labels: false`), as often as needed.
pub const EXPORTED_PREFIX: &str = "exported_";

/// The bit pattern Prometheus uses to mark a series stale (a NaN that must survive the trip).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Content type of a remote-write 1.0 body (and of `metrics.samples` records holding one).
pub const CONTENT_TYPE_V1: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
/// Content type of a remote-write 2.0 body (and of `metrics.samples` records holding one).
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// The remote-write message a body (or a `metrics.samples` record) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest`
    V1,
    /// `io.prometheus.write.v2.Request`
    V2,
}

impl Protocol {
    /// The content type of a body, or a record's header, holding this protocol's messages.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::V1 => CONTENT_TYPE_V1,
            Protocol::V2 => CONTENT_TYPE_V2,
        }
    }
}
