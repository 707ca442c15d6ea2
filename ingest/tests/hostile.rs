//! Hostile clients against the `ingest` binary: slow senders are cut off, a
//! flood of large requests is refused while memory stays bounded, and bogus
//! keys leave nothing behind.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{IngestProcess, TempDir};

/// Resident and peak resident memory of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn start(dir: &TempDir, env: &[(&str, &str)]) -> IngestProcess {
    IngestProcess::start_for_two_tenants(env!("CARGO_BIN_EXE_ingest"), dir, env)
}

/// The status line of whatever the server answered, or None if it only closed.
fn read_answer(stream: &mut TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines()
        .next()
        .map(str::to_string)
        .filter(|line| !line.is_empty())
}

#[test]
fn slow_senders_are_cut_off() {
    let dir = TempDir::new();
    let ingest = start(&dir, &[("REQUEST_TIMEOUT_MS", "2000")]);
    let address = format!("127.0.0.1:{}", ingest.port);

    // A body trickled a byte a second: 408 once the request timeout is spent.
    let mut trickle = TcpStream::connect(&address).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nsts-api-key: {}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n",
        common::KEY_A
    );
    trickle.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        if trickle.write_all(b"x").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let answer = read_answer(&mut trickle);
    assert!(
        answer.as_deref().is_some_and(|line| line.contains("408")),
        "answer: {answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Headers trickled and never finished: the connection is closed.
    let mut headers = TcpStream::connect(&address).unwrap();
    headers
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    headers
        .write_all(b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buffer = [0u8; 512];
    let closed = loop {
        let _ = headers.write_all(b"X-Slow: 1\r\n");
        std::thread::sleep(Duration::from_millis(500));
        match headers.read(&mut buffer) {
            Ok(0) => break true,
            Ok(_) => break true,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break true,
        }
        if started.elapsed() > Duration::from_secs(15) {
            break false;
        }
    };
    assert!(closed, "a connection trickling headers is closed");
    assert!(started.elapsed() <= Duration::from_secs(15));

    // Still serving.
    let status = std::process::Command::new("curl")
        .args([
            "-fs",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &ingest.url("/healthz"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_large_requests_is_refused_and_memory_stays_bounded() {
    let dir = TempDir::new();
    // 32 MiB decompressed per request at most, 64 MiB held at once.
    let ingest = start(
        &dir,
        &[
            ("MAX_INFLIGHT_BYTES", "67108864"),
            ("REQUEST_TIMEOUT_MS", "5000"),
        ],
    );
    let (rss_before, _) = memory_kib(ingest.child.id());
    // Bodies that declare 30 MiB decompressed but hold garbage after the header:
    // each reservation is taken before decompression fails.
    let mut bomb = Vec::new();
    proto::wire::put_varint(&mut bomb, 30 << 20);
    bomb.extend(std::iter::repeat_n(0u8, 200_000));
    let client = reqwest::Client::new();
    let mut sends = Vec::new();
    for _ in 0..200 {
        let client = client.clone();
        let url = ingest.url("/api/v1/write");
        let body = bomb.clone();
        sends.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("sts-api-key", common::KEY_A)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await;
            response.map(|r| (r.status().as_u16(), r.headers().contains_key("retry-after")))
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for send in sends {
        let (status, retry_after) = send.await.unwrap().unwrap();
        if status == 503 {
            assert!(retry_after, "503 carries Retry-After");
        }
        *statuses.entry(status).or_default() += 1;
    }
    let (rss_after, peak) = memory_kib(ingest.child.id());
    eprintln!(
        "flood: {statuses:?}; RSS {rss_before} KiB before, {rss_after} KiB after, peak {peak} KiB"
    );
    assert!(
        statuses.keys().all(|s| *s == 400 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "the cap was reached: {statuses:?}"
    );
    // The cap (64 MiB) plus bodies in flight and the runtime; far below 200 × 30 MiB.
    assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bogus_keys_leave_nothing_behind() {
    let dir = TempDir::new();
    let ingest = start(&dir, &[]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(32)
        .build()
        .unwrap();
    let send_bogus = |from: usize, count: usize| {
        let client = client.clone();
        let url = ingest.url("/api/v1/write");
        async move {
            let mut unauthorized = 0;
            for index in from..from + count {
                let response = client
                    .post(&url)
                    .header("sts-api-key", format!("bogus-key-{index:08}"))
                    .body(Vec::<u8>::new())
                    .send()
                    .await
                    .unwrap();
                unauthorized += usize::from(response.status().as_u16() == 401);
            }
            unauthorized
        }
    };
    // Warm up allocator and connections, then measure over many more keys.
    let warm: usize = futures::future::join_all((0..8).map(|i| send_bogus(i * 1_000, 1_000)))
        .await
        .into_iter()
        .sum();
    assert_eq!(warm, 8_000);
    let (rss_warm, _) = memory_kib(ingest.child.id());
    let total: usize =
        futures::future::join_all((0..8).map(|i| send_bogus(100_000 + i * 5_000, 5_000)))
            .await
            .into_iter()
            .sum();
    assert_eq!(total, 40_000, "every bogus key is refused");
    let (rss_after, _) = memory_kib(ingest.child.id());
    eprintln!("bogus keys: RSS {rss_warm} KiB after 8,000 keys, {rss_after} KiB after 40,000 more");
    assert!(
        rss_after < rss_warm + 16 * 1024,
        "memory grew from {rss_warm} to {rss_after} KiB"
    );
}
