//! The typed model of a `#[derive(SecureInput)]` input. Every value keeps its original
//! tokens so that checks can point at them.

use proc_macro2::Span;
use syn::{Ident, Lit, LitStr, Token};

/// The struct being derived.
pub struct Container<'a> {
    pub ident: &'a Ident,
    pub generics: &'a syn::Generics,
    /// `#[secure(crate = "...")]`.
    pub krate: Option<syn::Path>,
    pub fields: Vec<Field<'a>>,
    /// The struct's doc comment, for its schema's description.
    pub docs: String,
}

/// A named field and its rules.
pub struct Field<'a> {
    pub member: &'a Ident,
    pub ty: &'a syn::Type,
    /// The name the field has in the input (after serde's `rename` / `rename_all`).
    pub wire: String,
    pub rules: Rules,
    /// `#[serde(default)]` on the field or the struct: the input may leave it out.
    pub default: bool,
    /// `#[serde(skip)]` / `skip_deserializing`: never read from the input.
    pub skipped: bool,
    /// `#[serde(alias = "...")]`: other names the input may use.
    pub aliases: Vec<String>,
    /// The field's doc comment, for its schema's description.
    pub docs: String,
}

/// Rules in the order they were written.
#[derive(Default)]
pub struct Rules {
    pub list: Vec<Rule>,
}

impl Rules {
    pub fn find(&self, name: &str) -> Option<&Rule> {
        self.list.iter().find(|r| r.name() == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// One rule: the key token (for spans) and what it says.
pub struct Rule {
    pub key: Ident,
    pub kind: RuleKind,
}

impl Rule {
    /// The rule's name as written in the attribute.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    pub fn is_normaliser(&self) -> bool {
        matches!(
            self.kind,
            RuleKind::Trim
                | RuleKind::Lowercase
                | RuleKind::Uppercase
                | RuleKind::Nfc
                | RuleKind::Nfkc
        )
    }
}

pub enum RuleKind {
    Length(Bounds),
    Range(Bounds),
    Pattern(LitStr),
    Email,
    /// `url`, or `url(public)` (the `public` token kept for spans).
    Url {
        public: Option<Ident>,
    },
    Ip,
    Uuid,
    OneOf(Vec<Literal>),
    Deny(Vec<LitStr>),
    Custom(syn::Path),
    Nested,
    /// The field's contents are deliberately not validated as nested inputs.
    Skip,
    Each(Rules),
    Trim,
    Lowercase,
    Uppercase,
    Nfc,
    Nfkc,
}

/// Every rule key, for parsing and for "did you mean" suggestions.
pub const RULE_KEYS: &[&str] = &[
    "length",
    "range",
    "pattern",
    "email",
    "url",
    "ip",
    "uuid",
    "one_of",
    "deny",
    "custom",
    "nested",
    "skip",
    "each",
    "trim",
    "lowercase",
    "uppercase",
    "nfc",
    "nfkc",
];

/// The options of `url(...)`.
pub const URL_OPTIONS: &[&str] = &["public"];

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::Length(_) => "length",
            RuleKind::Range(_) => "range",
            RuleKind::Pattern(_) => "pattern",
            RuleKind::Email => "email",
            RuleKind::Url { .. } => "url",
            RuleKind::Ip => "ip",
            RuleKind::Uuid => "uuid",
            RuleKind::OneOf(_) => "one_of",
            RuleKind::Deny(_) => "deny",
            RuleKind::Custom(_) => "custom",
            RuleKind::Nested => "nested",
            RuleKind::Skip => "skip",
            RuleKind::Each(_) => "each",
            RuleKind::Trim => "trim",
            RuleKind::Lowercase => "lowercase",
            RuleKind::Uppercase => "uppercase",
            RuleKind::Nfc => "nfc",
            RuleKind::Nfkc => "nfkc",
        }
    }
}

/// `min = ..., max = ...` of `length` and `range`.
#[derive(Default)]
pub struct Bounds {
    pub min: Option<Number>,
    pub max: Option<Number>,
}

/// A numeric literal with an optional minus sign.
#[derive(Clone)]
pub struct Number {
    pub neg: Option<Token![-]>,
    pub lit: Lit,
    pub value: NumValue,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum NumValue {
    Int(i128),
    Float(f64),
}

impl NumValue {
    pub fn as_f64(self) -> f64 {
        match self {
            NumValue::Int(v) => v as f64,
            NumValue::Float(v) => v,
        }
    }
}

impl Number {
    pub fn span(&self) -> Span {
        match &self.neg {
            Some(neg) => neg
                .span
                .join(self.lit.span())
                .unwrap_or_else(|| self.lit.span()),
            None => self.lit.span(),
        }
    }
}

impl quote::ToTokens for Number {
    fn to_tokens(&self, tokens: &mut proc_macro2::TokenStream) {
        self.neg.to_tokens(tokens);
        self.lit.to_tokens(tokens);
    }
}

/// A literal of `one_of(...)`.
#[derive(Clone)]
pub enum Literal {
    Str(LitStr),
    Num(Number),
}

impl Literal {
    pub fn span(&self) -> Span {
        match self {
            Literal::Str(s) => s.span(),
            Literal::Num(n) => n.span(),
        }
    }
}
