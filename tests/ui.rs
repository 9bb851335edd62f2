//! Compile-time rejection: every misuse has a case with its committed `.stderr`.

#[test]
fn secure_input() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/secure_input/fail/*.rs");
    t.pass("tests/ui/secure_input/pass/*.rs");
}

#[test]
fn secure_endpoint() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/secure_endpoint/fail/*.rs");
    t.pass("tests/ui/secure_endpoint/pass/*.rs");
}
