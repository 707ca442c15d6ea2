//! The settings file both services read (`INGEST_CONFIG`, `CORRELATOR_CONFIG`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The `[kafka]` table of a settings file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Arbitrary librdkafka properties (SASL, TLS, tuning), applied onto every client.
    pub properties: BTreeMap<String, String>,
}

/// Reads a TOML settings file, naming it in any error.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}
