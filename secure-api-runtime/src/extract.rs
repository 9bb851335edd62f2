//! Extractors that hand a handler only normalised, validated input: [`Valid`] (JSON body),
//! [`ValidQuery`] and [`ValidPath`].
//!
//! Each one rejects with an [`ApiError`] problem response:
//!
//! | failure | status |
//! | --- | --- |
//! | body not `application/json` (or `application/*+json`), or more than one `Content-Type` field | 415 |
//! | body over the limit (default 64 KiB, [`InputLimits`]) | 413 |
//! | JSON nested deeper than the limit (default 32), malformed JSON | 400 |
//! | wrong type, missing or unknown field, failed rule | 422 with `errors` |
//! | path segment of the wrong type | 404 |

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::Stream;
use futures_util::future::{Ready, ready};
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
    let extensions = req.extensions();
    let set = extensions
        .get::<crate::api::RequestContext>()
        .and_then(|ctx| ctx.limits.get())
        .or_else(|| extensions.get::<InputLimits>().copied());
    drop(extensions);
    if let Some(limits) = set {
        return limits;
    }
    req.app_data::<InputLimits>().copied().unwrap_or_default()
}

impl<T: SecureInput + DeserializeOwned + 'static> FromRequest for Valid<T> {
    type Error = ApiError;
    type Future = ValidFuture<T>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = limits(req);
        // Exactly one `Content-Type` field: with two, a proxy in front and this app could
        // each read another one, so the body's type is not known.
        let mut types = req.headers().get_all(header::CONTENT_TYPE);
        let json = match (types.next(), types.next()) {
            (Some(value), None) => value.to_str().is_ok_and(is_json_content_type),
            _ => false,
        };
        let read = if json {
            Ok(read_body(
                payload.take(),
                declared_length(req),
                limits.body_limit(),
            ))
        } else {
            Err(Some(ApiError::new(problems::UNSUPPORTED_MEDIA_TYPE)))
        };
        ValidFuture {
            read,
            limits,
            _input: PhantomData,
        }
    }
}

/// The future of [`Valid<T>`]'s extraction: reads the body, then deserialises and validates
/// it. A named type rather than a boxed one, so that extracting allocates nothing of its own.
#[doc(hidden)]
pub struct ValidFuture<T> {
    /// The body being read, or the error decided before reading (taken when returned).
    read: Result<ReadBody, Option<ApiError>>,
    limits: InputLimits,
    _input: PhantomData<fn() -> T>,
}

impl<T: SecureInput + DeserializeOwned> Future for ValidFuture<T> {
    type Output = Result<Valid<T>, ApiError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match &mut this.read {
            Ok(read) => match Pin::new(read).poll(cx) {
                Poll::Ready(body) => {
                    Poll::Ready(body.and_then(|body| json_input(&body, &this.limits).map(Valid)))
                }
                Poll::Pending => Poll::Pending,
            },
            Err(err) => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| ApiError::internal("Valid<T> polled after it finished")))),
        }
    }
}

/// The `Content-Length` if the request declares one that parses.
pub(crate) fn declared_length(req: &HttpRequest) -> Option<usize> {
    let digits = req.headers().get(header::CONTENT_LENGTH)?.as_bytes();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Reads a whole body of at most `limit` bytes: 413 as soon as the declared or received
/// length exceeds it, 400 when the stream fails.
///
/// A body that arrives in one chunk (the usual case for small JSON bodies) is returned as
/// that chunk, without a copy; only a second chunk starts a buffer.
pub(crate) fn read_body(payload: Payload, declared: Option<usize>, limit: usize) -> ReadBody {
    ReadBody {
        payload,
        declared,
        limit,
        first: None,
        rest: None,
        refused: declared.is_some_and(|n| n > limit),
    }
}

/// The future of `read_body`.
#[doc(hidden)]
pub struct ReadBody {
    payload: Payload,
    declared: Option<usize>,
    limit: usize,
    /// The first chunk, until a second one comes.
    first: Option<Bytes>,
    /// From the second chunk on, the body so far.
    rest: Option<BytesMut>,
    /// The declared length is over the limit: 413 without reading.
    refused: bool,
}

impl Future for ReadBody {
    type Output = Result<Bytes, ApiError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.refused {
            return Poll::Ready(Err(ApiError::new(problems::PAYLOAD_TOO_LARGE)));
        }
        loop {
            let chunk = match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    let body = match (this.rest.take(), this.first.take()) {
                        (Some(rest), _) => rest.freeze(),
                        (None, Some(first)) => first,
                        (None, None) => Bytes::new(),
                    };
                    return Poll::Ready(Ok(body));
                }
                Poll::Ready(Some(Err(PayloadError::Overflow))) => {
                    return Poll::Ready(Err(ApiError::new(problems::PAYLOAD_TOO_LARGE)));
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(
                        ApiError::new(problems::MALFORMED_REQUEST).with_cause(e)
                    ));
                }
                Poll::Ready(Some(Ok(chunk))) => chunk,
            };
            let held = this.first.as_ref().map_or(0, Bytes::len)
                + this.rest.as_ref().map_or(0, BytesMut::len);
            if held + chunk.len() > this.limit {
                return Poll::Ready(Err(ApiError::new(problems::PAYLOAD_TOO_LARGE)));
            }
            match (&mut this.rest, this.first.take()) {
                (Some(rest), _) => rest.extend_from_slice(&chunk),
                (None, None) => this.first = Some(chunk),
                (None, Some(first)) => {
                    let capacity = this.declared.unwrap_or(1024).min(this.limit);
                    let mut rest = BytesMut::with_capacity(capacity.max(first.len() + chunk.len()));
                    rest.extend_from_slice(&first);
                    rest.extend_from_slice(&chunk);
                    this.rest = Some(rest);
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn chunks(parts: Vec<Result<&'static [u8], PayloadError>>) -> Payload {
        let stream = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| p.map(Bytes::from_static))
                .collect::<Vec<_>>(),
        );
        Payload::Stream {
            payload: Box::pin(stream),
        }
    }

    fn read(
        parts: Vec<Result<&'static [u8], PayloadError>>,
        declared: Option<usize>,
    ) -> Result<Bytes, u16> {
        read_body(chunks(parts), declared, 8)
            .now_or_never()
            .expect("a ready stream")
            .map_err(|e| actix_web::ResponseError::status_code(&e).as_u16())
    }

    #[test]
    fn bodies_are_read_whole_within_the_limit() {
        assert_eq!(read(vec![], None), Ok(Bytes::new()));
        assert_eq!(
            read(vec![Ok(b"12345678")], Some(8)),
            Ok(Bytes::from_static(b"12345678"))
        );
        assert_eq!(
            read(vec![Ok(b"123"), Ok(b""), Ok(b"45"), Ok(b"678")], None),
            Ok(Bytes::from_static(b"12345678"))
        );
    }

    #[test]
    fn over_the_limit_is_413_and_a_broken_stream_is_400() {
        assert_eq!(read(vec![Ok(b"123456789")], None), Err(413));
        assert_eq!(read(vec![Ok(b"1234"), Ok(b"56789")], None), Err(413));
        assert_eq!(
            read(vec![Ok(b"12"), Ok(b"3456"), Ok(b"789")], None),
            Err(413)
        );
        assert_eq!(read(vec![Ok(b"1")], Some(9)), Err(413));
        assert_eq!(
            read(vec![Ok(b"1"), Err(PayloadError::Overflow)], None),
            Err(413)
        );
        assert_eq!(
            read(vec![Ok(b"1"), Err(PayloadError::Incomplete(None))], None),
            Err(400)
        );
    }

    #[test]
    fn declared_lengths_are_plain_decimal_numbers() {
        let of = |v: &str| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::CONTENT_LENGTH, v))
                .to_http_request();
            declared_length(&req)
        };
        assert_eq!(of("0"), Some(0));
        assert_eq!(of("16384"), Some(16384));
        for bad in ["", "+5", "-1", "1 2", "0x10", "99999999999999999999999"] {
            assert_eq!(of(bad), None, "{bad:?}");
        }
        assert_eq!(
            declared_length(&actix_web::test::TestRequest::default().to_http_request()),
            None
        );
    }
}
