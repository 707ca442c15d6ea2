//! What the benchmarks share: the join settings the service starts with.

use correlator::index::AsOf;
use correlator::join::JoinSettings;
use correlator::output::OutputEncoding;

/// The service's defaults (see `config.rs`).
pub fn default_settings() -> JoinSettings {
    JoinSettings {
        as_of: AsOf {
            skew_ms: 60_000,
            delete_grace_ms: 120_000,
        },
        history_ms: 1_800_000,
        pending_grace_ms: 120_000,
        pending_max_samples: 1_000_000,
        series_cache_max: 2_000_000,
        encoding: OutputEncoding::Protobuf,
    }
}
