//! `grpc.health.v1.Health`, written here so that a draining server can end its Watch streams:
//! each watcher sees NOT_SERVING, then its stream ends, and the connection can drain.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
};

/// What the server reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Serving,
    /// Shutting down: reported as NOT_SERVING, and watch streams end.
    Draining,
}

/// Sets the state; held by the server's main loop.
#[derive(Clone)]
pub struct Reporter(watch::Sender<State>);

impl Reporter {
    pub fn set(&self, state: State) {
        self.0.send_replace(state);
    }
}

pub struct HealthService {
    state: watch::Receiver<State>,
}

/// A health service and the handle that drives it.
pub fn new() -> (Reporter, HealthService) {
    let (tx, rx) = watch::channel(State::Serving);
    (Reporter(tx), HealthService { state: rx })
}

/// The services this server knows: the whole server ("") and the Greeter.
fn known(service: &str) -> bool {
    service.is_empty() || service == hello_proto::GREETER_SERVICE
}

fn response(state: State) -> HealthCheckResponse {
    let status = match state {
        State::Serving => ServingStatus::Serving,
        State::Draining => ServingStatus::NotServing,
    };
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for HealthService {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = req.into_inner().service;
        if !known(&service) {
            return Err(Status::not_found(format!("unknown service {service:?}")));
        }
        Ok(Response::new(response(*self.state.borrow())))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = req.into_inner().service;
        let mut state = self.state.clone();
        let stream = async_stream(move |tx| async move {
            if !known(&service) {
                let unknown = HealthCheckResponse {
                    status: ServingStatus::ServiceUnknown as i32,
                };
                let _ = tx.send(Ok(unknown)).await;
                return;
            }
            loop {
                let now = *state.borrow_and_update();
                if tx.send(Ok(response(now))).await.is_err() || now == State::Draining {
                    return;
                }
                if state.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a small channel.
fn async_stream<F, Fut>(
    f: F,
) -> Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<HealthCheckResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
