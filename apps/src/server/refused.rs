//! Requests that HTTP/2 refuses before they reach the server, said in our own log.
//!
//! The `h2` crate checks a request's pseudo-headers before hyper or tonic see it; a value it
//! cannot parse (an `:authority` with more than one colon, as grpc-core sends for a multi-address
//! `ipv4:a:p,b:p` target) resets the stream with PROTOCOL_ERROR, and the client sees INTERNAL.
//! h2 says so only at debug level. This layer listens for those events and logs one warning per
//! distinct refusal, with the fix when it is the authority.

use std::{
    collections::HashSet,
    fmt,
    sync::{Mutex, PoisonError},
};

use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    Layer,
    filter::{FilterFn, Filtered, filter_fn},
    layer::Context,
};

/// Where h2 logs a refused request.
const H2_SERVER: &str = "h2::server";
/// How h2 begins the message of a refused request.
const MALFORMED: &str = "malformed headers: ";
/// At most this many distinct refusals are logged; a client that makes up new ones forever
/// does not fill the log.
const MAX_DISTINCT: usize = 32;

/// A filter of events by their metadata alone.
type ByMetadata = FilterFn<fn(&Metadata<'_>) -> bool>;

/// The layer, with the filter that lets only h2's server events through.
pub fn layer<S>() -> Filtered<RefusedRequests, ByMetadata, S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let only_h2: fn(&Metadata<'_>) -> bool =
        |meta| meta.target() == H2_SERVER && *meta.level() <= Level::DEBUG;
    RefusedRequests::default().with_filter(filter_fn(only_h2))
}

#[derive(Default)]
pub struct RefusedRequests {
    seen: Mutex<HashSet<String>>,
}

impl RefusedRequests {
    /// True the first time `what` is seen (and while fewer than [`MAX_DISTINCT`] were).
    fn first_time(&self, what: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.len() < MAX_DISTINCT && seen.insert(what.to_owned())
    }
}

impl<S: Subscriber> Layer<S> for RefusedRequests {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let Some(what) = message.0.strip_prefix(MALFORMED) else {
            return;
        };
        if !self.first_time(what) {
            return;
        }
        if what.starts_with("malformed authority") {
            tracing::warn!(
                "rejected a request before it reached the server, HTTP/2 PROTOCOL_ERROR (the \
                 client sees INTERNAL): {what}; a grpc-core client given several addresses \
                 (ipv4:a:p,b:p) sends them all as :authority: set grpc.default_authority or \
                 use a DNS name"
            );
        } else {
            tracing::warn!(
                "rejected a request before it reached the server, HTTP/2 PROTOCOL_ERROR (the \
                 client sees INTERNAL): {what}"
            );
        }
    }
}

/// The `message` field of an event.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
