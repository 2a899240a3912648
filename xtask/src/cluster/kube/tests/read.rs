//! Reads: an object of any kind through discovery, the API server's version.

use serde_json::json;

use super::{http_route, version_info};
use crate::cluster::kube::mock::{self, Mock, Reply};

#[tokio::test]
async fn get_json_reads_a_route_with_its_status_through_discovery() {
    let mock = Mock::start().await;
    let mut route = http_route();
    route["status"] = json!({ "parents": [] });
    mock.on(
        "GET",
        "/apis/gateway.networking.k8s.io/v1/namespaces/gml-x/httproutes/hello",
        Reply::Json(200, route.clone()),
    );

    let found = mock
        .cluster()
        .get_json(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "gml-x",
            "hello",
        )
        .await
        .unwrap()
        .unwrap();
    let missing = mock
        .cluster()
        .get_json(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "gml-x",
            "other",
        )
        .await
        .unwrap();

    assert_eq!(found["status"], json!({ "parents": [] }));
    assert_eq!(found["metadata"]["name"], "hello");
    assert_eq!(missing, None);
}

#[tokio::test]
async fn server_version_is_the_git_version() {
    let mock = Mock::start().await;
    mock.on("GET", "/version", Reply::Json(200, version_info()));

    assert_eq!(mock.cluster().server_version().await.unwrap(), "v1.35.0");
    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(lines, ["GET /version"]);
}
