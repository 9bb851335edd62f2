//! "Did you mean" suggestions, built from the parsers' own tables of accepted names so that
//! the message can never drift from what is accepted.

/// The candidate closest to `found` by edit distance, ignoring ASCII case, if it is close
/// enough to be a likely typo. On a tie, the first candidate.
pub fn nearest<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let found = found.to_ascii_lowercase();
    let limit = (found.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(&found, &c.to_ascii_lowercase()), *c))
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
        Some(near) => {
            format!("unknown {what} `{found}`; did you mean `{near}`? expected one of: {list}")
        }
        None => format!("unknown {what} `{found}`; expected one of: {list}"),
    }
}

/// Edit distance counting a swap of two adjacent characters as one edit (optimal string
/// alignment), so that `emial` is one edit from `email`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
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
        assert_eq!(nearest("kib", &["KB", "KiB", "MiB"]), Some("KiB"));
        assert_eq!(nearest("H", &["s", "min", "h"]), Some("h"));
    }
}
