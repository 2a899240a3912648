//! Interop with gRPC peers we did not write: grpc-core (Python's grpcio) as the client of
//! `hello-server` and as the servers of `hello-client`, real processes on loopback addresses.
//! Every other test pairs our client with our server, so a misunderstanding of HTTP/2 or gRPC
//! that both shared would pass there; here the other side is gRPC's C core.
//!
//! The Python side (`tests/interop/peer.py`) runs in an environment the suite makes itself
//! (`tests/interop/python.rs`); each of its commands prints JSON, so the cases assert counts and
//! codes rather than log text.

mod common;

// Inside this inline module, `mod x;` is looked for at `tests/interop/x.rs`.
mod interop {
    mod grpcio_client;
    mod grpcio_servers;
    mod peer;
    mod python;
}
