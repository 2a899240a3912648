//! `hello.v1.Greeter`: each reply names the server that handled it.

use std::{net::SocketAddr, time::Duration};

use hello_proto::{HelloReply, HelloRequest};
use tonic::{Request, Response, Status};

use super::metrics::Metrics;

/// The addresses of the connection a request arrived on; put into each request by the
/// connection loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnAddrs {
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

pub struct Greeter {
    pub server_id: String,
    pub version: String,
    pub response_delay: Duration,
    pub metrics: Metrics,
}

impl Greeter {
    async fn answer(
        &self,
        method: &'static str,
        req: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let guard = self.metrics.rpc_started(method);
        let conn = req.extensions().get::<ConnAddrs>().copied();
        let HelloRequest { client_id, counter } = req.into_inner();
        tracing::info!(
            method,
            client = %client_id,
            counter,
            peer = %conn.map_or("-".to_owned(), |c| c.peer.to_string()),
            "received"
        );
        if !self.response_delay.is_zero() {
            tokio::time::sleep(self.response_delay).await;
        }
        guard.finish(tonic::Code::Ok);
        Ok(Response::new(HelloReply {
            message: format!("{}: Hello {client_id}_{counter}", self.server_id),
            server_id: self.server_id.clone(),
            server_version: self.version.clone(),
            server_addr: conn.map_or_else(String::new, |c| c.local.to_string()),
        }))
    }
}

#[tonic::async_trait]
impl hello_proto::Greeter for Greeter {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        self.answer("SayHello", req).await
    }

    async fn say_hello_again(
        &self,
        req: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.answer("SayHelloAgain", req).await
    }
}
