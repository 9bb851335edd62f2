//! Keeping the key set fresh: one background thread per provider fetches the key set on a
//! schedule and on demand; requests read the current set and, for an unknown `kid`, may
//! ask for (and wait on) one refresh per cool-down.
//!
//! The request path reads the set under a read lock (an `Arc` clone) and compares the clock
//! with an atomic due time; it takes the state's mutex only for an unknown `kid` or once
//! when the schedule is due.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use url::Url;

use super::fetch::{Fetched, Fetcher, checked_url};
use super::keys::{AlgSet, KeySet, SetProblem, parse_jwks};
use super::{FetchError, ProviderError, Startup};
use crate::clock::Clock;

/// How often the thread re-reads the clock while idle, at most: an injected clock may move
/// without the thread being told.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// The first pause between start-up attempts ([`Startup::WaitFor`]), doubled after each
/// failure up to [`STARTUP_BACKOFF_MAX`].
const STARTUP_BACKOFF: Duration = Duration::from_millis(200);
const STARTUP_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The timing of refreshes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Between refreshes when the key set's answer has no `max-age`.
    pub(crate) default_interval: Duration,
    /// The bounds on a `max-age`.
    pub(crate) min_interval: Duration,
    pub(crate) max_interval: Duration,
    /// At most one refresh for unknown `kid`s per cool-down; also the first retry delay
    /// after a failed refresh (doubling up to the interval).
    pub(crate) cooldown: Duration,
    /// Keys not refreshed successfully for this long are no longer used.
    pub(crate) max_stale: Option<Duration>,
    /// At most one warning per this period while refreshes fail.
    pub(crate) warn_every: Duration,
}

/// Where keys come from.
pub(crate) enum Source {
    /// OpenID Connect discovery: the document names the JWK set; its `issuer` must be the
    /// configured one exactly.
    Discovery { issuer: String, url: Url },
    /// A JWK set's URL.
    Jwks(Url),
}

/// What a refresher thread needs.
pub(crate) struct Refresher {
    pub(crate) source: Source,
    pub(crate) fetcher: Fetcher,
    pub(crate) allowed: AlgSet,
    /// The JWK set's URL found by discovery; forgotten when a fetch of it fails, so that
    /// the next attempt reads the discovery document again.
    pub(crate) jwks_url: Option<Url>,
}

/// State shared by the request path, the thread and the handles.
pub(crate) struct Shared {
    keys: RwLock<Arc<KeySet>>,
    /// Clock time (ns) at which the scheduled refresh is due; `u64::MAX` once asked for.
    due: AtomicU64,
    /// Clock time (ns) after which the keys are too stale to use; `u64::MAX` for never.
    stale_after: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
    /// The number of finished refresh attempts (successful or not).
    done: watch::Sender<u64>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timing: Timing,
    /// For status and logs: the provider's issuer or JWK set URL.
    pub(crate) origin: String,
}

#[derive(Debug, Default)]
struct State {
    /// A refresh was asked for and has not started.
    wanted: bool,
    in_flight: bool,
    stopped: bool,
    /// Clock time (ns) of the last attempt's start.
    last_attempt: Option<u64>,
    /// Clock time (ns) of the last success.
    last_success: Option<u64>,
    next_due: u64,
    /// Finished attempts.
    generation: u64,
    /// Consecutive failures.
    failures: u32,
    /// HTTP fetches made (discovery documents and key sets).
    fetches: u64,
    last_error: Option<String>,
    /// The warning limiter: when the last warning was logged, and failures since.
    last_warn: Option<u64>,
    suppressed: u64,
}

/// A snapshot of a provider's key set and its refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetStatus {
    /// The `kid`s of the usable keys, sorted.
    pub key_ids: Vec<String>,
    /// How many usable keys there are (keys without a `kid` included).
    pub keys: usize,
    /// HTTP fetches made so far: discovery documents and key sets, start-up included.
    pub fetches: u64,
    /// Refresh attempts finished so far, successful or not.
    pub refreshes: u64,
    /// Consecutive failed refreshes (0 after a success).
    pub failures: u32,
    /// Why the last refresh failed, while it is failing.
    pub last_error: Option<String>,
    /// Time since the key set was last fetched successfully.
    pub age: Duration,
    /// Time until the next scheduled refresh (zero when it is due or running).
    pub next_refresh_in: Duration,
    /// Whether a refresh is running.
    pub refreshing: bool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Shared {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        timing: Timing,
        origin: String,
    ) -> (Arc<Shared>, watch::Receiver<u64>) {
        let (done, rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            keys: RwLock::new(Arc::new(KeySet::default())),
            due: AtomicU64::new(u64::MAX),
            stale_after: AtomicU64::new(u64::MAX),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done,
            clock,
            timing,
            origin,
        });
        (shared, rx)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key set for a request: `None` when it is too stale to use. Asks for the
    /// scheduled refresh when it is due (the first request to see it asks).
    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        let now = self.clock.now();
        let due = self.due.load(Ordering::Relaxed);
        if now >= due
            && self
                .due
                .compare_exchange(due, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let mut st = self.state();
            if !st.stopped && !st.in_flight {
                st.wanted = true;
                self.wake.notify_all();
            }
        }
        if now > self.stale_after.load(Ordering::Relaxed) {
            return None;
        }
        Some(
            self.keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// For a token naming a `kid` the set does not have: the generation to wait past when
    /// a refresh is running or may start now (and is asked for), or `None` inside the
    /// cool-down of the last attempt.
    pub(crate) fn unknown_kid(&self) -> Option<u64> {
        let mut st = self.state();
        if st.stopped {
            return None;
        }
        if st.in_flight || st.wanted {
            return Some(st.generation);
        }
        let now = self.clock.now();
        let cooled = st
            .last_attempt
            .is_none_or(|t| now.saturating_sub(t) >= nanos(self.timing.cooldown));
        if !cooled {
            return None;
        }
        st.wanted = true;
        self.wake.notify_all();
        Some(st.generation)
    }

    /// Asks for a refresh now, whatever the schedule and the cool-down, and returns the
    /// generation to wait past (`None` once stopped).
    pub(crate) fn refresh_now(&self) -> Option<u64> {
        let mut st = self.state();
        if st.stopped {
            return None;
        }
        if !st.in_flight {
            st.wanted = true;
            self.wake.notify_all();
        }
        Some(st.generation)
    }

    /// Waits until an attempt after `generation` finished (or the thread stopped).
    pub(crate) async fn finished_after(&self, generation: u64) {
        let mut rx = self.done.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|g| *g > generation).await;
    }

    /// Stops the thread after its current fetch; waiters are released.
    pub(crate) fn stop(&self) {
        let mut st = self.state();
        st.stopped = true;
        st.generation += 1;
        self.done.send_replace(st.generation);
        self.wake.notify_all();
    }

    pub(crate) fn status(&self) -> KeySetStatus {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let st = self.state();
        let now = self.clock.now();
        KeySetStatus {
            key_ids: keys.key_ids(),
            keys: keys.len(),
            fetches: st.fetches,
            refreshes: st.generation,
            failures: st.failures,
            last_error: st.last_error.clone(),
            age: Duration::from_nanos(st.last_success.map_or(0, |t| now.saturating_sub(t))),
            next_refresh_in: if st.in_flight || st.wanted {
                Duration::ZERO
            } else {
                Duration::from_nanos(st.next_due.saturating_sub(now))
            },
            refreshing: st.in_flight,
        }
    }

    /// Records an attempt's outcome: a new key set and the next scheduled refresh, or a
    /// failure (the current keys stay) and a retry after a growing delay.
    fn finish(&self, outcome: Result<(KeySet, Option<Duration>), ProviderError>, fetches: u64) {
        let now = self.clock.now();
        let t = &self.timing;
        let mut st = self.state();
        st.fetches += fetches;
        let next = match outcome {
            Ok((set, max_age)) => {
                let interval = max_age
                    .unwrap_or(t.default_interval)
                    .clamp(t.min_interval, t.max_interval);
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
                if st.failures > 0 {
                    log::info!(
                        target: "secure_api::auth",
                        "the key set of {} is fresh again after {} failed refreshes",
                        self.origin,
                        st.failures
                    );
                }
                st.failures = 0;
                st.last_error = None;
                st.last_success = Some(now);
                st.suppressed = 0;
                let stale_after = t
                    .max_stale
                    .map_or(u64::MAX, |m| now.saturating_add(nanos(m)));
                self.stale_after.store(stale_after, Ordering::Relaxed);
                interval
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                let why = e.to_string();
                self.warn_limited(&mut st, now, &why);
                st.last_error = Some(why);
                // The cool-down, doubled per failure, up to the interval.
                let shift = (st.failures - 1).min(16);
                t.cooldown
                    .saturating_mul(1 << shift)
                    .min(t.default_interval.clamp(t.min_interval, t.max_interval))
                    .max(Duration::from_secs(1))
            }
        };
        st.next_due = now.saturating_add(nanos(next));
        st.in_flight = false;
        st.generation += 1;
        self.due.store(st.next_due, Ordering::Relaxed);
        self.done.send_replace(st.generation);
    }

    /// A warning at most once per `warn_every`, counting the failures it did not log.
    fn warn_limited(&self, st: &mut State, now: u64, why: &str) {
        let quiet = st
            .last_warn
            .is_some_and(|t| now.saturating_sub(t) < nanos(self.timing.warn_every));
        if quiet {
            st.suppressed += 1;
            return;
        }
        let stale = match st.last_success {
            Some(t) => format!(
                "serving the key set fetched {} s ago",
                now.saturating_sub(t) / 1_000_000_000
            ),
            None => "no key set yet".to_owned(),
        };
        log::warn!(
            target: "secure_api::auth",
            "refreshing the key set of {} failed ({} in a row, {} not logged): {why}; {stale}",
            self.origin,
            st.failures,
            st.suppressed
        );
        st.last_warn = Some(now);
        st.suppressed = 0;
    }

    /// Waits (really) for `d`, or until stopped; whether stopped.
    fn pause(&self, d: Duration) -> bool {
        let st = self.state();
        let (st, _) = self
            .wake
            .wait_timeout_while(st, d, |st| !st.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        st.stopped
    }
}

impl Refresher {
    /// Fetches the key set (after the discovery document, when its URL is not known), with
    /// the number of HTTP fetches made.
    fn fetch(&mut self) -> (Result<(KeySet, Option<Duration>), ProviderError>, u64) {
        let mut fetches = 0;
        let url = match (&self.source, &self.jwks_url) {
            (Source::Jwks(url), _) => url.clone(),
            (Source::Discovery { .. }, Some(url)) => url.clone(),
            (Source::Discovery { issuer, url }, None) => {
                fetches += 1;
                match discover(&self.fetcher, issuer, url) {
                    Ok(jwks) => {
                        self.jwks_url = Some(jwks.clone());
                        jwks
                    }
                    Err(e) => return (Err(e), fetches),
                }
            }
        };
        fetches += 1;
        let outcome = self
            .fetcher
            .get(&url)
            .map_err(|error| ProviderError::Fetch {
                url: url.to_string(),
                error,
            })
            .and_then(|Fetched { body, max_age }| {
                let (set, notes) = parse_jwks(&body, self.allowed).map_err(|p| match p {
                    SetProblem::Malformed(why) => ProviderError::Fetch {
                        url: url.to_string(),
                        error: FetchError::Malformed(why),
                    },
                    SetProblem::NoUsableKeys(notes) => ProviderError::NoUsableKeys {
                        url: url.to_string(),
                        refused: notes,
                    },
                })?;
                for note in notes {
                    let level = if note.expected {
                        log::Level::Debug
                    } else {
                        log::Level::Warn
                    };
                    log::log!(target: "secure_api::auth", level, "key set {url}: {}", note.text);
                }
                Ok((set, max_age))
            });
        if outcome.is_err() {
            self.jwks_url = None;
        }
        (outcome, fetches)
    }
}

/// Reads the discovery document: its `issuer` must be `issuer` exactly, its `jwks_uri` an
/// allowed URL.
fn discover(fetcher: &Fetcher, issuer: &str, url: &Url) -> Result<Url, ProviderError> {
    let fetch_error = |error| ProviderError::Fetch {
        url: url.to_string(),
        error,
    };
    let doc = fetcher.get(url).map_err(fetch_error)?;
    let doc: serde_json::Value = serde_json::from_slice(&doc.body)
        .map_err(|_| fetch_error(FetchError::Malformed("not JSON")))?;
    let found = doc
        .get("issuer")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| fetch_error(FetchError::Malformed("no \"issuer\"")))?;
    if found != issuer {
        // The provider's text, bounded, in quotes: for the operator's log only.
        let found: String = found.chars().take(200).collect();
        return Err(ProviderError::IssuerMismatch {
            expected: issuer.to_owned(),
            found,
        });
    }
    let jwks = doc
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| fetch_error(FetchError::Malformed("no \"jwks_uri\"")))?;
    checked_url(jwks)
        .map(|(url, _)| url)
        .map_err(|problem| ProviderError::InvalidUrl {
            url: jwks.chars().take(200).collect(),
            problem: problem.to_string(),
        })
}

/// Starts the refresher thread: the first key set per `startup`, reported on `first`, then
/// refreshes until stopped.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    mut refresher: Refresher,
    startup: Startup,
    first: tokio::sync::oneshot::Sender<Result<(), ProviderError>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("secure-api-jwks".to_owned())
        .spawn(move || {
            match first_key_set(&shared, &mut refresher, startup) {
                Ok(()) => {
                    let _ = first.send(Ok(()));
                }
                Err(e) => {
                    let _ = first.send(Err(e));
                    return;
                }
            }
            run(&shared, &mut refresher);
        })
        .map(drop)
}

fn first_key_set(
    shared: &Shared,
    refresher: &mut Refresher,
    startup: Startup,
) -> Result<(), ProviderError> {
    let deadline = match startup {
        Startup::FailFast => None,
        Startup::WaitFor(wait) => Some(Instant::now().checked_add(wait)),
    };
    let mut backoff = STARTUP_BACKOFF;
    loop {
        shared.state().last_attempt = Some(shared.clock.now());
        let (outcome, fetches) = refresher.fetch();
        match outcome {
            Ok(set) => {
                shared.finish(Ok(set), fetches);
                return Ok(());
            }
            Err(e) => {
                shared.state().fetches += fetches;
                let Some(deadline) = deadline else {
                    return Err(e);
                };
                let pause = match deadline {
                    // Waiting longer than `Instant` can count: forever.
                    None => backoff,
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(e);
                        }
                        backoff.min(left)
                    }
                };
                {
                    let now = shared.clock.now();
                    let mut st = shared.state();
                    st.failures = st.failures.saturating_add(1);
                    shared.warn_limited(&mut st, now, &format!("{e}; start-up waits"));
                    st.last_error = Some(e.to_string());
                }
                if shared.pause(pause) {
                    return Err(ProviderError::Stopped);
                }
                backoff = (backoff * 2).min(STARTUP_BACKOFF_MAX);
            }
        }
    }
}

fn run(shared: &Shared, refresher: &mut Refresher) {
    loop {
        {
            let mut st = shared.state();
            loop {
                if st.stopped {
                    return;
                }
                let now = shared.clock.now();
                if st.wanted || now >= st.next_due {
                    st.wanted = false;
                    st.in_flight = true;
                    st.last_attempt = Some(now);
                    break;
                }
                let wait = Duration::from_nanos(st.next_due - now).min(IDLE_RECHECK);
                st = shared
                    .wake
                    .wait_timeout(st, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let (outcome, fetches) = refresher.fetch();
        shared.finish(outcome, fetches);
    }
}
