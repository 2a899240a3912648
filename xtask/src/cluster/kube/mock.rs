//! A mock Kubernetes API server for the tests: plain HTTP/1.1 on 127.0.0.1, a route table, and a record of
//! every request it was sent.
//!
//! Routes are `(method, path) → reply`. A path ending in `/*` matches every path under it; any other path
//! matches exactly. The method `WATCH` matches a `GET` with `watch=true` (which `GET` then does not). Routes
//! added later win, so a test overrides the defaults by adding its own. A request no route matches gets a 404
//! `Status`, as from a real API server, and is recorded all the same. A [`Reply::Func`] computes its reply from
//! the request and whatever state the test keeps, so that a test can play a cluster that changes (a namespace
//! that terminates, a container that restarts) as the upstream source says it does.
//!
//! A followed log asked for with `timestamps=true` gets each line prefixed with the time it is sent, in
//! RFC 3339 with nanoseconds and a space, as the kubelet prefixes the container runtime's time
//! (`pkg/kubelet/kuberuntime/logs/logs.go`, `logWriter.write`).
//!
//! [`Mock::start`] serves the discovery documents of a cluster with the core group, `apps/v1`,
//! `apiextensions.k8s.io/v1` and `gateway.networking.k8s.io/v1`, shaped as a real API server's are
//! (`APIVersions`, `APIGroupList`, `APIResourceList`).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use ::kube::{Client, Config};
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{
    Request, Response, body::Frame, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::Cluster;

/// What a route answers.
#[derive(Clone)]
pub enum Reply {
    /// This status and JSON body.
    Json(u16, Value),
    /// This status and plain-text body (a log, or a proxy's error page).
    Text(u16, String),
    /// Status 200 and the request's own body back (what a server-side apply returns, near enough).
    Echo,
    /// A watch: these events, one JSON object a line, then the response stays open, as a quiet watch does.
    Events(Vec<Value>),
    /// Status 200 and these lines, one every `every` (a followed log of a running container), then the
    /// response stays open.
    Paced(Vec<String>, std::time::Duration),
    /// A container's log file: line `k` was written `every` × (k + 1) after `started`. A follow gets every
    /// line written so far at once, from the first (as the kubelet reads the file from its start), then each
    /// next line when it is written; then the response stays open.
    Log {
        started: std::time::SystemTime,
        every: std::time::Duration,
        lines: Arc<Vec<String>>,
    },
    /// The reply this function computes for the request.
    Func(Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>),
}

impl Reply {
    /// A reply computed per request.
    pub fn func(f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Reply {
        Reply::Func(Arc::new(f))
    }

    /// The first request gets the first reply, the next the next, and the last one repeats.
    pub fn sequence(replies: Vec<Reply>) -> Reply {
        assert!(!replies.is_empty(), "a sequence needs a reply");
        let next = Arc::new(Mutex::new(0usize));
        Reply::func(move |_| {
            let mut i = next.lock().unwrap();
            let reply = replies[(*i).min(replies.len() - 1)].clone();
            *i += 1;
            reply
        })
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Json(code, value) => write!(f, "Json({code}, {value})"),
            Reply::Text(code, text) => write!(f, "Text({code}, {text:?})"),
            Reply::Echo => write!(f, "Echo"),
            Reply::Events(events) => write!(f, "Events({events:?})"),
            Reply::Paced(lines, every) => write!(f, "Paced({} lines, {every:?})", lines.len()),
            Reply::Log { lines, every, .. } => write!(f, "Log({} lines, {every:?})", lines.len()),
            Reply::Func(_) => write!(f, "Func"),
        }
    }
}

/// One request the mock was sent.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Query pairs in the order sent, percent-decoded.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Recorded {
    /// `METHOD /path`, for compact assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The query pairs sorted, so that assertions do not depend on the order kube-rs writes them in.
    pub fn params(&self) -> Vec<(&str, &str)> {
        let mut pairs: Vec<_> = self
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort_unstable();
        pairs
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_watch(&self) -> bool {
        self.method == "GET" && self.param("watch") == Some("true")
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body of {} is not json: {e}", self.line()))
    }

    /// A discovery request: `GET /api`, `/apis`, `/api/v1` or `/apis/<group>/<version>`.
    pub fn is_discovery(&self) -> bool {
        let segments = self.path.trim_start_matches('/').split('/').count();
        let group_version = self.path.starts_with("/apis/") && segments == 3;
        self.method == "GET"
            && (["/api", "/apis", "/api/v1"].contains(&self.path.as_str()) || group_version)
    }
}

struct Route {
    method: &'static str,
    path: String,
    /// A query pair the request must carry too.
    query: Option<(String, String)>,
    reply: Reply,
}

impl Route {
    fn matches(&self, method: &str, path: &str, query: &[(String, String)]) -> bool {
        if let Some(pair) = &self.query
            && !query.contains(pair)
        {
            return false;
        }
        let path_matches = match self.path.strip_suffix("/*") {
            Some(prefix) => path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/')),
            None => path == self.path,
        };
        self.method == method && path_matches
    }
}

#[derive(Default)]
struct State {
    routes: Vec<Route>,
    requests: Vec<Recorded>,
}

/// A running mock API server; it stops with the test's runtime.
pub struct Mock {
    url: String,
    state: Arc<Mutex<State>>,
}

/// One served group version and its resources: `(plural, kind, namespaced)`; a `plural` with a `/` is a
/// subresource.
pub struct GroupVersion {
    pub group_version: &'static str,
    pub resources: &'static [(&'static str, &'static str, bool)],
}

pub const CORE_V1: GroupVersion = GroupVersion {
    group_version: "v1",
    resources: &[
        ("configmaps", "ConfigMap", true),
        ("namespaces", "Namespace", false),
        ("namespaces/status", "Namespace", false),
        ("pods", "Pod", true),
        ("pods/exec", "PodExecOptions", true),
        ("pods/log", "Pod", true),
        ("serviceaccounts", "ServiceAccount", true),
        ("services", "Service", true),
    ],
};

pub const APPS_V1: GroupVersion = GroupVersion {
    group_version: "apps/v1",
    resources: &[
        ("daemonsets", "DaemonSet", true),
        ("deployments", "Deployment", true),
        ("deployments/scale", "Scale", true),
        ("deployments/status", "Deployment", true),
    ],
};

pub const APIEXTENSIONS_V1: GroupVersion = GroupVersion {
    group_version: "apiextensions.k8s.io/v1",
    resources: &[
        (
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        ),
        (
            "customresourcedefinitions/status",
            "CustomResourceDefinition",
            false,
        ),
    ],
};

pub const GATEWAY_V1: GroupVersion = GroupVersion {
    group_version: "gateway.networking.k8s.io/v1",
    resources: &[
        ("gatewayclasses", "GatewayClass", false),
        ("gateways", "Gateway", true),
        ("grpcroutes", "GRPCRoute", true),
        ("httproutes", "HTTPRoute", true),
    ],
};

impl Mock {
    /// Starts a mock on a free port, serving the discovery of all four group versions above.
    pub async fn start() -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let served = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _peer)) = listener.accept().await {
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |request| respond(Arc::clone(&state), request));
                    // A connection that ends badly (the client hung up on a watch) is no test failure.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let mock = Mock { url, state };
        mock.serve_discovery(&[CORE_V1, APPS_V1, APIEXTENSIONS_V1, GATEWAY_V1]);
        mock
    }

    /// Adds a route; it wins over every route added before it.
    pub fn on(&self, method: &'static str, path: &str, reply: Reply) -> &Self {
        let route = Route {
            method,
            path: path.to_owned(),
            query: None,
            reply,
        };
        self.state.lock().unwrap().routes.push(route);
        self
    }

    /// Adds a route for requests that also carry the query pair `key=value` (e.g. a `labelSelector`).
    pub fn on_query(
        &self,
        method: &'static str,
        path: &str,
        (key, value): (&str, &str),
        reply: Reply,
    ) -> &Self {
        let route = Route {
            method,
            path: path.to_owned(),
            query: Some((key.to_owned(), value.to_owned())),
            reply,
        };
        self.state.lock().unwrap().routes.push(route);
        self
    }

    /// Serves the discovery of exactly these group versions (the core group must be among them).
    pub fn serve_discovery(&self, served: &[GroupVersion]) {
        let (core, groups): (Vec<_>, Vec<_>) = served
            .iter()
            .partition(|gv| !gv.group_version.contains('/'));
        let api_versions = json!({
            "kind": "APIVersions",
            "versions": core.iter().map(|gv| gv.group_version).collect::<Vec<_>>(),
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "172.18.0.2:6443" }],
        });
        self.on("GET", "/api", Reply::Json(200, api_versions));
        self.on("GET", "/apis", Reply::Json(200, api_group_list(&groups)));
        for gv in core {
            self.on(
                "GET",
                &format!("/api/{}", gv.group_version),
                Reply::Json(200, api_resource_list(gv)),
            );
        }
        for gv in groups {
            self.on(
                "GET",
                &format!("/apis/{}", gv.group_version),
                Reply::Json(200, api_resource_list(gv)),
            );
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> Client {
        Client::try_from(Config::new(self.url.parse().unwrap())).unwrap()
    }

    pub fn cluster(&self) -> Cluster {
        Cluster::from_client(self.client(), "kind-mock")
    }

    /// Every request so far, in the order received.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests so far that are not discovery.
    pub fn calls(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_discovery())
            .collect()
    }

    /// How many times `GET /apis` (the start of a discovery run) was requested.
    pub fn discovery_runs(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/apis")
            .count()
    }
}

/// An `APIGroupList`, as `GET /apis` returns.
pub fn api_group_list(groups: &[&GroupVersion]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|gv| {
            let (group, version) = gv.group_version.split_once('/').unwrap();
            let version = json!({ "groupVersion": gv.group_version, "version": version });
            json!({ "name": group, "versions": [version], "preferredVersion": version })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// An `APIResourceList`, as `GET /api/v1` or `GET /apis/<group>/<version>` returns.
pub fn api_resource_list(gv: &GroupVersion) -> Value {
    let resources: Vec<Value> = gv
        .resources
        .iter()
        .map(|&(name, kind, namespaced)| {
            if name.contains('/') {
                let mut sub = json!({ "name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                    "verbs": ["get", "patch", "update"] });
                if kind == "Scale" {
                    sub["group"] = json!("autoscaling");
                    sub["version"] = json!("v1");
                }
                sub
            } else {
                json!({ "name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind,
                    "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] })
            }
        })
        .collect();
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv.group_version, "resources": resources })
}

/// A `Status` as an API server sends with an error.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": reason, "code": code })
}

/// A list response: `kind` is the list's kind (`DeploymentList`).
pub fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": api_version, "kind": kind, "metadata": { "resourceVersion": "100" }, "items": items })
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn respond(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let method = if recorded.is_watch() {
        "WATCH"
    } else {
        recorded.method.as_str()
    };
    let timestamps = recorded.param("timestamps") == Some("true");
    let reply = {
        let mut state = state.lock().unwrap();
        let mut reply = state
            .routes
            .iter()
            .rev()
            .find(|r| r.matches(method, &recorded.path, &recorded.query))
            .map(|r| r.reply.clone());
        let line = format!("{method} {}", recorded.path);
        // A function runs with the state lock held: it must not call the mock.
        while let Some(Reply::Func(f)) = &reply {
            reply = Some(f(&recorded));
        }
        state.requests.push(recorded);
        reply.unwrap_or_else(|| {
            Reply::Json(
                404,
                status(
                    404,
                    "NotFound",
                    &format!("the mock has no route for {line}"),
                ),
            )
        })
    };
    Ok(match reply {
        Reply::Json(code, value) => full(code, "application/json", value.to_string().into()),
        Reply::Text(code, text) => full(code, "text/plain", text.into()),
        Reply::Echo => full(200, "application/json", body),
        Reply::Events(events) => {
            let frames = events
                .into_iter()
                .map(|e| Ok(Frame::data(Bytes::from(format!("{e}\n")))));
            let endless = futures::stream::iter(frames).chain(futures::stream::pending());
            Response::builder()
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(StreamBody::new(endless).boxed_unsync())
                .unwrap()
        }
        Reply::Func(_) => unreachable!("computed above"),
        Reply::Log {
            started,
            every,
            lines,
        } => {
            let count = lines.len();
            let written =
                move |k: usize| started + every * u32::try_from(k + 1).unwrap_or(u32::MAX);
            let paced = futures::stream::iter(0..count).then(move |k| {
                let lines = Arc::clone(&lines);
                async move {
                    let at = written(k);
                    if let Ok(wait) = at.duration_since(std::time::SystemTime::now()) {
                        tokio::time::sleep(wait).await;
                    }
                    let line = if timestamps {
                        format!("{} {}", rfc3339_nanos(at), lines[k])
                    } else {
                        lines[k].clone()
                    };
                    Ok(Frame::data(Bytes::from(format!("{line}\n"))))
                }
            });
            let endless = paced.chain(futures::stream::pending());
            Response::builder()
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(StreamBody::new(endless).boxed_unsync())
                .unwrap()
        }
        Reply::Paced(lines, every) => {
            let paced = futures::stream::iter(lines).then(move |line| async move {
                tokio::time::sleep(every).await;
                let line = if timestamps {
                    format!("{} {line}", now_rfc3339_nanos())
                } else {
                    line
                };
                Ok(Frame::data(Bytes::from(format!("{line}\n"))))
            });
            let endless = paced.chain(futures::stream::pending());
            Response::builder()
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(StreamBody::new(endless).boxed_unsync())
                .unwrap()
        }
    })
}

/// Now, as the kubelet writes a log line's time: `2026-11-29T10:00:00.123456789Z`.
pub fn now_rfc3339_nanos() -> String {
    rfc3339_nanos(std::time::SystemTime::now())
}

/// A time as the kubelet writes a log line's time.
pub fn rfc3339_nanos(at: std::time::SystemTime) -> String {
    let at = k8s_openapi::jiff::Timestamp::try_from(at).expect("a time after 1970");
    format!("{at:.9}")
}

fn full(code: u16, content_type: &str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body).boxed_unsync())
        .unwrap()
}

/// `a=1&b=x%3Dy` → `[(a, 1), (b, x=y)]`, decoding as `application/x-www-form-urlencoded` does.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex: String = input.by_ref().take(2).map(char::from).collect();
                bytes.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?'));
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
