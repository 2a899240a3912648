//! The twin DNS: a small authoritative DNS server for the Service names of the twin.
//!
//! [`DnsServer::start`] binds a UDP socket and a TCP listener on the same port and answers
//! queries from a [`Records`] table, which can be changed while the server runs: every answer
//! carries a TTL of 0, so a client that resolves again sees a change at once.
//!
//! - `A` and `AAAA` queries for a known name get its IPv4 or IPv6 addresses;
//! - a known name with no address of the asked type, or a query of any other type for a known
//!   name, gets `NOERROR` with no answers (NODATA);
//! - an unknown name gets `NXDOMAIN`;
//! - a query of another class than `IN` gets `REFUSED`, another opcode than `QUERY` gets
//!   `NOTIMP`, a message with other than one question gets `FORMERR`;
//! - messages that cannot be decoded, and responses, are ignored (logged at debug level).
//!
//! Responses keep the id, echo the question, set `QR` and `AA`, copy `RD` and `CD` and leave
//! `RA` unset. A request with EDNS gets EDNS back. Over UDP a response larger than the client
//! can take (512 bytes, or its EDNS payload size) is sent truncated (`TC`), without records, so
//! that the client asks again over TCP. Over TCP messages are framed by a 2-byte length as in
//! RFC 1035 §4.2.2, and a connection may carry several of them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tracing::{debug, trace, warn};

/// The TTL of every answer: 0, so that no resolver caches it.
const TTL: u32 = 0;

/// The largest UDP payload this server takes and advertises in its EDNS record: the value of
/// the DNS flag day 2020, which avoids IP fragmentation.
const EDNS_PAYLOAD: u16 = 1232;

/// The size of a UDP response when the request has no EDNS record (RFC 1035 §4.2.1).
const UDP_PAYLOAD_WITHOUT_EDNS: u16 = 512;

/// The largest UDP response this server sends, whatever the client advertises.
const UDP_PAYLOAD_MAX: u16 = 4096;

/// How long a TCP connection may stay idle, or take to send a whole message, before it is closed.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the accept loop waits after an error (such as too many open files) before it accepts
/// again, so that a lasting error does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

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

/// The names the twin DNS answers, with their addresses.
///
/// A cheap handle: clones share the same table, so a test can keep one and change the answers
/// of a running [`DnsServer`]. Names are case-insensitive and a trailing dot is optional:
/// `Server.default.svc.cluster.local.` and `server.default.svc.cluster.local` are the same name.
/// Names are matched exactly: no search domains, no wildcards, so `server` and
/// `server.default.svc.cluster.local` are two entries.
#[derive(Clone, Debug, Default)]
pub struct Records {
    names: Arc<RwLock<HashMap<String, Vec<IpAddr>>>>,
}

impl Records {
    /// An empty table: every name is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the A/AAAA answers for `name` (e.g. "server" or
    /// "server.default.svc.cluster.local"); names are case-insensitive, a trailing dot is
    /// optional. An empty list makes the name exist with no addresses (NODATA).
    pub fn set(&self, name: &str, addrs: Vec<IpAddr>) {
        let key = key_of_str(name);
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, addrs);
    }

    /// Forgets `name`: it is unknown again (NXDOMAIN).
    pub fn remove(&self, name: &str) {
        let key = key_of_str(name);
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// The addresses of `name`, `None` if it is unknown.
    pub fn get(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.get_key(&key_of_str(name))
    }

    fn get_name(&self, name: &Name) -> Option<Vec<IpAddr>> {
        self.get_key(&key_of_name(name))
    }

    fn get_key(&self, key: &str) -> Option<Vec<IpAddr>> {
        // A writer that panicked cannot have left a half-written entry: the map is only ever
        // changed by single inserts and removes, so a poisoned lock is still consistent.
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}

/// The key of a name given as text: parsed as a DNS name where possible (so that escapes mean
/// what they mean in a query), else the lowercased text; without its trailing dot.
fn key_of_str(name: &str) -> String {
    match Name::from_ascii(name) {
        Ok(name) => key_of_name(&name),
        Err(_) => {
            let name = name.to_ascii_lowercase();
            match name.strip_suffix('.') {
                Some(stripped) => stripped.to_owned(),
                None => name,
            }
        }
    }
}

/// The key of a name from a query: lowercase ASCII, without the trailing dot.
fn key_of_name(name: &Name) -> String {
    let mut key = name.to_lowercase().to_ascii();
    if key.ends_with('.') {
        key.pop();
    }
    key
}

/// A running twin DNS server.
///
/// It serves UDP and TCP on [`local_addr`](Self::local_addr) from tokio tasks until it is dropped
/// (the tasks are aborted, which closes the sockets and the open connections) or shut down with
/// [`shutdown`](Self::shutdown), which also waits until the sockets are closed.
#[derive(Debug)]
pub struct DnsServer {
    local_addr: SocketAddr,
    records: Records,
    udp: JoinHandle<()>,
    tcp: JoinHandle<()>,
}

impl DnsServer {
    /// Binds UDP (and TCP, same port) on `addr` (port 0 allowed: pick one; UDP port chosen
    /// first, TCP bound on the same port) and serves `records`.
    ///
    /// Must be called within a tokio runtime, which runs the server.
    pub async fn start(addr: SocketAddr, records: Records) -> Result<DnsServer, DnsError> {
        let attempts = if addr.port() == 0 { PORT_ATTEMPTS } else { 1 };
        let mut attempt = 1;
        let (udp, tcp, local_addr) = loop {
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(|source| DnsError::Bind { addr, source })?;
            let local_addr = udp.local_addr().map_err(DnsError::LocalAddr)?;
            match TcpListener::bind(local_addr).await {
                Ok(tcp) => break (udp, tcp, local_addr),
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
        };
        debug!(%local_addr, "twin dns server started");
        Ok(DnsServer {
            local_addr,
            udp: tokio::spawn(serve_udp(udp, records.clone())),
            tcp: tokio::spawn(serve_tcp(tcp, records.clone())),
            records,
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

    /// Stops the server and waits until its sockets and connections are closed, so that the
    /// port is free when this returns.
    pub async fn shutdown(mut self) {
        self.udp.abort();
        self.tcp.abort();
        // Both tasks loop forever, so they can only end aborted (or panicked, which was already
        // reported by the panic hook): nothing is lost by ignoring the join error.
        let _ = (&mut self.udp).await;
        let _ = (&mut self.tcp).await;
        debug!(local_addr = %self.local_addr, "twin dns server stopped");
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.udp.abort();
        self.tcp.abort();
    }
}

/// Over which transport a message came, which bounds the size of the response.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Udp,
    Tcp,
}

async fn serve_udp(socket: UdpSocket, records: Records) {
    // Large enough for any datagram, so that none is cut and misread.
    let mut buf = vec![0; usize::from(u16::MAX)];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                // On Linux an ICMP error about an earlier response (the client went away) shows
                // up here as ECONNREFUSED: not a reason to stop serving.
                debug!(%error, "cannot receive a udp dns message");
                continue;
            }
        };
        let Some(response) = handle(&records, &buf[..len], peer, Transport::Udp) else {
            continue;
        };
        if let Err(error) = socket.send_to(&response, peer).await {
            debug!(%peer, %error, "cannot send a udp dns response");
        }
    }
}

async fn serve_tcp(listener: TcpListener, records: Records) {
    // The connections live in this set, owned by this task: aborting the task drops the set,
    // which aborts them, so no connection outlives the server.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    trace!(%peer, "tcp dns connection accepted");
                    connections.spawn(serve_tcp_connection(stream, peer, records.clone()));
                }
                Err(error) => {
                    debug!(%error, "cannot accept a tcp dns connection");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, peer: SocketAddr, records: Records) {
    loop {
        let mut len = [0; 2];
        match timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                if error.kind() != io::ErrorKind::UnexpectedEof {
                    debug!(%peer, %error, "cannot read from a tcp dns connection");
                }
                return;
            }
            Err(_) => {
                debug!(%peer, "closing an idle tcp dns connection");
                return;
            }
        }
        let mut message = vec![0; usize::from(u16::from_be_bytes(len))];
        match timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut message)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                debug!(%peer, %error, "cannot read a message from a tcp dns connection");
                return;
            }
            Err(_) => {
                debug!(%peer, "closing a tcp dns connection stuck in the middle of a message");
                return;
            }
        }
        let Some(response) = handle(&records, &message, peer, Transport::Tcp) else {
            continue;
        };
        // `encode` keeps a TCP response within u16::MAX bytes, so this does not fail.
        let Ok(len) = u16::try_from(response.len()) else {
            warn!(%peer, len = response.len(), "dropping a dns response too large for tcp");
            continue;
        };
        let mut framed = Vec::with_capacity(2 + response.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&response);
        if let Err(error) = stream.write_all(&framed).await {
            debug!(%peer, %error, "cannot write to a tcp dns connection");
            return;
        }
    }
}

/// The encoded response to one received message, `None` if it gets none.
fn handle(
    records: &Records,
    message: &[u8],
    peer: SocketAddr,
    transport: Transport,
) -> Option<Vec<u8>> {
    let request = match Message::from_vec(message) {
        Ok(request) => request,
        Err(error) => {
            debug!(%peer, ?transport, %error, "ignoring a malformed dns message");
            return None;
        }
    };
    let Some(response) = respond(records, &request) else {
        debug!(%peer, ?transport, id = request.metadata.id, "ignoring a dns message that is not a query");
        return None;
    };
    trace!(
        %peer,
        ?transport,
        id = request.metadata.id,
        question = ?request.queries.first(),
        response_code = %response.metadata.response_code,
        answers = response.answers.len(),
        "dns query answered"
    );
    let limit = match transport {
        Transport::Udp => request
            .edns
            .as_ref()
            .map_or(UDP_PAYLOAD_WITHOUT_EDNS, |edns| {
                edns.max_payload()
                    .clamp(UDP_PAYLOAD_WITHOUT_EDNS, UDP_PAYLOAD_MAX)
            }),
        Transport::Tcp => u16::MAX,
    };
    encode(&response, usize::from(limit))
}

/// The response to `request`, `None` for a message that is itself a response (answering it could
/// start a loop between two servers).
fn respond(records: &Records, request: &Message) -> Option<Message> {
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    // Copies the id, the opcode, RD and CD; leaves AA, TC and RA unset.
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.add_queries(request.queries.iter().cloned());
    if let Some(request_edns) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
        // RFC 6891 §6.1.3: this server only knows EDNS version 0.
        if request_edns.version() > 0 {
            response.metadata.response_code = ResponseCode::BADVERS;
            return Some(response);
        }
    }
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return Some(response);
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return Some(response);
    };
    if query.query_class() != DNSClass::IN {
        response.metadata.response_code = ResponseCode::Refused;
        return Some(response);
    }
    response.metadata.authoritative = true;
    let Some(addrs) = records.get_name(query.name()) else {
        response.metadata.response_code = ResponseCode::NXDomain;
        return Some(response);
    };
    // The owner name is the question's, as it was sent: a resolver that randomizes the case of
    // its questions (0x20) checks that it comes back unchanged.
    let name = query.name();
    let answers = addrs.into_iter().filter_map(|addr| {
        let data = match (query.query_type(), addr) {
            (RecordType::A, IpAddr::V4(v4)) => RData::A(A(v4)),
            (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
            _ => return None,
        };
        Some(Record::from_rdata(name.clone(), TTL, data))
    });
    response.add_answers(answers);
    Some(response)
}

/// `response` encoded within `limit` bytes: truncated (TC, records dropped) if it does not fit,
/// a SERVFAIL if it cannot be encoded, `None` if even that fails.
fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let encoded = match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => return Some(bytes),
        Ok(bytes) => {
            trace!(
                id = response.metadata.id,
                len = bytes.len(),
                limit,
                "dns response truncated"
            );
            let mut truncated = without_records(response);
            truncated.metadata.truncation = true;
            truncated.to_vec()
        }
        Err(error) => {
            warn!(id = response.metadata.id, %error, "cannot encode a dns response");
            let mut failure = without_records(response);
            failure.metadata.authoritative = false;
            failure.metadata.response_code = ResponseCode::ServFail;
            failure.to_vec()
        }
    };
    match encoded {
        Ok(bytes) if bytes.len() <= limit => Some(bytes),
        Ok(bytes) => {
            warn!(
                id = response.metadata.id,
                len = bytes.len(),
                limit,
                "dropping a dns response whose question alone is too large"
            );
            None
        }
        Err(error) => {
            warn!(id = response.metadata.id, %error, "cannot encode a dns response");
            None
        }
    }
}

/// A copy of `response` with its header, question and EDNS record but no other record.
fn without_records(response: &Message) -> Message {
    let mut bare = Message::response(response.metadata.id, response.metadata.op_code);
    bare.metadata = response.metadata;
    bare.add_queries(response.queries.iter().cloned());
    if let Some(edns) = &response.edns {
        bare.set_edns(edns.clone());
    }
    bare
}
