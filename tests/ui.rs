//! Compile-time rejection: every misuse has a case with its committed `.stderr`.
//!
//! The `.stderr` files are rustc 1.95's output: other compilers word and place some
//! diagnostics differently, so on any other version these tests are ignored, with the
//! reason printed by the test runner. To regenerate them after changing a message, on
//! rustc 1.95: `TRYBUILD=overwrite cargo test --test ui`, then read every changed file
//! (`git diff tests/ui`) before committing it. See CONTRIBUTING.md.
//!
//! `rustversion::attr` comes before `#[test]`: the test harness reads `#[ignore]` when
//! `#[test]` expands, so the version gate must have been expanded by then.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "tests/ui/*.stderr come from rustc 1.95; run these tests with that compiler"
)]
#[test]
fn secure_input() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/secure_input/fail/*.rs");
    t.pass("tests/ui/secure_input/pass/*.rs");
}

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "tests/ui/*.stderr come from rustc 1.95; run these tests with that compiler"
)]
#[test]
fn secure_endpoint() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/secure_endpoint/fail/*.rs");
    t.pass("tests/ui/secure_endpoint/pass/*.rs");
}
