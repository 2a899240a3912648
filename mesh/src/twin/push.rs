//! When the control plane pushes: istiod's debounce, or at once.
//!
//! istiod does not push each event as it comes. Its `debounce` (`pilot/pkg/xds/discovery.go`,
//! release-1.30) merges events and pushes once none came for `PILOT_DEBOUNCE_AFTER` (100ms), or
//! `PILOT_DEBOUNCE_MAX` (10s) after the first of them if they keep coming
//! (`pilot/pkg/features/tuning.go`). Endpoint events are debounced too (`PILOT_ENABLE_EDS_DEBOUNCE`,
//! default true). The [`Pusher`] does the same with the twin's events: each carries the complete
//! configuration of every Envoy (a push computes from the current state, so the latest event
//! supersedes the others), and a push sets them on the control plane.

use std::{collections::BTreeMap, time::Duration};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use crate::{translate::Resources, xds::ControlPlane};

/// `PILOT_DEBOUNCE_AFTER`'s default.
pub const ISTIO_DEBOUNCE_AFTER: Duration = Duration::from_millis(100);
/// `PILOT_DEBOUNCE_MAX`'s default.
pub const ISTIO_DEBOUNCE_MAX: Duration = Duration::from_secs(10);

/// When a change reaches the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTiming {
    /// As istiod: once no change came for `after`, or `max` after the first change.
    Debounced { after: Duration, max: Duration },
    /// Every change at once: the raw push, without istiod's debounce.
    Immediate,
}

impl PushTiming {
    /// istiod's defaults.
    pub const ISTIO: PushTiming = PushTiming::Debounced {
        after: ISTIO_DEBOUNCE_AFTER,
        max: ISTIO_DEBOUNCE_MAX,
    };

    /// The longest a change can wait before it is pushed.
    pub fn longest_wait(&self) -> Duration {
        match self {
            PushTiming::Debounced { max, .. } => *max,
            PushTiming::Immediate => Duration::ZERO,
        }
    }
}

impl Default for PushTiming {
    fn default() -> PushTiming {
        PushTiming::ISTIO
    }
}

/// The configuration of every Envoy (node id, resources).
pub type Configs = Vec<(String, Resources)>;

/// What has been pushed: up to which event, and the version each node got.
#[derive(Debug, Clone, Default)]
pub struct Pushed {
    pub event: u64,
    pub versions: BTreeMap<String, u64>,
}

struct Event {
    id: u64,
    configs: Configs,
    timing: PushTiming,
}

/// Events in, pushes out; the task stops when the pusher is dropped.
pub struct Pusher {
    tx: mpsc::UnboundedSender<Event>,
    pushed: watch::Receiver<Pushed>,
    last_event: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Pusher {
    pub fn new(cp: ControlPlane) -> Pusher {
        let (tx, rx) = mpsc::unbounded_channel();
        let (pushed_tx, pushed) = watch::channel(Pushed::default());
        let task = tokio::spawn(run(cp, rx, pushed_tx));
        Pusher {
            tx,
            pushed,
            last_event: 0,
            task,
        }
    }

    /// Hands over a change; returns its event number.
    pub fn event(&mut self, configs: Configs, timing: PushTiming) -> u64 {
        self.last_event += 1;
        // The task lives as long as the pusher: sending cannot fail.
        let _ = self.tx.send(Event {
            id: self.last_event,
            configs,
            timing,
        });
        self.last_event
    }

    /// Waits until every event handed over so far has been pushed (at most `limit`); returns the
    /// versions the nodes got.
    pub async fn pushed(&self, limit: Duration) -> Option<Pushed> {
        let mut rx = self.pushed.clone();
        let last = self.last_event;
        let wait = rx.wait_for(|p| p.event >= last);
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(p)) => Some(p.clone()),
            _ => None,
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    cp: ControlPlane,
    mut rx: mpsc::UnboundedReceiver<Event>,
    pushed: watch::Sender<Pushed>,
) {
    let push = |id: u64, configs: Configs| {
        pushed.send_modify(|p| {
            for (node, resources) in configs {
                let version = cp.set(&node, resources);
                p.versions.insert(node, version);
            }
            p.event = id;
        });
    };
    // The merged events not pushed yet: the latest one, when the first came, when the last came.
    let mut pending: Option<(Event, Instant, Instant)> = None;
    loop {
        let timer = pending
            .as_ref()
            .and_then(|(e, first, last)| match e.timing {
                PushTiming::Debounced { after, max } => Some((*last + after).min(*first + max)),
                PushTiming::Immediate => None,
            });
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                let now = Instant::now();
                match event.timing {
                    PushTiming::Immediate => {
                        pending = None;
                        push(event.id, event.configs);
                    }
                    PushTiming::Debounced { .. } => {
                        let first = pending.as_ref().map_or(now, |(_, first, _)| *first);
                        pending = Some((event, first, now));
                    }
                }
            }
            () = sleep_until(timer), if timer.is_some() => {
                if let Some((event, _, _)) = pending.take() {
                    push(event.id, event.configs);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(n: usize) -> Configs {
        vec![(
            "node".to_owned(),
            Resources {
                listeners: vec![Default::default(); n],
                ..Default::default()
            },
        )]
    }

    const AFTER: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(600);
    const TIMING: PushTiming = PushTiming::Debounced {
        after: AFTER,
        max: MAX,
    };
    /// Far more than any push takes: only a hung pusher reaches it.
    const LIMIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn events_close_together_are_merged_into_one_push_after_a_quiet_period() {
        let cp = ControlPlane::new();
        let mut pusher = Pusher::new(cp.clone());
        pusher.event(configs(1), TIMING);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let last = Instant::now();
        pusher.event(configs(2), TIMING);
        let pushed = pusher.pushed(LIMIT).await.unwrap();
        assert!(last.elapsed() >= AFTER, "not before a quiet period");
        assert_eq!(pushed.event, 2);
        assert_eq!(pushed.versions["node"], 1, "one push");
        assert_eq!(
            cp.snapshot("node").resources.listeners.len(),
            2,
            "of the latest"
        );
    }

    #[tokio::test]
    async fn events_that_keep_coming_are_pushed_once_the_maximum_has_passed() {
        let cp = ControlPlane::new();
        let mut pusher = Pusher::new(cp.clone());
        let first = Instant::now();
        let mut n = 0;
        let pushed_at = loop {
            n += 1;
            pusher.event(configs(n), TIMING);
            tokio::time::sleep(AFTER / 4).await;
            if cp.snapshot("node").version > 0 {
                break first.elapsed();
            }
            assert!(first.elapsed() < LIMIT, "never pushed");
        };
        assert!(
            pushed_at >= MAX,
            "pushed after {pushed_at:?}, before the maximum"
        );
    }

    #[tokio::test]
    async fn an_immediate_event_is_pushed_at_once_and_replaces_a_pending_one() {
        let cp = ControlPlane::new();
        let mut pusher = Pusher::new(cp.clone());
        pusher.event(configs(1), TIMING);
        let sent = Instant::now();
        pusher.event(configs(3), PushTiming::Immediate);
        let pushed = pusher.pushed(LIMIT).await.unwrap();
        assert!(sent.elapsed() < AFTER, "no debounce");
        assert_eq!(pushed.versions["node"], 1);
        tokio::time::sleep(MAX + AFTER).await;
        assert_eq!(
            cp.snapshot("node").version,
            1,
            "the older event is never pushed"
        );
        assert_eq!(cp.snapshot("node").resources.listeners.len(), 3);
    }
}
