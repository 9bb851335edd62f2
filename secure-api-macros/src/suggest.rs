//! "Did you mean" suggestions, built from the parsers' own tables of accepted names so that
//! the message can never drift from what is accepted.

/// The candidate closest to `found` by edit distance, if it is close enough to be a likely
/// typo.
pub fn nearest<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let found = found.to_ascii_lowercase();
    let limit = (found.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (levenshtein(&found, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "unknown X `found`; did you mean `y`? expected one of: a, b, c"
pub fn unknown(what: &str, found: &str, candidates: &[&str]) -> String {
    let list = candidates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match nearest(found, candidates) {
        Some(near) => format!("unknown {what} `{found}`; did you mean `{near}`? expected one of: {list}"),
        None => format!("unknown {what} `{found}`; expected one of: {list}"),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["length", "range", "pattern", "email"];
        assert_eq!(nearest("lenght", &keys), Some("length"));
        assert_eq!(nearest("emial", &keys), Some("email"));
        assert_eq!(nearest("xyz", &keys), None);
    }
}
