//! What the benchmarks share: the join settings the service starts with.

use correlator::join::JoinSettings;

/// The service's defaults.
pub fn default_settings() -> JoinSettings {
    JoinSettings::default()
}
