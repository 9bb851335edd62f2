//! Metrics through the [`metrics`] facade: the app installs the recorder (exporter) of
//! its choice, before [`SecureApiBuilder::build`], and turns them on with
//! [`SecureApiBuilder::metrics`].
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | [`DECISIONS`] `secure_api_decisions_total` | counter | `endpoint`, `outcome` ([`Outcome::name`]) |
//! | [`RATE_LIMITED`] `secure_api_rate_limited_total` | counter | `endpoint`, `tier` (the refusing policy: a tier's name, or `default`) |
//! | [`EVENTS`] `secure_api_audit_events_total` | counter | `event` ([`AuditKind::name`](super::audit::AuditKind::name)) |
//! | [`STORE_FAILURES`] `secure_api_store_failures_total` | counter | `store`, `outcome` (`failed_closed`, `failed_open`, `unaffected`) |
//! | [`STORE_DURATION`] `secure_api_store_call_duration_seconds` | histogram | `store`, `backend` |
//! | [`STORE_ENTRIES`] `secure_api_store_entries` | gauge | `store`, `backend` |
//! | [`STORE_MAX_ENTRIES`] `secure_api_store_max_entries` | gauge | `store`, `backend` |
//! | [`STORE_BYTES`] `secure_api_store_bytes` | gauge | `store`, `backend` |
//! | [`STORE_MAX_BYTES`] `secure_api_store_max_bytes` | gauge | `store`, `backend` |
//!
//! The store metrics: `store` is `rate_limit`, `idempotency`, `revocation` or `sessions`
//! ([`StoreKind::name`](super::audit::StoreKind::name)), and for failures also `accounts`
//! (the app's account check, which is neither timed nor measured); `backend` is the store's
//! `backend()`: `memory`, `redis`, or `custom` for an app's own store. The histogram
//! times every call of the rate-limit and idempotency stores, of the revocation store of
//! the app's [`JwtAuth`](crate::auth::jwt::JwtAuth), and of the session store of a
//! [`TokenService`](crate::auth::refresh::TokenService) given the app with
//! [`TokenService::telemetry`](crate::auth::refresh::TokenService::telemetry). The gauges
//! exist for the stores that report their size (`usage()`: the in-memory stores, not Redis,
//! whose own metrics tell), bytes only for the in-memory idempotency store's stored
//! responses. They are set at build, by
//! [`SecureApi::record_store_gauges`](crate::api::SecureApi::record_store_gauges), and every
//! [`metrics_interval`](crate::api::SecureApiBuilder::metrics_interval) (10 s) by a
//! background thread, `secure-api-gauges`, which ends when the app is dropped.
//!
//! Every label is bounded: endpoint names (the handler's, module-qualified when two share
//! it), the fixed outcomes, tiers and event names below, store and backend names. No metric
//! carries a client address, a subject or a key.
//! `secure_api_audit_events_total` counts every event, whatever the audit sink takes.
//!
//! The handles are registered once, at build, for every `#[secure_endpoint]` in the
//! program: a request increments a counter it already holds (one atomic add in the
//! Prometheus exporter), with no label lookup.
//!
//! [`SecureApiBuilder::build`]: crate::api::SecureApiBuilder::build
//! [`SecureApiBuilder::metrics`]: crate::api::SecureApiBuilder::metrics

use std::collections::HashMap;
use std::fmt;

use metrics::{Counter, Label};

use super::audit::{AuditKind, StoreKind, StoreOutcome};
use crate::endpoint::{EndpointSpec, Registration};

/// Counter of requests by endpoint and [`Outcome`].
pub const DECISIONS: &str = "secure_api_decisions_total";
/// Counter of 429s by endpoint and refusing policy.
pub const RATE_LIMITED: &str = "secure_api_rate_limited_total";
/// Counter of audit events by kind.
pub const EVENTS: &str = "secure_api_audit_events_total";
/// Counter of store failures by store and what the request got.
pub const STORE_FAILURES: &str = "secure_api_store_failures_total";
/// Histogram of store-call latency in seconds, by store and backend.
pub const STORE_DURATION: &str = "secure_api_store_call_duration_seconds";
/// Gauge of the entries a bounded store holds.
pub const STORE_ENTRIES: &str = "secure_api_store_entries";
/// Gauge of the most entries a bounded store may hold.
pub const STORE_MAX_ENTRIES: &str = "secure_api_store_max_entries";
/// Gauge of the bytes a store bounded in bytes holds (the in-memory idempotency store's
/// stored responses).
pub const STORE_BYTES: &str = "secure_api_store_bytes";
/// Gauge of the most bytes a store bounded in bytes may hold.
pub const STORE_MAX_BYTES: &str = "secure_api_store_max_bytes";

/// What an endpoint decided for a request: the `outcome` label of [`DECISIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The checks passed and the handler answered (whatever its status, unless it is one
    /// of the refusals below).
    Allowed,
    /// The response of an earlier request with the same `Idempotency-Key` was replayed.
    Replayed,
    /// 429.
    RateLimited,
    /// 401.
    Unauthenticated,
    /// 403.
    Forbidden,
    /// 422: the input broke a rule.
    Invalid,
    /// 400: unreadable input, nesting too deep, or a missing or invalid `Idempotency-Key`.
    Malformed,
    /// 413.
    TooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 409 (the key is in flight) or 422 (the key was used for another request, or its
    /// response cannot be replayed).
    Conflict,
    /// 503: a store could not answer and its check fails closed.
    Unavailable,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 11] = [
        Outcome::Allowed,
        Outcome::Replayed,
        Outcome::RateLimited,
        Outcome::Unauthenticated,
        Outcome::Forbidden,
        Outcome::Invalid,
        Outcome::Malformed,
        Outcome::TooLarge,
        Outcome::UnsupportedMediaType,
        Outcome::Conflict,
        Outcome::Unavailable,
    ];

    /// `allowed`, `replayed`, `rate_limited`, `unauthenticated`, `forbidden`, `invalid`,
    /// `malformed`, `too_large`, `unsupported_media_type`, `conflict`, `unavailable`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Replayed => "replayed",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Forbidden => "forbidden",
            Outcome::Invalid => "invalid",
            Outcome::Malformed => "malformed",
            Outcome::TooLarge => "too_large",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::Conflict => "conflict",
            Outcome::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One endpoint's counters.
struct EndpointCounters {
    /// By [`Outcome`], in [`Outcome::ALL`]'s order.
    outcomes: [Counter; Outcome::ALL.len()],
    /// 429s: `[0]` the base policy (`default`), then one per tier of the spec, in order.
    rate_limited: Box<[Counter]>,
}

impl EndpointCounters {
    fn register(spec: &'static EndpointSpec) -> Self {
        let endpoint = super::endpoint_name(spec);
        let counter = |name: &'static str, label: &'static str, value: &'static str| {
            let labels = [
                Label::from_static_parts("endpoint", endpoint),
                Label::from_static_parts(label, value),
            ];
            metrics::counter!(name, labels.iter())
        };
        EndpointCounters {
            outcomes: Outcome::ALL.map(|o| counter(DECISIONS, "outcome", o.name())),
            rate_limited: std::iter::once("default")
                .chain(spec.tiers.iter().map(|t| t.policy.name()))
                .map(|tier| counter(RATE_LIMITED, "tier", tier))
                .collect(),
        }
    }
}

/// The registered handles of an app (feature of [`Telemetry`](super::Telemetry)).
pub(crate) struct Metrics {
    /// By the address of the endpoint's spec.
    endpoints: HashMap<usize, EndpointCounters, foldhash::fast::RandomState>,
    /// By [`AuditKind`], in [`AuditKind::ALL`]'s order.
    events: [Counter; AuditKind::ALL.len()],
    /// By store, then by outcome, in the orders of [`STORES`] and [`STORE_OUTCOMES`].
    store_failures: [[Counter; STORE_OUTCOMES.len()]; STORES.len()],
}

const STORES: [StoreKind; 5] = [
    StoreKind::RateLimit,
    StoreKind::Idempotency,
    StoreKind::Sessions,
    StoreKind::Revocation,
    StoreKind::Accounts,
];

const STORE_OUTCOMES: [StoreOutcome; 3] = [
    StoreOutcome::FailedClosed,
    StoreOutcome::FailedOpen,
    StoreOutcome::Unaffected,
];

fn store_index(store: StoreKind) -> usize {
    match store {
        StoreKind::RateLimit => 0,
        StoreKind::Idempotency => 1,
        StoreKind::Sessions => 2,
        StoreKind::Revocation => 3,
        StoreKind::Accounts => 4,
    }
}

fn store_outcome_index(outcome: StoreOutcome) -> usize {
    match outcome {
        StoreOutcome::FailedClosed => 0,
        StoreOutcome::FailedOpen => 1,
        StoreOutcome::Unaffected => 2,
    }
}

impl Metrics {
    /// Registers the handles of every endpoint in the program with the current recorder.
    pub(crate) fn register() -> Self {
        let endpoints = ::inventory::iter::<Registration>
            .into_iter()
            .map(|r| (spec_key(r.spec), EndpointCounters::register(r.spec)))
            .collect();
        Metrics {
            endpoints,
            events: AuditKind::ALL.map(|k| metrics::counter!(EVENTS, "event" => k.name())),
            store_failures: STORES.map(|store| {
                STORE_OUTCOMES.map(|outcome| {
                    metrics::counter!(STORE_FAILURES, "store" => store.name(), "outcome" => outcome.name())
                })
            }),
        }
    }

    /// Counts one request of `spec` that ended with `outcome`.
    #[inline]
    pub(crate) fn decision(&self, spec: &'static EndpointSpec, outcome: Outcome) {
        match self.endpoints.get(&spec_key(spec)) {
            Some(c) => c.outcomes[outcome as usize].increment(1),
            None => unregistered(spec, outcome),
        }
    }

    /// Counts one 429 of `spec` under its base policy (`tier: None`) or the tier at that
    /// index of `spec.tiers`.
    pub(crate) fn rate_limited(&self, spec: &'static EndpointSpec, tier: Option<usize>) {
        let slot = tier.map_or(0, |i| i + 1);
        match self.endpoints.get(&spec_key(spec)) {
            Some(c) => {
                if let Some(counter) = c.rate_limited.get(slot) {
                    counter.increment(1);
                }
            }
            None => {
                let tier = tier
                    .and_then(|i| spec.tiers.get(i))
                    .map_or("default", |t| t.policy.name());
                metrics::counter!(RATE_LIMITED, "endpoint" => super::endpoint_name(spec), "tier" => tier)
                    .increment(1);
            }
        }
    }

    /// Counts one audit event.
    pub(crate) fn event(&self, kind: AuditKind) {
        self.events[kind.index()].increment(1);
    }

    /// Counts one store failure.
    pub(crate) fn store_failure(&self, store: StoreKind, outcome: StoreOutcome) {
        self.store_failures[store_index(store)][store_outcome_index(outcome)].increment(1);
    }
}

pub(super) fn spec_key(spec: &'static EndpointSpec) -> usize {
    spec as *const EndpointSpec as usize
}

/// An endpoint that was not in the registry at build (not linked through
/// `#[secure_endpoint]`'s `inventory::submit!`): counted through the global recorder, by a
/// lookup per request.
#[cold]
#[inline(never)]
fn unregistered(spec: &'static EndpointSpec, outcome: Outcome) {
    metrics::counter!(DECISIONS, "endpoint" => super::endpoint_name(spec), "outcome" => outcome.name()).increment(1);
}
