//! The twin DNS, served on 127.0.0.1 and asked by the real hickory resolver (as the gRPC client
//! does) or by hand-made messages over raw UDP and TCP sockets.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use mesh::dns::{DnsError, DnsServer, Records};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

const SERVICE: &str = "server.default.svc.cluster.local";

/// Longer than a resolver lookup that gets no answer (2 attempts of 5 s): a test fails on its
/// own assertions rather than on this.
const WAIT: Duration = Duration::from_secs(30);

async fn within<F: Future>(future: F) -> F::Output {
    timeout(WAIT, future).await.expect("timed out")
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last))
}

async fn start(records: Records) -> DnsServer {
    within(DnsServer::start("127.0.0.1:0".parse().unwrap(), records))
        .await
        .unwrap()
}

/// A resolver that asks only `server`, over the given connections, with no search domain, no
/// hosts file and (unless `cache` is true) no cache.
fn resolver_with(
    server: &DnsServer,
    connections: Vec<ConnectionConfig>,
    cache: bool,
) -> TokioResolver {
    let addr = server.local_addr();
    let connections = connections
        .into_iter()
        .map(|mut connection| {
            connection.port = addr.port();
            connection
        })
        .collect();
    let name_server = NameServerConfig::new(addr.ip(), true, connections);
    let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    options.use_hosts_file = ResolveHosts::Never;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    if !cache {
        options.cache_size = 0;
    }
    builder.build().unwrap()
}

fn resolver(server: &DnsServer) -> TokioResolver {
    resolver_with(server, vec![ConnectionConfig::udp()], false)
}

async fn lookup_ips(resolver: &TokioResolver, name: &str) -> BTreeSet<IpAddr> {
    within(resolver.lookup_ip(name))
        .await
        .unwrap()
        .iter()
        .collect()
}

/// A query for `name`, made fully qualified as it is on the wire (hickory's `Name` equality
/// tells `a.b` from `a.b.`, and a decoded name is always fully qualified).
fn query(name: &str, query_type: RecordType) -> Message {
    let mut name = Name::from_ascii(name).unwrap();
    name.set_fqdn(true);
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, query_type));
    message
}

async fn udp_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends `request` from `socket` and returns the first message that comes back.
async fn ask_udp_on(socket: &UdpSocket, server: SocketAddr, request: &Message) -> Message {
    socket
        .send_to(&request.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0; 65535];
    let (len, from) = within(socket.recv_from(&mut buf)).await.unwrap();
    assert_eq!(from, server);
    Message::from_vec(&buf[..len]).unwrap()
}

async fn ask_udp(server: SocketAddr, request: &Message) -> Message {
    ask_udp_on(&udp_client().await, server, request).await
}

async fn ask_tcp(stream: &mut TcpStream, request: &Message) -> Message {
    let bytes = request.to_vec().unwrap();
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0; 2];
    within(stream.read_exact(&mut len)).await.unwrap();
    let mut response = vec![0; usize::from(u16::from_be_bytes(len))];
    within(stream.read_exact(&mut response)).await.unwrap();
    Message::from_vec(&response).unwrap()
}

fn answer_ips(response: &Message) -> BTreeSet<IpAddr> {
    response
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_known_name_resolves_to_its_address() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    let server = start(records).await;
    let resolver = resolver(&server);

    let lookup = within(resolver.ipv4_lookup(format!("{SERVICE}.")))
        .await
        .unwrap();
    let addrs: Vec<_> = lookup
        .answers()
        .iter()
        .map(|record| record.data.clone())
        .collect();
    assert_eq!(addrs, [RData::A(Ipv4Addr::new(127, 0, 0, 2).into())]);

    assert_eq!(
        lookup_ips(&resolver, SERVICE).await,
        BTreeSet::from([v4(127, 0, 0, 2)])
    );
}

#[tokio::test]
async fn a_short_name_is_a_name_of_its_own() {
    let records = Records::new();
    records.set("server", vec![v4(127, 0, 0, 3)]);
    let server = start(records).await;
    let resolver = resolver(&server);

    assert_eq!(
        lookup_ips(&resolver, "server").await,
        BTreeSet::from([v4(127, 0, 0, 3)])
    );
    let error = within(resolver.lookup_ip(SERVICE)).await.unwrap_err();
    assert!(error.is_nx_domain(), "{error:?}");
}

#[tokio::test]
async fn a_name_with_several_addresses_resolves_to_all_of_them() {
    let addrs = vec![
        v4(127, 0, 0, 2),
        v4(127, 0, 0, 3),
        v4(10, 1, 2, 3),
        v6(1),
        v6(2),
    ];
    let records = Records::new();
    records.set(SERVICE, addrs.clone());
    let server = start(records).await;

    assert_eq!(
        lookup_ips(&resolver(&server), SERVICE).await,
        addrs.into_iter().collect()
    );
}

#[tokio::test]
async fn an_update_is_visible_on_the_next_lookup() {
    let server = start(Records::new()).await;
    let resolver = resolver(&server);

    server.records().set(SERVICE, vec![v4(127, 0, 0, 2)]);
    assert_eq!(
        lookup_ips(&resolver, SERVICE).await,
        BTreeSet::from([v4(127, 0, 0, 2)])
    );

    server
        .records()
        .set(SERVICE, vec![v4(127, 0, 0, 3), v4(127, 0, 0, 4)]);
    assert_eq!(
        lookup_ips(&resolver, SERVICE).await,
        BTreeSet::from([v4(127, 0, 0, 3), v4(127, 0, 0, 4)])
    );

    server.records().remove(SERVICE);
    let error = within(resolver.lookup_ip(SERVICE)).await.unwrap_err();
    assert!(error.is_nx_domain(), "{error:?}");
}

#[tokio::test]
async fn answers_have_a_ttl_of_zero_so_even_a_caching_resolver_sees_updates_at_once() {
    let records = Records::new();
    let server = start(records.clone()).await;
    let caching = resolver_with(&server, vec![ConnectionConfig::udp()], true);

    // Unknown first: a cached NXDOMAIN must not hide the name once it is added.
    let error = within(caching.lookup_ip(SERVICE)).await.unwrap_err();
    assert!(error.is_nx_domain(), "{error:?}");

    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    assert_eq!(
        lookup_ips(&caching, SERVICE).await,
        BTreeSet::from([v4(127, 0, 0, 2)])
    );
    records.set(SERVICE, vec![v4(127, 0, 0, 5)]);
    assert_eq!(
        lookup_ips(&caching, SERVICE).await,
        BTreeSet::from([v4(127, 0, 0, 5)])
    );

    let response = ask_udp(server.local_addr(), &query(SERVICE, RecordType::A)).await;
    assert_eq!(response.answers.len(), 1);
    assert!(response.answers.iter().all(|record| record.ttl == 0));
}

#[tokio::test]
async fn an_unknown_name_is_nxdomain() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    let server = start(records).await;

    let error = within(resolver(&server).lookup_ip("nobody.default.svc.cluster.local"))
        .await
        .unwrap_err();
    assert!(error.is_nx_domain(), "{error:?}");

    let response = ask_udp(
        server.local_addr(),
        &query("nobody.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert!(response.metadata.authoritative);
    assert!(response.answers.is_empty());
}

#[tokio::test]
async fn a_known_name_without_an_address_of_the_asked_type_has_no_answers() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    records.set("empty", vec![]);
    let server = start(records).await;
    let addr = server.local_addr();

    let response = ask_udp(addr, &query(SERVICE, RecordType::AAAA)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert!(response.answers.is_empty());

    let response = ask_udp(addr, &query("empty.", RecordType::A)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());

    let error = within(resolver(&server).ipv6_lookup(SERVICE))
        .await
        .unwrap_err();
    assert!(error.is_no_records_found(), "{error:?}");
    assert!(!error.is_nx_domain(), "{error:?}");
}

#[tokio::test]
async fn other_query_types_have_no_answers_for_known_names_and_nxdomain_for_unknown_ones() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2), v6(1)]);
    let server = start(records).await;
    let addr = server.local_addr();

    for query_type in [
        RecordType::MX,
        RecordType::TXT,
        RecordType::SRV,
        RecordType::ANY,
    ] {
        let response = ask_udp(addr, &query(SERVICE, query_type)).await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NoError,
            "{query_type}"
        );
        assert!(response.answers.is_empty(), "{query_type}");

        let response = ask_udp(addr, &query("nobody.", query_type)).await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NXDomain,
            "{query_type}"
        );
    }
}

#[tokio::test]
async fn names_are_case_insensitive_and_the_trailing_dot_is_optional() {
    let records = Records::new();
    records.set("Server.Default.svc.cluster.local.", vec![v4(127, 0, 0, 2)]);
    assert_eq!(records.get(SERVICE), Some(vec![v4(127, 0, 0, 2)]));
    assert_eq!(
        records.get("SERVER.default.svc.cluster.local."),
        Some(vec![v4(127, 0, 0, 2)])
    );
    assert_eq!(records.get("server.default"), None);

    let server = start(records.clone()).await;
    let response = ask_udp(
        server.local_addr(),
        &query("SERVER.default.SVC.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(answer_ips(&response), BTreeSet::from([v4(127, 0, 0, 2)]));
    // The owner name comes back as it was asked, as resolvers that randomize case expect.
    assert_eq!(
        response.answers[0].name.to_ascii(),
        "SERVER.default.SVC.cluster.local."
    );

    records.remove("server.DEFAULT.svc.cluster.local");
    assert_eq!(records.get(SERVICE), None);
}

#[tokio::test]
async fn a_response_echoes_the_question_and_sets_the_header_flags() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    let server = start(records).await;

    for recursion_desired in [true, false] {
        let mut request = query(SERVICE, RecordType::A);
        request.metadata.recursion_desired = recursion_desired;
        let response = ask_udp(server.local_addr(), &request).await;

        assert_eq!(response.metadata.id, request.metadata.id);
        assert_eq!(response.metadata.message_type, MessageType::Response);
        assert_eq!(response.metadata.op_code, OpCode::Query);
        assert!(response.metadata.authoritative);
        assert_eq!(response.metadata.recursion_desired, recursion_desired);
        assert!(!response.metadata.recursion_available);
        assert!(!response.metadata.truncation);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(response.queries, request.queries);
        assert_eq!(answer_ips(&response), BTreeSet::from([v4(127, 0, 0, 2)]));
        assert_eq!(response.answers[0].ttl, 0);
        assert!(response.edns.is_none());
    }
}

#[tokio::test]
async fn a_request_with_edns_gets_edns_back() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    let server = start(records).await;

    let mut request = query(SERVICE, RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    request.set_edns(edns.clone());
    let response = ask_udp(server.local_addr(), &request).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.edns.is_some());
    assert_eq!(answer_ips(&response), BTreeSet::from([v4(127, 0, 0, 2)]));

    edns.set_version(1);
    request.set_edns(edns);
    let response = ask_udp(server.local_addr(), &request).await;
    // BADVERS and BADSIG share the code 16, which hickory decodes as BADSIG.
    assert_eq!(
        u16::from(response.metadata.response_code),
        u16::from(ResponseCode::BADVERS)
    );
    assert!(response.edns.is_some());
    assert!(response.answers.is_empty());
}

#[tokio::test]
async fn a_malformed_packet_does_not_stop_the_server() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    let server = start(records).await;
    let addr = server.local_addr();
    let socket = udp_client().await;

    let mut cut = query(SERVICE, RecordType::A).to_vec().unwrap();
    cut.truncate(cut.len() - 3);
    let mut response = query(SERVICE, RecordType::A);
    response.metadata.message_type = MessageType::Response;
    for garbage in [
        Vec::new(),
        vec![0xff],
        vec![0xff; 11],
        vec![0xab; 512],
        cut,
        response.to_vec().unwrap(),
    ] {
        socket.send_to(&garbage, addr).await.unwrap();
    }

    // The server reads one socket in order: had it answered any of the above, that answer would
    // come first.
    let request = query(SERVICE, RecordType::A);
    let answer = ask_udp_on(&socket, addr, &request).await;
    assert_eq!(answer.metadata.id, request.metadata.id);
    assert_eq!(answer_ips(&answer), BTreeSet::from([v4(127, 0, 0, 2)]));

    assert_eq!(
        lookup_ips(&resolver(&server), SERVICE).await,
        BTreeSet::from([v4(127, 0, 0, 2)])
    );
}

#[tokio::test]
async fn a_query_over_tcp_is_answered() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2), v6(1)]);
    let server = start(records).await;
    let mut stream = within(TcpStream::connect(server.local_addr()))
        .await
        .unwrap();

    // Several messages on one connection, a malformed one among them.
    let request = query(SERVICE, RecordType::A);
    let response = ask_tcp(&mut stream, &request).await;
    assert_eq!(response.metadata.id, request.metadata.id);
    assert!(response.metadata.authoritative);
    assert_eq!(response.queries, request.queries);
    assert_eq!(answer_ips(&response), BTreeSet::from([v4(127, 0, 0, 2)]));

    stream.write_all(&[0, 3, 0xff, 0xff, 0xff]).await.unwrap();

    let response = ask_tcp(&mut stream, &query(SERVICE, RecordType::AAAA)).await;
    assert_eq!(answer_ips(&response), BTreeSet::from([v6(1)]));

    let response = ask_tcp(&mut stream, &query("nobody.", RecordType::A)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);

    let tcp_only = resolver_with(&server, vec![ConnectionConfig::tcp()], false);
    assert_eq!(
        lookup_ips(&tcp_only, SERVICE).await,
        BTreeSet::from([v4(127, 0, 0, 2), v6(1)])
    );
}

#[tokio::test]
async fn a_response_too_large_for_udp_is_truncated_and_complete_over_tcp() {
    let addrs: Vec<IpAddr> = (1..=100).map(|i| v4(10, 0, 0, i)).collect();
    let records = Records::new();
    records.set(SERVICE, addrs.clone());
    let server = start(records).await;

    let request = query(SERVICE, RecordType::A);
    let response = ask_udp(server.local_addr(), &request).await;
    assert!(response.metadata.truncation);
    assert_eq!(response.metadata.id, request.metadata.id);
    assert_eq!(response.queries, request.queries);
    assert!(response.answers.is_empty());

    let mut stream = within(TcpStream::connect(server.local_addr()))
        .await
        .unwrap();
    let response = ask_tcp(&mut stream, &request).await;
    assert!(!response.metadata.truncation);
    assert_eq!(answer_ips(&response), addrs.iter().copied().collect());

    // A resolver with both transports retries over TCP and gets them all.
    let both = resolver_with(
        &server,
        vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
        false,
    );
    assert_eq!(
        lookup_ips(&both, SERVICE).await,
        addrs.into_iter().collect()
    );
}

#[tokio::test]
async fn a_headless_service_with_200_pods_resolves_to_all_of_them_through_a_retry_over_tcp() {
    let pods: Vec<IpAddr> = (0..200u8)
        .map(|i| v4(10, 244, i / 100, i % 100 + 1))
        .collect();
    let records = Records::new();
    records.set(SERVICE, pods.clone());
    let server = start(records).await;

    // Asked as the resolver asks (EDNS, 1232 bytes), 200 A records do not fit in a datagram, so
    // the UDP answer is truncated and the resolver's answer below can only come over TCP.
    let mut request = query(SERVICE, RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    request.set_edns(edns);
    let response = ask_udp(server.local_addr(), &request).await;
    assert!(response.metadata.truncation);
    assert!(response.answers.is_empty());

    // The gRPC client's resolver, UDP then TCP as apps/src/client/resolve.rs configures it.
    let both = resolver_with(
        &server,
        vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
        false,
    );
    let resolved = lookup_ips(&both, SERVICE).await;
    assert_eq!(resolved.len(), 200);
    assert_eq!(resolved, pods.into_iter().collect());
}

#[tokio::test]
async fn an_address_in_use_is_a_bind_error() {
    let server = start(Records::new()).await;
    let addr = server.local_addr();

    let error = within(DnsServer::start(addr, Records::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DnsError::Bind { addr: failed, .. } if *failed == addr),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("cannot bind the twin dns server to {addr}")
    );
}

#[tokio::test]
async fn shutting_down_frees_the_port() {
    let server = start(Records::new()).await;
    let addr = server.local_addr();

    within(server.shutdown()).await;

    UdpSocket::bind(addr).await.unwrap();
    TcpListener::bind(addr).await.unwrap();
}

#[tokio::test]
async fn dropping_the_server_closes_its_connections() {
    let records = Records::new();
    records.set(SERVICE, vec![v4(127, 0, 0, 2)]);
    let server = start(records).await;
    let mut stream = within(TcpStream::connect(server.local_addr()))
        .await
        .unwrap();
    // One answer: the connection is being served.
    ask_tcp(&mut stream, &query(SERVICE, RecordType::A)).await;

    drop(server);

    let mut buf = [0; 1];
    let read = within(stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
