//! Plain HTTP/1.1 GET requests to Envoy's admin listener.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::EnvoyError;

/// How long one admin request may take, connection included.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` on the admin listener at `addr`: its status and body, whatever the status.
pub(super) async fn get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), EnvoyError> {
    let path = &if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    match timeout(ADMIN_TIMEOUT, get_inner(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(EnvoyError::AdminTimeout {
            path: path.to_owned(),
            timeout: ADMIN_TIMEOUT,
        }),
    }
}

async fn get_inner(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), EnvoyError> {
    let http = |source| EnvoyError::AdminHttp {
        path: path.to_owned(),
        source,
    };
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|source| EnvoyError::AdminRequest {
            path: path.to_owned(),
            source,
        })?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| EnvoyError::AdminConnect { addr, source })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    // the connection ends by itself once the response is read (`Connection: close`)
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(http)?;
    connection.abort();
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// `GET path`, failing on a status other than 2xx.
pub(super) async fn get_ok(addr: SocketAddr, path: &str) -> Result<String, EnvoyError> {
    let (status, body) = get(addr, path).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(EnvoyError::AdminStatus {
            path: path.to_owned(),
            status: status.as_u16(),
            body: body.lines().next().unwrap_or("").trim().to_owned(),
        })
    }
}
