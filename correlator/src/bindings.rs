//! Binding rules: URN templates that turn a series' labels into the component
//! identifiers the join looks up. Pure: the join renders each new series once
//! and caches the result; only `Bindings::load` touches the file system.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// The labels each Kubernetes field may come in, in order of preference. This
/// is the one place the dialects live: the SUSE agent and kube-state-metrics
/// (`cluster_name`, `namespace`, `pod`, `container`, `node`, `deployment`, ...),
/// cAdvisor and the SUSE docs (`pod_name`, `container_name`), older StackState
/// agents (`kube_*`) and OpenTelemetry resource attributes exported to
/// Prometheus (`k8s_*_name`).
mod kubernetes_labels {
    pub const CLUSTER: &str = "cluster_name|kube_cluster_name|k8s_cluster_name";
    pub const NAMESPACE: &str = "namespace|kube_namespace|k8s_namespace_name";
    pub const POD: &str = "pod|pod_name|kube_pod_name|k8s_pod_name";
    pub const CONTAINER: &str = "container|container_name|kube_container_name|k8s_container_name";
    pub const NODE: &str = "node|kube_node|k8s_node_name";
    pub const SERVICE: &str = "service|kube_service|k8s_service_name";
    pub const DEPLOYMENT: &str = "deployment|kube_deployment|k8s_deployment_name";
    pub const STATEFULSET: &str = "statefulset|kube_statefulset|k8s_statefulset_name";
    pub const DAEMONSET: &str = "daemonset|kube_daemonset|k8s_daemonset_name";
}

#[derive(Debug, Error)]
pub enum BindingsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {error}")]
    InFile {
        path: PathBuf,
        error: Box<BindingsError>,
    },
    #[error("invalid bindings file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("bindings file has no rules")]
    NoRules,
    #[error("rules[{index}]: name is empty")]
    EmptyName { index: usize },
    #[error("rule {name:?} (rules[{index}]): duplicate rule name")]
    DuplicateName { name: String, index: usize },
    #[error("rule {name:?} (rules[{index}]): unclosed \"${{\" at byte {at}")]
    UnclosedVariable {
        name: String,
        index: usize,
        at: usize,
    },
    #[error("rule {name:?} (rules[{index}]): variable with no label name")]
    EmptyVariable { name: String, index: usize },
    #[error("rule {name:?} (rules[{index}]): template has no ${{label}}")]
    NoVariable { name: String, index: usize },
    #[error("invalid label name {label:?} in rule {name:?} (rules[{index}])")]
    InvalidLabelName {
        label: String,
        name: String,
        index: usize,
    },
}

/// What is wrong with a template, before we know which rule it belongs to.
#[derive(Debug, PartialEq, Eq)]
enum TemplateError {
    UnclosedVariable { at: usize },
    EmptyVariable,
    NoVariable,
    InvalidLabelName(String),
}

impl TemplateError {
    fn in_rule(self, name: String, index: usize) -> BindingsError {
        match self {
            TemplateError::UnclosedVariable { at } => {
                BindingsError::UnclosedVariable { name, index, at }
            }
            TemplateError::EmptyVariable => BindingsError::EmptyVariable { name, index },
            TemplateError::NoVariable => BindingsError::NoVariable { name, index },
            TemplateError::InvalidLabelName(label) => {
                BindingsError::InvalidLabelName { label, name, index }
            }
        }
    }
}

/// A BINDINGS_FILE.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingsFile {
    /// The rules in order; they replace the built-in Kubernetes rules.
    #[serde(default)]
    rules: Vec<RuleEntry>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    /// A unique name, used in logs, metrics and errors.
    name: String,
    /// The identifier to render, e.g. `urn:service:/${service_name}`;
    /// `${a|b}` takes the first of the labels present with a non-empty value.
    template: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// Label names in order of preference.
    Variable(Box<[Box<str>]>),
}

/// One rule: a name and a URN template such as
/// "urn:kubernetes:/${cluster_name}:${namespace}:pod/${pod|pod_name}".
#[derive(Debug, Clone)]
pub struct BindingRule {
    name: String,
    template: String,
    segments: Box<[Segment]>,
    /// Total length of the literal segments, to size each identifier up front.
    literal_length: usize,
}

/// How one rule fares against one series.
#[derive(Debug, PartialEq, Eq)]
enum RuleOutcome<'rule> {
    Rendered(String),
    /// The rule applies but cannot render: the first alternative of its first
    /// unresolved variable.
    Missing(&'rule str),
    DoesNotApply,
}

impl BindingRule {
    /// A rule from a template `parse_template` has already split into segments.
    fn from_segments(name: String, template: String, segments: Vec<Segment>) -> BindingRule {
        let mut literal_length = 0;
        for segment in &segments {
            if let Segment::Literal(text) = segment {
                literal_length += text.len();
            }
        }
        BindingRule {
            name,
            template,
            segments: segments.into_boxed_slice(),
            literal_length,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    fn render(&self, labels: &[(&str, &str)]) -> RuleOutcome<'_> {
        let mut length = self.literal_length;
        let mut applies = false;
        let mut first_missing = None;
        for segment in &self.segments {
            let Segment::Variable(alternatives) = segment else {
                continue;
            };
            match first_present(alternatives, labels) {
                Some(value) => {
                    length += value.len();
                    applies = true;
                }
                None => {
                    if first_missing.is_none() {
                        first_missing = Some(&*alternatives[0]);
                    }
                }
            }
        }
        if !applies {
            return RuleOutcome::DoesNotApply;
        }
        if let Some(label) = first_missing {
            return RuleOutcome::Missing(label);
        }
        // Looking the values up again is cheaper than collecting them: it keeps
        // rendering at one allocation, the identifier at its exact length.
        let mut identifier = String::with_capacity(length);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => identifier.push_str(text),
                Segment::Variable(alternatives) => {
                    identifier.push_str(first_present(alternatives, labels).unwrap_or_default())
                }
            }
        }
        RuleOutcome::Rendered(identifier)
    }
}

/// The value of the first label in `alternatives` that the series carries with
/// a non-empty value. Series have about ten labels, so a linear scan beats
/// hashing.
fn first_present<'labels>(
    alternatives: &[Box<str>],
    labels: &[(&str, &'labels str)],
) -> Option<&'labels str> {
    for wanted in alternatives {
        for (name, value) in labels {
            if *name == &**wanted {
                if !value.is_empty() {
                    return Some(value);
                }
                // Names are unique: no other pair can carry this label.
                break;
            }
        }
    }
    None
}

fn parse_template(template: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut segments = Vec::new();
    let mut has_variable = false;
    let mut rest = template;
    let mut offset = 0;
    // A lone `$` is literal, so only `${` starts a variable.
    while let Some(start) = rest.find("${") {
        if start > 0 {
            segments.push(Segment::Literal(rest[..start].into()));
        }
        let body_and_rest = &rest[start + 2..];
        let Some(end) = body_and_rest.find('}') else {
            return Err(TemplateError::UnclosedVariable { at: offset + start });
        };
        segments.push(Segment::Variable(parse_variable(&body_and_rest[..end])?));
        has_variable = true;
        let consumed = start + 2 + end + 1;
        rest = &rest[consumed..];
        offset += consumed;
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest.into()));
    }
    if !has_variable {
        return Err(TemplateError::NoVariable);
    }
    Ok(segments)
}

/// The inside of `${...}`: label names separated by `|`.
fn parse_variable(body: &str) -> Result<Box<[Box<str>]>, TemplateError> {
    if body.is_empty() {
        return Err(TemplateError::EmptyVariable);
    }
    let mut alternatives = Vec::new();
    for label in body.split('|') {
        if !is_label_name(label) {
            return Err(TemplateError::InvalidLabelName(label.to_string()));
        }
        alternatives.push(Box::from(label));
    }
    Ok(alternatives.into_boxed_slice())
}

/// The Prometheus label name grammar, `[A-Za-z_][A-Za-z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// An ordered rule set.
#[derive(Debug, Clone)]
pub struct Bindings {
    rules: Vec<BindingRule>,
}

/// The outcome of rendering one series' labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// Identifiers rendered, in rule order, each with the index of its rule in `rules()`.
    Identifiers(Vec<(usize, String)>),
    /// Some rule applied (the series carries at least one label the rule's template uses)
    /// but no rule could be rendered fully: the first such rule and the first label it lacked.
    MissingLabel { rule: usize, label: String },
    /// No rule applies to the series at all.
    NoRule,
}

impl Bindings {
    /// The built-in Kubernetes rules (order matters, most specific first):
    /// container, pod, node, service, deployment, statefulset, daemonset, namespace.
    /// Their identifiers follow the StackState agent's URN grammar.
    pub fn kubernetes_defaults() -> Bindings {
        use kubernetes_labels::*;
        let variable = |labels: &str| format!("${{{labels}}}");
        let cluster = format!("urn:kubernetes:/{}", variable(CLUSTER));
        let namespaced = format!("{cluster}:{}", variable(NAMESPACE));
        let pod = format!("{namespaced}:pod/{}", variable(POD));
        let rules = [
            (
                "k8s-container",
                format!("{pod}:container/{}", variable(CONTAINER)),
            ),
            ("k8s-pod", pod.clone()),
            ("k8s-node", format!("{cluster}:node/{}", variable(NODE))),
            (
                "k8s-service",
                format!("{namespaced}:service/{}", variable(SERVICE)),
            ),
            (
                "k8s-deployment",
                format!("{namespaced}:deployment/{}", variable(DEPLOYMENT)),
            ),
            (
                "k8s-statefulset",
                format!("{namespaced}:statefulset/{}", variable(STATEFULSET)),
            ),
            (
                "k8s-daemonset",
                format!("{namespaced}:daemonset/{}", variable(DAEMONSET)),
            ),
            (
                "k8s-namespace",
                format!("{cluster}:namespace/{}", variable(NAMESPACE)),
            ),
        ];
        let mut parsed = Vec::with_capacity(rules.len());
        for (name, template) in rules {
            let segments =
                parse_template(&template).expect("built-in Kubernetes templates are valid");
            parsed.push(BindingRule::from_segments(
                name.to_string(),
                template,
                segments,
            ));
        }
        Bindings { rules: parsed }
    }

    /// Parses a BINDINGS_FILE (TOML). Replaces the defaults entirely.
    pub fn parse(text: &str) -> Result<Bindings, BindingsError> {
        let file: BindingsFile = toml::from_str(text)?;
        if file.rules.is_empty() {
            return Err(BindingsError::NoRules);
        }
        let mut rules: Vec<BindingRule> = Vec::with_capacity(file.rules.len());
        for (index, entry) in file.rules.into_iter().enumerate() {
            if entry.name.trim().is_empty() {
                return Err(BindingsError::EmptyName { index });
            }
            if rules.iter().any(|rule| rule.name == entry.name) {
                return Err(BindingsError::DuplicateName {
                    name: entry.name,
                    index,
                });
            }
            let segments = match parse_template(&entry.template) {
                Ok(segments) => segments,
                Err(problem) => return Err(problem.in_rule(entry.name, index)),
            };
            rules.push(BindingRule::from_segments(
                entry.name,
                entry.template,
                segments,
            ));
        }
        Ok(Bindings { rules })
    }

    pub fn load(path: &Path) -> Result<Bindings, BindingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| BindingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Bindings::parse(&text).map_err(|error| BindingsError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })
    }

    pub fn rules(&self) -> &[BindingRule] {
        &self.rules
    }

    /// Renders every rule against `labels` (name, value pairs, any order, names unique).
    pub fn render(&self, labels: &[(&str, &str)]) -> Rendered {
        let mut identifiers: Vec<(usize, String)> = Vec::new();
        let mut first_missing: Option<(usize, &str)> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            match rule.render(labels) {
                RuleOutcome::Rendered(identifier) => {
                    // Two rules may agree on an identifier; the join needs it once.
                    if !identifiers.iter().any(|(_, seen)| *seen == identifier) {
                        identifiers.push((index, identifier));
                    }
                }
                RuleOutcome::Missing(label) => {
                    if first_missing.is_none() {
                        first_missing = Some((index, label));
                    }
                }
                RuleOutcome::DoesNotApply => {}
            }
        }
        if !identifiers.is_empty() {
            return Rendered::Identifiers(identifiers);
        }
        match first_missing {
            Some((rule, label)) => Rendered::MissingLabel {
                rule,
                label: label.to_string(),
            },
            None => Rendered::NoRule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Labels<'a> = &'a [(&'a str, &'a str)];

    const NODE_EXPORTER_SERIES: &[(&str, &str)] = &[
        ("__name__", "node_cpu_seconds_total"),
        ("cluster_name", "demo-cluster"),
        ("namespace", "monitoring"),
        ("pod", "node-exporter-x7k2p"),
        ("container", "node-exporter"),
        ("job", "node"),
        ("instance", "10.0.0.5:9100"),
    ];

    /// The rendered identifiers with their rule names, or the other outcome as text.
    fn render_named(bindings: &Bindings, labels: &[(&str, &str)]) -> Vec<(String, String)> {
        match bindings.render(labels) {
            Rendered::Identifiers(identifiers) => identifiers
                .into_iter()
                .map(|(rule, identifier)| (bindings.rules()[rule].name().to_string(), identifier))
                .collect(),
            other => panic!("expected identifiers, got {other:?}"),
        }
    }

    fn named(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(rule, identifier)| (rule.to_string(), identifier.to_string()))
            .collect()
    }

    fn parse_error(text: &str) -> String {
        match Bindings::parse(text) {
            Ok(bindings) => panic!("expected an error, parsed {bindings:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn defaults_are_in_order_most_specific_first() {
        let bindings = Bindings::kubernetes_defaults();
        let names: Vec<&str> = bindings.rules().iter().map(BindingRule::name).collect();
        assert_eq!(
            names,
            [
                "k8s-container",
                "k8s-pod",
                "k8s-node",
                "k8s-service",
                "k8s-deployment",
                "k8s-statefulset",
                "k8s-daemonset",
                "k8s-namespace",
            ]
        );
        assert_eq!(
            bindings.rules()[0].template(),
            "urn:kubernetes:/${cluster_name|kube_cluster_name|k8s_cluster_name}\
             :${namespace|kube_namespace|k8s_namespace_name}\
             :pod/${pod|pod_name|kube_pod_name|k8s_pod_name}\
             :container/${container|container_name|kube_container_name|k8s_container_name}"
        );
        assert_eq!(
            bindings.rules()[2].template(),
            "urn:kubernetes:/${cluster_name|kube_cluster_name|k8s_cluster_name}\
             :node/${node|kube_node|k8s_node_name}"
        );
        assert_eq!(
            bindings.rules()[4].template(),
            "urn:kubernetes:/${cluster_name|kube_cluster_name|k8s_cluster_name}\
             :${namespace|kube_namespace|k8s_namespace_name}\
             :deployment/${deployment|kube_deployment|k8s_deployment_name}"
        );
        assert_eq!(
            bindings.rules()[7].template(),
            "urn:kubernetes:/${cluster_name|kube_cluster_name|k8s_cluster_name}\
             :namespace/${namespace|kube_namespace|k8s_namespace_name}"
        );
    }

    #[test]
    fn node_exporter_series_binds_to_container_pod_and_namespace() {
        let bindings = Bindings::kubernetes_defaults();
        assert_eq!(
            bindings.render(NODE_EXPORTER_SERIES),
            Rendered::Identifiers(vec![
                (
                    0,
                    "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p:container/node-exporter"
                        .to_string()
                ),
                (
                    1,
                    "urn:kubernetes:/demo-cluster:monitoring:pod/node-exporter-x7k2p".to_string()
                ),
                (7, "urn:kubernetes:/demo-cluster:namespace/monitoring".to_string()),
            ])
        );
    }

    #[test]
    fn label_order_does_not_matter() {
        let bindings = Bindings::kubernetes_defaults();
        let mut reversed = NODE_EXPORTER_SERIES.to_vec();
        reversed.reverse();
        assert_eq!(
            bindings.render(&reversed),
            bindings.render(NODE_EXPORTER_SERIES)
        );
    }

    #[test]
    fn every_default_rule_renders() {
        let bindings = Bindings::kubernetes_defaults();
        let cluster = ("cluster_name", "demo-cluster");
        let namespace = ("namespace", "shop");
        // Each case: series labels, then the (rule name, identifier) pairs expected.
        let cases: &[(Labels, Labels)] = &[
            (
                &[("__name__", "node_load1"), cluster, ("node", "worker-1")],
                &[("k8s-node", "urn:kubernetes:/demo-cluster:node/worker-1")],
            ),
            (
                &[cluster, namespace],
                &[(
                    "k8s-namespace",
                    "urn:kubernetes:/demo-cluster:namespace/shop",
                )],
            ),
        ];
        for (labels, expected) in cases {
            assert_eq!(
                render_named(&bindings, labels),
                named(expected),
                "labels {labels:?}"
            );
        }
        // Each workload of a namespace: its own identifier, then its namespace's.
        for (kind, name) in [
            ("service", "web"),
            ("deployment", "web"),
            ("statefulset", "db"),
            ("daemonset", "fluent-bit"),
        ] {
            let rule = format!("k8s-{kind}");
            let workload = format!("urn:kubernetes:/demo-cluster:shop:{kind}/{name}");
            assert_eq!(
                render_named(&bindings, &[cluster, namespace, (kind, name)]),
                named(&[
                    (rule.as_str(), workload.as_str()),
                    (
                        "k8s-namespace",
                        "urn:kubernetes:/demo-cluster:namespace/shop"
                    ),
                ]),
                "{kind}"
            );
        }
    }

    #[test]
    fn older_agent_and_opentelemetry_dialects_render() {
        let bindings = Bindings::kubernetes_defaults();
        let older_agent = [
            ("kube_cluster_name", "c1"),
            ("kube_namespace", "shop"),
            ("kube_deployment", "web"),
        ];
        assert_eq!(
            render_named(&bindings, &older_agent),
            named(&[
                ("k8s-deployment", "urn:kubernetes:/c1:shop:deployment/web"),
                ("k8s-namespace", "urn:kubernetes:/c1:namespace/shop"),
            ])
        );
        let opentelemetry = [
            ("k8s_cluster_name", "c1"),
            ("k8s_namespace_name", "shop"),
            ("k8s_pod_name", "web-1"),
            ("k8s_container_name", "app"),
            ("k8s_node_name", "worker-2"),
        ];
        assert_eq!(
            render_named(&bindings, &opentelemetry),
            named(&[
                (
                    "k8s-container",
                    "urn:kubernetes:/c1:shop:pod/web-1:container/app"
                ),
                ("k8s-pod", "urn:kubernetes:/c1:shop:pod/web-1"),
                ("k8s-node", "urn:kubernetes:/c1:node/worker-2"),
                ("k8s-namespace", "urn:kubernetes:/c1:namespace/shop"),
            ])
        );
    }

    #[test]
    fn prometheus_self_scrape_lacks_namespace() {
        let bindings = Bindings::kubernetes_defaults();
        let labels = [
            ("__name__", "up"),
            ("cluster_name", "demo-cluster"),
            ("job", "prometheus"),
            ("instance", "127.0.0.1:9090"),
        ];
        let rendered = bindings.render(&labels);
        assert_eq!(
            rendered,
            Rendered::MissingLabel {
                rule: 0,
                label: "namespace".to_string()
            }
        );
        assert_eq!(bindings.rules()[0].name(), "k8s-container");
    }

    #[test]
    fn missing_label_names_the_first_rule_that_applies() {
        let bindings = Bindings::kubernetes_defaults();
        // Only the node rule uses `node`; the rules before it do not apply.
        assert_eq!(
            bindings.render(&[("node", "worker-1")]),
            Rendered::MissingLabel {
                rule: 2,
                label: "cluster_name".to_string()
            }
        );
    }

    #[test]
    fn a_rule_that_cannot_render_does_not_hide_those_that_can() {
        let bindings = Bindings::kubernetes_defaults();
        // The container rule applies but lacks `container`: pod and namespace still bind.
        let labels = [
            ("cluster_name", "c1"),
            ("namespace", "shop"),
            ("pod", "web-1"),
        ];
        assert_eq!(
            render_named(&bindings, &labels),
            named(&[
                ("k8s-pod", "urn:kubernetes:/c1:shop:pod/web-1"),
                ("k8s-namespace", "urn:kubernetes:/c1:namespace/shop"),
            ])
        );
    }

    #[test]
    fn series_without_kubernetes_labels_has_no_rule() {
        let bindings = Bindings::kubernetes_defaults();
        assert_eq!(
            bindings.render(&[("__name__", "up"), ("job", "x")]),
            Rendered::NoRule
        );
        assert_eq!(bindings.render(&[]), Rendered::NoRule);
    }

    #[test]
    fn pod_name_is_used_when_pod_is_absent() {
        let bindings = Bindings::kubernetes_defaults();
        let labels = [
            ("cluster_name", "c1"),
            ("namespace", "shop"),
            ("pod_name", "web-1"),
        ];
        assert_eq!(
            render_named(&bindings, &labels)[0],
            (
                "k8s-pod".to_string(),
                "urn:kubernetes:/c1:shop:pod/web-1".to_string()
            )
        );
    }

    #[test]
    fn first_alternative_wins_when_several_are_present() {
        let bindings = Bindings::kubernetes_defaults();
        let labels = [
            ("cluster_name", "c1"),
            ("namespace", "shop"),
            ("pod_name", "from-pod-name"),
            ("pod", "from-pod"),
        ];
        assert_eq!(
            render_named(&bindings, &labels)[0].1,
            "urn:kubernetes:/c1:shop:pod/from-pod"
        );
    }

    #[test]
    fn empty_value_counts_as_absent() {
        let bindings = Bindings::kubernetes_defaults();
        let labels = [
            ("cluster_name", "c1"),
            ("namespace", "shop"),
            ("pod", ""),
            ("pod_name", "web-1"),
        ];
        assert_eq!(
            render_named(&bindings, &labels)[0].1,
            "urn:kubernetes:/c1:shop:pod/web-1"
        );
        // Empty labels alone do not make a rule apply.
        assert_eq!(
            bindings.render(&[("cluster_name", ""), ("namespace", "")]),
            Rendered::NoRule
        );
    }

    #[test]
    fn values_are_substituted_verbatim() {
        let bindings = Bindings::kubernetes_defaults();
        let labels = [("cluster_name", "a b/c%20"), ("node", "ünïcode:${x}")];
        assert_eq!(
            render_named(&bindings, &labels),
            named(&[("k8s-node", "urn:kubernetes:/a b/c%20:node/ünïcode:${x}")])
        );
    }

    #[test]
    fn custom_file_replaces_the_defaults() {
        let bindings = Bindings::parse(
            r#"
            [[rules]]
            name = "my-service"
            template = "urn:service:/${service_name}"
            "#,
        )
        .unwrap();
        assert_eq!(bindings.rules().len(), 1);
        assert_eq!(bindings.rules()[0].name(), "my-service");
        assert_eq!(
            bindings.rules()[0].template(),
            "urn:service:/${service_name}"
        );
        assert_eq!(
            bindings.render(&[("service_name", "checkout"), ("job", "x")]),
            Rendered::Identifiers(vec![(0, "urn:service:/checkout".to_string())])
        );
        // Kubernetes labels mean nothing to this rule set.
        assert_eq!(bindings.render(NODE_EXPORTER_SERIES), Rendered::NoRule);
    }

    #[test]
    fn duplicate_identifiers_keep_the_first_rule() {
        let bindings = Bindings::parse(
            r#"
            [[rules]]
            name = "by-service"
            template = "urn:service:/${service_name}"
            [[rules]]
            name = "by-job"
            template = "urn:service:/${job}"
            [[rules]]
            name = "by-either"
            template = "urn:service:/${job|service_name}"
            "#,
        )
        .unwrap();
        assert_eq!(
            bindings.render(&[("service_name", "checkout"), ("job", "checkout")]),
            Rendered::Identifiers(vec![(0, "urn:service:/checkout".to_string())])
        );
        assert_eq!(
            bindings.render(&[("service_name", "checkout"), ("job", "cart")]),
            Rendered::Identifiers(vec![
                (0, "urn:service:/checkout".to_string()),
                (1, "urn:service:/cart".to_string()),
            ])
        );
    }

    #[test]
    fn template_syntax() {
        let cases = [
            // A `$` without `{` and a `}` outside a variable are literal.
            ("price$:${a}}$", &[("a", "1")][..], "price$:1}$"),
            ("$${a}", &[("a", "1")][..], "$1"),
            ("${a}${b}", &[("a", "1"), ("b", "2")][..], "12"),
            ("é/${a}/ü", &[("a", "ß")][..], "é/ß/ü"),
            ("${_x|a9}", &[("a9", "v")][..], "v"),
            ("${__name__}", &[("__name__", "up")][..], "up"),
        ];
        for (template, labels, expected) in cases {
            let text = format!("[[rules]]\nname = \"r\"\ntemplate = {template:?}\n");
            let bindings = Bindings::parse(&text).unwrap();
            assert_eq!(
                bindings.render(labels),
                Rendered::Identifiers(vec![(0, expected.to_string())]),
                "template {template}"
            );
        }
    }

    #[test]
    fn unclosed_variable_is_reported_with_its_byte_offset() {
        let message = parse_error(
            r#"
            [[rules]]
            name = "other"
            template = "urn:other:/${a}"
            [[rules]]
            name = "my-service"
            template = "urn:service:${service_name"
            "#,
        );
        assert_eq!(
            message,
            r#"rule "my-service" (rules[1]): unclosed "${" at byte 12"#
        );
    }

    #[test]
    fn variable_without_label_name_is_rejected() {
        let message = parse_error("[[rules]]\nname = \"x\"\ntemplate = \"urn:x:/${}\"\n");
        assert_eq!(
            message,
            r#"rule "x" (rules[0]): variable with no label name"#
        );
    }

    #[test]
    fn empty_rule_name_is_rejected() {
        let message = parse_error(
            r#"
            [[rules]]
            name = "a"
            template = "${a}"
            [[rules]]
            name = "b"
            template = "${b}"
            [[rules]]
            name = " "
            template = "${c}"
            "#,
        );
        assert_eq!(message, "rules[2]: name is empty");
    }

    #[test]
    fn duplicate_rule_name_is_rejected() {
        let message = parse_error(
            r#"
            [[rules]]
            name = "a"
            template = "${a}"
            [[rules]]
            name = "b"
            template = "${b}"
            [[rules]]
            name = "c"
            template = "${c}"
            [[rules]]
            name = "a"
            template = "${d}"
            "#,
        );
        assert_eq!(message, r#"rule "a" (rules[3]): duplicate rule name"#);
    }

    #[test]
    fn template_without_variable_is_rejected() {
        for template in ["urn:service:/fixed", "", "$ {a}", "a}b$"] {
            let text = format!("[[rules]]\nname = \"b\"\ntemplate = {template:?}\n");
            assert_eq!(
                parse_error(&text),
                r#"rule "b" (rules[0]): template has no ${label}"#,
                "template {template:?}"
            );
        }
    }

    #[test]
    fn invalid_label_names_are_rejected() {
        let cases = [
            ("${pod name}", "pod name"),
            ("${ pod}", " pod"),
            ("${pod|}", ""),
            ("${|pod}", ""),
            ("${9pod}", "9pod"),
            ("${pod-name}", "pod-name"),
            ("${a${b}", "a${b"),
            ("${pöd}", "pöd"),
        ];
        for (template, label) in cases {
            let text = format!(
                "[[rules]]\nname = \"ok\"\ntemplate = \"${{a}}\"\n\
                 [[rules]]\nname = \"c\"\ntemplate = {template:?}\n"
            );
            assert_eq!(
                parse_error(&text),
                format!("invalid label name {label:?} in rule \"c\" (rules[1])"),
                "template {template:?}"
            );
        }
    }

    #[test]
    fn file_without_rules_is_rejected() {
        assert_eq!(parse_error(""), "bindings file has no rules");
        assert_eq!(parse_error("rules = []"), "bindings file has no rules");
    }

    #[test]
    fn toml_errors_carry_the_file_context() {
        let syntax = parse_error("[[rules]]\nname = \"a\"\ntemplate = urn\n");
        assert!(syntax.starts_with("invalid bindings file: "), "{syntax}");
        assert!(syntax.contains("line 3"), "{syntax}");
        assert!(syntax.contains("template = urn"), "{syntax}");

        let unknown_field = parse_error("[[rules]]\nname = \"a\"\ntempalte = \"${a}\"\n");
        assert!(
            unknown_field.contains("unknown field `tempalte`"),
            "{unknown_field}"
        );
        assert!(unknown_field.contains("line 3"), "{unknown_field}");

        let misspelt_table = parse_error("[[rule]]\nname = \"a\"\ntemplate = \"${a}\"\n");
        assert!(
            misspelt_table.contains("unknown field `rule`"),
            "{misspelt_table}"
        );

        let missing_template = parse_error("[[rules]]\nname = \"a\"\n");
        assert!(
            missing_template.contains("missing field `template`"),
            "{missing_template}"
        );
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let directory = std::env::temp_dir();
        let good = directory.join(format!("bindings-test-{}-good.toml", std::process::id()));
        let bad = directory.join(format!("bindings-test-{}-bad.toml", std::process::id()));
        std::fs::write(
            &good,
            "[[rules]]\nname = \"s\"\ntemplate = \"urn:s:/${s}\"\n",
        )
        .unwrap();
        std::fs::write(&bad, "[[rules]]\nname = \"s\"\ntemplate = \"urn:s:/\"\n").unwrap();
        let loaded = Bindings::load(&good);
        let failed = Bindings::load(&bad);
        std::fs::remove_file(&good).unwrap();
        std::fs::remove_file(&bad).unwrap();

        assert_eq!(loaded.unwrap().rules()[0].name(), "s");
        assert_eq!(
            failed.unwrap_err().to_string(),
            format!(
                r#"{}: rule "s" (rules[0]): template has no ${{label}}"#,
                bad.display()
            )
        );
        let missing = directory.join("bindings-test-does-not-exist.toml");
        let error = Bindings::load(&missing).unwrap_err();
        assert_eq!(error.to_string(), format!("reading {}", missing.display()));
        // The cause is the error's source, for anyhow's chain to print once.
        assert!(std::error::Error::source(&error).is_some());
    }

    /// A small xorshift generator: deterministic, so a failure replays.
    struct Generator(u64);

    impl Generator {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    #[test]
    fn render_never_panics_and_fills_every_variable() {
        let names = [
            "__name__",
            "job",
            "instance",
            "cluster_name",
            "kube_cluster_name",
            "k8s_cluster_name",
            "namespace",
            "kube_namespace",
            "k8s_namespace_name",
            "pod",
            "pod_name",
            "kube_pod_name",
            "k8s_pod_name",
            "container",
            "container_name",
            "kube_container_name",
            "k8s_container_name",
            "node",
            "kube_node",
            "k8s_node_name",
            "service",
            "deployment",
            "kube_statefulset",
            "k8s_daemonset_name",
            "le",
        ];
        // Values may hold `$` and `}` but never `{`, so a `${` in an output
        // could only come from the template.
        let values = [
            "",
            "",
            "a",
            "demo-cluster",
            "x$",
            "}",
            "$$",
            "é:/ü",
            "10.0.0.5:9100",
        ];
        let bindings = Bindings::kubernetes_defaults();
        let mut generator = Generator(0x9e37_79b9_7f4a_7c15);
        let mut outcomes = [0usize; 3];
        for _ in 0..20_000 {
            let mut labels: Vec<(&str, &str)> = Vec::new();
            for _ in 0..generator.below(12) {
                let name = generator.pick(&names);
                if labels.iter().all(|(existing, _)| *existing != name) {
                    labels.push((name, generator.pick(&values)));
                }
            }
            match bindings.render(&labels) {
                Rendered::Identifiers(identifiers) => {
                    outcomes[0] += 1;
                    assert!(!identifiers.is_empty());
                    for (position, (rule, identifier)) in identifiers.iter().enumerate() {
                        assert!(*rule < bindings.rules().len());
                        assert!(!identifier.contains("${"), "{identifier} from {labels:?}");
                        assert!(identifier.starts_with("urn:kubernetes:/"), "{identifier}");
                        // Rule order, and each identifier once.
                        for (earlier_rule, earlier) in &identifiers[..position] {
                            assert!(earlier_rule < rule);
                            assert_ne!(earlier, identifier);
                        }
                    }
                }
                Rendered::MissingLabel { rule, label } => {
                    outcomes[1] += 1;
                    assert!(rule < bindings.rules().len());
                    assert!(
                        labels
                            .iter()
                            .all(|(name, value)| *name != label || value.is_empty())
                    );
                }
                Rendered::NoRule => outcomes[2] += 1,
            }
        }
        // The generator must exercise all three outcomes to prove anything.
        assert!(outcomes.iter().all(|count| *count > 100), "{outcomes:?}");
    }

    #[test]
    fn random_templates_parse_or_fail_cleanly() {
        let pieces = [
            "$", "{", "}", "|", "a", "b", "_", " ", ":", "/", "é", "${", "${a}", "${b|a}",
        ];
        let labels = [("a", "1"), ("b", "")];
        let mut generator = Generator(0x2545_f491_4f6c_dd1d);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut template = String::new();
            for _ in 0..generator.below(10) {
                template.push_str(generator.pick(&pieces));
            }
            let Ok(segments) = parse_template(&template) else {
                continue;
            };
            parsed += 1;
            let rule = BindingRule::from_segments("r".to_string(), template.clone(), segments);
            if let RuleOutcome::Rendered(identifier) = rule.render(&labels) {
                assert_eq!(identifier.len(), identifier.capacity(), "{template}");
                assert!(!identifier.contains("${"), "{template} -> {identifier}");
            }
        }
        assert!(parsed > 100, "only {parsed} templates parsed");
    }
}
