//! The Kafka record keys and headers both services write and read: a contract
//! of the topics, kept here beside the records' encodings so that ingest, the
//! correlator and the tools that read the topics agree on it.

use std::borrow::Cow;

/// Header of every record in `metrics.samples`, `topology.components`,
/// `metrics.bound` and `metrics.unbound`: the tenant of the API key that sent it.
pub const HEADER_TENANT: &str = "tenant";

/// Header of the records of `metrics.samples`, `metrics.bound` and
/// `metrics.unbound`: the encoding of the value (e.g. [`crate::CONTENT_TYPE_V2`]).
pub const HEADER_CONTENT_TYPE: &str = "content-type";

/// The `topology.raw` key of an instance's parts: `tenant/instance.type/instance.url`,
/// each segment escaped by [`key_segment`]. It is also the prefix of the
/// correlator's `topology.components` keys (`.../externalId`).
pub fn record_key(tenant: &str, instance_type: &str, instance_url: &str) -> String {
    format!(
        "{}/{}/{}",
        key_segment(tenant),
        key_segment(instance_type),
        key_segment(instance_url)
    )
}

/// One segment of a `/`-separated record key with '%' written as "%25" and '/'
/// as "%2F", so values holding '/' cannot make two keys equal. Text without
/// either character is unchanged.
pub fn key_segment(value: &str) -> Cow<'_, str> {
    if !value.contains(['%', '/']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for character in value.chars() {
        match character {
            '%' => escaped.push_str("%25"),
            '/' => escaped.push_str("%2F"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_segments_escape_percent_and_slash_only() {
        assert_eq!(key_segment("demo-cluster"), "demo-cluster");
        assert!(matches!(key_segment("demo-cluster"), Cow::Borrowed(_)));
        assert_eq!(
            key_segment("https://api:6443/x"),
            "https:%2F%2Fapi:6443%2Fx"
        );
        assert_eq!(key_segment("50%/x"), "50%25%2Fx");
        assert_eq!(
            record_key("acme", "kubernetes", "demo-cluster"),
            "acme/kubernetes/demo-cluster",
            "keys without '/' or '%' are as the contract writes them"
        );
        // (type, url) pairs that one unescaped '/' would make equal stay apart.
        let tuples = [
            ("acme", "a/b", "c"),
            ("acme", "a", "b/c"),
            ("acme", "a%2Fb", "c"),
            ("acme", "a", "b%2Fc"),
            ("acme", "a%", "2Fb/c"),
        ];
        let keys: std::collections::BTreeSet<String> = tuples
            .iter()
            .map(|(tenant, kind, url)| record_key(tenant, kind, url))
            .collect();
        assert_eq!(keys.len(), tuples.len(), "{keys:?}");
    }
}
