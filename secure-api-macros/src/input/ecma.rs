//! A `pattern` rule's regex in ECMA-262 syntax, for the `pattern` keyword of its JSON Schema.
//!
//! The rule matches the whole value with the `regex` crate (`\A(?:...)\z`). JSON Schema's
//! `pattern` is an ECMA-262 regex (Unicode mode) that may match anywhere in the value, and
//! the two syntaxes disagree on much (`\d`, `\w`, `\b` and `.` are Unicode-aware in Rust and
//! ASCII or line-based in ECMA-262; `(?i)`, `\A`, `\z`, `[[:alpha:]]` and `\p{Greek}` do not
//! exist there). So the regex is not copied: it is parsed with the regex crate's own parser
//! (`regex-syntax`) into its high-level form, where every class is an explicit set of
//! ranges and case-insensitivity is already folded in, and that form is written out in the
//! small part of ECMA-262 whose meaning is the same in every engine: literals and ranges
//! written with `\u` escapes, non-capturing groups, alternation, counted repetition, `^`
//! and `$` (which, without the `m` flag, match only at the ends of the value), and
//! lookarounds for ASCII word boundaries and line anchors. The result matches exactly the
//! values the rule accepts.
//!
//! A regex with a Unicode word boundary (`\b` with Unicode on, the default) or a CRLF-mode
//! anchor has no such form: `None`, and the schema describes the rule in words instead.

use std::fmt::Write;

use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::check::anchored;

/// The ECMA-262 form of `pattern` as the rule matches it (the whole value), or `None`.
pub fn pattern(pattern: &str) -> Option<String> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(&anchored(pattern))
        .ok()?;
    let mut out = String::new();
    write_hir(&hir, &mut out)?;
    Some(out)
}

/// Writes `hir`; `None` when part of it has no ECMA-262 form.
fn write_hir(hir: &Hir, out: &mut String) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(lit) => {
            for c in std::str::from_utf8(&lit.0).ok()?.chars() {
                write_char(c, false, out);
            }
        }
        HirKind::Class(class) => write_class(class, out)?,
        HirKind::Look(look) => out.push_str(look_text(*look)?),
        HirKind::Repetition(rep) => {
            write_atom(&rep.sub, out)?;
            match (rep.min, rep.max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (min, None) => write!(out, "{{{min},}}").ok()?,
                (min, Some(max)) if min == max => write!(out, "{{{min}}}").ok()?,
                (min, Some(max)) => write!(out, "{{{min},{max}}}").ok()?,
            }
            if !rep.greedy {
                out.push('?');
            }
        }
        HirKind::Capture(cap) => {
            out.push_str("(?:");
            write_hir(&cap.sub, out)?;
            out.push(')');
        }
        HirKind::Concat(parts) => {
            for part in parts {
                if matches!(part.kind(), HirKind::Alternation(_)) {
                    out.push_str("(?:");
                    write_hir(part, out)?;
                    out.push(')');
                } else {
                    write_hir(part, out)?;
                }
            }
        }
        HirKind::Alternation(branches) => {
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                write_hir(branch, out)?;
            }
        }
    }
    Some(())
}

/// Writes `hir` as one atom that a quantifier can follow.
fn write_atom(hir: &Hir, out: &mut String) -> Option<()> {
    let single = match hir.kind() {
        // A capture is written as a group already.
        HirKind::Class(_) | HirKind::Capture(_) => true,
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0).ok()?.chars().count() == 1,
        _ => false,
    };
    if single {
        write_hir(hir, out)
    } else {
        out.push_str("(?:");
        write_hir(hir, out)?;
        out.push(')');
        Some(())
    }
}

fn write_class(class: &Class, out: &mut String) -> Option<()> {
    let ranges: Vec<(char, char)> = match class {
        Class::Unicode(u) => u.ranges().iter().map(|r| (r.start(), r.end())).collect(),
        Class::Bytes(b) => {
            // Byte classes come from `(?-u:...)`; only ASCII bytes are characters.
            if b.ranges().iter().any(|r| r.end() > 0x7F) {
                return None;
            }
            b.ranges()
                .iter()
                .map(|r| (char::from(r.start()), char::from(r.end())))
                .collect()
        }
    };
    out.push('[');
    for (start, end) in ranges {
        write_char(start, true, out);
        if end != start {
            out.push('-');
            write_char(end, true, out);
        }
    }
    out.push(']');
    Some(())
}

/// A character, escaped as ECMA-262's Unicode mode wants it: printable ASCII as itself
/// (syntax characters escaped), everything else as `\uXXXX` or `\u{X}`.
fn write_char(c: char, in_class: bool, out: &mut String) {
    let special = if in_class {
        matches!(c, '\\' | ']' | '[' | '^' | '-')
    } else {
        matches!(
            c,
            '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|'
        )
    };
    if special {
        out.push('\\');
        out.push(c);
    } else if c.is_ascii_graphic() || c == ' ' {
        out.push(c);
    } else if (c as u32) <= 0xFFFF {
        let _ = write!(out, "\\u{:04X}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:X}}}", c as u32);
    }
}

/// The look-around of `look`: word boundaries are ASCII ones (`[0-9A-Z_a-z]`, the only word
/// characters of ECMA-262's `\b`).
fn look_text(look: Look) -> Option<&'static str> {
    Some(match look {
        // Without the `m` flag, `^` and `$` match only at the ends of the input.
        Look::Start => "^",
        Look::End => "$",
        // `(?m:^)`: at the start, or after a `\n`.
        Look::StartLF => r"(?<![^\n])",
        Look::EndLF => r"(?![^\n])",
        Look::WordAscii => r"\b",
        Look::WordAsciiNegate => r"\B",
        Look::WordStartAscii => "(?<![0-9A-Z_a-z])(?=[0-9A-Z_a-z])",
        Look::WordEndAscii => "(?<=[0-9A-Z_a-z])(?![0-9A-Z_a-z])",
        Look::WordStartHalfAscii => "(?<![0-9A-Z_a-z])",
        Look::WordEndHalfAscii => "(?![0-9A-Z_a-z])",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_patterns_read_as_written() {
        assert_eq!(pattern("[a-z0-9_-]+").as_deref(), Some(r"^[\-0-9_a-z]+$"));
        assert_eq!(pattern("abc").as_deref(), Some("^abc$"));
        assert_eq!(pattern("a|bc").as_deref(), Some("^(?:a|bc)$"));
        assert_eq!(pattern("(ab)+?").as_deref(), Some("^(?:ab)+?$"));
        assert_eq!(
            pattern("x{2,3}y{4}z{5,}").as_deref(),
            Some("^x{2,3}y{4}z{5,}$")
        );
    }

    #[test]
    fn rust_only_syntax_is_spelled_out() {
        // Case-insensitivity is folded into classes; `\d` is every Unicode digit.
        assert_eq!(pattern("(?i)ab").as_deref(), Some("^[Aa][Bb]$"));
        assert!(pattern(r"\d").unwrap().contains(r"\u0660-\u0669"));
        assert_eq!(pattern("[[:alpha:]]").as_deref(), Some("^[A-Za-z]$"));
        assert_eq!(pattern(r"(?-u:\b)x").as_deref(), Some(r"^\bx$"));
        assert_eq!(
            pattern("(?m)^a$").as_deref(),
            Some(r"^(?<![^\n])a(?![^\n])$")
        );
        assert_eq!(pattern("é😀").as_deref(), Some(r"^\u00E9\u{1F600}$"));
    }

    #[test]
    fn unicode_word_boundaries_have_no_ecma_form() {
        assert_eq!(pattern(r"\bfoo\b"), None);
    }
}
