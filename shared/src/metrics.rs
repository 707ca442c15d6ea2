//! The text exposition every service's `/metrics` serves.

use prometheus_client::registry::Registry;

/// The OpenMetrics text of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("writing to a String");
    text
}
