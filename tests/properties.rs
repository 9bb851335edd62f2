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
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \\t\\n]{0,3}[a-zA-Z0-9_@.:/\\[\\]-]{0,40}[ \\t]{0,2}",
        Just(String::new()),
        Just("\u{0}\u{202e}\u{feff}ǅΣς".to_owned()),
        Just("a".repeat(300)),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (
        any_string(),
        proptest::option::of(any_string()),
        any::<f64>(),
    )
        .prop_map(|(name, grade, score)| Leaf { name, grade, score })
}

fn tree() -> impl Strategy<Value = Tree> {
    (
        (any_string(), any_string(), any_string(), any_string()),
        any::<i64>(),
        leaf(),
        proptest::collection::vec(leaf(), 0..12),
        proptest::option::of(proptest::collection::vec(any_string(), 0..4)),
    )
        .prop_map(|((email, url, ip, id), age, leaf, leaves, codes)| Tree {
            email,
            url,
            ip,
            id,
            age,
            leaf,
            leaves,
            codes,
        })
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
