//! Input validation: the [`SecureInput`] trait the derive implements, and the
//! [`ValidationErrors`] it reports.
//!
//! It also has the rules' checks that are useful on their own, such as [`is_public_url`],
//! [`is_public_ip`] and [`DenyList`].
//!
//! This module has no actix types; the extractors in [`crate::extract`] adapt it to
//! requests. Errors name *where* and *which rule* failed (a JSON Pointer and a stable code,
//! optionally with the rule's bounds) and never carry the offending input value, so they are
//! safe to return to clients as they are.

#[doc(hidden)]
pub mod nested;
pub(crate) mod rules;

pub use rules::{
    DenyList, EMAIL_LOCAL_MAX_LEN, EMAIL_MAX_LEN, URL_MAX_LEN, is_email, is_ip, is_public_ip,
    is_public_url, is_url, is_uuid,
};

use std::borrow::Cow;
use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// A request type whose fields are normalised and validated by [`crate::prelude::Valid`]
/// and its query and path counterparts.
///
/// Implemented by `#[derive(SecureInput)]`; see the derive's documentation for the rules.
/// A hand-written implementation normalises `self` in place and pushes one violation per
/// failed rule, pointing below `at`.
///
/// A derived type validates every field whose type implements `SecureInput`, written
/// implementation or derive, even without the `nested` rule (also inside `Option`, `Box`,
/// `Vec`, `VecDeque` and arrays), so a nested input is never skipped silently; `skip` opts a
/// field out. Fields whose type depends on a type parameter must say `nested` or `skip`,
/// and a `SecureInput` type in a map, set, `Rc`, `Arc` or `Cow` (which the derive cannot
/// reach mutably) must be marked `skip`: both are compile errors otherwise.
///
/// ```
/// use secure_api_runtime::validation::{Location, SecureInput, ValidationErrors};
///
/// struct Port(u16);
///
/// impl SecureInput for Port {
///     fn secure_at(&mut self, at: &Location<'_>, errors: &mut ValidationErrors) {
///         if self.0 < 1024 {
///             errors.push(at, "privileged_port");
///         }
///     }
/// }
///
/// let mut port = Port(80);
/// let errors = port.secure().unwrap_err();
/// assert_eq!(errors.iter().next().unwrap().code(), "privileged_port");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a validated input type",
    label = "`{Self}` does not implement `SecureInput`",
    note = "add `#[derive(serde::Deserialize, SecureInput)]` to the definition of `{Self}` (with `use secure_api_runtime::prelude::*;`)"
)]
pub trait SecureInput {
    /// Normalises `self` in place and validates it, pushing every failed rule (not only the
    /// first) to `errors`, with pointers below `at`.
    fn secure_at(&mut self, at: &Location<'_>, errors: &mut ValidationErrors);

    /// Normalises and validates `self` as a whole request. Allocates nothing when every
    /// rule passes.
    fn secure(&mut self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.secure_at(&Location::Root, &mut errors);
        errors.into_result()
    }
}

impl<T: SecureInput + ?Sized> SecureInput for Box<T> {
    fn secure_at(&mut self, at: &Location<'_>, errors: &mut ValidationErrors) {
        (**self).secure_at(at, errors);
    }
}

/// Where in the input a rule is checked: a lazily built JSON Pointer (RFC 6901).
///
/// Locations live on the stack and cost nothing until a rule fails, when
/// [`Location::pointer`] renders them.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// The whole input (pointer `""`).
    Root,
    /// A member of an object: the parent and the member's name as it appears in the input.
    Field(&'a Location<'a>, &'static str),
    /// An element of an array.
    Index(&'a Location<'a>, usize),
}

impl<'a> Location<'a> {
    /// The location of the member `name` below `self`.
    pub fn field(&'a self, name: &'static str) -> Location<'a> {
        Location::Field(self, name)
    }

    /// The location of element `index` below `self`.
    pub fn index(&'a self, index: usize) -> Location<'a> {
        Location::Index(self, index)
    }

    /// Renders the JSON Pointer, escaping `~` and `/` in member names.
    ///
    /// ```
    /// use secure_api_runtime::validation::Location;
    /// let root = Location::Root;
    /// let tags = root.field("tags");
    /// assert_eq!(tags.index(2).pointer(), "/tags/2");
    /// assert_eq!(root.field("a/b").pointer(), "/a~1b");
    /// ```
    pub fn pointer(&self) -> String {
        let mut out = String::with_capacity(32);
        self.write_pointer(&mut out);
        out
    }

    fn write_pointer(&self, out: &mut String) {
        match self {
            Location::Root => {}
            Location::Field(parent, name) => {
                parent.write_pointer(out);
                out.push('/');
                push_escaped(out, name);
            }
            Location::Index(parent, index) => {
                parent.write_pointer(out);
                out.push('/');
                out.push_str(&index.to_string());
            }
        }
    }
}

/// Appends `segment` to a JSON Pointer under construction, escaping `~` and `/`.
pub(crate) fn push_escaped(out: &mut String, segment: &str) {
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// A bound of a `length` or `range` rule, reported with the violation so that clients can
/// explain it without seeing the rejected value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// An integer bound (lengths and integer ranges).
    Int(i128),
    /// A floating-point bound.
    Float(f64),
}

macro_rules! bound_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Bound {
            fn from(v: $t) -> Self {
                Bound::Int(i128::try_from(v).unwrap_or(i128::MAX))
            }
        }
    )*};
}
bound_from_int!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize
);

impl From<f32> for Bound {
    fn from(v: f32) -> Self {
        Bound::Float(f64::from(v))
    }
}

impl From<f64> for Bound {
    fn from(v: f64) -> Self {
        Bound::Float(v)
    }
}

impl Serialize for Bound {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Bound::Int(v) => match i64::try_from(v) {
                Ok(v) => s.serialize_i64(v),
                Err(_) => s.serialize_i128(v),
            },
            Bound::Float(v) => s.serialize_f64(v),
        }
    }
}

/// One failed rule: where, which rule, and the rule's bounds when it has any.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pointer: String,
    code: Cow<'static, str>,
    min: Option<Bound>,
    max: Option<Bound>,
}

impl Violation {
    /// A violation of rule `code` at the JSON Pointer `pointer`.
    pub fn new(pointer: impl Into<String>, code: impl Into<Cow<'static, str>>) -> Self {
        Violation {
            pointer: pointer.into(),
            code: code.into(),
            min: None,
            max: None,
        }
    }

    /// Adds the rule's bounds.
    pub fn with_bounds(mut self, min: Option<Bound>, max: Option<Bound>) -> Self {
        self.min = min;
        self.max = max;
        self
    }

    /// The JSON Pointer of the offending member (`""` for the whole input).
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The stable code of the failed rule (`"length"`, `"pattern"`, `"deny"`, ...).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The rule's lower bound, if it has one.
    pub fn min(&self) -> Option<Bound> {
        self.min
    }

    /// The rule's upper bound, if it has one.
    pub fn max(&self) -> Option<Bound> {
        self.max
    }
}

impl Serialize for Violation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = 2 + usize::from(self.min.is_some()) + usize::from(self.max.is_some());
        let mut map = s.serialize_map(Some(len))?;
        map.serialize_entry("pointer", &self.pointer)?;
        map.serialize_entry("code", &self.code)?;
        if let Some(min) = &self.min {
            map.serialize_entry("min", min)?;
        }
        if let Some(max) = &self.max {
            map.serialize_entry("max", max)?;
        }
        map.end()
    }
}

/// Every rule that failed for one input, in the order the rules were checked.
///
/// Empty (and unallocated) until the first failure. Serialises as the `errors` array of a
/// 422 problem response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidationErrors {
    violations: Vec<Violation>,
}

impl ValidationErrors {
    /// No violations.
    pub const fn new() -> Self {
        ValidationErrors {
            violations: Vec::new(),
        }
    }

    /// Records that rule `code` failed at `at`.
    pub fn push(&mut self, at: &Location<'_>, code: &'static str) {
        self.violations.push(Violation::new(at.pointer(), code));
    }

    /// Records that rule `code` with the given bounds failed at `at`.
    pub fn push_bounds(
        &mut self,
        at: &Location<'_>,
        code: &'static str,
        min: Option<Bound>,
        max: Option<Bound>,
    ) {
        self.violations
            .push(Violation::new(at.pointer(), code).with_bounds(min, max));
    }

    /// Records a prepared violation.
    pub fn push_violation(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// How many rules failed.
    pub fn len(&self) -> usize {
        self.violations.len()
    }

    /// The violations in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, Violation> {
        self.violations.iter()
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a Violation;
    type IntoIter = std::slice::Iter<'a, Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.violations.iter()
    }
}

impl IntoIterator for ValidationErrors {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.violations.into_iter()
    }
}

impl FromIterator<Violation> for ValidationErrors {
    fn from_iter<I: IntoIterator<Item = Violation>>(iter: I) -> Self {
        ValidationErrors {
            violations: iter.into_iter().collect(),
        }
    }
}

impl Serialize for ValidationErrors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.violations.len()))?;
        for v in &self.violations {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} validation rule(s) failed:", self.violations.len())?;
        for v in &self.violations {
            write!(f, " {}:{}", v.pointer, v.code)?;
        }
        Ok(())
    }
}
