//! The string values of options: rates (`"100/s"`), durations (`"24h"`) and sizes
//! (`"16KiB"`). Each parser returns a message that says how to write the value.

use crate::suggest;

/// Units of rates and their length in seconds.
pub const RATE_UNITS: &[(&str, u64)] = &[("s", 1), ("min", 60), ("h", 3600), ("day", 86_400)];

/// `N/unit` as (count, seconds).
pub fn rate(s: &str) -> Result<(u32, u64), String> {
    const FORM: &str =
        "write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`";
    let Some((count, unit)) = s.split_once('/') else {
        return Err(format!("malformed rate `{s}`: {FORM}"));
    };
    let count = count.trim();
    if let Some(rest) = count.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("a rate cannot be negative: {FORM}"));
    }
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("malformed rate `{s}`: {FORM}"));
    }
    let count: u32 = count
        .parse::<u64>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            format!("rate count `{count}` is too large; the most is 4294967295 per period")
        })?;
    if count == 0 {
        return Err(
            "a rate of zero allows nothing; give a positive rate, or `rate = \"unlimited\"` to opt out of rate limiting"
                .to_owned(),
        );
    }
    let unit = unit.trim();
    let names: Vec<&str> = RATE_UNITS.iter().map(|(u, _)| *u).collect();
    match RATE_UNITS.iter().find(|(u, _)| *u == unit) {
        Some((_, secs)) => Ok((count, *secs)),
        None => Err(suggest::unknown("rate unit", unit, &names)),
    }
}

/// Units of durations and their length in milliseconds.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("day", 86_400_000),
];

/// `<N><unit>` (`"500ms"`, `"2s"`, `"24h"`) in milliseconds.
pub fn duration(s: &str) -> Result<u64, String> {
    const FORM: &str = "write a duration as a whole number and a unit of `ms`, `s`, `min`, `h` or `day`, e.g. `\"24h\"`";
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!("malformed duration `{s}`: {FORM}"));
    }
    let number: u64 = number
        .parse()
        .map_err(|_| format!("duration `{s}` is too large"))?;
    let names: Vec<&str> = DURATION_UNITS.iter().map(|(u, _)| *u).collect();
    let Some((_, factor)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit.trim()) else {
        return Err(if unit.is_empty() {
            format!("duration `{s}` has no unit: {FORM}")
        } else {
            suggest::unknown("duration unit", unit.trim(), &names)
        });
    };
    if number == 0 {
        return Err(format!("a duration of zero is not allowed: {FORM}"));
    }
    number
        .checked_mul(*factor)
        .ok_or_else(|| format!("duration `{s}` is too large"))
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1000),
    ("KiB", 1024),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
];

/// The largest `max_body`: 1 GiB.
pub const MAX_BODY_LIMIT: u64 = 1 << 30;

/// `"16KiB"`, `"1MiB"`, `"512B"` in bytes.
pub fn size(s: &str) -> Result<u64, String> {
    const FORM: &str = "write a size as a whole number and a unit of `B`, `KB`, `KiB`, `MB` or `MiB`, e.g. `\"16KiB\"`";
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = match number.parse() {
        Ok(n) => n,
        Err(_) if number.is_empty() => return Err(format!("malformed size `{s}`: {FORM}")),
        Err(_) => return Err(format!("size `{s}` is too large; the most is 1GiB")),
    };
    let names: Vec<&str> = SIZE_UNITS.iter().map(|(u, _)| *u).collect();
    let Some((_, factor)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit.trim()) else {
        return Err(if unit.is_empty() {
            format!("size `{s}` has no unit: {FORM}")
        } else {
            suggest::unknown("size unit", unit.trim(), &names)
        });
    };
    let bytes = number.saturating_mul(*factor);
    if bytes == 0 {
        return Err(format!("a body limit of zero refuses every body: {FORM}"));
    }
    if bytes > MAX_BODY_LIMIT {
        return Err(format!(
            "size `{s}` is over the 1GiB maximum; stream large uploads instead of buffering them"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(rate("100/s"), Ok((100, 1)));
        assert_eq!(rate("5/day"), Ok((5, 86_400)));
        for bad in [
            "abc",
            "100/x",
            "-1/s",
            "0/s",
            "99999999999/s",
            "/s",
            "1.5/s",
            "100",
        ] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration("24h"), Ok(86_400_000));
        assert_eq!(duration("500ms"), Ok(500));
        assert!(duration("0s").is_err());
        assert!(duration("5").is_err());
        assert!(duration("5 parsecs").is_err());
        assert_eq!(size("16KiB"), Ok(16_384));
        assert!(size("0B").is_err());
        assert!(size("2048MiB").is_err());
    }
}
