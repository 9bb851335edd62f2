//! The automatic nested validation behind `#[derive(SecureInput)]`: a field whose type
//! implements [`SecureInput`] is validated even without the `nested` rule, and a value the
//! derive cannot reach (a map's values, the content of an `Rc` or `Arc`) fails to compile
//! when it implements `SecureInput`, so that no validated input type is ever skipped
//! silently.
//!
//! Both use autoref specialisation: the generated code calls a method on `&Nested<T>`
//! (`&Probe<T>`) with two traits in scope; the one implemented for `Nested<T>` where
//! `T: SecureInput` is found first, and the fallback implemented for `&Nested<T>` for every
//! `T` only when that bound does not hold. Not a public API: the derive's generated code
//! is its only user.

use std::cell::Cell;
use std::marker::PhantomData;

use super::{Location, SecureInput, ValidationErrors};

/// A field value offered for validation.
pub struct Nested<'a, T: ?Sized>(Cell<Option<&'a mut T>>);

impl<'a, T: ?Sized> Nested<'a, T> {
    /// Wraps the field.
    pub fn new(value: &'a mut T) -> Self {
        Nested(Cell::new(Some(value)))
    }
}

/// Chosen when the field's type implements [`SecureInput`]: validates it.
pub trait NestedSecureInput {
    /// Validates the wrapped value below `at`.
    fn secure_nested(&self, at: &Location<'_>, errors: &mut ValidationErrors);
}

impl<T: SecureInput + ?Sized> NestedSecureInput for Nested<'_, T> {
    #[inline]
    fn secure_nested(&self, at: &Location<'_>, errors: &mut ValidationErrors) {
        if let Some(value) = self.0.take() {
            value.secure_at(at, errors);
        }
    }
}

/// Chosen for every other type: nothing to validate.
pub trait NestedPlain {
    /// Does nothing.
    #[inline]
    fn secure_nested(&self, _at: &Location<'_>, _errors: &mut ValidationErrors) {}
}

impl<T: ?Sized> NestedPlain for &Nested<'_, T> {}

/// A type held where validation cannot reach it.
pub struct Probe<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> Probe<T> {
    /// The probe of `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Probe(PhantomData)
    }
}

/// What a probe found: a validated input type that the derive cannot reach.
pub struct Unreached<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> Unreached<T> {
    /// Fails to compile: `T` implements `SecureInput` but is held where the derive cannot
    /// validate it.
    pub fn refuse(self)
    where
        T: CannotBeReached,
    {
    }
}

/// What a probe found for other types: nothing to refuse.
pub struct Plain;

impl Plain {
    /// Accepts.
    #[inline]
    pub fn refuse(self) {}
}

/// Chosen when the probed type implements [`SecureInput`].
pub trait ProbeSecureInput<T: ?Sized> {
    /// The finding.
    fn probe(&self) -> Unreached<T>;
}

impl<T: SecureInput + ?Sized> ProbeSecureInput<T> for Probe<T> {
    fn probe(&self) -> Unreached<T> {
        Unreached(PhantomData)
    }
}

/// Chosen for every other type.
pub trait ProbePlain {
    /// The finding.
    #[inline]
    fn probe(&self) -> Plain {
        Plain
    }
}

impl<T: ?Sized> ProbePlain for &Probe<T> {}

/// Implemented by no type: its error message explains a refused probe.
#[diagnostic::on_unimplemented(
    message = "`{Self}` implements `SecureInput`, but the derive cannot validate it here",
    label = "held in a map, set, `Rc`, `Arc`, `Cow` or reference, which the derive cannot reach mutably",
    note = "use a `Vec`, an `Option` or a `Box` (validated automatically), validate the values in your handler, or mark the field `#[secure(skip)]` to accept them unvalidated"
)]
pub trait CannotBeReached {}
