//! The figures of a chaos run: one Markdown table for RELIABILITY.md, and a
//! line per check.

use crate::scenarios::Outcome;

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One row per scenario.
pub fn markdown_table(outcomes: &[Outcome]) -> String {
    let mut table = String::from(
        "| scenario | samples sent / acknowledged | responses | in `metrics.samples`: found / missing / duplicated | out of the join: bound / unbound / missing / duplicated | verdict |\n|---|---|---|---|---|---|\n",
    );
    for outcome in outcomes {
        let responses: Vec<String> = outcome
            .responses_by_status
            .iter()
            .map(|(status, count)| format!("{status}: {}", thousands(*count)))
            .collect();
        table.push_str(&format!(
            "| {} | {} / {} | {} | {} / {} / {} | {} / {} / {} / {} | {} |\n",
            outcome.scenario,
            thousands(outcome.samples_sent),
            thousands(outcome.samples_acknowledged),
            responses.join(", "),
            thousands(outcome.found),
            thousands(outcome.missing),
            thousands(outcome.duplicated),
            thousands(outcome.outputs_bound),
            thousands(outcome.outputs_unbound),
            thousands(outcome.outputs_missing),
            thousands(outcome.outputs_duplicated),
            if outcome.passed { "pass" } else { "FAIL" },
        ));
    }
    table
}

/// The fault's timeline and every check of one scenario.
pub fn details(outcome: &Outcome) -> String {
    let mut text = format!("{}:\n", outcome.scenario);
    for step in &outcome.fault {
        text.push_str(&format!("  - {step}\n"));
    }
    text.push_str(&format!(
        "  - {} retries, p99 latency {:.1} ms, {:.1} s waiting for the correlator after the samples were verified, peak RSS of the last ingest process {}\n",
        outcome.retries,
        outcome.latency_p99_ms,
        outcome.correlator_settle_seconds,
        outcome
            .ingest_peak_rss_bytes
            .map(|bytes| format!("{:.0} MiB", bytes as f64 / 1048576.0))
            .unwrap_or_else(|| "unknown".into()),
    ));
    for (check, ok) in &outcome.checks {
        text.push_str(&format!(
            "  [{}] {check}\n",
            if *ok { "ok" } else { "FAIL" }
        ));
    }
    text.push_str(&format!("  logs: {}\n", outcome.directory.display()));
    text
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
