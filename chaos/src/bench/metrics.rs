//! What the services' `/metrics` say, in the Prometheus text format.

use std::time::Duration;

/// One sample of the text format: the metric's name, its labels as written
/// between the braces (empty without), and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: &'a str,
    pub value: f64,
}

/// The samples of an exposition, comments and unparsable lines left out.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let value = value.parse().ok()?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        Some(Sample {
            name,
            labels,
            value,
        })
    })
}

/// The value of the series `name` with exactly `labels` (0 when absent).
pub fn value(text: &str, name: &str, labels: &str) -> f64 {
    samples(text)
        .filter(|sample| sample.name == name && sample.labels == labels)
        .last()
        .map_or(0.0, |sample| sample.value)
}

/// The sum over every series of `name`, whatever its labels.
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text)
        .filter(|sample| sample.name == name)
        .map(|sample| sample.value)
        .sum()
}

/// The correlator's counters a benchmark follows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CorrelatorCounters {
    /// Samples records consumed.
    pub consumed: u64,
    pub bound: u64,
    pub released: u64,
    pub unbound: u64,
    pub produced_bound: u64,
    pub produced_unbound: u64,
    /// Components in the join's index.
    pub components: u64,
    /// Samples in the bound records, one per sample and component; 0 from a
    /// correlator that does not count them (its bound records hold one sample each).
    pub points_bound: u64,
    /// Seconds the join waited for room in the producer's queue.
    pub queue_full_seconds: f64,
}

impl CorrelatorCounters {
    pub fn parse(text: &str) -> CorrelatorCounters {
        // Truncated as awk's %d does.
        let count = |value: f64| value as u64;
        CorrelatorCounters {
            consumed: count(value(
                text,
                "correlator_records_consumed_total",
                "kind=\"samples\"",
            )),
            bound: count(value(text, "correlator_bound_points_total", "")),
            released: count(value(text, "correlator_released_points_total", "")),
            unbound: count(
                samples(text)
                    .filter(|s| s.name == "correlator_unbound_points_total" && !s.labels.is_empty())
                    .map(|s| s.value)
                    .sum(),
            ),
            produced_bound: count(value(
                text,
                "correlator_records_produced_total",
                "kind=\"bound\"",
            )),
            produced_unbound: count(value(
                text,
                "correlator_records_produced_total",
                "kind=\"unbound\"",
            )),
            components: count(value(text, "correlator_topology_components", "")),
            points_bound: count(value(
                text,
                "correlator_points_produced_total",
                "kind=\"bound\"",
            )),
            queue_full_seconds: value(text, "correlator_output_queue_full_seconds_total", ""),
        }
    }
}

/// The text of `http://127.0.0.1:<port>/metrics`.
pub fn fetch(port: u16) -> anyhow::Result<String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()?
        .error_for_status()?;
    Ok(response.text()?)
}

/// The correlator's counters on `port`, all 0 when it does not answer.
pub fn correlator_counters(port: u16) -> CorrelatorCounters {
    fetch(port)
        .map(|text| CorrelatorCounters::parse(&text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "\
# HELP correlator_records_consumed_total Records consumed.
# TYPE correlator_records_consumed_total counter
correlator_records_consumed_total{kind=\"samples\"} 1200
correlator_records_consumed_total{kind=\"topology\"} 7
correlator_bound_points_total 3000
correlator_released_points_total 12
correlator_unbound_points_total{reason=\"no_component\"} 5
correlator_unbound_points_total{reason=\"late\"} 2
correlator_records_produced_total{kind=\"bound\"} 900
correlator_records_produced_total{kind=\"unbound\"} 4
correlator_topology_components 1.5e3
correlator_points_produced_total{kind=\"bound\"} 9000
correlator_output_queue_full_seconds_total 2.5
# EOF
";

    #[test]
    fn samples_have_name_labels_and_value() {
        let all: Vec<Sample> = samples(EXPOSITION).collect();
        assert_eq!(all.len(), 11);
        assert_eq!(
            all[0],
            Sample {
                name: "correlator_records_consumed_total",
                labels: "kind=\"samples\"",
                value: 1200.0
            }
        );
        assert_eq!(all[2].labels, "");
        assert_eq!(sum(EXPOSITION, "correlator_unbound_points_total"), 7.0);
        assert_eq!(value(EXPOSITION, "absent_total", ""), 0.0);
    }

    #[test]
    fn the_correlator_counters_are_read_by_kind() {
        assert_eq!(
            CorrelatorCounters::parse(EXPOSITION),
            CorrelatorCounters {
                consumed: 1200,
                bound: 3000,
                released: 12,
                unbound: 7,
                produced_bound: 900,
                produced_unbound: 4,
                components: 1500,
                points_bound: 9000,
                queue_full_seconds: 2.5,
            }
        );
        assert_eq!(CorrelatorCounters::parse(""), CorrelatorCounters::default());
    }
}
