//! The remote-write endpoint as a client sees it: one HTTP client with the
//! settings' headers, auth and CA certificates, sending snappy bodies with
//! the headers of the protocol.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::forward::config::{Auth, ForwardSettings, Protocol};
use crate::forward::retry;

/// What came back for one request.
#[derive(Debug)]
pub enum Answer {
    Status {
        status: u16,
        retry_after: Option<Duration>,
        /// The start of the body, for a log line on refusals.
        message: String,
    },
    /// No answer: connecting, sending or reading failed, or the timeout passed.
    Unreachable(String),
}

/// Most bytes of an error body kept for the log.
const MESSAGE_BYTES: usize = 512;

pub struct Endpoint {
    client: reqwest::Client,
    url: String,
}

fn sensitive(value: &str, what: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(value)
        .with_context(|| format!("{what} is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

impl Endpoint {
    pub fn new(settings: &ForwardSettings) -> anyhow::Result<Endpoint> {
        let mut headers = HeaderMap::new();
        let (content_type, version) = match settings.protocol {
            Protocol::V1 => ("application/x-protobuf", "0.1.0"),
            Protocol::V2 => (proto::CONTENT_TYPE_V2, "2.0.0"),
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            "x-prometheus-remote-write-version",
            HeaderValue::from_static(version),
        );
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("FORWARD_HEADERS: {name:?} is not a header name"))?;
            headers.insert(
                name.clone(),
                sensitive(&value.0, &format!("FORWARD_HEADERS {name}"))?,
            );
        }
        match &settings.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                use base64::Engine as _;
                let credentials = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.0));
                headers.insert(
                    header::AUTHORIZATION,
                    sensitive(
                        &format!("Basic {credentials}"),
                        "the basic auth credentials",
                    )?,
                );
            }
            Auth::Bearer(token) => {
                headers.insert(
                    header::AUTHORIZATION,
                    sensitive(&format!("Bearer {}", token.0), "FORWARD_BEARER_TOKEN")?,
                );
            }
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("correlator-forward/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)));
        if let Some(path) = &settings.tls_ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading FORWARD_TLS_CA_FILE {}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("FORWARD_TLS_CA_FILE {}", path.display()))?;
            anyhow::ensure!(
                !certificates.is_empty(),
                "FORWARD_TLS_CA_FILE {} holds no certificate",
                path.display()
            );
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().context("building the HTTP client")?;
        Ok(Endpoint {
            client,
            url: settings.url.clone(),
        })
    }

    /// POSTs a snappy-compressed body once.
    pub async fn send(&self, body: bytes::Bytes) -> Answer {
        let response = match self.client.post(&self.url).body(body).send().await {
            Ok(response) => response,
            Err(error) => return Answer::Unreachable(error_chain(&error)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry::retry_after(value, SystemTime::now()));
        let message = if response.status().is_success() {
            String::new()
        } else {
            match response.bytes().await {
                Ok(body) => String::from_utf8_lossy(&body[..body.len().min(MESSAGE_BYTES)])
                    .trim()
                    .to_string(),
                Err(error) => error_chain(&error),
            }
        };
        Answer::Status {
            status,
            retry_after,
            message,
        }
    }
}

/// An error with its causes (reqwest's own message rarely says which).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
