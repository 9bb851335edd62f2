//! Reading untrusted input without actix types: body limits, the JSON nesting limit, and
//! deserialisation that reports *where* it failed (as a JSON Pointer) and rejects unknown
//! fields, then normalisation and validation.
//!
//! The extractors in [`crate::extract`] are thin adapters over these functions.

use serde::de::DeserializeOwned;

use crate::problem::{ApiError, problems};
use crate::tracked::{Pointer, Track, Tracked};
use crate::validation::{SecureInput, ValidationErrors, Violation, push_escaped};

/// Default largest accepted body: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Default deepest accepted JSON nesting of arrays and objects.
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// Limits applied to request input before it is deserialised.
///
/// Install app-wide with `App::new().app_data(InputLimits::default().max_body(16 * 1024))`;
/// `#[secure_endpoint(max_body = "...")]` sets it per endpoint.
///
/// ```
/// use secure_api_runtime::input::InputLimits;
/// let limits = InputLimits::default().max_body(16 * 1024).max_depth(8);
/// assert_eq!(limits.body_limit(), 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    max_body: usize,
    max_depth: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_body: DEFAULT_MAX_BODY,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl InputLimits {
    /// Sets the largest accepted body in bytes.
    pub const fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Sets the deepest accepted JSON nesting (arrays and objects).
    pub const fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// The largest accepted body in bytes.
    pub const fn body_limit(&self) -> usize {
        self.max_body
    }

    /// The deepest accepted JSON nesting.
    pub const fn depth_limit(&self) -> usize {
        self.max_depth
    }
}

/// Whether a `Content-Type` value is JSON: `application/json` or `application/<x>+json`,
/// with no parameters other than `charset=utf-8`.
pub(crate) fn is_json_content_type(value: &str) -> bool {
    if value == "application/json" {
        return true;
    }
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    // Compared as bytes: slicing the `str` could split a multi-byte character and panic.
    let bytes = essence.as_bytes();
    let json = essence.eq_ignore_ascii_case("application/json")
        || (bytes.len() > "application/+json".len()
            && bytes[..12].eq_ignore_ascii_case(b"application/")
            && bytes[bytes.len() - 5..].eq_ignore_ascii_case(b"+json"));
    json && parts.all(|param| {
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        let value = value.trim().trim_matches('"');
        name.trim().eq_ignore_ascii_case("charset")
            && (value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8"))
    })
}

/// Checks that no array or object in `json` nests deeper than `max_depth`, without parsing
/// it. Runs before deserialisation so that deep input costs one linear scan.
fn check_depth(json: &[u8], max_depth: usize) -> Result<(), ApiError> {
    // No document nests deeper than it has opening brackets (strings' included): most
    // bodies are done with one count, which the compiler vectorises.
    if json.iter().filter(|&&b| b == b'{' || b == b'[').count() <= max_depth {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ApiError::new(problems::NESTING_TOO_DEEP));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Deserialises a JSON body, rejecting unknown fields, then normalises and validates it.
///
/// Errors: malformed JSON or trailing data 400; too deep 400; a value of the wrong type, a
/// missing field or an unknown field 422 with its pointer; failed rules 422. No message
/// includes serde's text or any part of the input: pointers name only the type's own
/// fields and array indexes, and stop at a map or enum whose keys the client chose. The log
/// gets the kind of failure and its pointer, never a value.
pub fn json_input<T: DeserializeOwned + SecureInput>(
    body: &[u8],
    limits: &InputLimits,
) -> Result<T, ApiError> {
    check_depth(body, limits.max_depth)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let track = Track::default();
    let value = match T::deserialize(Tracked::root(&mut de, &track)) {
        Ok(v) => v,
        Err(err) => {
            use serde_json::error::Category;
            return Err(match err.classify() {
                // serde stops at the first type error; a document that is also malformed
                // further on is reported as malformed.
                Category::Data if is_well_formed(body) => {
                    data_error(&track.error_pointer(), &err.to_string())
                }
                _ => malformed(&err),
            });
        }
    };
    de.end().map_err(|e| malformed(&e))?;
    finish(value, unknown_fields(&track))
}

/// A 400 for JSON that does not parse, logged with where it stopped (never what it read).
fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::new(problems::MALFORMED_REQUEST).with_cause(format!(
        "{:?} error at line {} column {}",
        err.classify(),
        err.line(),
        err.column()
    ))
}

fn is_well_formed(json: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(json).is_ok()
}

/// Deserialises a query string (`a=1&b=x`), rejecting unknown fields, then normalises and
/// validates it. Every failure is a 422 with the pointer of the offending parameter.
pub fn query_input<T: DeserializeOwned + SecureInput>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    let track = Track::default();
    match T::deserialize(Tracked::root(de, &track)) {
        Ok(value) => finish(value, unknown_fields(&track)),
        Err(err) => Err(data_error(&track.error_pointer(), &err.to_string())),
    }
}

/// One `unknown_field` violation per object that held keys its type does not define,
/// pointing at the object rather than at the member: the member's name is client input and
/// is not echoed back.
fn unknown_fields(track: &Track) -> ValidationErrors {
    track
        .take_unknown()
        .into_iter()
        .map(|pointer| Violation::new(pointer, "unknown_field"))
        .collect()
}

/// Normalises and validates an already deserialised `value`: 422 listing every failed rule.
pub(crate) fn secure_value<T: SecureInput>(value: T) -> Result<T, ApiError> {
    finish(value, ValidationErrors::new())
}

/// Normalises and validates `value`, reporting its failures after the unknown fields found
/// while deserialising.
fn finish<T: SecureInput>(mut value: T, mut errors: ValidationErrors) -> Result<T, ApiError> {
    value.secure_at(&crate::validation::Location::Root, &mut errors);
    match errors.into_result() {
        Ok(()) => Ok(value),
        Err(errors) => Err(ApiError::validation(errors)),
    }
}

/// A 422 for a deserialisation failure of a well-formed document: the pointer comes from
/// the tracked location and the code from the kind of failure. serde's message is only
/// classified, never returned or logged: it can hold the input's values (a password sent
/// as a number is quoted in "invalid type: integer `1234`").
pub(crate) fn data_error(at: &Pointer, message: &str) -> ApiError {
    let mut pointer = at.pointer.clone();
    let code = if let Some(rest) = message.strip_prefix("missing field `") {
        // The field name comes from the type's definition, not from the input; below a
        // client-named member the object's own pointer is all that is shown.
        if let (Some(field), false) = (rest.split('`').next(), at.truncated) {
            pointer.push('/');
            push_escaped(&mut pointer, field);
        }
        "required"
    } else {
        classify(message)
    };
    let cause = format!("{code} at {pointer:?}");
    let errors: ValidationErrors = std::iter::once(Violation::new(pointer, code)).collect();
    ApiError::validation(errors).with_cause(cause)
}

/// The stable code of a serde data error message.
pub(crate) fn classify(message: &str) -> &'static str {
    if message.starts_with("missing field") {
        "required"
    } else if message.starts_with("unknown field") {
        "unknown_field"
    } else if message.starts_with("invalid type") {
        "type"
    } else if message.starts_with("invalid length") {
        "length"
    } else if message.starts_with("unknown variant") {
        "variant"
    } else if message.starts_with("duplicate field") {
        "duplicate_field"
    } else {
        "invalid"
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=\"UTF-8\""));
        assert!(is_json_content_type("application/merge-patch+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/json; charset=latin1"));
    }

    #[test]
    fn content_type_check_takes_any_text() {
        for value in [
            "applicationñ/x+json",
            "application/x-ñjson",
            "ñ",
            "application/ñ",
            "application/json; charset=ñ",
            "🦀🦀🦀🦀🦀🦀🦀🦀+json",
        ] {
            assert!(!is_json_content_type(value), "{value}");
        }
    }

    proptest! {
        #[test]
        fn content_type_check_never_panics(value in any::<String>(), tail in any::<String>()) {
            let _ = is_json_content_type(&value);
            let _ = is_json_content_type(&format!("application/{value}+json"));
            let _ = is_json_content_type(&format!("application/{value}{tail}"));
        }
    }

    #[test]
    fn depth_is_counted_outside_strings() {
        assert!(check_depth(br#"{"a":[1,{"b":2}]}"#, 3).is_ok());
        assert!(check_depth(br#"{"a":[1,{"b":2}]}"#, 2).is_err());
        assert!(check_depth(br#"{"a":"[[[[[["}"#, 1).is_ok());
        assert!(check_depth(br#"{"a":"\"[[[["}"#, 1).is_ok());
        // More brackets than the limit, side by side rather than nested.
        assert!(check_depth(br#"[[],[],{},[[]]]"#, 3).is_ok());
        assert!(check_depth(br#"[[],[],{},[[[]]]]"#, 3).is_err());
    }
}
