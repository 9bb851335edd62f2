//! `deny` compares UTS #39 confusable skeletons. This module computes the entries' keys at
//! expansion time (the runtime's `rules::deny_key` computes the values' keys with the same
//! crate and the same steps) and decides when an entry provably can never match.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The comparison key of `deny`: lowercase, UTS #39 skeleton (which drops default-ignorable
/// code points), lowercase again. Must stay identical to the runtime's `rules::deny_key`.
pub fn key(value: &str) -> String {
    let lowered: String = value.chars().flat_map(char::to_lowercase).collect();
    unicode_security::skeleton(&lowered)
        .flat_map(char::to_lowercase)
        .collect()
}

/// Patterns that can match more characters than this are not analysed.
const ALPHABET_LIMIT: usize = 20_000;

/// Every character a match of `pattern` (anchored, as the derive matches it) can contain,
/// when there are at most [`ALPHABET_LIMIT`] of them.
pub fn pattern_alphabet(pattern: &str) -> Option<Vec<char>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let mut out = Vec::new();
    collect(&hir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn collect(hir: &Hir, out: &mut Vec<char>) -> Option<()> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => out.extend(std::str::from_utf8(&lit.0).ok()?.chars()),
        HirKind::Class(Class::Unicode(class)) => {
            for range in class.iter() {
                out.extend(range.start()..=range.end());
                if out.len() > ALPHABET_LIMIT {
                    return None;
                }
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            for range in class.iter() {
                if !range.end().is_ascii() {
                    return None;
                }
                out.extend((range.start()..=range.end()).map(char::from));
            }
        }
        HirKind::Repetition(rep) => collect(&rep.sub, out)?,
        HirKind::Capture(cap) => collect(&cap.sub, out)?,
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            for sub in subs {
                collect(sub, out)?;
            }
        }
    }
    (out.len() <= ALPHABET_LIMIT).then_some(())
}

/// What the keys of an alphabet's characters allow: a value made of those characters has a
/// key whose characters all come from `produced` (the key of a string is, up to the
/// reordering of combining marks, the concatenation of its characters' keys).
pub struct KeyAlphabet {
    produced: Vec<char>,
    /// Whether some character has an empty key (a default-ignorable code point): values
    /// can then be padded without changing their key.
    has_invisible: bool,
    /// The longest key of one character, in characters.
    longest: usize,
}

impl KeyAlphabet {
    pub fn new(alphabet: &[char]) -> Self {
        let mut produced = Vec::new();
        let mut has_invisible = false;
        let mut longest = 0;
        let mut buf = [0u8; 4];
        for c in alphabet {
            let k = key(c.encode_utf8(&mut buf));
            has_invisible |= k.is_empty();
            longest = longest.max(k.chars().count());
            produced.extend(k.chars());
        }
        produced.sort_unstable();
        produced.dedup();
        KeyAlphabet {
            produced,
            has_invisible,
            longest,
        }
    }

    /// A character of `key` that no character of the alphabet produces.
    pub fn unproducible(&self, key: &str) -> Option<char> {
        key.chars()
            .find(|c| self.produced.binary_search(c).is_err())
    }

    /// The fewest and most characters a value with key `key` can have, when bounded.
    pub fn value_lengths(&self, key: &str) -> (usize, Option<usize>) {
        let n = key.chars().count();
        let fewest = if self.longest == 0 {
            0
        } else {
            n.div_ceil(self.longest)
        };
        let most = (!self.has_invisible).then_some(n);
        (fewest, most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_key() {
        let admin = key("admin");
        assert_eq!(key("\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}"), admin);
        assert_eq!(key("adm\u{200B}in"), admin);
        assert_eq!(key("\u{0430}dmin"), admin);
        assert_eq!(key("ADMIN"), admin);
        assert_ne!(key("administrator"), admin);
        assert_ne!(key("root2"), key("root"));
    }

    #[test]
    fn alphabets_of_patterns() {
        let a = pattern_alphabet(r"\A(?:[a-c_]+)\z").unwrap();
        assert_eq!(a, vec!['_', 'a', 'b', 'c']);
        let a = pattern_alphabet(r"\A(?:(?i)ab|x{2,})\z").unwrap();
        assert_eq!(a, vec!['A', 'B', 'X', 'a', 'b', 'x']);
        assert!(pattern_alphabet(r"\A(?:.+)\z").is_none());
    }

    #[test]
    fn key_alphabets_bound_what_values_can_look_like() {
        let ka = KeyAlphabet::new(&pattern_alphabet(r"[a-z0-9_]+").unwrap());
        assert_eq!(ka.unproducible(&key("null!")), Some('!'));
        assert_eq!(ka.unproducible(&key("r00t")), None);
        // `m` has the two-character key `rn`.
        assert_eq!(ka.value_lengths(&key("admin")), (3, Some(6)));
        let with_invisible = KeyAlphabet::new(&['a', '\u{200B}']);
        assert_eq!(with_invisible.value_lengths("aa"), (2, None));
    }
}
