//! Retry policies, as Istio 1.30 writes them into every route that forwards
//! (`pilot/pkg/networking/core/route/retry/retry.go`: `DefaultPolicy`, `ConvertPolicy`), and the
//! mesh-wide default that replaces Istio's own (`meshConfig.defaultHttpRetryPolicy`, read in
//! `route/route.go`: `applyHTTPRouteDestination`, `BuildDefaultHTTPOutboundRoute`).

use envoy_types::pb::{
    envoy::{
        config::route::v3::{RetryPolicy as EnvoyRetryPolicy, retry_policy},
        extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate,
    },
    google::protobuf::UInt32Value,
};

use super::any;
use crate::model::{MeshConfig, RetryPolicy};

/// Istio's default `retry_on` (`retry.go`: `defaultRetryOn`). It names `retriable-status-codes`
/// but gives no status code, so no HTTP status is retried (Istio dropped 503 from its default).
pub const ISTIO_DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Istio's default number of retries after the first try (`retry.go`: `defaultNumRetries`).
pub const ISTIO_DEFAULT_ATTEMPTS: u32 = 2;

/// How many times Envoy picks a host again when the retry predicate refuses one
/// (`retry.go`: `HostSelectionRetryMaxAttempts: 5`).
const HOST_SELECTION_RETRY_MAX_ATTEMPTS: i64 = 5;

impl RetryPolicy {
    /// Istio's built-in default, written as a `meshConfig.defaultHttpRetryPolicy` would write it.
    pub fn istio_default() -> RetryPolicy {
        RetryPolicy {
            attempts: ISTIO_DEFAULT_ATTEMPTS,
            retry_on: ISTIO_DEFAULT_RETRY_ON.to_owned(),
        }
    }

    /// Istio's default with more `retry_on` conditions, e.g. `istio_default_with("reset")`: the
    /// policy a `meshConfig.defaultHttpRetryPolicy` of `attempts: 2` and `retryOn:
    /// <Istio's default conditions>,reset` gives. The twin and the cluster manifests both use it.
    pub fn istio_default_with(extra: &str) -> RetryPolicy {
        let mut policy = RetryPolicy::istio_default();
        for condition in extra.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            policy.retry_on.push(',');
            policy.retry_on.push_str(condition);
        }
        policy
    }
}

/// The retry policy of a route that forwards: `meshConfig.defaultHttpRetryPolicy` converted as
/// Istio converts it, else Istio's default. `None` when the mesh's policy has 0 attempts (Istio
/// then writes no retry policy at all).
pub fn route_retry_policy(mesh: &MeshConfig) -> Option<EnvoyRetryPolicy> {
    let mut out = EnvoyRetryPolicy {
        retry_on: ISTIO_DEFAULT_RETRY_ON.to_owned(),
        num_retries: Some(UInt32Value {
            value: ISTIO_DEFAULT_ATTEMPTS,
        }),
        host_selection_retry_max_attempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        retry_host_predicate: vec![previous_hosts()],
        ..Default::default()
    };
    let Some(policy) = &mesh.default_http_retry_policy else {
        return Some(out);
    };
    if policy.attempts == 0 {
        return None;
    }
    out.num_retries = Some(UInt32Value {
        value: policy.attempts,
    });
    if !policy.retry_on.is_empty() {
        let (retry_on, codes) = parse_retry_on(&policy.retry_on);
        out.retry_on = retry_on;
        if !codes.is_empty() && !out.retry_on.contains("retriable-status-codes") {
            out.retry_on.push_str(",retriable-status-codes");
        }
        out.retriable_status_codes = codes;
    }
    Some(out)
}

/// Envoy's `previous_hosts` predicate: a retry prefers a host not tried before.
fn previous_hosts() -> retry_policy::RetryHostPredicate {
    retry_policy::RetryHostPredicate {
        name: "envoy.retry_host_predicates.previous_hosts".into(),
        config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
            any(&PreviousHostsPredicate::default()),
        )),
    }
}

/// Splits Istio's `retryOn` into Envoy's conditions and retriable HTTP status codes (`retry.go`:
/// `parseRetryOn`): a part that is a number with a standard status text is a status code.
fn parse_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut conditions = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<i64>() {
            Ok(code) if is_standard_status(code) => codes.push(code as u32),
            _ => conditions.push(part),
        }
    }
    (conditions.join(","), codes)
}

/// The status codes Go's `http.StatusText` knows.
fn is_standard_status(code: i64) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

#[cfg(test)]
mod tests;
