//! The open loop of `--rate`: RPCs on a fixed schedule, whatever the replies.
//!
//! RPC k (from 0) is due at start + k/rate seconds. Each RPC is its own task, so a slow reply
//! never delays the next RPC, and its latency runs from the time it was *due*, not from the time
//! it was sent: a client that falls behind (a stalled timer, a busy runtime) shows up as latency
//! instead of as fewer RPCs (no coordinated omission). The timer is a thread of its own that
//! sleeps until the next RPC is due (the OS's sleep is precise to tens of microseconds, where the
//! async runtime's timer rounds up to the next millisecond, which would show as latency) but wakes
//! at most once per [`TICK`]; each wake sends every RPC due by then, so 20,000 RPCs/s go out 20
//! per wake, each still measured from its own due time. At most [`MAX_IN_FLIGHT`] RPCs
//! are in flight: an RPC due while that many are is not sent, and counts as an error
//! ([`OVERLOAD`](super::stats::OVERLOAD)) rather than being sent late.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, time::Instant};

/// The most RPCs in flight at once.
pub const MAX_IN_FLIGHT: u32 = 10_000;
/// The shortest time between two wakes of the timer.
pub const TICK: Duration = Duration::from_millis(1);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// When each RPC of a rate is due, counted from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    rate: u64,
}

impl Schedule {
    /// `rate` RPCs per second, at least 1.
    pub fn new(rate: u64) -> Schedule {
        Schedule { rate: rate.max(1) }
    }

    /// When RPC `k` (from 0) is due: k/rate seconds after the start, rounded down to the
    /// nanosecond (exact, never accumulated, so there is no drift however long the run).
    pub fn due(&self, k: u64) -> Duration {
        let nanos = u128::from(k) * NANOS_PER_SEC / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How many RPCs are due `elapsed` after the start: those with `due(k) <= elapsed`.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        // floor(k·1e9/rate) <= e  ⟺  k·1e9/rate < e + 1  ⟺  k < (e + 1)·rate/1e9
        let bound = (elapsed.as_nanos() + 1) * u128::from(self.rate);
        u64::try_from(bound.div_ceil(NANOS_PER_SEC)).unwrap_or(u64::MAX)
    }

    /// How many RPCs a run of `length` sends: those due before its end (`due(k) < length`), so
    /// exactly rate × length when that is whole.
    pub fn within(&self, length: Duration) -> u64 {
        // floor(k·1e9/rate) < l  ⟺  k·1e9/rate < l  ⟺  k < l·rate/1e9 (l is whole)
        let bound = length.as_nanos() * u128::from(self.rate);
        u64::try_from(bound.div_ceil(NANOS_PER_SEC)).unwrap_or(u64::MAX)
    }
}

/// What became of one RPC of the open loop.
#[derive(Debug)]
pub enum Rpc<T> {
    /// Sent and finished (with a reply or an error); `latency` runs from the time it was due.
    Done { result: T, latency: Duration },
    /// Due while the most RPCs were in flight already: never sent.
    Overload,
}

/// One run of the open loop.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    pub schedule: Schedule,
    /// When RPC 0 is due.
    pub start: Instant,
    /// How long the schedule runs: the RPCs due before `start + length` are sent; `None`: until
    /// shut down.
    pub length: Option<Duration>,
    pub max_in_flight: u32,
}

impl OpenLoop {
    /// Calls `send(k)` for each RPC k when it is due and runs the future it returns as a task of
    /// its own; reports every RPC to `done`. Runs until the end of its length or until `shutdown`
    /// completes, then waits for the RPCs in flight (each must end by itself: the client's RPCs
    /// have their deadline). Returns how many RPCs were due.
    pub async fn run<S, F, D>(self, send: S, done: D, shutdown: impl Future<Output = ()>) -> u64
    where
        S: Fn(u64) -> F,
        F: Future + Send + 'static,
        F::Output: Send,
        D: Fn(Rpc<F::Output>) + Send + Sync + 'static,
    {
        let count = self.length.map_or(u64::MAX, |l| self.schedule.within(l));
        let permits = Arc::new(Semaphore::new(self.max_in_flight as usize));
        let done = Arc::new(done);
        let mut next: u64 = 0;
        let mut ticks = ticks(self.start.into_std(), self.schedule, count);
        tokio::pin!(shutdown);
        while next < count {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                tick = ticks.recv() => if tick.is_none() { break },
            }
            let now = Instant::now();
            let upto = self
                .schedule
                .due_by(now.saturating_duration_since(self.start))
                .clamp(next, count);
            for k in next..upto {
                let due = self.start + self.schedule.due(k);
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    done(Rpc::Overload);
                    continue;
                };
                let rpc = send(k);
                let done = done.clone();
                tokio::spawn(async move {
                    let result = rpc.await;
                    done(Rpc::Done {
                        result,
                        latency: due.elapsed(),
                    });
                    drop(permit);
                });
            }
            next = upto;
        }
        if let Some(length) = self.length {
            // A run lasts its length even when its last RPC is due earlier, so that RPCs over
            // time is the rate.
            tokio::select! {
                biased;
                () = &mut shutdown => {}
                () = tokio::time::sleep_until(self.start + length) => {}
            }
        }
        // Every permit back means every RPC has finished.
        let _all = permits.acquire_many(self.max_in_flight).await;
        next
    }
}

/// The timer of the open loop: a thread that wakes when the next RPC is due (at most once per
/// [`TICK`]) and says so on the channel. It ends after the last RPC of `count`, or when the
/// receiver is gone.
fn ticks(
    start: std::time::Instant,
    schedule: Schedule,
    count: u64,
) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let timer = move || {
        let mut next: u64 = 0;
        let mut last_wake: Option<std::time::Instant> = None;
        while next < count {
            let due = start + schedule.due(next);
            let wake = last_wake.map_or(due, |last| due.max(last + TICK));
            let now = std::time::Instant::now();
            if wake > now {
                std::thread::sleep(wake - now);
            }
            let now = std::time::Instant::now();
            last_wake = Some(now);
            if tx.send(()).is_err() {
                return;
            }
            next = schedule
                .due_by(now.saturating_duration_since(start))
                .max(next + 1);
        }
    };
    if let Err(err) = std::thread::Builder::new()
        .name("open-loop-timer".into())
        .spawn(timer)
    {
        // Without its timer the loop sends nothing; the channel closing ends it.
        tracing::error!(%err, "cannot start the open loop's timer thread");
    }
    rx
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    };

    use tokio::sync::watch;

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rpc_k_is_due_k_over_rate_seconds_after_the_start() {
        let s = Schedule::new(200);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), ms(5));
        assert_eq!(s.due(400), Duration::from_secs(2));
        // 1/3 s is not a whole number of nanoseconds: each due time is rounded down on its own,
        // so the error never grows.
        let s = Schedule::new(3);
        assert_eq!(s.due(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.due(2), Duration::from_nanos(666_666_666));
        assert_eq!(s.due(3), Duration::from_secs(1));
        assert_eq!(s.due(3 * 86_400), Duration::from_secs(86_400));
        assert_eq!(Schedule::new(1_000_000).due(7), Duration::from_micros(7));
    }

    #[test]
    fn the_rpcs_due_by_a_time_include_the_one_due_exactly_then() {
        let s = Schedule::new(200);
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(ms(5) - Duration::from_nanos(1)), 1);
        assert_eq!(s.due_by(ms(5)), 2);
        assert_eq!(s.due_by(ms(999)), 200);
        assert_eq!(s.due_by(ms(1000)), 201);
        let s = Schedule::new(3);
        assert_eq!(s.due_by(Duration::from_nanos(333_333_332)), 1);
        assert_eq!(s.due_by(Duration::from_nanos(333_333_333)), 2);
        // At a high rate one wake takes a batch.
        assert_eq!(Schedule::new(20_000).due_by(ms(1)), 21);
    }

    #[test]
    fn due_by_agrees_with_due_for_every_rpc() {
        for rate in [1, 3, 7, 200, 999, 20_000, 1_000_000] {
            let s = Schedule::new(rate);
            for k in 0..2_000 {
                let due = s.due(k);
                assert_eq!(s.due_by(due), k + 1, "rate {rate}, rpc {k}");
                if let Some(before) = due.checked_sub(Duration::from_nanos(1)) {
                    assert_eq!(s.due_by(before), k, "rate {rate}, rpc {k}");
                }
            }
        }
    }

    #[test]
    fn a_run_of_a_given_length_sends_rate_times_length_rpcs() {
        assert_eq!(Schedule::new(200).within(Duration::from_secs(2)), 400);
        assert_eq!(Schedule::new(200).within(Duration::ZERO), 0);
        assert_eq!(Schedule::new(200).within(Duration::from_nanos(1)), 1);
        assert_eq!(Schedule::new(3).within(ms(500)), 2);
        assert_eq!(
            Schedule::new(1_000_000).within(Duration::from_secs(1)),
            1_000_000
        );
        assert_eq!(Schedule::new(1).within(Duration::from_secs(1)), 1);
        assert_eq!(
            Schedule::new(1).within(Duration::from_secs(1) + Duration::from_nanos(1)),
            2
        );
    }

    /// Collects what the open loop reports, and says when `n` RPCs have been reported.
    #[derive(Default)]
    struct Seen {
        done: Mutex<Vec<(u64, Duration)>>,
        overloads: AtomicU64,
    }

    fn open_loop(rate: u64, length: Option<Duration>, max_in_flight: u32) -> OpenLoop {
        OpenLoop {
            schedule: Schedule::new(rate),
            start: Instant::now(),
            length,
            max_in_flight,
        }
    }

    fn reporter(seen: &Arc<Seen>) -> impl Fn(Rpc<u64>) + Send + Sync + 'static {
        let seen = seen.clone();
        move |rpc| match rpc {
            Rpc::Done { result, latency } => seen.done.lock().unwrap().push((result, latency)),
            Rpc::Overload => {
                seen.overloads.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[tokio::test]
    async fn the_open_loop_never_waits_for_a_reply_before_sending_the_next_rpc() {
        // No reply comes until the last RPC has been sent.
        let (all_sent, replies) = watch::channel(false);
        let seen = Arc::new(Seen::default());
        let send = move |k: u64| {
            if k == 49 {
                all_sent.send_replace(true);
            }
            let mut replies = replies.clone();
            async move {
                let _ = replies.wait_for(|sent| *sent).await;
                k
            }
        };
        let due = tokio::time::timeout(
            DEADLINE,
            open_loop(1_000, Some(ms(50)), 100).run(send, reporter(&seen), std::future::pending()),
        )
        .await
        .expect("the open loop sends every RPC without waiting for replies");
        assert_eq!(due, 50);
        let mut done: Vec<u64> = seen.done.lock().unwrap().iter().map(|d| d.0).collect();
        done.sort_unstable();
        assert_eq!(done, (0..50).collect::<Vec<_>>());
        assert_eq!(seen.overloads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_rpc_sent_late_is_measured_from_the_time_it_was_due() {
        let seen = Arc::new(Seen::default());
        let send = |k: u64| {
            if k == 0 {
                // A stalled client (this runtime has one thread): RPCs 1 to 9 come due meanwhile
                // and go out late, at once.
                std::thread::sleep(ms(100));
            }
            async move { k }
        };
        open_loop(100, Some(ms(100)), 100)
            .run(send, reporter(&seen), std::future::pending())
            .await;
        let done = seen.done.lock().unwrap();
        assert_eq!(done.len(), 10);
        for &(k, latency) in done.iter().filter(|d| d.0 > 0) {
            // Sent at 100ms or later, due at k × 10ms: the reply itself took no time at all.
            assert!(latency >= ms(100 - 10 * k), "rpc {k}: {latency:?}");
        }
    }

    #[tokio::test]
    async fn rpcs_due_while_the_most_are_in_flight_are_overloads_not_sent() {
        let (release, replies) = watch::channel(false);
        let seen = Arc::new(Seen::default());
        let sent = Arc::new(AtomicU64::new(0));
        let send = {
            let sent = sent.clone();
            move |k: u64| {
                sent.fetch_add(1, Ordering::SeqCst);
                let mut replies = replies.clone();
                async move {
                    let _ = replies.wait_for(|r| *r).await;
                    k
                }
            }
        };
        let report = reporter(&seen);
        let done = {
            let seen = seen.clone();
            move |rpc: Rpc<u64>| {
                report(rpc);
                // The replies come once every other RPC has been counted.
                if seen.overloads.load(Ordering::SeqCst) == 15 {
                    release.send_replace(true);
                }
            }
        };
        tokio::time::timeout(
            DEADLINE,
            open_loop(1_000, Some(ms(20)), 5).run(send, done, std::future::pending()),
        )
        .await
        .expect("the open loop ends");
        assert_eq!(sent.load(Ordering::SeqCst), 5);
        assert_eq!(seen.overloads.load(Ordering::SeqCst), 15);
        assert_eq!(seen.done.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn a_run_lasts_its_length_even_when_its_last_rpc_is_due_earlier() {
        let seen = Arc::new(Seen::default());
        let run = open_loop(10, Some(ms(150)), 100);
        let due = run
            .run(
                |k| async move { k },
                reporter(&seen),
                std::future::pending(),
            )
            .await;
        assert_eq!(due, 2, "RPCs due at 0 and 100ms");
        assert!(run.start.elapsed() >= ms(150), "{:?}", run.start.elapsed());
        assert_eq!(seen.done.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn shutdown_stops_the_schedule_and_waits_for_the_rpcs_in_flight() {
        let (stop, stopped) = watch::channel(false);
        let seen = Arc::new(Seen::default());
        let sent = Arc::new(AtomicU64::new(0));
        let send = {
            let sent = sent.clone();
            let stopped = stopped.clone();
            move |k: u64| {
                if sent.fetch_add(1, Ordering::SeqCst) == 9 {
                    stop.send_replace(true);
                }
                // Each reply comes only after the shutdown.
                let mut stopped = stopped.clone();
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                    k
                }
            }
        };
        let shutdown = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let due = tokio::time::timeout(
            DEADLINE,
            open_loop(1_000, None, 100).run(send, reporter(&seen), shutdown),
        )
        .await
        .expect("the open loop ends on shutdown");
        let sent = sent.load(Ordering::SeqCst);
        assert!((10..20).contains(&sent), "{sent} sent");
        assert_eq!(due, sent);
        assert_eq!(seen.done.lock().unwrap().len() as u64, sent);
    }
}
