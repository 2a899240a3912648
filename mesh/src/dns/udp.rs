//! The UDP side of the twin DNS, which stays silent on a message it cannot decode.
//!
//! hickory-server's own UDP loop answers `FORMERR` to a datagram whose 12-byte header decodes
//! but whose body does not (even one marked as a response); this server has always ignored such
//! datagrams, and `mesh/tests/dns.rs` pins it. So this loop is ours, and it is all that is: the
//! datagrams are read and written by hickory's `UdpStream`, decoded by hickory-server's
//! [`Request`], answered by the same [`Answerer`] as TCP, and encoded (within the size the
//! client can take) by hickory-server's [`ResponseHandle`].

use std::net::{Ipv4Addr, SocketAddr};

use futures::StreamExt;
use hickory_server::net::runtime::{TokioRuntimeProvider, TokioTime};
use hickory_server::net::udp::UdpStream;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::MessageType;
use hickory_server::server::{Request, RequestHandler, ResponseHandle};
use tokio::net::UdpSocket;
use tracing::debug;

use super::answer::Answerer;

/// Answers the queries that come to `socket`, one after the other, until the task is aborted.
pub(super) async fn serve(socket: UdpSocket, answerer: Answerer) {
    // Every response is addressed to the peer of its request; the stream's own remote address
    // is never used.
    let unused = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let (mut datagrams, sender) = UdpStream::<TokioRuntimeProvider>::with_bound(socket, unused);
    // The stream sends the queued responses each time it is polled for the next datagram.
    while let Some(datagram) = datagrams.next().await {
        let (bytes, peer) = match datagram {
            Ok(datagram) => datagram.into_parts(),
            Err(error) => {
                // On Linux an ICMP error about an earlier response (the client went away) shows
                // up here as ECONNREFUSED: not a reason to stop serving.
                debug!(%error, "cannot receive a udp dns message");
                continue;
            }
        };
        let request = match Request::from_bytes(bytes, peer, Protocol::Udp) {
            Ok(request) => request,
            Err(error) => {
                debug!(%peer, %error, "ignoring a malformed dns message");
                continue;
            }
        };
        // Answering a response could start a loop between two servers.
        if request.metadata.message_type == MessageType::Response {
            debug!(%peer, id = request.metadata.id, "ignoring a dns message that is not a query");
            continue;
        }
        let response = ResponseHandle::new(peer, sender.with_remote_addr(peer), Protocol::Udp);
        answerer
            .handle_request::<_, TokioTime>(&request, response)
            .await;
    }
}
