//! Figure 4: how long a weight change takes from our control plane to the client's RPCs.
//!
//! A client inside the bench (hello-proto's generated client on a tonic channel to the sidecar,
//! with the `:authority` the apps send, `server:50051`) keeps [`LOOPS`] RPCs in flight and notes
//! when each reply came and which version sent it. The weights of the route of `server` then
//! cycle 100/0 → 0/100 → 50/50 → 100/0, each change pushed through the twin (`Twin::set_routes`).
//! Times count from just before the push (not from Envoy's ACK) to a reply:
//!
//! - first: the first reply from a version that had weight 0 before the change (so 100/0 → 0/100
//!   and 0/100 → 50/50 have one; 50/50 → 100/0 has none);
//! - settled: the first reply from which on the next [`WINDOW`] replies hold the new split within
//!   ±5 points. It counts from the first reply of the new version where there is one (the split
//!   cannot hold before the change reached Envoy), else from the reply after the last one of the
//!   version that lost its weight. A window of 400 holds a true 50/50 split within ±5 points 19
//!   times in 20 (200 would miss one time in seven), so noise rarely delays the figure.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use hello_proto::{GreeterClient, HelloRequest};
use mesh::twin::Twin;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// RPCs the bench's own client keeps in flight.
pub const LOOPS: usize = 2;
/// Replies over which a split must hold.
pub const WINDOW: usize = 400;
/// How far from its weight a version's share may be, in share points.
pub const TOLERANCE: f64 = 0.05;
/// How long a change may take to settle before the bench gives up.
const SETTLE_DEADLINE: Duration = Duration::from_secs(5);
/// How long the client may take to get going.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How often the replies are looked at while a change settles.
const POLL: Duration = Duration::from_millis(20);
/// The deadline of each RPC.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// The authority hello-client sends for its target `server:50051`.
const AUTHORITY: &str = "http://server:50051";

/// The weights of server-v1 and server-v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub v1: u32,
    pub v2: u32,
}

/// Where every cycle starts and ends.
pub const START: Weights = Weights { v1: 100, v2: 0 };
/// The changes of one cycle, from [`START`].
pub const CYCLE: [Weights; 3] = [
    Weights { v1: 0, v2: 100 },
    Weights { v1: 50, v2: 50 },
    START,
];

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.v1, self.v2)
    }
}

/// One reply: when it came, and whether server-v2 sent it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    v2: bool,
}

/// What one change took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub first: Option<Duration>,
    pub settled: Duration,
}

/// Every change's outcome, in order.
#[derive(Debug, Clone, Default)]
pub struct Propagation {
    pub changes: Vec<(Weights, Weights, Outcome)>,
    /// The replies the bench's client got, and over how long.
    pub rpcs: u64,
    pub elapsed: Duration,
}

impl Propagation {
    pub fn firsts_ms(&self) -> Vec<f64> {
        self.changes
            .iter()
            .filter_map(|(_, _, o)| o.first)
            .map(ms)
            .collect()
    }

    pub fn settled_ms(&self) -> Vec<f64> {
        self.changes.iter().map(|(_, _, o)| ms(o.settled)).collect()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The replies of the bench's client, gathered by its loops.
#[derive(Default)]
struct Shared {
    samples: Mutex<Vec<Sample>>,
    replies: AtomicU64,
    failures: AtomicU64,
    last_failure: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn samples(&self) -> std::sync::MutexGuard<'_, Vec<Sample>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sets the weights of every route in force (the twin's route of `server`) and pushes them.
async fn push(twin: &mut Twin, to: Weights) -> Result<()> {
    let weights = [("server-v1", to.v1), ("server-v2", to.v2)];
    let routes = twin.routes().with_weights(&weights)?;
    twin.set_routes(routes)
        .await
        .with_context(|| format!("cannot set the weights {to}"))?;
    Ok(())
}

/// Runs `cycles` cycles of changes; the route must be at [`START`] when it begins.
pub async fn measure(twin: &mut Twin, sidecar: SocketAddr, cycles: usize) -> Result<Propagation> {
    let channel = Endpoint::from_shared(format!("http://{sidecar}"))
        .context("invalid sidecar address")?
        .origin(AUTHORITY.parse().context("invalid authority")?)
        .tcp_nodelay(true)
        .timeout(RPC_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the sidecar at {sidecar}"))?;
    let shared = Arc::new(Shared::default());
    let loops: Vec<_> = (0..LOOPS)
        .map(|i| tokio::spawn(rpc_loop(channel.clone(), shared.clone(), i)))
        .collect();
    let result = changes(twin, &shared, cycles).await;
    shared.stop.store(true, Ordering::Relaxed);
    for task in loops {
        let _ = task.await;
    }
    result
}

async fn changes(twin: &mut Twin, shared: &Shared, cycles: usize) -> Result<Propagation> {
    // The client must be under way before the first change.
    let started = Instant::now();
    while shared.replies.load(Ordering::Relaxed) < WINDOW as u64 {
        check_failures(shared)?;
        if started.elapsed() > START_DEADLINE {
            bail!(
                "the bench's own client got fewer than {WINDOW} replies through the sidecar in {}s",
                START_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let replies_before = shared.replies.load(Ordering::Relaxed);
    let begun = Instant::now();
    let mut out = Propagation::default();
    let mut from = START;
    for _ in 0..cycles {
        for to in CYCLE {
            shared.samples().clear();
            let pushed = Instant::now();
            push(twin, to).await?;
            let outcome = loop {
                check_failures(shared)?;
                let mut samples: Vec<Sample> = shared
                    .samples()
                    .iter()
                    .copied()
                    .filter(|s| s.at >= pushed)
                    .collect();
                samples.sort_by_key(|s| s.at);
                if let Some(outcome) = analyse(&samples, pushed, from, to) {
                    break outcome;
                }
                if pushed.elapsed() > SETTLE_DEADLINE {
                    bail!(
                        "the weights {from} → {to} did not hold within ±{}% over {WINDOW} rpcs within {}s of the change",
                        TOLERANCE * 100.0,
                        SETTLE_DEADLINE.as_secs()
                    );
                }
                tokio::time::sleep(POLL).await;
            };
            crate::output::progress(&format!(
                "  {from} → {to}: {}settled in {:.1} ms",
                outcome
                    .first
                    .map_or(String::new(), |f| format!("first rpc in {:.1} ms, ", ms(f))),
                ms(outcome.settled)
            ));
            out.changes.push((from, to, outcome));
            from = to;
        }
    }
    out.rpcs = shared.replies.load(Ordering::Relaxed) - replies_before;
    out.elapsed = begun.elapsed();
    Ok(out)
}

fn check_failures(shared: &Shared) -> Result<()> {
    let failures = shared.failures.load(Ordering::Relaxed);
    if failures > 0 {
        let last = shared
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        bail!("{failures} rpcs of the bench's own client failed through the sidecar: {last}");
    }
    Ok(())
}

async fn rpc_loop(channel: Channel, shared: Arc<Shared>, id: usize) {
    let mut client = GreeterClient::new(channel);
    let client_id = format!("bench-propagation-{id}");
    let mut counter = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        counter += 1;
        let reply = client
            .say_hello(HelloRequest {
                client_id: client_id.clone(),
                counter,
            })
            .await;
        let at = Instant::now();
        match reply {
            Ok(reply) => {
                let v2 = reply.get_ref().server_version == "v2";
                shared.samples().push(Sample { at, v2 });
                shared.replies.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                *shared
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }
}

/// The outcome of a change from the replies since it was pushed, in order; `None` while they do
/// not tell yet. See the module documentation.
fn analyse(samples: &[Sample], pushed: Instant, from: Weights, to: Weights) -> Option<Outcome> {
    let total = f64::from(to.v1 + to.v2);
    let target = f64::from(to.v2) / total;
    // Which version gained its first traffic, or lost all of it (true: v2).
    let appearing = if from.v2 == 0 && to.v2 > 0 {
        Some(true)
    } else if from.v1 == 0 && to.v1 > 0 {
        Some(false)
    } else {
        None
    };
    let disappearing = if from.v2 > 0 && to.v2 == 0 {
        Some(true)
    } else if from.v1 > 0 && to.v1 == 0 {
        Some(false)
    } else {
        None
    };
    let start = match (appearing, disappearing) {
        (Some(v2), _) => samples.iter().position(|s| s.v2 == v2)?,
        (None, Some(v2)) => samples
            .iter()
            .rposition(|s| s.v2 == v2)
            .map_or(0, |i| i + 1),
        (None, None) => 0,
    };
    let first = appearing.map(|_| samples[start].at - pushed);
    if samples.len() < start + WINDOW {
        return None;
    }
    let mut v2s = samples[start..start + WINDOW]
        .iter()
        .filter(|s| s.v2)
        .count();
    for k in start..=samples.len() - WINDOW {
        if k > start {
            v2s = v2s - usize::from(samples[k - 1].v2) + usize::from(samples[k + WINDOW - 1].v2);
        }
        let share = v2s as f64 / WINDOW as f64;
        if (share - target).abs() <= TOLERANCE + 1e-9 {
            return Some(Outcome {
                first,
                settled: samples[k].at - pushed,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies 1 ms apart from `pushed`, v2 where `v2(i)` says.
    fn replies(pushed: Instant, n: usize, v2: impl Fn(usize) -> bool) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                at: pushed + Duration::from_millis(i as u64 + 1),
                v2: v2(i),
            })
            .collect()
    }

    const FLIP: (Weights, Weights) = (START, Weights { v1: 0, v2: 100 });
    const SPLIT: (Weights, Weights) = (Weights { v1: 0, v2: 100 }, Weights { v1: 50, v2: 50 });
    const BACK: (Weights, Weights) = (Weights { v1: 50, v2: 50 }, START);

    #[test]
    fn a_flip_settles_with_its_first_reply_of_the_new_version() {
        let t0 = Instant::now();
        let s = replies(t0, 30 + WINDOW, |i| i >= 30);
        let o = analyse(&s, t0, FLIP.0, FLIP.1).unwrap();
        assert_eq!(o.first, Some(Duration::from_millis(31)));
        assert_eq!(o.settled, Duration::from_millis(31));
    }

    #[test]
    fn nothing_is_told_before_a_whole_window_of_replies_has_come() {
        let t0 = Instant::now();
        let s = replies(t0, 30 + WINDOW - 1, |i| i >= 30);
        assert_eq!(analyse(&s, t0, FLIP.0, FLIP.1), None);
        assert_eq!(
            analyse(&replies(t0, 1000, |_| false), t0, FLIP.0, FLIP.1),
            None
        );
    }

    #[test]
    fn a_split_settles_once_the_window_ahead_holds_it_within_five_points() {
        let t0 = Instant::now();
        // v2 only for 20 replies, then v1 every third reply (33%), then every other reply (50%).
        let s = replies(t0, 20 + 300 + 2 * WINDOW, |i| match i {
            0..20 => true,
            20..320 => i % 3 != 0,
            _ => i % 2 == 0,
        });
        let o = analyse(&s, t0, SPLIT.0, SPLIT.1).unwrap();
        // The first v1 reply is i = 21; the window ahead holds 45-55% once about 280 of its 400
        // replies are past 320 (i near 200), not before.
        assert_eq!(o.first, Some(Duration::from_millis(22)));
        let settled = o.settled.as_millis();
        assert!((190..=321).contains(&settled), "{settled}");
    }

    #[test]
    fn a_version_that_loses_its_weight_settles_after_its_last_reply() {
        let t0 = Instant::now();
        let s = replies(t0, 10 + WINDOW, |i| i < 10 && i % 2 == 0);
        let o = analyse(&s, t0, BACK.0, BACK.1).unwrap();
        assert_eq!(o.first, None);
        // The last v2 reply is i = 8: settled with the one after it.
        assert_eq!(o.settled, Duration::from_millis(10));
    }

    #[test]
    fn the_cycle_ends_where_it_starts_and_every_change_moves() {
        assert_eq!(CYCLE[CYCLE.len() - 1], START);
        let mut from = START;
        for to in CYCLE {
            assert_ne!(from, to);
            from = to;
        }
    }
}
