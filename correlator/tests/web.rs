//! The binding view (`correlator tail --web`) in a real headless Chromium,
//! driven by playwright-core (tests/web/): the fixtures bound and unbound
//! through the whole pipeline (real broker, ingest, the correlator's own
//! process), then the page must show exactly the counts the output topics
//! hold, a click on a component must show its series, and a search by label
//! must find them. Screenshots go to `target/web/`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use correlator::view::state::{SEARCH_HITS_MAX, Summary};
use serde_json::Value;
use support::kafka::TempDir;
use support::{Correlator, Topics, eventually};

/// What the output topics hold, counted the way the view counts.
#[derive(Debug, Default, PartialEq)]
struct TopicCounts {
    /// Per tenant: bound samples, and unbound samples per reason.
    bound: BTreeMap<String, u64>,
    unbound: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per component externalId: its distinct series.
    component_series: BTreeMap<String, BTreeSet<Vec<(String, String)>>>,
    /// Distinct series carrying a label of a given value, for the search.
    named_series: BTreeSet<Vec<(String, String)>>,
}

const SEARCHED_LABEL: (&str, &str) = ("component_name", "node-exporter");

fn topic_counts(topics: &Topics) -> TopicCounts {
    let mut counts = TopicCounts::default();
    for (topic, bound) in [(&topics.bound, true), (&topics.unbound, false)] {
        for record in support::read_all(topic) {
            let tenant = record.headers["tenant"].clone();
            let batch = support::batch_of(&record);
            let samples = support::points_of(&batch) as u64;
            if bound {
                *counts.bound.entry(tenant).or_default() += samples;
            } else {
                *counts
                    .unbound
                    .entry(tenant)
                    .or_default()
                    .entry(record.headers["reason"].clone())
                    .or_default() += samples;
            }
            for series in batch {
                if series.label(SEARCHED_LABEL.0) == Some(SEARCHED_LABEL.1) {
                    counts.named_series.insert(series.labels.clone());
                }
                if bound {
                    counts
                        .component_series
                        .entry(record.headers["component"].clone())
                        .or_default()
                        .insert(series.labels);
                }
            }
        }
    }
    counts
}

/// playwright-core as package-lock.json pins it, installed once.
fn web_test_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (make deps)");
        assert!(status.success(), "npm ci in {}", dir.display());
    }
    dir
}

/// `target/`, beside the binaries.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_correlator"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

type Totals = (
    BTreeMap<String, u64>,
    BTreeMap<String, BTreeMap<String, u64>>,
);

/// Bound samples per tenant, and unbound per tenant and reason.
fn totals_of(summary: &Summary) -> Totals {
    let mut totals = Totals::default();
    for tenant in &summary.tenants {
        if tenant.total.bound > 0 {
            totals.0.insert(tenant.tenant.clone(), tenant.total.bound);
        }
        if !tenant.total.unbound.is_empty() {
            totals
                .1
                .insert(tenant.tenant.clone(), tenant.total.unbound.clone());
        }
    }
    totals
}

#[actix_web::test]
async fn the_binding_view_in_chromium_shows_the_topics_counts_and_a_components_series() {
    let dir = TempDir::new();
    let topics = support::fresh_topics();
    let (_correlator, per_job) = support::fixtures_posted(&dir, &topics).await;
    // Every fixture sample comes out, bound (the node exporter's, twice) or unbound.
    let all_samples: usize = per_job.values().sum::<usize>() + per_job["node"];
    let counted_topics = topics.clone();
    let counts = eventually(
        Duration::from_secs(90),
        "every sample bound or unbound",
        move || {
            let counts = topic_counts(&counted_topics);
            let out: u64 = counts.bound.values().sum::<u64>()
                + counts
                    .unbound
                    .values()
                    .flat_map(|r| r.values())
                    .sum::<u64>();
            (out >= all_samples as u64).then_some(counts)
        },
    )
    .await;
    assert_eq!(counts.component_series.len(), 2, "{counts:?}");
    assert!(!counts.unbound.is_empty());

    let port = support::kafka::free_port();
    let listen = format!("127.0.0.1:{port}");
    let view = Correlator::spawn_with(
        &dir,
        &topics,
        "unused",
        &["tail", "--web", &listen, "--from-beginning"],
        &[("VIEW_REFRESH_SECONDS", "2")],
    );
    let base = format!("http://{listen}");
    support::kafka::wait_until_ready(&format!("{base}/healthz"), Duration::from_secs(30), || {
        view.log_text()
    });
    // The view has read everything once its totals match the topics'.
    let summary_url = format!("{base}/api/summary");
    let wanted = (counts.bound.clone(), counts.unbound.clone());
    let summary = eventually(Duration::from_secs(60), "the view caught up", move || {
        let summary: Summary = serde_json::from_str(&support::curl_get(&summary_url)).ok()?;
        (totals_of(&summary) == wanted).then_some(summary)
    })
    .await;
    for tenant in &summary.tenants {
        // Everything was written within the chart's minutes.
        let charted: u64 = tenant
            .minutes
            .iter()
            .map(|m| m.counts.bound + m.counts.unbound_total())
            .sum();
        assert_eq!(charted, tenant.total.bound + tenant.total.unbound_total());
    }
    assert_eq!(summary.memory.series_evicted, 0);

    // The page in Chromium.
    let screenshots = target_dir().join("web");
    let search = format!("{}={}", SEARCHED_LABEL.0, SEARCHED_LABEL.1);
    let output = Command::new("node")
        .arg("binding-view.mjs")
        .arg(&base)
        .arg(&screenshots)
        .arg(&search)
        .current_dir(web_test_dir())
        .output()
        .expect("node is installed (make deps)");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        view.log_text()
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("the page showed: {seen}");
    assert_eq!(seen["status"], 200);
    assert_eq!(seen["reloaded"], true);
    for (tenant, bound) in &counts.bound {
        assert_eq!(seen["tenants"][tenant]["bound"], *bound, "{seen}");
        assert_eq!(seen["tenants"][tenant]["charts"], 1);
    }
    for (tenant, reasons) in &counts.unbound {
        let unbound: u64 = reasons.values().sum();
        assert_eq!(seen["tenants"][tenant]["unbound"], unbound, "{seen}");
        let shown: BTreeMap<String, u64> =
            serde_json::from_value(seen["tenants"][tenant]["reasons"].clone()).unwrap();
        assert_eq!(&shown, reasons);
    }
    let components: BTreeMap<String, usize> =
        serde_json::from_value(seen["components"].clone()).unwrap();
    let wanted: BTreeMap<String, usize> = counts
        .component_series
        .iter()
        .map(|(id, series)| (id.clone(), series.len()))
        .collect();
    assert_eq!(components, wanted);
    // The unbound series come with their detail (the missing label, the identifiers tried).
    let details = seen["unboundDetails"].as_array().unwrap();
    assert!(!details.is_empty());
    assert!(
        details.iter().all(|d| !d.as_str().unwrap().is_empty()),
        "{details:?}"
    );
    // The click landed on the component's page, with all its series.
    let clicked = seen["clicked"].as_str().unwrap();
    assert_eq!(seen["component"]["id"], clicked);
    let clicked_series = counts.component_series[clicked].len();
    assert_eq!(seen["component"]["rows"], clicked_series);
    assert_eq!(seen["component"]["series"], clicked_series);
    assert_eq!(seen["component"]["sparklines"], clicked_series);
    let hits = counts.named_series.len().min(SEARCH_HITS_MAX);
    assert!(hits > 0);
    assert_eq!(seen["search"]["hits"], hits);
    assert_eq!(seen["search"]["rows"], hits);
    let png = std::fs::read(screenshots.join("binding-view.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!(
        "screenshots in {} ({} bytes for the summary)",
        screenshots.display(),
        png.len()
    );
}
