//! The server's standard equipment: graceful shutdown, health, reflection, metrics.

mod common;

use std::{net::TcpStream, time::Duration};

use common::{Block, Proc, metrics, sample, server, wait_until};
use hello_proto::{GreeterClient, HelloRequest};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_no_in_flight_rpc() {
    let block = Block::random();
    let addr = block.addr(10);
    let metrics_addr = std::net::SocketAddr::new(addr.ip(), 9090);
    let mut srv = server(
        addr,
        "server-0",
        &[("RESPONSE_DELAY", "1s"), ("DRAIN_TIMEOUT", "20s")],
    );
    let ch = channel(addr).await;

    let mut watch = HealthClient::new(ch.clone())
        .watch(HealthCheckRequest {
            service: "hello.v1.Greeter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let calls: Vec<_> = (1..=10)
        .map(|n| {
            let mut client = GreeterClient::new(ch.clone());
            tokio::spawn(async move {
                client
                    .say_hello(HelloRequest {
                        client_id: "t".into(),
                        counter: n,
                    })
                    .await
            })
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        wait_until("ten RPCs are in flight", common::DEADLINE, || {
            sample(&metrics(metrics_addr), "hello_rpcs_in_flight") == Some(10.0)
        })
    })
    .await
    .unwrap();

    srv.signal("-TERM");

    let next = tokio::time::timeout(common::DEADLINE, watch.message())
        .await
        .expect("watch update")
        .unwrap();
    assert_eq!(
        next.map(|r| r.status),
        Some(ServingStatus::NotServing as i32),
        "health turns NOT_SERVING"
    );
    assert!(
        watch.message().await.unwrap().is_none(),
        "the watch stream ends so the connection can drain"
    );
    wait_until("new connections are refused", common::DEADLINE, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
    });

    for call in calls {
        let reply = call.await.unwrap().expect("every in-flight RPC completes");
        assert_eq!(reply.get_ref().server_id, "server-0");
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = srv.wait(common::DEADLINE);
        (status, srv)
    })
    .await
    .unwrap();
    assert!(
        status.0.success(),
        "exit 0 after draining: {:?}; stderr:\n{}",
        status.0,
        status.1.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_and_not_found_for_unknown_services() {
    let block = Block::random();
    let _srv = server(block.addr(10), "server-0", &[]);
    let mut health = HealthClient::new(channel(block.addr(10)).await);
    for service in ["", "hello.v1.Greeter"] {
        let res = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            res.get_ref().status,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let err = health
        .check(HealthCheckRequest {
            service: "nope.Svc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_greeter() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let block = Block::random();
    let _srv = server(block.addr(10), "server-0", &[]);
    let mut client = ServerReflectionClient::new(channel(block.addr(10)).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let res = stream
        .message()
        .await
        .unwrap()
        .expect("a reflection response");
    let Some(MessageResponse::ListServicesResponse(list)) = res.message_response else {
        panic!("unexpected reflection response: {res:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"hello.v1.Greeter"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[test]
fn metrics_count_the_rpcs_served_by_method_and_code() {
    let block = Block::random();
    let addr = block.addr(10);
    let _srv: Proc = server(addr, "server-0", &[]);
    let metrics_addr = std::net::SocketAddr::new(addr.ip(), 9090);
    // The readiness probe of the test helper connected too: once the server has counted it, that
    // count is the baseline (sampled earlier, a loaded machine may not have counted it yet).
    common::wait_until(
        "the probe's connection is counted",
        common::DEADLINE,
        || sample(&metrics(metrics_addr), "hello_connections_total").is_some_and(|n| n >= 1.0),
    );
    let before = sample(&metrics(metrics_addr), "hello_connections_total").unwrap();
    let target = format!("ipv4:{addr}");
    common::Client::start(&[&target, "--rounds", "2", "--concurrency", "5"]).finish();
    common::Client::start(&[
        &target,
        "--rounds",
        "1",
        "--concurrency",
        "3",
        "--method",
        "SayHelloAgain",
    ])
    .finish();
    let text = metrics(metrics_addr);
    assert_eq!(
        sample(&text, r#"hello_rpcs_total{method="SayHello",code="OK"}"#),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"hello_rpcs_total{method="SayHelloAgain",code="OK"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(sample(&text, "hello_rpcs_in_flight"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "hello_connections_total"),
        Some(before + 2.0),
        "one connection per client: {text}"
    );
}
