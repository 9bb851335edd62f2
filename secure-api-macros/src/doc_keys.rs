//! The grammars in the macros' rustdoc (in `lib.rs`) against the tables of keys their
//! parsers accept: a key accepted and not documented, or documented and not accepted,
//! fails here. (The parsers' own tests check that each table is what they dispatch on.)

use std::collections::{BTreeMap, BTreeSet};

use crate::endpoint::model::{
    ALGORITHMS, AUTH_KEYS, IDEMPOTENT_KEYS, KEYS, METHODS, ON_STORE_ERROR, OPTION_KEYS,
};

const LIB: &str = include_str!("lib.rs");

/// `input::model` is private to its macro; its table is read from the source.
const INPUT_MODEL: &str = include_str!("input/model.rs");

/// The rustdoc of the function `name` in `lib.rs`, one line per `///` line.
fn rustdoc(name: &str) -> String {
    let file = syn::parse_file(LIB).expect("lib.rs parses");
    let func = file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Fn(f) if f.sig.ident == name => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("lib.rs has no fn `{name}`"));
    let lines = func.attrs.iter().filter_map(|attr| match &attr.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(line),
                ..
            }) => Some(line.value()),
            _ => None,
        },
        _ => None,
    });
    lines
        .map(|line| line.strip_prefix(' ').unwrap_or(&line).to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of the section `# {title}`, up to the next section.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let heading = format!("\n# {title}\n");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("no `# {title}` section"))
        + heading.len();
    let rest = &doc[start..];
    &rest[..rest.find("\n# ").unwrap_or(rest.len())]
}

/// The code block of the `# Grammar` section.
fn grammar(doc: &str) -> &str {
    let grammar = section(doc, "Grammar");
    let start = grammar.find("```text\n").expect("a ```text block") + "```text\n".len();
    let rest = &grammar[start..];
    &rest[..rest.find("```").expect("a closed block")]
}

/// `text` up to a `//` comment outside string literals.
fn strip_comment(text: &str) -> &str {
    let mut in_string = false;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '/' if !in_string && previous == '/' => return &text[..i - 1],
            _ => {}
        }
        previous = c;
    }
    text
}

/// `text` split at `|` outside parentheses and string literals, each part trimmed.
fn alternatives(text: &str) -> Vec<String> {
    let (mut parts, mut current) = (Vec::new(), String::new());
    let (mut depth, mut in_string) = (0usize, false);
    for c in text.chars() {
        match c {
            '"' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => depth = depth.saturating_sub(1),
            '|' if !in_string && depth == 0 => {
                parts.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current.trim().to_owned());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The productions of a grammar, `name := alternative | ...` continued on lines that start
/// with `|`: each name with its alternatives. Other lines (the attribute's own shape) are
/// not productions.
fn productions(grammar: &str) -> BTreeMap<String, Vec<String>> {
    let mut productions = BTreeMap::<String, Vec<String>>::new();
    let mut current: Option<String> = None;
    for line in grammar.lines().map(strip_comment) {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(":=") {
            let name = name.trim().to_owned();
            productions
                .entry(name.clone())
                .or_default()
                .extend(alternatives(rest));
            current = Some(name);
        } else if let (Some(rest), Some(name)) = (line.strip_prefix('|'), &current) {
            productions
                .get_mut(name)
                .expect("started")
                .extend(alternatives(rest));
        } else {
            current = None;
        }
    }
    productions
}

/// The key an alternative starts with (`rate` of `rate = "N/s"`, `roles` of `roles(..)`),
/// or `None` for a value such as `"gcra"`.
fn key(alternative: &str) -> Option<&str> {
    let end = alternative
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(alternative.len());
    let key = &alternative[..end];
    key.starts_with(|c: char| c.is_ascii_lowercase())
        .then_some(key)
}

/// Every key the alternatives start with.
fn keys(alternatives: &[String]) -> BTreeSet<&str> {
    alternatives.iter().filter_map(|a| key(a)).collect()
}

/// The quoted values given to `key`: `key = "a" | "b"` gives `a` and `b`.
fn values<'a>(alternatives: &'a [String], key: &str) -> BTreeSet<&'a str> {
    let start = alternatives
        .iter()
        .position(|a| self::key(a) == Some(key))
        .unwrap_or_else(|| panic!("`{key}` is not documented"));
    let first = alternatives[start]
        .split_once('=')
        .expect("`key = value`")
        .1;
    std::iter::once(first)
        .chain(alternatives[start + 1..].iter().map(String::as_str))
        .map_while(|value| value.trim().strip_prefix('"')?.strip_suffix('"'))
        .collect()
}

/// Whether `text` names `key` in backticks: `` `key` ``, `` `key = ..` ``, `` `key(..)` ``.
fn mentions(text: &str, key: &str) -> bool {
    let quoted = format!("`{key}");
    text.match_indices(&quoted).any(|(i, _)| {
        !text[i + quoted.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The strings of the `const name: &[&str] = &[...]` in `source`.
fn const_list(source: &str, name: &str) -> Vec<String> {
    let file = syn::parse_file(source).expect("the source parses");
    let list = file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Const(c) if c.ident == name => Some(&*c.expr),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no const `{name}`"));
    let syn::Expr::Reference(syn::ExprReference { expr, .. }) = list else {
        panic!("`{name}` is not `&[...]`");
    };
    let syn::Expr::Array(array) = &**expr else {
        panic!("`{name}` is not `&[...]`");
    };
    array
        .elems
        .iter()
        .map(|elem| match elem {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => s.value(),
            _ => panic!("`{name}` holds a non-string"),
        })
        .collect()
}

fn set<'a>(keys: &[&'a str]) -> BTreeSet<&'a str> {
    keys.iter().copied().collect()
}

#[test]
fn endpoint_grammar_documents_every_accepted_key() {
    let doc = rustdoc("secure_endpoint");
    let grammar = productions(grammar(&doc));
    assert_eq!(keys(&grammar["option"]), set(OPTION_KEYS));
    assert_eq!(keys(&grammar["idempotent_option"]), set(IDEMPOTENT_KEYS));
    assert_eq!(keys(&grammar["condition"]), set(AUTH_KEYS));
    assert_eq!(values(&grammar["option"], "algorithm"), set(ALGORITHMS));
    assert_eq!(values(&grammar["option"], "key"), set(KEYS));
    assert_eq!(
        values(&grammar["option"], "on_store_error"),
        set(ON_STORE_ERROR)
    );
}

#[test]
fn endpoint_semantics_explain_every_option() {
    let doc = rustdoc("secure_endpoint");
    let semantics = section(&doc, "Semantics");
    let options = OPTION_KEYS.iter().filter(|k| !METHODS.contains(k));
    let missing: Vec<_> = options.filter(|k| !mentions(semantics, k)).collect();
    assert!(
        missing.is_empty(),
        "# Semantics does not explain {missing:?}"
    );
}

#[test]
fn input_grammar_documents_every_rule() {
    let doc = rustdoc("derive_secure_input");
    let grammar = productions(grammar(&doc));
    let rules = const_list(INPUT_MODEL, "RULE_KEYS");
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    assert_eq!(keys(&grammar["rule"]), set(&rules));
}

/// The reader of this module, on a grammar shaped like the real ones.
#[test]
fn productions_split_alternatives_outside_parentheses_and_strings() {
    let grammar = productions(
        "#[m(option, ...)]\n\
         \n\
         option := a(\"x\" | y, ...) | b = \"1\" | \"2\"   // c | d\n\
         \x20       | e\n\
         other := f\n",
    );
    assert_eq!(keys(&grammar["option"]), set(&["a", "b", "e"]));
    assert_eq!(values(&grammar["option"], "b"), set(&["1", "2"]));
    assert_eq!(keys(&grammar["other"]), set(&["f"]));
    assert!(mentions("use `b = 1` or `e`", "e"));
    assert!(!mentions("`ab`", "a"));
}
