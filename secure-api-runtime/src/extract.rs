//! Extractors that hand a handler only normalised, validated input: [`Valid`] (JSON body),
//! [`ValidQuery`] and [`ValidPath`].
//!
//! Each one rejects with an [`ApiError`] problem response:
//!
//! | failure | status |
//! | --- | --- |
//! | body not `application/json` (or `application/*+json`) | 415 |
//! | body over the limit (default 64 KiB, [`InputLimits`]) | 413 |
//! | JSON nested deeper than the limit (default 32), malformed JSON | 400 |
//! | wrong type, missing or unknown field, failed rule | 422 with `errors` |
//! | path segment of the wrong type | 404 |

use std::fmt;
use std::ops::{Deref, DerefMut};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::{LocalBoxFuture, Ready, ready};
use serde::de::DeserializeOwned;

use crate::input::{InputLimits, is_json_content_type, json_input, query_input};
use crate::problem::{ApiError, problems};
use crate::tracked::{Track, Tracked};
use crate::validation::SecureInput;

macro_rules! wrapper {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<T: SecureInput>(pub T);

        impl<T: SecureInput> $name<T> {
            /// The validated value.
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T: SecureInput> Deref for $name<T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T: SecureInput> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }

        impl<T: SecureInput + fmt::Debug> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }
    };
}

wrapper! {
    /// A JSON request body of type `T`, deserialised with unknown fields rejected, then
    /// normalised and validated by its [`SecureInput`] rules.
    ///
    /// ```
    /// use secure_api_runtime::prelude::*;
    ///
    /// #[derive(serde::Deserialize, SecureInput)]
    /// struct Rename {
    ///     #[secure(trim, length(min = 1, max = 64))]
    ///     name: String,
    /// }
    ///
    /// async fn rename(input: Valid<Rename>) -> HttpResponse {
    ///     HttpResponse::Ok().body(input.into_inner().name)
    /// }
    /// ```
    Valid
}

wrapper! {
    /// The query string as a `T`, with unknown parameters rejected, normalised and
    /// validated.
    ValidQuery
}

wrapper! {
    /// The route's path parameters as a `T`, normalised and validated. A segment that does
    /// not deserialise (a letter for a number) gives 404, as with `web::Path`.
    ValidPath
}

/// The endpoint's limits (set by `#[secure_endpoint(max_body = ...)]`), else those of the
/// resource or app (`app_data`), else the defaults.
pub(crate) fn limits(req: &HttpRequest) -> InputLimits {
    if let Some(limits) = req.extensions().get::<InputLimits>() {
        return *limits;
    }
    req.app_data::<InputLimits>().copied().unwrap_or_default()
}

impl<T: SecureInput + DeserializeOwned + 'static> FromRequest for Valid<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = limits(req);
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        if !json {
            return Box::pin(ready(Err(ApiError::new(problems::UNSUPPORTED_MEDIA_TYPE))));
        }
        let declared = declared_length(req);
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(payload, declared, limits.body_limit()).await?;
            json_input(&body, &limits).map(Valid)
        })
    }
}

/// The `Content-Length` if the request declares one that parses.
pub(crate) fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads a whole body of at most `limit` bytes: 413 as soon as the declared or received
/// length exceeds it, 400 when the stream fails.
///
/// A body that arrives in one chunk (the usual case for small JSON bodies) is returned as
/// that chunk, without a copy; only a second chunk starts a buffer.
pub(crate) async fn read_body(
    mut payload: Payload,
    declared: Option<usize>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::new(problems::PAYLOAD_TOO_LARGE));
    }
    let chunk_of = |chunk: Result<Bytes, PayloadError>| {
        chunk.map_err(|e| match e {
            PayloadError::Overflow => ApiError::new(problems::PAYLOAD_TOO_LARGE),
            e => ApiError::new(problems::MALFORMED_REQUEST).with_cause(e),
        })
    };
    let first = match payload.next().await {
        Some(chunk) => chunk_of(chunk)?,
        None => return Ok(Bytes::new()),
    };
    if first.len() > limit {
        return Err(ApiError::new(problems::PAYLOAD_TOO_LARGE));
    }
    let Some(second) = payload.next().await else {
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        let chunk = chunk_of(chunk)?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(problems::PAYLOAD_TOO_LARGE));
        }
        body.extend_from_slice(&chunk);
        next = payload.next().await;
    }
    Ok(body.freeze())
}

impl<T: SecureInput + DeserializeOwned> FromRequest for ValidQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(query_input(req.query_string()).map(ValidQuery))
    }
}

impl<T: SecureInput + DeserializeOwned> FromRequest for ValidPath<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = actix_router::PathDeserializer::new(req.match_info());
        let track = Track::default();
        let result = match T::deserialize(Tracked::root(de, &track)) {
            Ok(value) => crate::input::secure_value(value).map(ValidPath),
            // Log which parameter failed and how, never serde's message: it quotes the
            // segment the client sent.
            Err(err) => Err(ApiError::new(problems::NOT_FOUND).with_cause(format!(
                "path parameter `{}` did not deserialise ({})",
                track.error_pointer().pointer.trim_start_matches('/'),
                crate::input::classify(&err.to_string())
            ))),
        };
        ready(result)
    }
}
