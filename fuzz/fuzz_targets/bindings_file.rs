//! A BINDINGS_FILE (TOML): parsed, then rendered against fixed label sets.
#![no_main]

use correlator::bindings::{Bindings, Rendered};
use libfuzzer_sys::fuzz_target;

/// Label sets to render. Values hold neither `$` nor `{`, so a `${` in an
/// identifier could only come from a template variable left unrendered.
const LABEL_SETS: &[&[(&str, &str)]] = &[
    &[],
    &[
        ("__name__", "up"),
        ("job", "node"),
        ("instance", "10.0.0.5:9100"),
    ],
    &[
        ("__name__", "container_cpu_usage_seconds_total"),
        ("cluster_name", "demo-cluster"),
        ("namespace", "shop"),
        ("pod", "web-1"),
        ("container", "app"),
        ("node", "n1"),
    ],
    &[
        ("service_name", "checkout"),
        ("env", "prod"),
        ("environment", ""),
    ],
    &[
        ("a", "1"),
        ("b", ""),
        ("_x", "é:/ü}"),
        ("a9", "v"),
        ("c", "x}y"),
    ],
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(bindings) = Bindings::parse(text) else {
        return;
    };
    let rules = bindings.rules();
    assert!(!rules.is_empty(), "a file without rules parsed");
    for (index, rule) in rules.iter().enumerate() {
        assert!(!rule.name().trim().is_empty(), "rule with an empty name");
        assert!(
            rules[..index]
                .iter()
                .all(|earlier| earlier.name() != rule.name()),
            "duplicate rule name {:?}",
            rule.name()
        );
        assert!(rule.template().contains("${"), "rule without a variable");
    }
    // Every label the templates name, set: every variable renders.
    let mut named: Vec<(String, String)> = Vec::new();
    for rule in rules {
        let mut rest = rule.template();
        while let Some(start) = rest.find("${") {
            let body = &rest[start + 2..];
            let end = body
                .find('}')
                .expect("parsed templates close every variable");
            for label in body[..end].split('|') {
                if named.iter().all(|(name, _)| name != label) {
                    named.push((label.to_string(), format!("v{}", named.len())));
                }
            }
            rest = &body[end + 1..];
        }
    }
    let named: Vec<(&str, &str)> = named
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    for labels in LABEL_SETS.iter().copied().chain([named.as_slice()]) {
        match bindings.render(labels) {
            Rendered::Identifiers(identifiers) => {
                assert!(!identifiers.is_empty());
                for (position, (rule, identifier)) in identifiers.iter().enumerate() {
                    assert!(*rule < rules.len());
                    assert!(
                        !identifier.contains("${"),
                        "identifier {identifier:?} from rule {rule} for {labels:?}"
                    );
                    for (earlier_rule, earlier) in &identifiers[..position] {
                        assert!(earlier_rule < rule, "identifiers out of rule order");
                        assert_ne!(earlier, identifier, "identifier twice");
                    }
                }
            }
            Rendered::MissingLabel { rule, label } => {
                assert!(rule < rules.len());
                assert!(
                    labels
                        .iter()
                        .all(|(name, value)| *name != label || value.is_empty()),
                    "missing label {label:?} is present"
                );
            }
            Rendered::NoRule => {}
        }
    }
    // With every label the templates name set, every rule renders (the first
    // of two rules that agree on an identifier keeps it).
    match bindings.render(&named) {
        Rendered::Identifiers(identifiers) => {
            assert!(identifiers.len() <= rules.len());
            assert_eq!(identifiers[0].0, 0, "the first rule renders");
        }
        other => panic!("with every named label present: {other:?}"),
    }
});
