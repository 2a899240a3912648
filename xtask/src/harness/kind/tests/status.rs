//! istiod's route status: a refusal fails the demo in Istio's words; no status is a warning.

use super::*;

#[tokio::test]
async fn a_route_istio_refuses_fails_the_demo_in_istio_s_words_before_any_config_dump_is_read() {
    let mock = cluster().await;
    istio_routes(
        &mock,
        IstioRoutes {
            refusals: vec![route_status::Refusal {
                condition: "ResolvedRefs",
                reason: "BackendNotFound".into(),
                message: format!("backend(server-v3.{NS}.svc.cluster.local) not found"),
            }],
            silent: false,
        },
    );
    let mut kind = backend(&mock);

    let err = engine::run(&mut kind, &scenario(), Measure::Scenario, "kind")
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        format!(
            "HTTPRoute {NS}/server: istio.io/gateway-controller refused it: ResolvedRefs BackendNotFound: \
             backend(server-v3.{NS}.svc.cluster.local) not found"
        )
    );
    assert!(
        mock.calls().iter().all(|c| !c.path.ends_with("/exec")),
        "no config dump was read"
    );
    kind.teardown().await.unwrap();
}

#[tokio::test]
async fn a_route_without_status_is_a_warning_naming_it_and_the_sidecar_is_checked_anyway() {
    let mock = cluster().await;
    istio_routes(
        &mock,
        IstioRoutes {
            silent: true,
            ..IstioRoutes::default()
        },
    );
    let mut kind = backend(&mock);

    engine::run(&mut kind, &scenario(), Measure::Scenario, "kind")
        .await
        .unwrap();

    let warnings = kind.warnings();
    assert_eq!(
        warnings[0],
        format!(
            "HTTPRoute {NS}/server: no status from istio.io/gateway-controller for generation 2 after 0s; \
             checking the sidecar anyway"
        ),
        "generation 2: the weights of phase \"on\" changed the spec"
    );
    assert!(
        warnings[1].contains("exec `pilot-agent request GET config_dump`"),
        "{warnings:?}"
    );
    kind.teardown().await.unwrap();
}
