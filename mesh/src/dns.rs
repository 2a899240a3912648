//! The twin DNS: a small authoritative DNS server for the Service names of the twin.
//!
//! [`DnsServer::start`] binds a UDP socket and a TCP listener on the same port and answers
//! queries from a [`Records`] table, which can be changed while the server runs: every answer
//! carries a TTL of 0, so a client that resolves again sees a change at once.
//!
//! hickory-server does the protocol: it decodes the requests, frames the TCP messages, encodes
//! the responses within the size the transport allows, and ignores messages that are responses.
//! TCP is served by its [`Server`], UDP by a loop of ours over its parts (`dns/udp.rs`) so that a
//! datagram that cannot be decoded gets no answer. What is answered is ours (`dns/answer.rs`):
//!
//! - `A` and `AAAA` queries for a known name get its IPv4 or IPv6 addresses;
//! - a known name with no address of the asked type, or a query of any other type for a known
//!   name, gets `NOERROR` with no answers (NODATA);
//! - an unknown name gets `NXDOMAIN`;
//! - a query of another class than `IN` gets `REFUSED`, another opcode than `QUERY` gets
//!   `NOTIMP`, a message with other than one question gets `FORMERR`;
//! - a message whose header cannot be decoded gets no answer; one whose header decodes but whose
//!   body does not gets no answer over UDP, and `FORMERR` over TCP (hickory-server's way).
//!
//! Responses keep the id, echo the question, set `QR` and `AA`, copy `RD` and `CD` and leave
//! `RA` unset. A request with EDNS gets EDNS back. Over UDP a response larger than the client
//! can take (512 bytes, or its EDNS payload size up to 4096) is sent truncated (`TC`), without
//! records, so that the client asks again over TCP.

mod answer;
mod records;
mod udp;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tracing::debug;

use self::answer::Answerer;
pub use self::records::Records;

/// How long a TCP connection may stay idle before it is closed.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many responses may wait to be written on one TCP connection. hickory-server answers the
/// messages of a connection one after the other, so one would do; this is its own default.
const TCP_RESPONSE_BUFFER: usize = 32;

/// How many ports to try when the caller asks for any port (port 0) and the TCP port that goes
/// with the chosen UDP port is taken.
const PORT_ATTEMPTS: usize = 16;

/// An error of the twin DNS.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The UDP socket or the TCP listener could not be bound.
    #[error("cannot bind the twin dns server to {addr}")]
    Bind {
        /// The address of the failed bind: for TCP, the one with the port UDP got.
        addr: SocketAddr,
        /// Why the bind failed.
        #[source]
        source: io::Error,
    },
    /// The address of the bound UDP socket could not be read.
    #[error("cannot read the local address of the twin dns server")]
    LocalAddr(#[source] io::Error),
}

/// A running twin DNS server.
///
/// It serves UDP and TCP on [`local_addr`](Self::local_addr) from tokio tasks until it is dropped
/// (the tasks are aborted, which closes the sockets and the open connections) or shut down with
/// [`shutdown`](Self::shutdown), which also waits until the sockets are closed.
pub struct DnsServer {
    local_addr: SocketAddr,
    records: Records,
    tcp: Server<Answerer>,
    udp: JoinHandle<()>,
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds UDP (and TCP, same port) on `addr` (port 0 allowed: pick one; UDP port chosen
    /// first, TCP bound on the same port) and serves `records`.
    ///
    /// Must be called within a tokio runtime, which runs the server.
    pub async fn start(addr: SocketAddr, records: Records) -> Result<DnsServer, DnsError> {
        let (udp, tcp, local_addr) = bind(addr).await?;
        let answerer = Answerer::new(records.clone());
        let mut server = Server::new(answerer.clone());
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        debug!(%local_addr, "twin dns server started");
        Ok(DnsServer {
            local_addr,
            records,
            tcp: server,
            udp: tokio::spawn(udp::serve(udp, answerer)),
        })
    }

    /// The address the server listens on, UDP and TCP (with the chosen port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The table the server answers from: changes to it (or to any clone of it) are served at
    /// once.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// Stops the server and waits until its sockets are closed, so that the port is free when
    /// this returns; open connections are aborted.
    pub async fn shutdown(mut self) {
        self.udp.abort();
        // The loop never ends by itself, so it can only end aborted (or panicked, which was
        // already reported by the panic hook): nothing is lost by ignoring the join error.
        let _ = (&mut self.udp).await;
        // Only an unexpected end of the listener is an error, and the server is going away.
        if let Err(error) = self.tcp.shutdown_gracefully().await {
            debug!(local_addr = %self.local_addr, %error, "twin dns server stopped with an error");
        }
        debug!(local_addr = %self.local_addr, "twin dns server stopped");
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Dropping hickory-server's `Server` aborts its tasks, which closes the listener and the
        // open connections.
        self.udp.abort();
    }
}

/// Binds the UDP socket on `addr`, then the TCP listener on the port UDP got.
async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let attempts = if addr.port() == 0 { PORT_ATTEMPTS } else { 1 };
    let mut attempt = 1;
    loop {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind { addr, source })?;
        let local_addr = udp.local_addr().map_err(DnsError::LocalAddr)?;
        match TcpListener::bind(local_addr).await {
            Ok(tcp) => return Ok((udp, tcp, local_addr)),
            Err(source) if attempt < attempts && source.kind() == io::ErrorKind::AddrInUse => {
                debug!(%local_addr, "tcp port taken, trying another port");
                attempt += 1;
            }
            Err(source) => {
                return Err(DnsError::Bind {
                    addr: local_addr,
                    source,
                });
            }
        }
    }
}
