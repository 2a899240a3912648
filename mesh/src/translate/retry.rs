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
mod tests {
    use super::*;

    fn mesh(attempts: u32, retry_on: &str) -> MeshConfig {
        MeshConfig {
            default_http_retry_policy: Some(RetryPolicy {
                attempts,
                retry_on: retry_on.to_owned(),
            }),
        }
    }

    #[test]
    fn istio_s_default_retries_twice_on_resets_before_the_request_and_on_no_status_code() {
        let p = route_retry_policy(&MeshConfig::default()).unwrap();
        assert_eq!(
            p.retry_on,
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
        );
        assert_eq!(p.num_retries, Some(UInt32Value { value: 2 }));
        assert!(p.retriable_status_codes.is_empty(), "503 is not retried");
        assert_eq!(p.host_selection_retry_max_attempts, 5);
        assert_eq!(
            p.retry_host_predicate
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>(),
            ["envoy.retry_host_predicates.previous_hosts"]
        );
        assert_eq!(p.per_try_timeout, None);
        assert_eq!(p.retry_priority, None);
    }

    #[test]
    fn the_mesh_default_replaces_attempts_and_conditions_and_keeps_the_previous_hosts_predicate() {
        let p = route_retry_policy(&mesh(3, "reset,connect-failure")).unwrap();
        assert_eq!(p.retry_on, "reset,connect-failure");
        assert_eq!(p.num_retries, Some(UInt32Value { value: 3 }));
        assert!(p.retriable_status_codes.is_empty());
        assert_eq!(p.host_selection_retry_max_attempts, 5);
        assert_eq!(p.retry_host_predicate, vec![previous_hosts()]);
        assert_eq!(p.per_try_timeout, None);
    }

    #[test]
    fn status_codes_in_the_mesh_default_become_retriable_status_codes() {
        let p = route_retry_policy(&mesh(2, " 503 ,reset,,599, 418")).unwrap();
        assert_eq!(p.retry_on, "reset,599,retriable-status-codes");
        assert_eq!(p.retriable_status_codes, [503, 418]);
        let p = route_retry_policy(&mesh(2, "retriable-status-codes,502")).unwrap();
        assert_eq!(p.retry_on, "retriable-status-codes");
        assert_eq!(p.retriable_status_codes, [502]);
    }

    #[test]
    fn an_empty_retry_on_keeps_istio_s_conditions_and_zero_attempts_means_no_policy() {
        let p = route_retry_policy(&mesh(4, "")).unwrap();
        assert_eq!(p.retry_on, ISTIO_DEFAULT_RETRY_ON);
        assert_eq!(p.num_retries, Some(UInt32Value { value: 4 }));
        assert_eq!(route_retry_policy(&mesh(0, "reset")), None);
    }

    #[test]
    fn istio_default_with_reset_is_the_kill_demo_s_policy() {
        let policy = RetryPolicy::istio_default_with("reset");
        assert_eq!(
            policy,
            RetryPolicy {
                attempts: 2,
                retry_on:
                    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,reset"
                        .into()
            }
        );
        assert_eq!(
            RetryPolicy::istio_default_with(""),
            RetryPolicy::istio_default()
        );
        assert_eq!(
            RetryPolicy::istio_default_with(" reset , 503").retry_on,
            format!("{ISTIO_DEFAULT_RETRY_ON},reset,503")
        );
        let p = route_retry_policy(&MeshConfig {
            default_http_retry_policy: Some(RetryPolicy::istio_default()),
        });
        assert_eq!(p, route_retry_policy(&MeshConfig::default()));
    }

    #[test]
    fn only_status_codes_go_s_status_text_knows_are_codes() {
        for code in [
            100, 103, 200, 208, 226, 300, 305, 307, 308, 400, 418, 421, 426, 428, 429, 431, 451,
            500, 508, 510, 511,
        ] {
            assert!(is_standard_status(code), "{code}");
        }
        for code in [
            99, 104, 209, 225, 306, 309, 419, 420, 427, 430, 432, 450, 452, 509, 512, 600, -503,
        ] {
            assert!(!is_standard_status(code), "{code}");
        }
    }
}
