//! Body and query extraction with validation: the example's request types, and types with
//! every kind of rule (nested, `Option`, collections with `each`, the formats).
//!
//! Properties: no panic; a refusal is a 400 or a 422; an accepted value, serialised again,
//! is accepted again and unchanged (normalising is idempotent, and the rules accept their
//! own output).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_api_fuzz::users_api::{CreateUserRequest, LoginRequest, RefreshRequest, UserId};
use secure_api_fuzz::{Profile, Search, assert_input_error};
use secure_api_runtime::SecureInput;
use secure_api_runtime::input::{InputLimits, json_input, query_input};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Extraction without the round trip (types that are never serialised).
fn check<T: DeserializeOwned + SecureInput>(body: &[u8], limits: &InputLimits) -> Option<T> {
    match json_input::<T>(body, limits) {
        Ok(value) => Some(value),
        Err(err) => {
            assert_input_error(&err);
            None
        }
    }
}

/// Extraction, and the round trip of what is accepted.
fn round_trip<T: DeserializeOwned + SecureInput + Serialize>(body: &[u8], limits: &InputLimits) {
    let Some(value) = check::<T>(body, limits) else {
        return;
    };
    let first = serde_json::to_vec(&value).expect("an accepted value serialises");
    let again = json_input::<T>(&first, limits)
        .unwrap_or_else(|e| panic!("its own output was refused: {:?}", e.problem()));
    let second = serde_json::to_vec(&again).expect("an accepted value serialises");
    assert_eq!(first, second, "normalising twice changed the value");
}

fn query<T: DeserializeOwned + SecureInput>(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = query_input::<T>(text) {
        assert_input_error(&err);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let limits = InputLimits::default();
    match which % 6 {
        0 => round_trip::<CreateUserRequest>(body, &limits),
        1 => drop(check::<LoginRequest>(body, &limits)),
        2 => drop(check::<RefreshRequest>(body, &limits)),
        3 => round_trip::<Profile>(body, &limits),
        4 => query::<Search>(body),
        _ => query::<UserId>(body),
    }
});
