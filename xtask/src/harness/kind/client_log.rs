//! The client's JSON summaries on the cluster: read from its pod's logs, following the Deployment's
//! current pod across restarts, counting only what was written after the phase's changes were in place.

use std::{collections::BTreeMap, time::Duration};

use futures::StreamExt as _;
use hello_apps::client::{Summary, SummaryKind};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, watch};

use super::ops::Ops;
use crate::cluster::objects;

/// Stops following the client's logs when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One line of a followed log: its timestamp (the kubelet's prefix) and the rest.
pub(super) fn split_timestamp(line: &str) -> Option<(Timestamp, &str)> {
    let (time, rest) = line.split_once(' ')?;
    Some((time.parse().ok()?, rest))
}

/// Follows the logs of the client pod named in `current`, forwarding its summaries in order. A summary
/// counts only if its whole interval (`window` before its timestamp) is after `counting_from`. When the
/// stream ends (the pod stopped, or the API server closed it), follows the current pod again; a pod
/// followed again resumes after the last summary it gave.
pub(super) async fn follow_client<O: Ops>(
    ops: O,
    namespace: String,
    mut current: watch::Receiver<Option<String>>,
    counting_from: watch::Receiver<Option<Timestamp>>,
    window: Duration,
    tx: mpsc::UnboundedSender<Summary>,
    retry: Duration,
) {
    let window = SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX);
    let mut last_t: BTreeMap<String, f64> = BTreeMap::new();
    'follow: loop {
        let Some(pod) = current.borrow_and_update().clone() else {
            if current.changed().await.is_err() {
                return;
            }
            continue;
        };
        match ops
            .follow_logs(&namespace, &pod, objects::CLIENT_CONTAINER)
            .await
        {
            Ok(mut lines) => loop {
                // A change of pod first (and the same order every time, so a dry run's steps are too).
                tokio::select! {
                    biased;
                    changed = current.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        // Another pod: follow it at once.
                        continue 'follow;
                    }
                    line = lines.next() => {
                        let Some(Ok(line)) = line else { break };
                        let Some((written, text)) = split_timestamp(&line) else { continue };
                        // The container's log holds its stderr too: only summaries count.
                        let Ok(summary) = serde_json::from_str::<Summary>(text) else { continue };
                        let last = last_t.entry(pod.clone()).or_insert(f64::NEG_INFINITY);
                        if summary.kind != SummaryKind::Summary || summary.t <= *last {
                            continue;
                        }
                        *last = summary.t;
                        let counts = counting_from
                            .borrow()
                            .is_none_or(|from| written.duration_since(from) >= window);
                        if counts && tx.send(summary).is_err() {
                            return;
                        }
                    }
                }
            },
            Err(err) => eprintln!("warning: {err:#}; trying again"),
        }
        if tx.is_closed() {
            return;
        }
        // The stream ended or could not start: the pod may be restarting.
        tokio::time::sleep(retry).await;
    }
}
