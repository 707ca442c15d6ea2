//! The README's configuration tables list exactly the settings `--help`
//! prints, with the same defaults: for ingest, the correlator and
//! `correlator forward`.
//!
//! A row names one or more variables in backticks; its default cell starts
//! with as many backticked defaults, separated by ", ", or with prose (such
//! as "required" or "none") for settings without a default.

use std::collections::BTreeMap;

use clap::CommandFactory;

const README: &str = include_str!("../../README.md");

/// Variable → default (`None`: none) of the first table of variables after
/// `heading` within `section`.
fn readme_table(section: &str, heading: &str) -> BTreeMap<String, Option<String>> {
    let section_start = README.find(section).expect("the section");
    let rest = &README[section_start..];
    let table_start = rest.find(heading).expect("the heading");
    let rows = rest[table_start..]
        .lines()
        .skip_while(|line| !line.starts_with("| variable |"))
        .take_while(|line| line.starts_with('|'))
        .skip(2); // the header and its rule
    let mut settings = BTreeMap::new();
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names = leading_code_spans(cells[1]);
        let defaults = leading_code_spans(cells[2]);
        assert!(!names.is_empty(), "a row without a variable: {row}");
        assert!(
            defaults.is_empty() || defaults.len() == names.len(),
            "as many defaults as variables, or none: {row}"
        );
        for (index, name) in names.iter().enumerate() {
            let default = defaults.get(index).map(|value| value.to_string());
            let previous = settings.insert(name.to_string(), default);
            assert!(previous.is_none(), "{name} twice");
        }
    }
    settings
}

/// The backticked values a cell starts with, separated by ", ".
fn leading_code_spans(cell: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest = cell;
    while let Some(after) = rest.strip_prefix('`') {
        let Some(end) = after.find('`') else { break };
        spans.push(&after[..end]);
        match after[end + 1..].strip_prefix(", ") {
            Some(next) if next.starts_with('`') => rest = next,
            _ => break,
        }
    }
    spans
}

/// Variable → default of every option of `command` read from the environment.
fn help_settings(command: &clap::Command) -> BTreeMap<String, Option<String>> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_string();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|value| value.to_string_lossy().into_owned())
                .collect();
            Some((env, (!defaults.is_empty()).then(|| defaults.join(","))))
        })
        .collect()
}

#[test]
fn the_ingest_table_is_its_help() {
    assert_eq!(
        readme_table("## Ingest reference", "### Configuration"),
        help_settings(&ingest::config::Options::command())
    );
}

#[test]
fn the_correlator_table_is_its_help() {
    assert_eq!(
        readme_table("## Correlator reference", "### Configuration"),
        help_settings(&correlator::config::Cli::command())
    );
}

#[test]
fn the_forward_table_is_its_help() {
    let command = correlator::config::Cli::command();
    let forward = command.find_subcommand("forward").expect("forward");
    assert_eq!(
        readme_table(
            "## Correlator reference",
            "### Forwarding to a metrics store"
        ),
        help_settings(forward)
    );
}
