//! `loadtest`: builds the request ring, runs the senders, prints the summary
//! and, with `--verify`, reads the samples topic back.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use loadtest::cli::Options;
use loadtest::outputs::{OutputLedger, OutputsReport, wait_for_group};
use loadtest::payload::{
    PreparedRequest, Protocol, SyntheticPlan, replay_requests, synthetic_requests,
};
use loadtest::schedule::Timetable;
use loadtest::send::{LoadShape, RetryPolicy, SendPlan, auth_header, sender};
use loadtest::stats::{Recorder, RunSettings, Summary};
use loadtest::synthetic::{RUN_LABEL, SeriesUniverse};
use loadtest::topology::{components, intake_url, snapshot_requests};
use loadtest::verify::{
    Decoder, SampleLedger, TopicRecord, VerifyError, VerifyReport, body_samples, read_topic,
};
use reqwest::header::{HeaderMap, HeaderValue};

/// Prometheus' default scrape interval: the spacing of the passes' timestamps.
const SCRAPE_INTERVAL_MS: i64 = 15_000;

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = options.validate() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    match run(options) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> anyhow::Result<ExitCode> {
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));

    let encoding_started = std::time::Instant::now();
    let (ring, source, protocol) = build_ring(&options, &run_id)?;
    let ring_samples: u64 = ring.iter().map(|request| request.samples).sum();
    let ring_bytes: u64 = ring.iter().map(|request| request.body.len() as u64).sum();
    eprintln!(
        "run {run_id}: pre-encoded {} requests ({ring_samples} samples, {ring_bytes} bytes) in {:.1} s",
        ring.len(),
        encoding_started.elapsed().as_secs_f64()
    );

    let shape = match options.rate {
        Some(rate) => {
            let samples: Vec<u64> = ring.iter().map(|request| request.samples).collect();
            let Some(timetable) = Timetable::new(&samples, rate) else {
                bail!("--rate needs requests that hold samples; the ring holds none");
            };
            LoadShape::Rate(timetable)
        }
        None => LoadShape::Max,
    };
    let settings = RunSettings {
        run_id: run_id.clone(),
        url: options.url.clone(),
        source,
        protocol,
        mode: if options.rate.is_some() {
            "rate"
        } else {
            "max"
        }
        .into(),
        target_samples_per_second: options.rate,
        connections: options.connections as usize,
        requested_duration_seconds: options.duration,
        ring_requests: ring.len(),
        ring_samples,
        ring_bytes,
    };

    let ring = Arc::new(ring);
    let acknowledgements: Arc<Vec<AtomicU32>> =
        Arc::new((0..ring.len()).map(|_| AtomicU32::new(0)).collect());
    let recorder = Arc::new(Recorder::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if options.topology {
        runtime.block_on(post_topology(&options, &run_id))?;
    }
    let (elapsed, unsent) = runtime.block_on(send_all(
        &options,
        ring.clone(),
        acknowledgements.clone(),
        shape,
        recorder.clone(),
    ))?;
    drop(runtime);
    let totals = recorder.totals(elapsed, unsent);

    let verify = if options.verify {
        eprintln!(
            "verifying: reading {} from {}",
            options.topic, options.brokers
        );
        let verify_started = std::time::Instant::now();
        let report = verify(&options, &run_id, &ring, &acknowledgements)?;
        eprintln!(
            "verified {} records in {:.1} s",
            report.records_read,
            verify_started.elapsed().as_secs_f64()
        );
        Some(report)
    } else {
        None
    };

    let summary = Summary {
        settings,
        totals,
        verify,
    };
    print!("{}", summary.to_text());
    if let Some(path) = &options.json {
        let json = serde_json::to_string_pretty(&summary).context("encoding the summary")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing --json {}", path.display()))?;
    }

    let missing = summary.verify.as_ref().is_some_and(|report| {
        report.counts.missing > 0
            || report
                .outputs
                .as_ref()
                .is_some_and(|outputs| !outputs.passed())
    });
    if missing || summary.totals.requests_acknowledged == 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn build_ring(
    options: &Options,
    run_id: &str,
) -> anyhow::Result<(Vec<PreparedRequest>, String, Protocol)> {
    if let Some(directory) = &options.replay {
        let tag = options.verify.then_some(run_id);
        let ring = replay_requests(directory, tag)
            .with_context(|| format!("--replay {}", directory.display()))?;
        return Ok((
            ring,
            format!("replay {}", directory.display()),
            Protocol::V1,
        ));
    }
    let plan = synthetic_plan(options, run_id)?;
    let source = format!(
        "synthetic {} series × {} labels, {} per request, churn {}, {} passes",
        options.series,
        options.labels_per_series,
        options.samples_per_request,
        options.churn,
        plan.passes
    );
    Ok((synthetic_requests(&plan), source, options.protocol))
}

fn synthetic_plan(options: &Options, run_id: &str) -> anyhow::Result<SyntheticPlan> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_millis() as i64;
    let series = options.series as usize;
    Ok(SyntheticPlan {
        universe: SeriesUniverse {
            series,
            labels_per_series: options.labels_per_series as usize,
            run_id: run_id.to_string(),
            cluster_name: options.cluster_name.clone(),
        },
        samples_per_request: options.samples_per_request as usize,
        replaced_per_pass: (options.churn * series as f64).round() as usize,
        passes: options.passes(),
        protocol: options.protocol,
        // Aligned to the scrape interval, as Prometheus' timestamps roughly are.
        first_timestamp_ms: now_ms - now_ms % SCRAPE_INTERVAL_MS,
        scrape_interval_ms: SCRAPE_INTERVAL_MS,
    })
}

/// Posts the synthetic series' nodes, pods and containers as one snapshot, part by part.
async fn post_topology(options: &Options, run_id: &str) -> anyhow::Result<()> {
    let plan = synthetic_plan(options, run_id)?;
    let components = components(&plan.universe, plan.passes, plan.replaced_per_pass);
    let url = match &options.intake_url {
        Some(url) => url.clone(),
        None => intake_url(&options.url).map_err(anyhow::Error::msg)?,
    };
    let collected = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs_f64();
    let requests = snapshot_requests(&options.cluster_name, &components, collected);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(options.timeout))
        .build()
        .context("building the HTTP client")?;
    let (auth_name, auth_value) = auth_header(options.auth, &options.api_key);
    for (index, body) in requests.iter().enumerate() {
        let response = client
            .post(&url)
            .header(auth_name.clone(), &auth_value)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).context("encoding the topology")?)
            .send()
            .await
            .with_context(|| format!("posting topology part {} to {url}", index + 1))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!(
                "topology part {} of {}: {status}: {}",
                index + 1,
                requests.len(),
                text.trim()
            );
        }
    }
    eprintln!(
        "posted {} components in {} parts to {url}",
        components.len(),
        requests.len()
    );
    Ok(())
}

/// Runs the senders and the progress line; returns the time taken and the requests left unsent.
async fn send_all(
    options: &Options,
    ring: Arc<Vec<PreparedRequest>>,
    acknowledgements: Arc<Vec<AtomicU32>>,
    shape: LoadShape,
    recorder: Arc<Recorder>,
) -> anyhow::Result<(Duration, u64)> {
    let connections = options.connections as usize;
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(options.timeout))
        .user_agent(concat!("loadtest/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let mut headers = HeaderMap::new();
    let (auth_name, auth_value) = auth_header(options.auth, &options.api_key);
    let mut auth_value = HeaderValue::from_str(&auth_value)
        .context("--api-key holds characters not allowed in a header")?;
    auth_value.set_sensitive(true);
    headers.insert(auth_name, auth_value);
    headers.insert(
        reqwest::header::CONTENT_ENCODING,
        HeaderValue::from_static("snappy"),
    );

    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs(options.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let plan = Arc::new(SendPlan {
        client,
        url: options.url.clone(),
        headers,
        ring,
        acknowledgements,
        shape,
        retry: RetryPolicy {
            enabled: options.retry,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        },
        recorder: recorder.clone(),
        start,
        end,
        give_up: end + Duration::from_secs(options.drain_timeout),
        stop: stop.clone(),
        next_request: AtomicU64::new(0),
    });

    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..connections {
        senders.spawn(sender(plan.clone()));
    }
    let interrupt = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing requests in flight");
            interrupt.store(true, Ordering::Relaxed);
        }
    });
    let progress_plan = plan.clone();
    let progress = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.tick().await;
        let mut previous = tokio::time::Instant::now();
        loop {
            ticks.tick().await;
            let now = tokio::time::Instant::now();
            eprintln!(
                "{}",
                recorder.progress_line(
                    now - progress_plan.start,
                    now - previous,
                    progress_plan.behind_schedule()
                )
            );
            previous = now;
        }
    });
    while let Some(result) = senders.join_next().await {
        result.context("a sender task failed")?;
    }
    progress.abort();
    Ok((start.elapsed(), plan.unsent()))
}

fn verify(
    options: &Options,
    run_id: &str,
    ring: &[PreparedRequest],
    acknowledgements: &[AtomicU32],
) -> anyhow::Result<VerifyReport> {
    let mut decoder = Decoder::new();
    let mut ledger = SampleLedger::new();
    for (request, acknowledged) in ring.iter().zip(acknowledgements) {
        let times = acknowledged.load(Ordering::Relaxed);
        let ids = body_samples(
            &mut decoder,
            request.protocol.content_type(),
            &request.body,
            RUN_LABEL,
            run_id,
        )
        .context("decoding a request of the ring")?;
        for id in ids {
            ledger.sent(id, times);
        }
    }

    let (records_read, records_undecodable) =
        read_back(&options.brokers, &options.topic, &mut |record| {
            decoder.samples_of_run(
                record.content_type,
                record.payload,
                RUN_LABEL,
                run_id,
                &mut |id| ledger.found(id),
            )
        })?;

    let outputs = if options.verify_outputs {
        Some(verify_outputs(options, run_id, &mut decoder, &ledger)?)
    } else {
        None
    };
    Ok(VerifyReport {
        topic: options.topic.clone(),
        records_read,
        records_undecodable,
        counts: ledger.counts(),
        outputs,
    })
}

/// Reads `topic` back (until it is idle for a minute), each record through
/// `decode`: how many records were read, and how many `decode` refused.
fn read_back(
    brokers: &str,
    topic: &str,
    decode: &mut dyn FnMut(TopicRecord<'_>) -> Result<(), VerifyError>,
) -> anyhow::Result<(u64, u64)> {
    let mut undecodable = 0u64;
    let read = read_topic(brokers, topic, Duration::from_secs(60), &mut |record| {
        if decode(record).is_err() {
            undecodable += 1;
        }
    })
    .with_context(|| format!("reading {topic} back from {brokers}"))?;
    Ok((read, undecodable))
}

/// Waits for the correlator, then reads the bound and unbound topics back.
fn verify_outputs(
    options: &Options,
    run_id: &str,
    decoder: &mut Decoder,
    samples: &SampleLedger,
) -> anyhow::Result<OutputsReport> {
    eprintln!(
        "verifying outputs: waiting for group {} to commit past the end of {}",
        options.correlator_group, options.topic
    );
    let settled = wait_for_group(
        &options.brokers,
        &options.correlator_group,
        &options.topic,
        Duration::from_secs(options.settle_timeout),
    )
    .context("waiting for the correlator")?;
    let mut ledger = OutputLedger::new(samples);
    let mut records_read = 0u64;
    let mut records_undecodable = 0u64;
    for (topic, bound) in [
        (&options.bound_topic, true),
        (&options.unbound_topic, false),
    ] {
        let (read, undecodable) = read_back(&options.brokers, topic, &mut |record| {
            decoder.output_samples(
                record.content_type,
                record.payload,
                bound,
                RUN_LABEL,
                run_id,
                &mut |id, destination| ledger.found(id, destination),
            )
        })?;
        records_read += read;
        records_undecodable += undecodable;
    }
    Ok(OutputsReport {
        bound_topic: options.bound_topic.clone(),
        unbound_topic: options.unbound_topic.clone(),
        settled,
        records_read,
        records_undecodable,
        counts: ledger.counts(),
    })
}
