//! The grammar of rates, durations and sizes that `#[secure_endpoint]` checks at compile
//! time and `Rate::from_str` at run time.
//!
//! Properties: no panic or overflow; what is accepted is positive and within its bounds,
//! has no whitespace, and a rate displays as the exact text that parses back to it; every
//! refusal has a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_api_runtime::__private::units;
use secure_api_runtime::throttle::Rate;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match units::rate(s) {
        Ok((count, secs)) => {
            assert!(count > 0 && secs > 0);
            assert!(!s.contains(char::is_whitespace));
            let rate: Rate = s.parse().expect("the same grammar");
            assert_eq!(rate.count(), count);
            assert_eq!(rate.period_secs(), secs);
            let shown = rate.to_string();
            assert_eq!(shown.parse::<Rate>().expect("Display parses back"), rate);
        }
        Err(message) => {
            assert!(!message.is_empty());
            assert!(s.parse::<Rate>().is_err());
        }
    }
    match units::duration(s) {
        Ok(ms) => assert!(ms > 0 && !s.contains(char::is_whitespace)),
        Err(message) => assert!(!message.is_empty()),
    }
    match units::size(s) {
        Ok(bytes) => {
            assert!(bytes > 0 && bytes <= units::MAX_BODY_LIMIT);
            assert!(!s.contains(char::is_whitespace));
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
