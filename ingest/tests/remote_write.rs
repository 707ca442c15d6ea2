//! Remote-write through the real route table into the real broker: what
//! Prometheus sends comes out of `metrics.samples` exactly, for each tenant.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use ingest::routes;
use ingest::state::AppState;
use proto::prometheus::WriteRequest;
use proto::{Message, v2};

type SeriesKey = Vec<(String, String)>;
/// Per series: (timestamp, value bits) of its samples.
type SeriesSamples = BTreeMap<SeriesKey, Vec<(i64, u64)>>;

fn sorted_labels(labels: &[proto::prometheus::Label]) -> SeriesKey {
    let mut key: SeriesKey = labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    key.sort();
    key
}

fn collect_v1(request: &WriteRequest, series: &mut SeriesSamples, metadata: &mut Vec<Vec<u8>>) {
    for ts in &request.timeseries {
        let samples = series.entry(sorted_labels(&ts.labels)).or_default();
        samples.extend(ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())));
    }
    metadata.extend(request.metadata.iter().map(|m| m.encode_to_vec()));
}

/// Per tenant, its series and v1 metadata entries as read back.
type TenantSeries = BTreeMap<String, (SeriesSamples, Vec<Vec<u8>>)>;
/// The partitions each (tenant, series) was read from.
type SeriesPartitions = BTreeMap<(String, SeriesKey), BTreeSet<i32>>;

/// Adds a v1 record of `tenant` to what was read back.
fn collect_v1_record(
    record: &common::Record,
    tenant: String,
    per_tenant: &mut TenantSeries,
    partitions_of: &mut SeriesPartitions,
) {
    let request = WriteRequest::decode(record.payload.as_slice()).unwrap();
    for ts in &request.timeseries {
        partitions_of
            .entry((tenant.clone(), sorted_labels(&ts.labels)))
            .or_default()
            .insert(record.partition);
    }
    let (series, metadata) = per_tenant.entry(tenant).or_default();
    collect_v1(&request, series, metadata);
}

async fn post(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (StatusCode, actix_web::http::header::HeaderMap, String) {
    let mut request = test::TestRequest::post().uri("/receiver/prometheus/api/v1/write");
    for (name, value) in headers {
        request = request.insert_header((*name, value.as_str()));
    }
    let response = test::call_service(app, request.set_payload(body).to_request()).await;
    let status = response.status();
    let response_headers = response.headers().clone();
    let body = test::read_body(response).await;
    (
        status,
        response_headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(
            App::new()
                .app_data($state.clone())
                .configure(routes::configure),
        )
        .await
    };
}

#[actix_web::test]
async fn every_fixture_arrives_exactly_once_per_tenant_with_either_auth_form() {
    let dir = common::TempDir::new();
    let state: web::Data<AppState> =
        common::ready_state(common::settings(common::keys_file(&dir, ""), |_| {})).await;
    let app = app!(state);

    let mut expected_series = SeriesSamples::new();
    let mut expected_metadata = Vec::new();
    let bodies = proto::fixtures::prometheus_2_42_bodies().unwrap();
    for (name, body) in &bodies {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        collect_v1(
            &WriteRequest::decode(raw.as_slice()).unwrap(),
            &mut expected_series,
            &mut expected_metadata,
        );
        let v1 = ("content-type", "application/x-protobuf".to_string());
        let snappy = ("content-encoding", "snappy".to_string());
        let by_header = [
            ("sts-api-key", common::KEY_A.to_string()),
            v1.clone(),
            snappy.clone(),
        ];
        let (status, headers, text) = post(&app, &by_header, body.clone()).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{name}: {text}");
        assert!(
            headers
                .get("x-prometheus-remote-write-samples-written")
                .is_none(),
            "no Written headers for v1"
        );
        let by_basic_auth = [
            ("authorization", common::basic_auth(common::KEY_B)),
            v1,
            snappy,
        ];
        let (status, _, text) = post(&app, &by_basic_auth, body.clone()).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{name}: {text}");
    }
    // 20,000 series entries over 41 requests: the same series scraped again and again.
    let entries = |series: &SeriesSamples| series.values().map(Vec::len).sum::<usize>();
    assert_eq!(entries(&expected_series), 20_000);
    assert_eq!(expected_metadata.len(), 449);

    let records = common::read_all(&state.settings.topic_samples);
    let mut per_tenant = TenantSeries::new();
    let mut partitions_of = SeriesPartitions::new();
    for record in &records {
        let tenant = record.headers["tenant"].clone();
        assert_eq!(record.key.as_deref(), Some(tenant.as_bytes()));
        assert_eq!(record.headers["content-type"], proto::CONTENT_TYPE_V1);
        collect_v1_record(record, tenant, &mut per_tenant, &mut partitions_of);
    }
    assert_eq!(per_tenant.keys().collect::<Vec<_>>(), ["alpha", "beta"]);
    for series in expected_series.values_mut() {
        series.sort();
    }
    for (tenant, (series, metadata)) in &mut per_tenant {
        for samples in series.values_mut() {
            samples.sort();
        }
        assert_eq!(series.len(), expected_series.len(), "{tenant}: series");
        assert!(
            *series == expected_series,
            "{tenant}: series, timestamps or value bits differ"
        );
        assert_eq!(entries(series), 20_000, "{tenant}: samples");
        // Every metadata entry in every partition: each once per partition.
        metadata.sort();
        let partitions = common::partition_count(&state.settings.topic_samples) as usize;
        let mut expected_everywhere: Vec<Vec<u8>> = expected_metadata
            .iter()
            .flat_map(|entry| std::iter::repeat_n(entry.clone(), partitions))
            .collect();
        expected_everywhere.sort();
        assert!(
            *metadata == expected_everywhere,
            "{tenant}: metadata differs"
        );
    }
    assert_each_series_in_one_partition(&partitions_of);
}

/// A v2 series with its references resolved, in a comparable form.
fn resolve(request: &v2::Request) -> BTreeMap<SeriesKey, String> {
    let symbol = |r: &u32| request.symbols[*r as usize].clone();
    let mut out = BTreeMap::new();
    for ts in &request.timeseries {
        let mut labels: SeriesKey = ts
            .labels_refs
            .chunks(2)
            .map(|p| (symbol(&p[0]), symbol(&p[1])))
            .collect();
        labels.sort();
        let samples: Vec<(i64, u64)> = ts
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value.to_bits()))
            .collect();
        let histograms: Vec<Vec<u8>> = ts.histograms.iter().map(|h| h.encode_to_vec()).collect();
        let exemplars: Vec<(Vec<String>, u64, i64)> = ts
            .exemplars
            .iter()
            .map(|e| {
                (
                    e.labels_refs.iter().map(symbol).collect(),
                    e.value.to_bits(),
                    e.timestamp,
                )
            })
            .collect();
        let metadata = ts
            .metadata
            .as_ref()
            .map(|m| (m.r#type, symbol(&m.help_ref), symbol(&m.unit_ref)));
        out.insert(
            labels,
            format!("{samples:?} {histograms:?} {exemplars:?} {metadata:?}"),
        );
    }
    out
}

fn v2_headers(key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sts-api-key", key.to_string()),
        ("content-type", proto::CONTENT_TYPE_V2.to_string()),
        ("content-encoding", "snappy".to_string()),
        ("x-prometheus-remote-write-version", "2.0.0".to_string()),
    ]
}

/// The samples, histograms and exemplars Written headers of an answer.
fn written_headers(headers: &actix_web::http::header::HeaderMap) -> [Option<u64>; 3] {
    ["samples", "histograms", "exemplars"].map(|kind| {
        headers
            .get(format!("x-prometheus-remote-write-{kind}-written"))
            .map(|value| value.to_str().unwrap().parse().unwrap())
    })
}

fn v2_body(request: &v2::Request) -> Vec<u8> {
    snappy(&request.encode_to_vec())
}

fn assert_each_series_in_one_partition(partitions_of: &SeriesPartitions) {
    assert!(
        partitions_of
            .values()
            .all(|partitions| partitions.len() == 1),
        "a series in two partitions"
    );
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

#[actix_web::test]
async fn remote_write_2_is_acknowledged_with_exact_counts_and_stored_losslessly() {
    let dir = common::TempDir::new();
    let state = common::ready_state(common::settings(common::keys_file(&dir, ""), |_| {})).await;
    let app = app!(state);
    let request = proto::fixtures::v2_request();
    let (status, headers, text) = post(&app, &v2_headers(common::KEY_A), v2_body(&request)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(written_headers(&headers), [Some(5), Some(2), Some(2)]);

    let mut stored = BTreeMap::new();
    for record in common::read_all(&state.settings.topic_samples) {
        assert_eq!(record.headers["content-type"], proto::CONTENT_TYPE_V2);
        assert_eq!(record.headers["tenant"], "alpha");
        let part = v2::Request::decode(record.payload.as_slice()).unwrap();
        assert_eq!(part.symbols[0], "");
        for ts in &part.timeseries {
            let names: Vec<&str> = ts
                .labels_refs
                .chunks(2)
                .map(|p| part.symbols[p[0] as usize].as_str())
                .collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "labels sorted on the way out: {names:?}"
            );
        }
        stored.extend(resolve(&part));
    }
    assert_eq!(stored, resolve(&request));
}

struct BadCase {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    message: &'static str,
}

fn series(labels: &[(&str, &str)]) -> proto::prometheus::TimeSeries {
    proto::prometheus::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| proto::prometheus::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: vec![proto::prometheus::Sample {
            value: 1.0,
            timestamp: 1_700_000_000_000,
        }],
        ..Default::default()
    }
}

#[actix_web::test]
async fn bad_input_gets_the_right_status_and_says_what_is_wrong() {
    let dir = common::TempDir::new();
    let quota = "[[keys]]\ntenant = \"limited\"\nkey = \"limited-key-000000000000\"\nsamples_per_second = 1\nburst_samples = 2\n";
    let state = common::ready_state(common::settings(common::keys_file(&dir, quota), |o| {
        o.max_body_bytes = 64 * 1024;
    }))
    .await;
    let app = app!(state);
    let good = common::snappy_v1(vec![series(&[("__name__", "up"), ("job", "a")])]);
    let v1 = |key: &str| {
        vec![
            ("sts-api-key", key.to_string()),
            ("content-type", "application/x-protobuf".to_string()),
            ("content-encoding", "snappy".to_string()),
        ]
    };
    let key = common::KEY_A;
    let with = |mut headers: Vec<(&'static str, String)>, extra: (&'static str, &str)| {
        headers.retain(|(name, _)| *name != extra.0);
        headers.push((extra.0, extra.1.to_string()));
        headers
    };
    let mut v2_out_of_range = proto::fixtures::v2_request();
    v2_out_of_range.timeseries[3].labels_refs = vec![1, 16, 17, 99];
    let mut v2_both = proto::fixtures::v2_request();
    v2_both.timeseries[3].histograms = v2_both.timeseries[0].histograms.clone();
    let mut v2_bad_count = proto::fixtures::v2_request();
    v2_bad_count.timeseries[0].histograms[1].count = Some(v2::histogram::Count::CountInt(99));
    let long_value = "v".repeat(5000);

    let huge_names: Vec<String> = (0..4_000).map(|i| format!("label_{i:06}")).collect();
    let huge_label_set: Vec<(&str, &str)> = std::iter::once(("__name__", "up"))
        .chain(huge_names.iter().map(|name| (name.as_str(), "v")))
        .collect();
    let cases = vec![
        BadCase {
            name: "no credentials",
            headers: v1(key)[1..].to_vec(),
            body: good.clone(),
            status: StatusCode::UNAUTHORIZED,
            message: "no API key",
        },
        BadCase {
            name: "unknown key",
            headers: v1("not-a-key"),
            body: good.clone(),
            status: StatusCode::UNAUTHORIZED,
            message: "unknown API key",
        },
        BadCase {
            name: "basic auth with another username",
            headers: with(
                v1(key)[1..].to_vec(),
                (
                    "authorization",
                    &format!("Basic {}", base64_of(&format!("admin:{key}"))),
                ),
            ),
            body: good.clone(),
            status: StatusCode::UNAUTHORIZED,
            message: "username must be apikey",
        },
        BadCase {
            name: "gzip encoding",
            headers: with(v1(key), ("content-encoding", "gzip")),
            body: good.clone(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "unsupported content encoding",
        },
        BadCase {
            name: "json content type",
            headers: with(v1(key), ("content-type", "application/json")),
            body: good.clone(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "unsupported content type",
        },
        BadCase {
            name: "body over the limit",
            headers: v1(key),
            body: vec![0u8; 100 * 1024],
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "over the limit",
        },
        BadCase {
            name: "snappy header declaring 4 GiB",
            headers: v1(key),
            body: vec![0x80, 0x80, 0x80, 0x80, 0x10, 0, 0],
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "declares 4294967296",
        },
        BadCase {
            name: "corrupt snappy",
            headers: v1(key),
            body: vec![0x20, 0xff, 0xff, 0xff, 0xff, 0xff],
            status: StatusCode::BAD_REQUEST,
            message: "corrupt snappy",
        },
        BadCase {
            name: "garbage protobuf",
            headers: v1(key),
            body: snappy(&[0x0a, 0xff, 0xff, 0x03, 0x01]),
            status: StatusCode::BAD_REQUEST,
            message: "corrupt remote-write 1.0 protobuf",
        },
        BadCase {
            name: "series with no labels",
            headers: v1(key),
            body: common::snappy_v1(vec![series(&[])]),
            status: StatusCode::BAD_REQUEST,
            message: "1 of 1 series rejected; 1 without labels",
        },
        BadCase {
            name: "series without __name__",
            headers: v1(key),
            body: common::snappy_v1(vec![series(&[("job", "a")]), series(&[("__name__", "up")])]),
            status: StatusCode::BAD_REQUEST,
            message: "1 of 2 series rejected; 1 without a __name__ label (first: {job=\"a\"})",
        },
        BadCase {
            name: "duplicate label names",
            headers: v1(key),
            body: common::snappy_v1(vec![series(&[
                ("__name__", "up"),
                ("job", "a"),
                ("job", "b"),
            ])]),
            status: StatusCode::BAD_REQUEST,
            message: "duplicate label name",
        },
        BadCase {
            // 4,000 labels on one series (the limit is 40): refused by
            // count before anything is sorted or hashed.
            name: "huge label count",
            headers: v1(key),
            body: common::snappy_v1(vec![series(&huge_label_set)]),
            status: StatusCode::BAD_REQUEST,
            message: "1 of 1 series rejected; 1 with too many labels",
        },
        BadCase {
            name: "over-long label value",
            headers: v1(key),
            body: common::snappy_v1(vec![series(&[("__name__", "up"), ("job", &long_value)])]),
            status: StatusCode::BAD_REQUEST,
            message: "label value over the length limit",
        },
        BadCase {
            name: "v2 symbol out of range",
            headers: v2_headers(key),
            body: snappy(&v2_out_of_range.encode_to_vec()),
            status: StatusCode::BAD_REQUEST,
            message: "symbol reference out of range",
        },
        BadCase {
            name: "v2 samples and histograms",
            headers: v2_headers(key),
            body: snappy(&v2_both.encode_to_vec()),
            status: StatusCode::BAD_REQUEST,
            message: "both samples and histograms",
        },
        BadCase {
            name: "v2 histogram counts do not add up",
            headers: v2_headers(key),
            body: snappy(&v2_bad_count.encode_to_vec()),
            status: StatusCode::BAD_REQUEST,
            message: "but the count is 99",
        },
    ];
    for case in cases {
        let (status, _, text) = post(&app, &case.headers, case.body).await;
        assert_eq!(status, case.status, "{}: {text}", case.name);
        assert!(
            text.contains(case.message),
            "{}: {text:?} lacks {:?}",
            case.name,
            case.message
        );
    }

    // v2 requests that are partly invalid still write their valid series and say how many.
    let (_, headers, _) = post(
        &app,
        &v2_headers(key),
        snappy(&v2_out_of_range.encode_to_vec()),
    )
    .await;
    assert_eq!(
        headers
            .get("x-prometheus-remote-write-samples-written")
            .unwrap(),
        "4"
    );
    assert_eq!(
        headers
            .get("x-prometheus-remote-write-histograms-written")
            .unwrap(),
        "2"
    );

    // Over quota: 2 samples of burst, then 429 with Retry-After.
    let limited = "limited-key-000000000000";
    let two = common::snappy_v1(vec![
        series(&[("__name__", "a")]),
        series(&[("__name__", "b")]),
    ]);
    let (status, _, text) = post(&app, &v1(limited), two.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let (status, headers, text) = post(&app, &v1(limited), two).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(text.contains("over its rate"), "{text}");
    let retry_after: u64 = headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);

    // Still serving.
    let (status, _, text) = post(&app, &v1(key), good).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The value of one series in `/metrics`, if it is there.
async fn metric_value(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    series: &str,
) -> Option<u64> {
    let request = test::TestRequest::get().uri("/metrics").to_request();
    let text = String::from_utf8(
        test::read_body(test::call_service(app, request).await)
            .await
            .to_vec(),
    )
    .unwrap();
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// What Prometheus 3 sends with exemplars on: each exemplar in a series of
/// its own, beside the series of its sample.
fn v2_exemplar_only_request() -> v2::Request {
    let symbols = [
        "",
        "__name__",
        "rpc_seconds_bucket",
        "le",
        "0.5",
        "trace_id",
        "a",
        "b",
        "RPC.",
        "seconds",
    ];
    let exemplar = |trace: u32, timestamp: i64| v2::Exemplar {
        labels_refs: vec![5, trace],
        value: 0.2,
        timestamp,
    };
    let metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Histogram as i32,
        help_ref: 8,
        unit_ref: 9,
    });
    v2::Request {
        symbols: symbols.map(String::from).to_vec(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![proto::fixtures::v2_sample(3.0, 1_700_000_000_000)],
                metadata,
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                exemplars: vec![
                    exemplar(6, 1_700_000_000_000),
                    exemplar(7, 1_700_000_000_001),
                ],
                metadata,
                ..Default::default()
            },
        ],
    }
}

#[actix_web::test]
async fn exemplar_only_series_are_written_and_counted_and_every_refusal_is_counted() {
    let dir = common::TempDir::new();
    let quota = "[[keys]]\ntenant = \"limited\"\nkey = \"limited-key-000000000000\"\nsamples_per_second = 1\nburst_samples = 1\n";
    let state = common::ready_state(common::settings(common::keys_file(&dir, quota), |_| {})).await;
    let app = app!(state);
    // 2.0: the exemplar-only series is written and its exemplars counted.
    let request = v2_exemplar_only_request();
    let (status, headers, text) = post(&app, &v2_headers(common::KEY_A), v2_body(&request)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(written_headers(&headers), [Some(1), Some(0), Some(2)]);

    // 2.0 with a series that carries nothing but metadata, and one with nothing:
    // 400, the rest written and counted exactly.
    let mut with_empty = v2_exemplar_only_request();
    with_empty.timeseries.push(v2::TimeSeries {
        labels_refs: vec![1, 2, 3, 6],
        metadata: with_empty.timeseries[0].metadata,
        ..Default::default()
    });
    with_empty.timeseries.push(v2::TimeSeries {
        labels_refs: vec![1, 2, 3, 7],
        ..Default::default()
    });
    let (status, headers, text) =
        post(&app, &v2_headers(common::KEY_A), v2_body(&with_empty)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("2 of 4 series rejected; 2 with neither samples, histograms nor exemplars (first: {__name__=\"rpc_seconds_bucket\", le=\"a\"})"),
        "{text}"
    );
    assert_eq!(written_headers(&headers), [Some(1), Some(0), Some(2)]);

    // 1.0: the same decision.
    let mut exemplar_only = series(&[("__name__", "rpc_seconds_bucket"), ("le", "0.5")]);
    exemplar_only.samples.clear();
    exemplar_only.exemplars = vec![proto::prometheus::Exemplar {
        labels: vec![proto::prometheus::Label {
            name: "trace_id".into(),
            value: "c".into(),
        }],
        value: 0.2,
        timestamp: 1_700_000_000_000,
    }];
    let v1 = |key: &str| {
        vec![
            ("sts-api-key", key.to_string()),
            ("content-type", "application/x-protobuf".to_string()),
            ("content-encoding", "snappy".to_string()),
        ]
    };
    let (status, headers, text) = post(
        &app,
        &v1(common::KEY_B),
        common::snappy_v1(vec![exemplar_only.clone()]),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(
        written_headers(&headers),
        [None, None, None],
        "no Written headers for 1.0"
    );
    let mut empty = exemplar_only.clone();
    empty.exemplars.clear();
    let (status, _, text) = post(&app, &v1(common::KEY_B), common::snappy_v1(vec![empty])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("1 of 1 series rejected; 1 with neither samples, histograms nor exemplars"),
        "{text}"
    );

    // Kafka holds every exemplar acknowledged: 2 + 2 (2.0, alpha) and 1 (1.0, beta).
    let mut exemplars = BTreeMap::<String, usize>::new();
    for record in common::read_all(&state.settings.topic_samples) {
        let tenant = record.headers["tenant"].clone();
        let count = if record.headers["content-type"] == proto::CONTENT_TYPE_V2 {
            let part = v2::Request::decode(record.payload.as_slice()).unwrap();
            part.timeseries
                .iter()
                .map(|s| s.exemplars.len())
                .sum::<usize>()
        } else {
            let part = WriteRequest::decode(record.payload.as_slice()).unwrap();
            part.timeseries.iter().map(|s| s.exemplars.len()).sum()
        };
        *exemplars.entry(tenant).or_default() += count;
    }
    assert_eq!(
        exemplars,
        BTreeMap::from([("alpha".to_string(), 4), ("beta".to_string(), 1)])
    );

    // Over the rate: what the request carried is counted as refused for the tenant.
    let limited = "limited-key-000000000000";
    let one = common::snappy_v1(vec![series(&[("__name__", "a")])]);
    assert_eq!(
        post(&app, &v1(limited), one.clone()).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(&app, &v1(limited), one).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // 401s, by the credential form tried.
    let mut basic = v1(common::KEY_A)[1..].to_vec();
    basic.push((
        "authorization",
        format!("Basic {}", base64_of("admin:secret")),
    ));
    assert_eq!(post(&app, &basic, vec![]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(&app, &v1("no-such-key"), vec![]).await.0,
        StatusCode::UNAUTHORIZED
    );

    let refused = |tenant: &str, reason: &str, kind: &str| {
        format!("ingest_refused_total{{tenant=\"{tenant}\",reason=\"{reason}\",kind=\"{kind}\"}}")
    };
    assert_eq!(
        metric_value(&app, &refused("alpha", "empty_series", "metadata")).await,
        Some(1)
    );
    assert_eq!(
        metric_value(&app, &refused("alpha", "empty_series", "sample")).await,
        None
    );
    assert_eq!(
        metric_value(&app, &refused("beta", "empty_series", "sample")).await,
        None
    );
    assert_eq!(
        metric_value(&app, &refused("limited", "rate_limited", "sample")).await,
        Some(1)
    );
    assert_eq!(
        metric_value(
            &app,
            "ingest_series_rejected_total{reason=\"empty_series\"}"
        )
        .await,
        Some(3)
    );
    assert_eq!(
        metric_value(
            &app,
            "ingest_unauthorized_requests_total{form=\"basic\",reason=\"wrong_username\"}"
        )
        .await,
        Some(1)
    );
    assert_eq!(
        metric_value(
            &app,
            "ingest_unauthorized_requests_total{form=\"header\",reason=\"unknown_key\"}"
        )
        .await,
        Some(1)
    );
    assert_eq!(
        metric_value(&app, "ingest_samples_accepted_total{kind=\"exemplar\"}").await,
        Some(5)
    );
}

/// Tenants with a `shard_size` write only to the partitions of their shard
/// (`proto::shard`), every series to one of them and v1 metadata to each;
/// a tenant without one writes to every partition, as before.
#[actix_web::test]
async fn a_tenants_series_go_only_to_the_partitions_of_its_shard() {
    const KEY_C: &str = "third-tenant-key-0123456789";
    const KEY_D: &str = "fourth-tenant-key-0123456789";
    let dir = common::TempDir::new();
    let extra = format!(
        "[[keys]]\ntenant = \"gamma\"\nkey = \"{KEY_C}\"\nshard_size = 2\n\n[[keys]]\ntenant = \"delta\"\nkey = \"{KEY_D}\"\nshard_size = 5\n"
    );
    let settings = common::settings(common::keys_file(&dir, &extra), |options| {
        options.topic_partitions = 16;
    });
    let state = common::ready_state(settings).await;
    let app = app!(state);

    let mut expected_series = SeriesSamples::new();
    let mut expected_metadata = Vec::new();
    for (name, body) in &proto::fixtures::prometheus_2_42_bodies().unwrap() {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        collect_v1(
            &WriteRequest::decode(raw.as_slice()).unwrap(),
            &mut expected_series,
            &mut expected_metadata,
        );
        for key in [common::KEY_A, KEY_C, KEY_D] {
            let headers = [
                ("sts-api-key", key.to_string()),
                ("content-type", "application/x-protobuf".to_string()),
                ("content-encoding", "snappy".to_string()),
            ];
            let (status, _, text) = post(&app, &headers, body.clone()).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{name}: {text}");
        }
    }
    let v2 = proto::fixtures::v2_request();
    let (status, _, text) = post(&app, &v2_headers(KEY_C), v2_body(&v2)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    for series in expected_series.values_mut() {
        series.sort();
    }

    let mut per_tenant = TenantSeries::new();
    let mut partitions_used: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let mut partitions_of = SeriesPartitions::new();
    let mut stored_v2 = BTreeMap::new();
    for record in common::read_all(&state.settings.topic_samples) {
        let tenant = record.headers["tenant"].clone();
        partitions_used
            .entry(tenant.clone())
            .or_default()
            .insert(record.partition);
        if record.headers["content-type"] == proto::CONTENT_TYPE_V2 {
            assert_eq!(tenant, "gamma");
            let part = v2::Request::decode(record.payload.as_slice()).unwrap();
            stored_v2.extend(resolve(&part));
            continue;
        }
        collect_v1_record(&record, tenant, &mut per_tenant, &mut partitions_of);
    }
    assert_eq!(stored_v2, resolve(&v2));
    let shard = |tenant: &str, size: u32| -> BTreeSet<i32> {
        proto::shard::TenantShard::new(tenant, size, 16)
            .partitions()
            .iter()
            .copied()
            .collect()
    };
    assert_eq!(partitions_used["alpha"], (0..16).collect());
    assert_eq!(partitions_used["gamma"], shard("gamma", 2));
    assert_eq!(partitions_used["delta"], shard("delta", 5));
    for (tenant, shard_partitions) in [("alpha", 16), ("gamma", 2), ("delta", 5)] {
        let (series, metadata) = per_tenant.get_mut(tenant).unwrap();
        for samples in series.values_mut() {
            samples.sort();
        }
        assert!(*series == expected_series, "{tenant}: series differ");
        // Each metadata entry once in every partition of the shard.
        assert_eq!(
            metadata.len(),
            expected_metadata.len() * shard_partitions,
            "{tenant}: metadata"
        );
    }
    assert_each_series_in_one_partition(&partitions_of);
}
