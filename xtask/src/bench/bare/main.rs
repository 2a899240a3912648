//! `bench-bare-server`: the yardstick of `cargo xtask bench`'s server figure. A bare tonic server
//! for `hello.v1.Greeter` (the same proto as hello-server, from `hello-proto`): tonic's own
//! `Server` with its defaults and a trivial reply; no health, reflection, metrics, logging or
//! connection ages.
//!
//! This file is not a module of xtask: the bench writes it into a crate of its own under the
//! target directory and builds that with the apps' profile (see `xtask/src/bench/bare.rs`), so
//! that it is optimised as hello-server is.
//!
//! Usage: `bench-bare-server ADDR_FILE [LISTEN]`: listens on LISTEN (default `127.0.0.1:0`),
//! writes the address it got into ADDR_FILE, and serves until SIGTERM or SIGINT.

use std::process::ExitCode;

use hello_proto::{Greeter, GreeterServer, HelloReply, HelloRequest};
use tokio::signal::unix::{SignalKind, signal};
use tonic::{
    Request, Response, Status,
    transport::{Server, server::TcpIncoming},
};

/// The id and version in every reply.
const ID: &str = "bare";

struct Bare;

fn reply(req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    let HelloRequest { client_id, counter } = req.into_inner();
    Ok(Response::new(HelloReply {
        message: format!("{ID}: Hello {client_id}_{counter}"),
        server_id: ID.to_owned(),
        server_version: ID.to_owned(),
        server_addr: String::new(),
    }))
}

#[tonic::async_trait]
impl Greeter for Bare {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        reply(req)
    }

    async fn say_hello_again(
        &self,
        req: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        reply(req)
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("bench-bare-server: error: {message}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(addr_file) = args.next() else {
        eprintln!("usage: bench-bare-server ADDR_FILE [LISTEN]");
        return ExitCode::from(2);
    };
    let listen = args.next().map_or_else(
        || "127.0.0.1:0".to_owned(),
        |a| a.to_string_lossy().into_owned(),
    );
    let Ok(listen) = listen.parse() else {
        return fail(format!("invalid listen address {listen:?}"));
    };
    let incoming = match TcpIncoming::bind(listen) {
        Ok(incoming) => incoming.with_nodelay(Some(true)),
        Err(err) => return fail(format!("cannot listen on {listen}: {err}")),
    };
    let addr = match incoming.local_addr() {
        Ok(addr) => addr,
        Err(err) => return fail(format!("cannot read the listen address: {err}")),
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return fail("cannot handle SIGTERM and SIGINT".to_owned());
    };
    // Written whole, then renamed: a reader never sees half an address.
    let partial = std::path::PathBuf::from(format!("{}.partial", addr_file.to_string_lossy()));
    if let Err(err) = std::fs::write(&partial, addr.to_string())
        .and_then(|()| std::fs::rename(&partial, &addr_file))
    {
        return fail(format!(
            "cannot write {}: {err}",
            addr_file.to_string_lossy()
        ));
    }
    let stopped = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    match Server::builder()
        .add_service(GreeterServer::new(Bare))
        .serve_with_incoming_shutdown(incoming, stopped)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(format!("serving failed: {err}")),
    }
}
