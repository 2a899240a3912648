//! The kubelet's timing, as far as the twin's pods need it: when a container's death and start are
//! noticed, and how long a container that died waits before it is started again.
//!
//! - The kubelet notices a container's state change at its next relist of the runtime's
//!   containers (the generic PLEG), every `genericPlegRelistPeriod` = 1s
//!   (`pkg/kubelet/kubelet.go`; the evented PLEG is off by default). Only then does the pod's
//!   status change (a dead container makes the pod not Ready, and the EndpointSlice controller
//!   marks the endpoint not ready), and only then is the container restarted.
//! - A container that exited is started again at once the first time: `doBackOff`
//!   (`pkg/kubelet/kuberuntime/kuberuntime_manager.go`) finds no back-off entry for it and starts
//!   one. Each later exit waits the entry's back-off, counted from the exit, which starts at 10s
//!   (`initialCrashLoopBackOff`) and doubles up to 300s (`MaxCrashLoopBackOff`); an entry older
//!   than twice the maximum starts over (`client-go/util/flowcontrol/backoff.go`, `hasExpired`).
//!   `ReduceDefaultCrashLoopBackOffDecay` (1s/60s) is alpha and off in 1.35.
//! - A started container becomes Ready when its readiness probe passes; the kubelet runs the probe
//!   at once when it sees the container running and has no result yet
//!   (`pkg/kubelet/prober/prober_manager.go`, `UpdatePodStatus`). The twin's probe is "the server
//!   accepts connections", checked from the first relist after the start.

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;

/// `genericPlegRelistPeriod`.
pub const PLEG_RELIST_PERIOD: Duration = Duration::from_secs(1);
/// `initialCrashLoopBackOff`.
pub const INITIAL_CRASH_LOOP_BACKOFF: Duration = Duration::from_secs(10);
/// `MaxCrashLoopBackOff` (`MaxContainerBackOff`).
pub const MAX_CRASH_LOOP_BACKOFF: Duration = Duration::from_secs(300);

/// The relist clock of one kubelet: ticks every [`PLEG_RELIST_PERIOD`] from its start.
#[derive(Debug, Clone, Copy)]
pub struct Relist {
    epoch: Instant,
    period: Duration,
}

impl Relist {
    pub fn new(epoch: Instant) -> Relist {
        Relist {
            epoch,
            period: PLEG_RELIST_PERIOD,
        }
    }

    /// The first relist at or after `t`.
    pub fn next_at_or_after(&self, t: Instant) -> Instant {
        let since = t.saturating_duration_since(self.epoch).as_nanos();
        let period = self.period.as_nanos();
        let ticks = since.div_ceil(period);
        let offset = u64::try_from(ticks * period).unwrap_or(u64::MAX);
        self.epoch + Duration::from_nanos(offset)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

/// The kubelet's restart back-off, one entry per container.
#[derive(Debug, Default)]
pub struct RestartBackoff {
    entries: HashMap<String, Entry>,
}

impl RestartBackoff {
    /// A container that exited at `exited`: how long after its exit it is started again. Records
    /// the restart.
    pub fn on_exit(&mut self, container: &str, exited: Instant) -> Duration {
        match self.entries.get_mut(container) {
            Some(e)
                if exited.saturating_duration_since(e.last_update)
                    <= 2 * MAX_CRASH_LOOP_BACKOFF =>
            {
                let wait = e.backoff;
                e.backoff = (e.backoff * 2).min(MAX_CRASH_LOOP_BACKOFF);
                e.last_update = exited + wait;
                wait
            }
            _ => {
                self.entries.insert(
                    container.to_owned(),
                    Entry {
                        backoff: INITIAL_CRASH_LOOP_BACKOFF,
                        last_update: exited,
                    },
                );
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_noticed_at_the_next_relist() {
        let epoch = Instant::now();
        let relist = Relist::new(epoch);
        let ms = Duration::from_millis;
        assert_eq!(relist.next_at_or_after(epoch), epoch);
        assert_eq!(relist.next_at_or_after(epoch + ms(1)), epoch + ms(1000));
        assert_eq!(relist.next_at_or_after(epoch + ms(1000)), epoch + ms(1000));
        assert_eq!(relist.next_at_or_after(epoch + ms(2300)), epoch + ms(3000));
    }

    #[test]
    fn the_first_restart_is_immediate_and_later_ones_back_off_doubling_to_five_minutes() {
        let mut b = RestartBackoff::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(b.on_exit("server", t0), Duration::ZERO);
        assert_eq!(b.on_exit("server", t0 + s(5)), s(10));
        assert_eq!(b.on_exit("server", t0 + s(20)), s(20));
        assert_eq!(b.on_exit("server", t0 + s(45)), s(40));
        let mut t = t0 + s(90);
        let mut waits = Vec::new();
        for _ in 0..4 {
            let w = b.on_exit("server", t);
            waits.push(w.as_secs());
            t += w + s(1);
        }
        assert_eq!(waits, [80, 160, 300, 300]);
        assert_eq!(
            b.on_exit("other", t),
            Duration::ZERO,
            "one entry per container"
        );
    }

    #[test]
    fn a_container_that_ran_for_twice_the_maximum_starts_over() {
        let mut b = RestartBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.on_exit("server", t0), Duration::ZERO);
        let later = t0 + 2 * MAX_CRASH_LOOP_BACKOFF + Duration::from_secs(1);
        assert_eq!(b.on_exit("server", later), Duration::ZERO);
        assert_eq!(
            b.on_exit("server", later + Duration::from_secs(1)),
            INITIAL_CRASH_LOOP_BACKOFF
        );
    }
}
