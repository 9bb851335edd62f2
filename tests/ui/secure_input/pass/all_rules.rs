use secure_api_runtime::prelude::*;
use std::borrow::Cow;

fn even(v: &u32) -> Result<(), &'static str> {
    if v % 2 == 0 { Ok(()) } else { Err("even") }
}

#[derive(serde::Deserialize, SecureInput)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Inner {
    #[secure(trim, nfc, lowercase, length(min = 1, max = 8), pattern = "[a-z]+", deny("root"))]
    first_name: String,
}

type Alias = String;

#[derive(serde::Deserialize, SecureInput)]
#[secure(crate = "::secure_api_runtime")]
struct Everything<'a> {
    #[secure(email, length(max = 254))]
    email: String,
    #[secure(url)]
    site: Option<String>,
    #[secure(url(public))]
    webhook: Option<String>,
    #[secure(nfkc, trim, lowercase, deny("admin", "r00t"))]
    handle: String,
    // Live although shorter than `length` allows: it still refuses `adm\u{200B}in`.
    #[secure(length(min = 6), deny("admin"))]
    long_name: String,
    #[secure(ip)]
    ip: Box<str>,
    #[secure(uuid)]
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[secure(range(min = -40.5, max = 60))]
    celsius: f32,
    #[secure(range(min = -5, max = 5), one_of(-1, 0, 1))]
    delta: i8,
    #[secure(custom = even, range(max = 1000))]
    count: u32,
    #[secure(nested)]
    inner: Inner,
    #[secure(nested)]
    maybe_inner: Option<Inner>,
    #[secure(length(max = 4), each(nested))]
    inners: Vec<Inner>,
    #[secure(each(uppercase, one_of("A", "B")))]
    grades: [String; 2],
    #[secure(length(min = 1), each(each(range(min = 0, max = 9))))]
    matrix: Vec<Vec<u8>>,
    #[secure(uppercase, length(max = 3))]
    aliased: Alias,
    #[secure(length(max = 2))]
    map: std::collections::HashMap<String, u8>,
    #[secure(trim)]
    optional_twice: Option<Option<String>>,
    untouched: bool,
}

#[derive(serde::Deserialize, SecureInput)]
struct NoRules {
    plain: String,
}

fn main() {
    fn assert_secure<T: SecureInput>() {}
    assert_secure::<Everything<'static>>();
    assert_secure::<NoRules>();
}
