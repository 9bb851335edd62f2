//! Memory of sessions: live heap bytes per active session in the in-memory session store
//! (`MemoryRefreshStore`), before and after every session has rotated, and per entry of the
//! in-memory revocation list (`RevokedTokens`).
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench sessions
//! ```
//!
//! A counting global allocator keeps the live heap bytes. Sessions are started through
//! `TokenService::login` (what the app calls) with a grant like the example's (subject
//! `user<n>`, one role, a tier); the token pairs are dropped, so what stays is the store's
//! state: one record per session, its expiry-index entry and its subject-index entry. The
//! figure includes the maps' spare capacity at that size, as a running server would have.
//! `SESSIONS` (default 1,000,000) sets the number of sessions.

use std::sync::Arc;
use std::time::Duration;

use counting_alloc::retained;
use futures_util::FutureExt;
use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
use secure_api_runtime::auth::refresh::{
    AccountStatus, MemoryRefreshStore, SessionInfo, TokenService,
};
use secure_api_runtime::auth::revocation::{Revocation, RevokedTokens};
use secure_api_runtime::clock::FakeClock;

/// Live heap bytes, for the bytes-per-session figures.
#[global_allocator]
static GLOBAL: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

fn main() {
    // `cargo bench` passes `--bench`; nothing here is filtered.
    let n: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let clock = FakeClock::new();
    clock.set(1_800_000_000 * 1_000_000_000);
    let revoked = Arc::new(RevokedTokens::new().max_entries(2 * n));
    let jwt = JwtAuth::hs256(vec![7u8; 32])
        .issuer("bench")
        .audience("bench")
        .clock(Arc::new(clock.clone()))
        .revocation(revoked.clone())
        .build()
        .unwrap();
    let store = Arc::new(MemoryRefreshStore::new().max_sessions(n));
    let accounts = |s: &SessionInfo| {
        AccountStatus::Active(AccessGrant::new(&s.subject).roles(["user"]).tier("user"))
    };
    let tokens = TokenService::new(jwt.clone(), store.clone(), Arc::new(accounts));

    let (refresh, bytes) = retained(|| {
        (0..n)
            .map(|i| {
                let grant = AccessGrant::new(format!("user{i}"))
                    .roles(["user"])
                    .tier("user");
                let pair = tokens.login(grant).now_or_never().unwrap().unwrap();
                // Keep only the refresh tokens, measured separately below.
                pair.refresh_token
            })
            .collect::<Vec<_>>()
    });
    let tokens_bytes = refresh.capacity() * size_of::<String>()
        + refresh.iter().map(String::capacity).sum::<usize>();
    let per_session = (bytes - tokens_bytes as isize) as f64 / n as f64;
    println!("sessions: {n}, store len {}", store.len());
    println!("bytes per active session after login: {per_session:.1}");

    clock.advance(Duration::from_secs(600));
    let (refresh, bytes) = retained(|| {
        refresh
            .into_iter()
            .map(|t| {
                tokens
                    .refresh(&t)
                    .now_or_never()
                    .unwrap()
                    .unwrap()
                    .refresh_token
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(store.len(), n);
    // The old tokens' strings were freed and the new ones kept: the same size.
    println!(
        "bytes retained by rotating every session once: {:.1} per session",
        bytes as f64 / n as f64
    );
    drop(refresh);

    let entries = n / 10;
    let ((), bytes) = retained(|| {
        for i in 0..entries {
            let sid = format!("{i:0>22}");
            let now = jwt.now();
            revoked
                .revoke_session(&sid, now + 920, now)
                .now_or_never()
                .unwrap()
                .unwrap();
        }
    });
    println!(
        "revocation entries: {entries}, bytes per session revocation: {:.1}",
        bytes as f64 / entries as f64
    );
}
