//! What the fuzz targets share: the request types they feed, and the checks every accepted
//! input must pass.

use secure_api_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// The example server, compiled here for its request types (`CreateUserRequest`,
/// `LoginRequest`, `RefreshRequest`, `UserId`): the fuzz targets validate exactly what the
/// example validates.
#[allow(dead_code, unused_imports)]
#[path = "../../examples/users_api.rs"]
pub mod users_api;

/// A street address: a nested type with normalisers and an allow-list.
#[derive(Debug, Deserialize, Serialize, SecureInput)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Trimmed, 1 to 64 characters.
    #[secure(trim, nfc, length(min = 1, max = 64))]
    pub street_name: String,
    /// Uppercased, one of three.
    #[secure(uppercase, one_of("DE", "FR", "NL"))]
    pub country_code: String,
}

/// Every kind of rule on every kind of field: `Option`, collections with `each`, nested
/// types (direct, optional, boxed and in a `Vec`), numbers, and the format rules.
#[derive(Debug, Deserialize, Serialize, SecureInput)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// An optional URL.
    #[secure(url)]
    pub home_page: Option<String>,
    /// A public URL (no private, loopback or link-local host).
    #[secure(url(public))]
    pub webhook: Option<String>,
    /// An IP address.
    #[secure(ip)]
    pub last_ip: String,
    /// A UUID.
    #[secure(uuid)]
    pub request_id: String,
    /// One of three numbers.
    #[secure(one_of(1, 2, 3))]
    pub plan: u8,
    /// A ratio.
    #[secure(range(min = 0.0, max = 1.0))]
    pub ratio: f64,
    /// A display name in NFC.
    #[secure(trim, nfc, length(min = 1, max = 40))]
    pub display: String,
    /// A handle in NFKC, lowercased, with a deny list.
    #[secure(nfkc, lowercase, length(min = 1, max = 32), deny("admin", "root"))]
    pub handle: String,
    /// An optional e-mail address.
    #[secure(trim, lowercase, email)]
    pub email: Option<String>,
    /// A nested address.
    #[secure(nested)]
    pub address: Address,
    /// An optional billing address.
    pub billing: Option<Address>,
    /// A boxed address.
    pub boxed: Option<Box<Address>>,
    /// At most 3 tags of 2 to 8 characters, trimmed and lowercased.
    #[secure(length(max = 3), each(trim, lowercase, length(min = 2, max = 8)))]
    pub tags: Vec<String>,
    /// At most 4 further addresses.
    #[secure(length(max = 4), each(nested))]
    pub others: Vec<Address>,
    /// Optional addresses in a list.
    #[secure(length(max = 2))]
    pub stops: Vec<Option<Address>>,
    /// An optional bounded count.
    #[secure(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

/// The query string of a search.
#[derive(Debug, Deserialize, Serialize, SecureInput)]
pub struct Search {
    /// The search text.
    #[secure(trim, nfkc, length(min = 1, max = 20))]
    pub q: String,
    /// The page size.
    #[secure(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// The sort order.
    #[secure(one_of("asc", "desc"))]
    pub order: Option<String>,
}

/// The statuses an input error may have: 400 (malformed, too deep) and 422 (wrong shape,
/// failed rules). Anything else from input extraction is a bug.
pub fn assert_input_error(err: &ApiError) {
    let status = err.problem().status_code().as_u16();
    assert!(
        status == 400 || status == 422,
        "an input error with status {status}"
    );
}
