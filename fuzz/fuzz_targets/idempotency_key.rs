//! The `Idempotency-Key` header value parser, over raw header bytes.
//!
//! Properties: no panic; an accepted key is 1 to 255 bytes of visible ASCII or spaces; a
//! bare token is its own key; a key written as a structured-field string (with `\"` and `\\`
//! escaped) parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_api_runtime::__private::idempotency_key;

const MAX_KEY_LEN: usize = 255;

fuzz_target!(|data: &[u8]| {
    let Some(key) = idempotency_key(data) else {
        return;
    };
    assert!(
        !key.is_empty() && key.len() <= MAX_KEY_LEN,
        "{} bytes",
        key.len()
    );
    assert!(key.iter().all(|b| (0x20..=0x7e).contains(b)));
    let trimmed = data.trim_ascii();
    if !trimmed.starts_with(b"\"") {
        assert_eq!(key, trimmed, "a bare token is its own key");
    }
    let mut quoted = Vec::with_capacity(key.len() + 2);
    quoted.push(b'"');
    for &b in &key {
        if b == b'"' || b == b'\\' {
            quoted.push(b'\\');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    assert_eq!(idempotency_key(&quoted).as_deref(), Some(&key[..]));
});
