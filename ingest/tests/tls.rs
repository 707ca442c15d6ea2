//! The `ingest` binary serving HTTPS: writes over TLS reach Kafka, plain HTTP
//! is refused, a rotated certificate is served to new connections without a
//! restart, and a broken one leaves the old one in force.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{IngestProcess, TempDir};
use rustls::pki_types::ServerName;

/// A self-signed certificate for 127.0.0.1 and its key, as PEM and DER.
#[derive(Clone)]
struct Pair {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Pair {
    fn generate(common_name: &str, serial: u64) -> Pair {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.serial_number = Some(serial.into());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// Writes the pair where ingest reads it, key first: the way a naive
    /// rotation does it, so ingest may see a mismatched pair for a moment.
    fn install(&self, files: &Files) {
        std::fs::write(&files.key, &self.key_pem).unwrap();
        std::fs::write(&files.cert, &self.cert_pem).unwrap();
    }
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
}

/// A TLS client configuration trusting exactly these self-signed certificates.
fn client_config(trusted: &[&Pair]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for pair in trusted {
        roots.add(pair.der.clone().into()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(ingest::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An HTTPS client opening a new connection (so a new handshake) per request.
fn https_client(trusted: &[&Pair]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(trusted))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// One TLS handshake offering `alpn`: the certificate presented (DER) and the protocol chosen.
fn handshake(port: u16, trusted: &[&Pair], alpn: &[&str]) -> (Vec<u8>, Option<String>) {
    let mut config = client_config(trusted);
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let server_name = ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).unwrap();
    }
    let presented = connection.peer_certificates().unwrap()[0].to_vec();
    let protocol = connection
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    (presented, protocol)
}

fn https_url(process: &IngestProcess, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", process.port)
}

/// Starts the binary serving HTTPS with `pair` and waits until `/readyz` answers over TLS.
/// A fresh directory, a certificate for `name` (serial 1), and ingest serving it.
async fn start_fresh(name: &str) -> (TempDir, Pair, IngestProcess, Files) {
    let dir = TempDir::new();
    let pair = Pair::generate(name, 1);
    let (ingest, files) = start_tls(&dir, &pair).await;
    (dir, pair, ingest, files)
}

async fn start_tls(dir: &TempDir, pair: &Pair) -> (IngestProcess, Files) {
    let keys = common::keys_file(dir, "");
    let files = Files {
        cert: dir.0.join("tls.crt"),
        key: dir.0.join("tls.key"),
    };
    pair.install(&files);
    let port = common::free_port();
    let topic = common::unique("samples");
    let log = dir.0.join(format!("ingest-{port}.log"));
    // As IngestProcess::start, whose readiness check speaks plain HTTP.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KAFKA_BROKERS", common::brokers())
        .env("API_KEYS_FILE", &keys)
        .env("INGEST_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOPIC_SAMPLES", &topic)
        .env("TOPIC_TOPOLOGY_RAW", common::unique("topology-raw"))
        .env("TOPIC_PARTITIONS", "4")
        .env("INGEST_WORKERS", "2")
        .env("TLS_CERT_FILE", &files.cert)
        .env("TLS_KEY_FILE", &files.key)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let process = IngestProcess {
        child,
        port,
        topic,
        log,
    };
    let client = https_client(&[pair]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(https_url(&process, "/readyz")).send().await {
            if response.status().is_success() {
                return (process, files);
            }
        }
        assert!(
            Instant::now() < deadline,
            "not ready over https; log:\n{}",
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn write(client: &reqwest::Client, process: &IngestProcess, id: &str) -> u16 {
    match client
        .post(https_url(process, "/api/v1/write"))
        .header("sts-api-key", common::KEY_A)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(common::v1_request(id, 3))
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// `ingest_tls_certificate_reloads_total{result=...}` as served on `/metrics`.
async fn reloads(client: &reqwest::Client, process: &IngestProcess, result: &str) -> u64 {
    let text = common::get_text(client, &https_url(process, "/metrics")).await;
    let prefix = format!("ingest_tls_certificate_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Polls handshakes until the server presents `wanted`; the time it took.
fn wait_for_certificate(port: u16, trusted: &[&Pair], wanted: &Pair, within: Duration) -> Duration {
    let started = Instant::now();
    while handshake(port, trusted, &[]).0 != wanted.der {
        assert!(
            started.elapsed() < within,
            "new certificate not served within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_over_https_reaches_kafka() {
    let (_dir, pair, ingest, _files) = start_fresh("ingest tls test").await;

    let client = https_client(&[&pair]);
    for id in ["first", "second"] {
        assert_eq!(write(&client, &ingest, id).await, 204);
    }
    let topic = ingest.topic.clone();
    let records = tokio::task::spawn_blocking(move || common::read_all(&topic))
        .await
        .unwrap();
    let counts = common::samples_per_request(&records);
    assert_eq!(counts.get("first"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("second"), Some(&3), "{counts:?}");

    // Both HTTP versions are offered through ALPN.
    let (presented, protocol) = handshake(ingest.port, &[&pair], &["h2", "http/1.1"]);
    assert_eq!(presented, pair.der);
    assert_eq!(protocol.as_deref(), Some("h2"));
    let (_, protocol) = handshake(ingest.port, &[&pair], &["http/1.1"]);
    assert_eq!(protocol.as_deref(), Some("http/1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_fails() {
    let (_dir, _pair, ingest, _files) = start_fresh("ingest tls test").await;

    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let answer = plain.get(ingest.url("/readyz")).send().await;
    assert!(answer.is_err(), "plain HTTP was answered: {answer:?}");

    // Not even an HTTP error status comes back: the connection just closes.
    let mut socket = TcpStream::connect(("127.0.0.1", ingest.port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = socket.read_to_end(&mut reply);
    assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_to_new_connections() {
    let (_dir, old, ingest, files) = start_fresh("ingest tls test old").await;
    let new = Pair::generate("ingest tls test new", 2);
    let ingest = Arc::new(ingest);

    // Writes go on throughout the rotation, each over a new connection.
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let writer = {
        let client = https_client(&[&old, &new]);
        let (ingest, accepted, refused) = (ingest.clone(), accepted.clone(), refused.clone());
        tokio::spawn(async move {
            for index in 0..60 {
                match write(&client, &ingest, &format!("w{index}")).await {
                    204 => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(handshake(ingest.port, &[&old], &[]).0, old.der);

    new.install(&files);
    let (port, trusted, wanted) = (ingest.port, [old.clone(), new.clone()], new.clone());
    let latency = tokio::task::spawn_blocking(move || {
        wait_for_certificate(
            port,
            &[&trusted[0], &trusted[1]],
            &wanted,
            Duration::from_secs(15),
        )
    })
    .await
    .unwrap();
    eprintln!("new certificate served {latency:?} after the files were replaced");

    writer.await.unwrap();
    assert_eq!(refused.load(Ordering::Relaxed), 0, "{}", ingest.log_text());
    assert_eq!(accepted.load(Ordering::Relaxed), 60);
    let client = https_client(&[&new]);
    assert_eq!(write(&client, &ingest, "after").await, 204);
    assert!(reloads(&client, &ingest, "ok").await >= 1);

    let topic = ingest.topic.clone();
    let records = tokio::task::spawn_blocking(move || common::read_all(&topic))
        .await
        .unwrap();
    let samples: usize = common::samples_per_request(&records).values().sum();
    assert_eq!(samples, 61 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_keeps_the_old_one_serving() {
    let (_dir, old, ingest, files) = start_fresh("ingest tls test old").await;
    let other = Pair::generate("ingest tls test other", 2);
    let client = https_client(&[&old]);
    assert_eq!(reloads(&client, &ingest, "error").await, 0);

    // Garbage in the certificate file: one failed reload, the old pair serves on.
    std::fs::write(&files.cert, "this is not a certificate\n").unwrap();
    wait_for_errors(&client, &ingest, 1).await;
    assert_eq!(handshake(ingest.port, &[&old], &[]).0, old.der);
    assert_eq!(write(&client, &ingest, "garbage").await, 204);

    // A valid certificate with a key that is not its own: refused too.
    std::fs::write(&files.cert, &other.cert_pem).unwrap();
    wait_for_errors(&client, &ingest, 2).await;
    assert_eq!(handshake(ingest.port, &[&old], &[]).0, old.der);
    assert_eq!(write(&client, &ingest, "mismatch").await, 204);
    assert_eq!(reloads(&client, &ingest, "ok").await, 0);
    assert!(
        ingest.log_text().contains("keeping the pair in force"),
        "{}",
        ingest.log_text()
    );

    // Completing the pair puts it in force.
    let client_for_both = https_client(&[&old, &other]);
    std::fs::write(&files.key, &other.key_pem).unwrap();
    let port = ingest.port;
    tokio::task::spawn_blocking(move || {
        wait_for_certificate(port, &[&old, &other], &other, Duration::from_secs(15))
    })
    .await
    .unwrap();
    assert_eq!(reloads(&client_for_both, &ingest, "ok").await, 1);
}

async fn wait_for_errors(client: &reqwest::Client, ingest: &IngestProcess, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while reloads(client, ingest, "error").await < count {
        assert!(
            Instant::now() < deadline,
            "failed reload {count} not counted; log:\n{}",
            ingest.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Exit status and output of the binary started with `env`; it fails before reaching Kafka.
fn run_failing(env: &[(&str, &std::path::Path)]) -> (Option<i32>, String) {
    let dir = TempDir::new();
    let keys = common::keys_file(&dir, "");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"));
    command
        .env_clear()
        .env("API_KEYS_FILE", &keys)
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env(
            "INGEST_LISTEN",
            format!("127.0.0.1:{}", common::free_port()),
        );
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn startup_with_half_a_pair_or_a_bad_file_fails_naming_it() {
    let dir = TempDir::new();
    let pair = Pair::generate("ingest tls test", 1);
    let cert = dir.write("tls.crt", &pair.cert_pem);
    let key = dir.write("tls.key", &pair.key_pem);
    let garbage = dir.write("garbage.crt", "not a certificate");
    let missing = dir.0.join("missing.key");

    let (code, stderr) = run_failing(&[("TLS_CERT_FILE", &cert)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("TLS_KEY_FILE is required"), "{stderr}");

    let (code, stderr) = run_failing(&[("TLS_CERT_FILE", &garbage), ("TLS_KEY_FILE", &key)]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("garbage.crt"), "{stderr}");

    let (code, stderr) = run_failing(&[("TLS_CERT_FILE", &cert), ("TLS_KEY_FILE", &missing)]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("missing.key"), "{stderr}");
}
