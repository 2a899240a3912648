//! The retry policy, against what Istio 1.30 writes (`retry.rs` names the Istio functions), and
//! the mesh's default policy on the routes that forward.

use super::*;
use crate::translate::test_support::{action, attached, backend, grpc, host, sidecar_with};

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
        100, 103, 200, 208, 226, 300, 305, 307, 308, 400, 418, 421, 426, 428, 429, 431, 451, 500,
        508, 510, 511,
    ] {
        assert!(is_standard_status(code), "{code}");
    }
    for code in [
        99, 104, 209, 225, 306, 309, 419, 420, 427, 430, 432, 450, 452, 509, 512, 600, -503,
    ] {
        assert!(!is_standard_status(code), "{code}");
    }
}

#[test]
fn the_mesh_s_default_retry_policy_goes_on_every_forwarding_route() {
    let mesh = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy::istio_default_with("reset")),
    };
    let r = sidecar_with(attached(vec![grpc(vec![backend("server-v1", 1)])]), &mesh);
    let expected = route_retry_policy(&mesh);
    assert!(expected.as_ref().unwrap().retry_on.ends_with(",reset"));
    assert_eq!(action(&host(&r, "server").routes[0]).retry_policy, expected);
    assert_eq!(
        action(&host(&r, "server-v1").routes[0]).retry_policy,
        expected
    );
    let off = MeshConfig {
        default_http_retry_policy: Some(RetryPolicy {
            attempts: 0,
            retry_on: String::new(),
        }),
    };
    let r = sidecar_with(vec![], &off);
    assert_eq!(action(&host(&r, "server").routes[0]).retry_policy, None);
}
