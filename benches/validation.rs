//! Normalising + validating `CreateUserRequest` (examples/users_api.rs): secure-api's
//! `#[derive(SecureInput)]` against `validator`, `garde` and `validify`, with the same rule
//! set, side by side in one process (one criterion group per scenario).
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench validation -- \
//!     --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Rules (as in the example):
//! - `username`: trim, lowercase, 3..=32 chars, fully matches `[a-z0-9_-]+`, does not look
//!   like "admin", "root", "null" or "undefined" (confusable skeletons, case-insensitive);
//! - `email`: trim, lowercase, at most 255 chars, e-mail syntax;
//! - `age`: 0..=150.
//!
//! `validator` and `garde` do not normalise: the bench trims and lowercases by hand first
//! ([`normalise`]: in place, no reallocation for ASCII). None of the three peers has a
//! confusable-aware deny list, so they all use their custom-function hook with
//! [`is_denied`], which calls secure-api's `validation::DenyList` (the entries' keys computed
//! once), so that all four do the same deny work. Patterns are anchored (`\A(?:...)\z`)
//! for every peer, as secure-api's derive does, because the peers' regex rules match
//! anywhere in the value.
//!
//! A separate group, `deny/*`, times the deny check alone: the previous algorithm
//! (lowercase equality, [`is_denied_lowercase`]) against the skeleton comparison
//! (`is_denied_key` with keys computed at compile time, as the derive emits it).
//!
//! Before timing anything, `main` checks that each implementation accepts scenarios (a) and
//! (b), rejects (c) with the expected number of failures, and that secure-api's success path
//! on already-normalised input (b) performs zero heap allocations (counting global
//! allocator, enabled only around the measured calls, so it adds one relaxed load per
//! allocation to the timed benchmarks).

use std::hint::black_box;
use std::sync::LazyLock;

use counting_alloc::allocations;
use criterion::{BatchSize, Criterion};
use regex::Regex;

// ---------------------------------------------------------------------------------------
// Allocation counting
// ---------------------------------------------------------------------------------------

/// `System`, counting allocations (`alloc`, `alloc_zeroed`, `realloc`) while measuring.
#[global_allocator]
static GLOBAL: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

// ---------------------------------------------------------------------------------------
// Shared rule helpers for the peers
// ---------------------------------------------------------------------------------------

/// The example's pattern, anchored as secure-api's derive anchors it.
const USERNAME_PATTERN: &str = r"\A(?:[a-z0-9_-]+)\z";
static USERNAME_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(USERNAME_PATTERN).unwrap());

/// The deny list.
const DENY: [&str; 4] = ["admin", "root", "null", "undefined"];

/// The deny list's keys, computed once: the peers' deny check, the same as secure-api's.
static DENY_LIST: LazyLock<secure_api_runtime::validation::DenyList> =
    LazyLock::new(|| secure_api_runtime::validation::DenyList::new(DENY));

/// The peers' deny check: secure-api's skeleton comparison, through `DenyList`.
fn is_denied(value: &str) -> bool {
    DENY_LIST.is_denied(value)
}

/// The previous deny algorithm (case-insensitive equality, no skeletons), for the `deny/*`
/// group only.
fn is_denied_lowercase(value: &str) -> bool {
    if value.is_ascii() {
        DENY.iter()
            .any(|e| e.len() == value.len() && value.eq_ignore_ascii_case(e))
    } else {
        DENY.iter()
            .any(|e| value.chars().flat_map(char::to_lowercase).eq(e.chars()))
    }
}

/// What a careful user writes before `validate()` when the library does not normalise:
/// trim in place (truncate + drain, never reallocates), then `make_ascii_lowercase` for
/// ASCII and `to_lowercase` (allocates) otherwise.
fn normalise(value: &mut String) {
    let end = value.trim_end().len();
    value.truncate(end);
    let start = value.len() - value.trim_start().len();
    if start > 0 {
        value.drain(..start);
    }
    if value.is_ascii() {
        value.make_ascii_lowercase();
    } else {
        *value = value.to_lowercase();
    }
}

// ---------------------------------------------------------------------------------------
// (1) secure-api
// ---------------------------------------------------------------------------------------

mod secure {
    use secure_api_runtime::prelude::*;

    #[derive(Debug, Clone, serde::Deserialize, SecureInput)]
    pub struct CreateUserRequest {
        #[secure(
            trim,
            lowercase,
            length(min = 3, max = 32),
            pattern = "[a-z0-9_-]+",
            deny("admin", "root", "null", "undefined")
        )]
        pub username: String,
        #[secure(trim, lowercase, length(max = 255), email)]
        pub email: String,
        #[secure(range(min = 0, max = 150))]
        pub age: i32,
    }
}

// ---------------------------------------------------------------------------------------
// (2) validator (hand normalisation + derive)
// ---------------------------------------------------------------------------------------

mod with_validator {
    use validator::{Validate, ValidationError};

    fn not_denied(value: &str) -> Result<(), ValidationError> {
        if super::is_denied(value) {
            Err(ValidationError::new("deny"))
        } else {
            Ok(())
        }
    }

    #[derive(Debug, Clone, Validate)]
    pub struct CreateUserRequest {
        #[validate(
            length(min = 3, max = 32),
            regex(path = *super::USERNAME_RE),
            custom(function = "not_denied")
        )]
        pub username: String,
        #[validate(length(max = 255), email)]
        pub email: String,
        #[validate(range(min = 0, max = 150))]
        pub age: i32,
    }

    impl CreateUserRequest {
        pub fn normalise_and_validate(&mut self) -> Result<(), validator::ValidationErrors> {
            super::normalise(&mut self.username);
            super::normalise(&mut self.email);
            self.validate()
        }
    }

    pub fn failures(errors: &validator::ValidationErrors) -> usize {
        errors.field_errors().values().map(|v| v.len()).sum()
    }
}

// ---------------------------------------------------------------------------------------
// (3) garde (hand normalisation + derive)
// ---------------------------------------------------------------------------------------

mod with_garde {
    use garde::Validate;

    fn not_denied(value: &str, _: &()) -> garde::Result {
        if super::is_denied(value) {
            Err(garde::Error::new("deny"))
        } else {
            Ok(())
        }
    }

    #[derive(Debug, Clone, Validate)]
    pub struct CreateUserRequest {
        #[garde(
            length(chars, min = 3, max = 32),
            pattern(r"\A(?:[a-z0-9_-]+)\z"),
            custom(not_denied)
        )]
        pub username: String,
        #[garde(length(chars, max = 255), email)]
        pub email: String,
        #[garde(range(min = 0, max = 150))]
        pub age: i32,
    }

    impl CreateUserRequest {
        pub fn normalise_and_validate(&mut self) -> Result<(), garde::Report> {
            super::normalise(&mut self.username);
            super::normalise(&mut self.email);
            self.validate()
        }
    }

    pub fn failures(report: &garde::Report) -> usize {
        report.iter().count()
    }
}

// ---------------------------------------------------------------------------------------
// (4) validify (its own modifiers + validations)
// ---------------------------------------------------------------------------------------

mod with_validify {
    use validify::{ValidationError, Validify};

    fn not_denied(value: &str) -> Result<(), ValidationError> {
        if super::is_denied(value) {
            Err(ValidationError::new_field("deny"))
        } else {
            Ok(())
        }
    }

    #[derive(Debug, Clone, serde::Deserialize, Validify)]
    pub struct CreateUserRequest {
        #[modify(trim, lowercase)]
        #[validate(
            length(min = 3, max = 32),
            regex(path = super::USERNAME_RE),
            custom(not_denied)
        )]
        pub username: String,
        #[modify(trim, lowercase)]
        #[validate(length(max = 255), email)]
        pub email: String,
        #[validate(range(min = 0., max = 150.))]
        pub age: i32,
    }

    pub fn failures(errors: &validify::ValidationErrors) -> usize {
        errors.errors().len()
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Scenario {
    /// Criterion group name.
    name: &'static str,
    username: &'static str,
    email: &'static str,
    age: i32,
    /// Failures secure-api reports (`0` = accepted).
    failures: usize,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "a_needs_normalisation",
        username: " Alice_01 ",
        email: " ALICE@Example.com ",
        age: 30,
        failures: 0,
    },
    Scenario {
        name: "b_already_normalised",
        username: "alice_01",
        email: "alice@example.com",
        age: 30,
        failures: 0,
    },
    Scenario {
        // username: length + pattern; email: email; age: range.
        name: "c_four_failures",
        username: "x!",
        email: "not-an-email",
        age: 200,
        failures: 4,
    },
    Scenario {
        // A non-ASCII username: lowercased (allocates), fails the ASCII pattern; the deny
        // list takes its non-ASCII path.
        name: "d_non_ascii_username",
        username: "Zoë_01",
        email: "zoe@example.com",
        age: 30,
        failures: 1,
    },
];

impl Scenario {
    fn secure(&self) -> secure::CreateUserRequest {
        secure::CreateUserRequest {
            username: self.username.to_owned(),
            email: self.email.to_owned(),
            age: self.age,
        }
    }

    fn validator(&self) -> with_validator::CreateUserRequest {
        with_validator::CreateUserRequest {
            username: self.username.to_owned(),
            email: self.email.to_owned(),
            age: self.age,
        }
    }

    fn garde(&self) -> with_garde::CreateUserRequest {
        with_garde::CreateUserRequest {
            username: self.username.to_owned(),
            email: self.email.to_owned(),
            age: self.age,
        }
    }

    fn validify(&self) -> with_validify::CreateUserRequest {
        with_validify::CreateUserRequest {
            username: self.username.to_owned(),
            email: self.email.to_owned(),
            age: self.age,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checks outside timing
// ---------------------------------------------------------------------------------------

/// Each implementation accepts (a) and (b) with the same normalised values, and rejects
/// (c); prints how many failures each reports and how many allocations each call makes.
fn check_equivalence() {
    use secure_api_runtime::SecureInput;
    use validify::Validify;

    // Warm up lazily compiled regexes and the regex crate's per-thread caches so that the
    // allocation counts below are those of the steady state.
    for s in &SCENARIOS {
        for _ in 0..2 {
            let _ = s.secure().secure();
            let _ = s.validator().normalise_and_validate();
            let _ = s.garde().normalise_and_validate();
            let _ = s.validify().validify();
        }
    }

    println!("validation bench: failures reported / heap allocations per call (steady state)");
    for s in &SCENARIOS {
        let mut x = s.secure();
        let (a_secure, r) = allocations(|| x.secure());
        let n_secure = r.as_ref().map_or_else(|e| e.len(), |()| 0);
        assert_eq!(n_secure, s.failures, "secure-api, {}: {r:?}", s.name);

        let mut v = s.validator();
        let (a_validator, r) = allocations(|| v.normalise_and_validate());
        let n_validator = r.as_ref().map_or_else(with_validator::failures, |()| 0);

        let mut g = s.garde();
        let (a_garde, r) = allocations(|| g.normalise_and_validate());
        let n_garde = r.as_ref().map_or_else(with_garde::failures, |()| 0);

        let mut f = s.validify();
        let (a_validify, r) = allocations(|| f.validify());
        let n_validify = r.as_ref().map_or_else(with_validify::failures, |()| 0);

        if s.failures == 0 {
            for (name, n, user, email) in [
                ("secure-api", n_secure, &x.username, &x.email),
                ("validator", n_validator, &v.username, &v.email),
                ("garde", n_garde, &g.username, &g.email),
                ("validify", n_validify, &f.username, &f.email),
            ] {
                assert_eq!(n, 0, "{name} rejected {}", s.name);
                assert_eq!(user, "alice_01", "{name}, {}", s.name);
                assert_eq!(email, "alice@example.com", "{name}, {}", s.name);
            }
        } else {
            for (name, n) in [
                ("validator", n_validator),
                ("garde", n_garde),
                ("validify", n_validify),
            ] {
                assert_eq!(n, s.failures, "{name} reported {n} failures in {}", s.name);
            }
        }
        println!(
            "  {:<22} secure-api {n_secure} / {a_secure} allocs, validator {n_validator} / \
             {a_validator} allocs, garde {n_garde} / {a_garde} allocs, validify {n_validify} / \
             {a_validify} allocs",
            s.name
        );
    }

    // The deny list and the pattern are really enforced by every implementation.
    // Look-alikes fail the pattern and the deny list.
    for (username, code) in [
        ("ADMIN", 1),
        (" Root ", 1),
        ("al ice", 1),
        ("alice", 0),
        ("ａｄｍｉｎ", 2),
        ("adm\u{200B}in", 2),
        ("\u{0430}dmin", 2),
    ] {
        let mut x = secure::CreateUserRequest {
            username: username.to_owned(),
            email: "alice@example.com".to_owned(),
            age: 30,
        };
        let mut v = with_validator::CreateUserRequest {
            username: username.to_owned(),
            email: "alice@example.com".to_owned(),
            age: 30,
        };
        let mut g = with_garde::CreateUserRequest {
            username: username.to_owned(),
            email: "alice@example.com".to_owned(),
            age: 30,
        };
        let mut f = with_validify::CreateUserRequest {
            username: username.to_owned(),
            email: "alice@example.com".to_owned(),
            age: 30,
        };
        assert_eq!(x.secure().map_or_else(|e| e.len(), |()| 0), code);
        let n = v.normalise_and_validate();
        assert_eq!(
            n.map_or_else(|e| with_validator::failures(&e), |()| 0),
            code
        );
        let n = g.normalise_and_validate();
        assert_eq!(n.map_or_else(|e| with_garde::failures(&e), |()| 0), code);
        let n = f.validify();
        assert_eq!(n.map_or_else(|e| with_validify::failures(&e), |()| 0), code);
    }
}

/// secure-api's success path allocates nothing when the input is already normalised.
fn check_zero_allocations() {
    use secure_api_runtime::SecureInput;

    let b = &SCENARIOS[1];
    let mut x = b.secure();
    x.secure().expect("warm-up");
    for _ in 0..1000 {
        let mut x = b.secure();
        let (n, r) = allocations(|| x.secure());
        assert!(r.is_ok());
        assert_eq!(
            n, 0,
            "secure-api allocated {n} times on already-normalised input"
        );
    }
    println!(
        "zero-allocation check: secure-api .secure() on scenario (b): 0 allocations (1000 calls)"
    );

    // The deny check allocates nothing for ASCII or already-lowercase values.
    let keys = deny_keys();
    for value in ["alice_01", "administrator", "zoë_01", "ａｄｍｉｎ"] {
        let (n, _) =
            allocations(|| secure_api_runtime::__private::is_denied_key(black_box(value), &keys));
        assert_eq!(n, 0, "the deny check allocated {n} times for {value:?}");
    }
    println!("zero-allocation check: deny on ASCII and lowercase non-ASCII values: 0 allocations");
}

/// The keys the derive emits for `deny("admin", "root", "null", "undefined")`.
fn deny_keys() -> [String; 4] {
    DENY.map(secure_api_runtime::__private::deny_key)
}

/// The deny check alone, before (lowercase equality) and after (skeletons).
fn bench_deny(c: &mut Criterion) {
    use secure_api_runtime::__private::is_denied_key;
    let keys = deny_keys();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    for (name, value, denied_before, denied_after) in [
        ("ascii_pass", "alice_01", false, false),
        ("ascii_long_pass", "administrator", false, false),
        ("ascii_denied", "admin", true, true),
        ("non_ascii_lowercase_pass", "zoë_01", false, false),
        ("non_ascii_mixed_case_pass", "Zoë_01", false, false),
        ("fullwidth_denied", "ａｄｍｉｎ", false, true),
    ] {
        assert_eq!(is_denied_lowercase(value), denied_before, "{value:?}");
        assert_eq!(is_denied_key(value, &keys), denied_after, "{value:?}");
        let mut group = c.benchmark_group(format!("deny/{name}"));
        group.bench_function("lowercase_equality", |b| {
            b.iter(|| is_denied_lowercase(black_box(value)))
        });
        group.bench_function("skeleton", |b| {
            b.iter(|| is_denied_key(black_box(value), black_box(&keys)))
        });
        group.finish();
    }
}

// ---------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------

fn bench_scenarios(c: &mut Criterion) {
    use secure_api_runtime::SecureInput;
    use validify::Validify;

    for s in SCENARIOS {
        let mut group = c.benchmark_group(format!("validation/{}", s.name));
        group.bench_function("secure-api", |b| {
            b.iter_batched(
                || s.secure(),
                |mut x| {
                    let r = x.secure();
                    black_box((x, r))
                },
                BatchSize::SmallInput,
            );
        });
        group.bench_function("validator", |b| {
            b.iter_batched(
                || s.validator(),
                |mut x| {
                    let r = x.normalise_and_validate();
                    black_box((x, r))
                },
                BatchSize::SmallInput,
            );
        });
        group.bench_function("garde", |b| {
            b.iter_batched(
                || s.garde(),
                |mut x| {
                    let r = x.normalise_and_validate();
                    black_box((x, r))
                },
                BatchSize::SmallInput,
            );
        });
        group.bench_function("validify", |b| {
            b.iter_batched(
                || s.validify(),
                |mut x| {
                    let r = x.validify();
                    black_box((x, r))
                },
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

fn main() {
    check_equivalence();
    check_zero_allocations();

    let mut c = Criterion::default().configure_from_args();
    bench_scenarios(&mut c);
    bench_deny(&mut c);
    c.final_summary();
}
