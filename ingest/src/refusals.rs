//! Making every refusal visible: what a tenant had refused is counted by
//! reason and kind (`ingest_refused_total`), and each refused request gets a
//! log line, at most one a second per tenant and reason (401s: per
//! credential form and reason), saying how many like it were held back.
//! Keys never appear, and tenants come only from the keys file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use tracing::warn;

use crate::auth::AuthError;
use crate::log_limit::{LogDecision, LogLimiter, REFUSAL_LOG_INTERVAL};
use crate::metrics::{Metrics, RefusedLabels, UnauthorizedLabels};
use crate::validate::Items;

/// The log limiters of refused requests, shared by every handler.
pub struct RefusalLogs {
    by_tenant: LogLimiter<(Arc<str>, &'static str)>,
    unauthorized: LogLimiter<(&'static str, &'static str)>,
}

impl Default for RefusalLogs {
    fn default() -> Self {
        RefusalLogs {
            by_tenant: LogLimiter::new(REFUSAL_LOG_INTERVAL),
            unauthorized: LogLimiter::new(REFUSAL_LOG_INTERVAL),
        }
    }
}

/// One refused request of a known tenant, as its log line tells it.
pub struct RefusedRequest<'a> {
    pub endpoint: &'static str,
    pub tenant: &'a Arc<str>,
    pub status: StatusCode,
    pub reason: &'static str,
    /// The first offending series (for invalid series).
    pub first_series: Option<&'a str>,
    /// The answer's message.
    pub message: &'a dyn std::fmt::Display,
}

impl RefusalLogs {
    pub fn refused(&self, request: &RefusedRequest<'_>, now: Instant) {
        let key = (request.tenant.clone(), request.reason);
        let LogDecision::Log { suppressed } = self.by_tenant.decide(key, now) else {
            return;
        };
        warn!(
            endpoint = request.endpoint,
            tenant = %request.tenant,
            status = request.status.as_u16(),
            reason = request.reason,
            first_series = request.first_series.unwrap_or("-"),
            suppressed,
            error = %request.message,
            "request refused"
        );
    }

    /// A 401: no tenant is known, so the line names where the request came
    /// from and which credential form it tried.
    pub fn unauthorized(
        &self,
        endpoint: &'static str,
        source: Option<SocketAddr>,
        forwarded_for: Option<&str>,
        form: &'static str,
        error: &AuthError,
        now: Instant,
    ) {
        let LogDecision::Log { suppressed } = self.unauthorized.decide((form, error.reason()), now)
        else {
            return;
        };
        let source = source.map_or_else(|| "-".to_string(), |address| address.to_string());
        warn!(
            endpoint,
            source = %source,
            forwarded_for = forwarded_for.unwrap_or("-"),
            form,
            status = StatusCode::UNAUTHORIZED.as_u16(),
            reason = error.reason(),
            suppressed,
            error = %error,
            "request refused"
        );
    }
}

/// Counts what `tenant` had refused for `reason`, kind by kind.
pub fn count_refused(metrics: &Metrics, tenant: &str, reason: &'static str, items: Items) {
    for (kind, count) in items.by_kind() {
        if count == 0 {
            continue;
        }
        metrics
            .refused
            .get_or_create(&RefusedLabels {
                tenant: tenant.to_string(),
                reason,
                kind,
            })
            .inc_by(count as u64);
    }
}

/// Counts a 401 by the credential form tried and the reason.
pub fn count_unauthorized(metrics: &Metrics, form: &'static str, error: &AuthError) {
    metrics
        .unauthorized
        .get_or_create(&UnauthorizedLabels {
            form,
            reason: error.reason(),
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_value(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn refused_items_are_counted_by_tenant_reason_and_kind() {
        let metrics = Metrics::new();
        let items = Items {
            samples: 3,
            histograms: 0,
            exemplars: 2,
            metadata: 1,
        };
        count_refused(&metrics, "acme", "empty_series", items);
        count_refused(&metrics, "acme", "empty_series", items);
        count_refused(&metrics, "globex", "rate_limited", items);
        let text = metrics.render();
        let series = |tenant: &str, reason: &str, kind: &str| {
            sample_value(
                &text,
                &format!(
                    "ingest_refused_total{{tenant=\"{tenant}\",reason=\"{reason}\",kind=\"{kind}\"}}"
                ),
            )
        };
        assert_eq!(series("acme", "empty_series", "sample"), Some(6));
        assert_eq!(series("acme", "empty_series", "exemplar"), Some(4));
        assert_eq!(series("acme", "empty_series", "metadata"), Some(2));
        assert_eq!(
            series("acme", "empty_series", "histogram"),
            None,
            "no zero series"
        );
        assert_eq!(series("globex", "rate_limited", "sample"), Some(3));
    }

    #[test]
    fn unauthorized_requests_are_counted_by_form_and_reason() {
        let metrics = Metrics::new();
        count_unauthorized(&metrics, "basic", &AuthError::WrongUsername);
        count_unauthorized(&metrics, "basic", &AuthError::WrongUsername);
        count_unauthorized(&metrics, "header", &AuthError::UnknownKey);
        let text = metrics.render();
        assert_eq!(
            sample_value(
                &text,
                "ingest_unauthorized_requests_total{form=\"basic\",reason=\"wrong_username\"}"
            ),
            Some(2)
        );
        assert_eq!(
            sample_value(
                &text,
                "ingest_unauthorized_requests_total{form=\"header\",reason=\"unknown_key\"}"
            ),
            Some(1)
        );
    }
}
