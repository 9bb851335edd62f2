//! Property tests: generated validation never panics, whatever the input, and
//! normalisation is idempotent.

use proptest::prelude::*;
use secure_api_runtime::input::{InputLimits, json_input};
use secure_api_runtime::prelude::*;
use serde::Deserialize;
use serde_json::Value;

fn check(v: &str) -> Result<(), &'static str> {
    if v.len() % 7 == 3 {
        Err("sevens")
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, SecureInput)]
#[serde(rename_all = "camelCase")]
struct Leaf {
    #[secure(
        trim,
        nfc,
        lowercase,
        length(min = 1, max = 16),
        pattern = "[a-z0-9_ -]+",
        deny("admin", "root")
    )]
    name: String,
    #[secure(uppercase, one_of("A", "B", "ÄÖ"))]
    grade: Option<String>,
    #[secure(range(min = -10.5, max = 10.5))]
    score: f64,
    #[secure(nfkc, trim, lowercase, deny("admin", "root"))]
    handle: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, SecureInput)]
struct Tree {
    #[secure(trim, email)]
    email: String,
    #[secure(url)]
    url: String,
    #[secure(ip)]
    ip: String,
    #[secure(uuid, custom = check)]
    id: String,
    #[secure(range(min = 0, max = 150), one_of(1, 2, 3, 150))]
    age: i64,
    #[secure(nested)]
    leaf: Leaf,
    #[secure(length(max = 8), each(nested))]
    leaves: Vec<Leaf>,
    #[secure(each(trim, uppercase, length(max = 3)))]
    codes: Option<Vec<String>>,
    #[secure(url(public))]
    hook: String,
    /// Validated without `nested`.
    spare: Option<Leaf>,
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \\t\\n]{0,3}[a-zA-Z0-9_@.:/\\[\\]-]{0,40}[ \\t]{0,2}",
        Just(String::new()),
        Just("\u{0}\u{202e}\u{feff}ǅΣς".to_owned()),
        "(https?://)?[a-zA-Z0-9.:%\\[\\]\u{ff10}-\u{ff5a}\u{200b}-]{0,30}/?",
        "[a-zA-Z0-9\u{430}-\u{44f}\u{ff21}-\u{ff5a}\u{200b}\u{ad}\u{2126}\u{212a}\u{130}\u{131}]{0,12}",
        Just("a".repeat(300)),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (
        any_string(),
        proptest::option::of(any_string()),
        any::<f64>(),
        any_string(),
    )
        .prop_map(|(name, grade, score, handle)| Leaf {
            name,
            grade,
            score,
            handle,
        })
}

fn tree() -> impl Strategy<Value = Tree> {
    (
        (any_string(), any_string(), any_string(), any_string()),
        any::<i64>(),
        leaf(),
        proptest::collection::vec(leaf(), 0..12),
        proptest::option::of(proptest::collection::vec(any_string(), 0..4)),
        (any_string(), proptest::option::of(leaf())),
    )
        .prop_map(
            |((email, url, ip, id), age, leaf, leaves, codes, (hook, spare))| Tree {
                email,
                url,
                ip,
                id,
                age,
                leaf,
                leaves,
                codes,
                hook,
                spare,
            },
        )
}

/// Arbitrary JSON, nested up to a few levels, often shaped like a `Tree`.
fn json() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any_string().prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("email".to_owned()),
        Just("leaf".to_owned()),
        Just("leaves".to_owned()),
        Just("name".to_owned()),
        Just("age".to_owned()),
        any::<String>(),
    ];
    scalar.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The deny check (stack buffer, ASCII table, early exit) agrees with comparing keys.
    /// `is_denied_key` is what the derive's generated code calls, with keys computed at
    /// compile time: a generated-code internal, reached through `__private`.
    #[test]
    fn deny_matches_exactly_the_values_with_an_entrys_key(value in any_string(), entry in any_string()) {
        use secure_api_runtime::__private::{deny_key, is_denied_key};
        let keys = [deny_key(&entry), deny_key("admin")];
        let expected = keys.iter().any(|k| *k == deny_key(&value));
        prop_assert_eq!(is_denied_key(&value, &keys), expected);
        prop_assert!(is_denied_key(&value, &[deny_key(&value)]));
    }

    /// `url(public)` never accepts what `url` refuses, nor a host a client would read as
    /// non-public.
    #[test]
    fn public_urls_are_urls_with_public_hosts(value in any_string()) {
        use secure_api_runtime::__private::has_public_host;
        use secure_api_runtime::validation::{is_public_url, is_url};
        if is_public_url(&value) {
            prop_assert!(is_url(&value));
            prop_assert!(has_public_host(&value));
        }
    }

    #[test]
    fn validating_never_panics_and_normalising_is_idempotent(mut t in tree()) {
        let first = t.clone().secure();
        let _ = t.secure();
        let normalised = t.clone();
        let second = t.secure();
        prop_assert_eq!(&t, &normalised, "normalising twice changes nothing");
        prop_assert_eq!(first.is_ok(), second.is_ok());
        if let Err(errors) = second {
            for v in errors.iter() {
                prop_assert!(v.pointer().is_empty() || v.pointer().starts_with('/'));
                prop_assert!(!v.code().is_empty());
            }
        }
    }

    #[test]
    fn json_input_never_panics(value in json()) {
        let body = serde_json::to_vec(&value).unwrap();
        let _ = json_input::<Tree>(&body, &InputLimits::default());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = json_input::<Tree>(&bytes, &InputLimits::default());
        let _ = json_input::<Leaf>(&bytes, &InputLimits::default().max_depth(2));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed(depth in 0usize..5000, open in prop_oneof![Just('['), Just('{')]) {
        let body: String = std::iter::repeat_n(if open == '[' { "[" } else { "{\"a\":" }, depth).collect();
        let result = json_input::<Tree>(body.as_bytes(), &InputLimits::default());
        prop_assert!(result.is_err());
        if depth > 32 {
            prop_assert_eq!(result.err().unwrap().problem().status(), 400);
        }
    }
}
