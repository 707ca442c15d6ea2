//! Every way a request can fail, each mapped to exactly one HTTP status here.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use thiserror::Error;

use crate::auth::AuthError;
use crate::decode::DecodeError;

#[derive(Debug, Error)]
pub enum IngestError {
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body not received within {0:?}")]
    BodyTimeout(Duration),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Duration,
    },
}

impl From<DecodeError> for IngestError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::UnsupportedContentType(_) | DecodeError::UnsupportedContentEncoding(_) => {
                IngestError::UnsupportedMediaType(error.to_string())
            }
            DecodeError::DecodedTooLarge { .. } => IngestError::PayloadTooLarge(error.to_string()),
            DecodeError::CorruptSnappy(_) => IngestError::BadRequest(error.to_string()),
        }
    }
}

impl IngestError {
    pub fn unavailable(message: impl Into<String>) -> IngestError {
        IngestError::Unavailable {
            message: message.into(),
            retry_after: Duration::from_secs(2),
        }
    }

    /// `MAX_INFLIGHT_BYTES` reached: the request cannot hold what it needs.
    pub fn overloaded() -> IngestError {
        IngestError::unavailable("ingest holds as many request bytes as it may; retry later")
    }

    /// A short, closed-set name for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::PayloadTooLarge(_) => "too_large",
            IngestError::BadRequest(_) => "bad_request",
            IngestError::BodyTimeout(_) => "body_timeout",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::Unavailable { .. } => "unavailable",
        }
    }
}

/// Whole seconds, rounded up, at least one: what `Retry-After` carries.
fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IngestError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            IngestError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
        match self {
            IngestError::Unauthorized(_) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"ingest\""),
                ));
            }
            IngestError::RateLimited { retry_after, .. }
            | IngestError::Unavailable { retry_after, .. } => {
                response.insert_header((
                    header::RETRY_AFTER,
                    retry_after_seconds(*retry_after).to_string(),
                ));
            }
            _ => {}
        }
        response.body(format!("{self}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }
}
