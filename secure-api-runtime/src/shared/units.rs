//! The string values of options: rates (`"100/s"`), durations (`"24h"`) and sizes
//! (`"16KiB"`). One grammar, for `#[secure_endpoint]` at compile time and for
//! `Rate::from_str` at run time. Each parser returns a message that says how to write the
//! value.
//!
//! A value has no whitespace, the way `Rate` displays itself and the way `u32::from_str`
//! reads numbers: `"100 / s"` and `" 100/s "` are refused with a message naming the
//! spelling to use. One spelling per value keeps configuration searchable and makes
//! `Display` and parsing exact inverses.

use super::suggest;

/// Units of rates and their length in seconds.
pub const RATE_UNITS: &[(&str, u64)] = &[("s", 1), ("min", 60), ("h", 3600), ("day", 86_400)];

/// Units of durations and their length in milliseconds.
pub const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("day", 86_400_000),
];

/// Units of sizes and their length in bytes.
pub const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1000),
    ("KiB", 1024),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("GiB", 1 << 30),
];

/// The largest `max_body`: 1 GiB.
pub const MAX_BODY_LIMIT: u64 = 1 << 30;

/// `N/unit` as (count, seconds): `"100/s"` is `(100, 1)`.
///
/// # Errors
/// A message for the user when `s` is not a positive count that fits a `u32`, a `/` and
/// one of [`RATE_UNITS`], without whitespace.
pub fn rate(s: &str) -> Result<(u32, u64), String> {
    without_whitespace("rate", s, rate_exact)
}

/// `<N><unit>` (`"500ms"`, `"2s"`, `"24h"`) in milliseconds.
///
/// # Errors
/// A message for the user when `s` is not a positive whole number followed by one of
/// [`DURATION_UNITS`], without whitespace, or when it overflows a `u64` of milliseconds.
pub fn duration(s: &str) -> Result<u64, String> {
    without_whitespace("duration", s, duration_exact)
}

/// `"16KiB"`, `"1MiB"`, `"512B"` in bytes, at most [`MAX_BODY_LIMIT`].
///
/// # Errors
/// A message for the user when `s` is not a positive whole number followed by one of
/// [`SIZE_UNITS`], without whitespace, or when it is over [`MAX_BODY_LIMIT`].
pub fn size(s: &str) -> Result<u64, String> {
    without_whitespace("size", s, size_exact)
}

/// Parses `s` with `parse` when it has no whitespace. Otherwise reports what is wrong with
/// the value without its whitespace, or, when that is valid, that it is the one to write.
fn without_whitespace<T>(
    what: &str,
    s: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    if !s.contains(char::is_whitespace) {
        return parse(s);
    }
    let compact: String = s.split_whitespace().collect();
    parse(&compact)?;
    Err(format!(
        "{what} {s:?} contains whitespace; write {compact:?}"
    ))
}

fn rate_exact(s: &str) -> Result<(u32, u64), String> {
    const FORM: &str =
        "write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`";
    let Some((count, unit)) = s.split_once('/') else {
        return Err(format!("malformed rate `{s}`: {FORM}"));
    };
    if let Some(rest) = count.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("a rate cannot be negative: {FORM}"));
    }
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) || unit.is_empty() {
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
    Ok((count, factor("rate unit", unit, RATE_UNITS)?))
}

fn duration_exact(s: &str) -> Result<u64, String> {
    const FORM: &str = "write a duration as a whole number and a unit of `ms`, `s`, `min`, `h` or `day`, e.g. `\"24h\"`";
    let (number, unit) = number_and_unit("duration", FORM, s, "")?;
    let unit = factor_or_missing("duration", FORM, s, unit, DURATION_UNITS)?;
    if number == 0 {
        return Err(format!("a duration of zero is not allowed: {FORM}"));
    }
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("duration `{s}` is too large"))
}

fn size_exact(s: &str) -> Result<u64, String> {
    const FORM: &str = "write a size as a whole number and a unit of `B`, `KB`, `KiB`, `MB`, `MiB`, `GB` or `GiB`, e.g. `\"16KiB\"`";
    let (number, unit) = number_and_unit("size", FORM, s, "; the most is 1GiB")?;
    let unit = factor_or_missing("size", FORM, s, unit, SIZE_UNITS)?;
    let bytes = number.saturating_mul(unit);
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

/// The leading whole number of `s` and the rest. `what` names the value in messages,
/// `form` says how to write one and `most` follows "too large".
fn number_and_unit<'s>(
    what: &str,
    form: &str,
    s: &'s str,
    most: &str,
) -> Result<(u64, &'s str), String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!("malformed {what} `{s}`: {form}"));
    }
    if unit.starts_with(['.', ',']) && unit[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("{what} `{s}` is not a whole number: {form}"));
    }
    let number = number
        .parse()
        .map_err(|_| format!("{what} `{s}` is too large{most}"))?;
    Ok((number, unit))
}

/// [`factor`], with its own message when the unit is missing.
fn factor_or_missing(
    what: &str,
    form: &str,
    s: &str,
    unit: &str,
    units: &[(&str, u64)],
) -> Result<u64, String> {
    if unit.is_empty() {
        return Err(format!("{what} `{s}` has no unit: {form}"));
    }
    factor(&format!("{what} unit"), unit, units)
}

/// The factor of `unit` in `units`, or the unknown-unit message built from the table.
fn factor(what: &str, unit: &str, units: &[(&str, u64)]) -> Result<u64, String> {
    match units.iter().find(|(u, _)| *u == unit) {
        Some((_, factor)) => Ok(*factor),
        None => {
            let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
            Err(suggest::unknown(what, unit, &names))
        }
    }
}

/// A rate and what [`rate`] makes of it: the (count, seconds) or the whole message.
#[cfg(test)]
pub type RateCase = (&'static str, Result<(u32, u64), &'static str>);

/// The rates both crates' tests read.
#[cfg(test)]
pub const RATE_CASES: &[RateCase] = &[
    ("100/s", Ok((100, 1))),
    ("5/day", Ok((5, 86_400))),
    ("10/min", Ok((10, 60))),
    ("1/h", Ok((1, 3600))),
    ("4294967295/s", Ok((u32::MAX, 1))),
    (
        "100 / s",
        Err("rate \"100 / s\" contains whitespace; write \"100/s\""),
    ),
    (
        " 100/s ",
        Err("rate \" 100/s \" contains whitespace; write \"100/s\""),
    ),
    (
        "100/s\n",
        Err("rate \"100/s\\n\" contains whitespace; write \"100/s\""),
    ),
    (
        "100/\u{a0}s",
        Err("rate \"100/\\u{a0}s\" contains whitespace; write \"100/s\""),
    ),
    (
        "100 / sec",
        Err("unknown rate unit `sec`; expected one of: `s`, `min`, `h`, `day`"),
    ),
    (
        "100/S",
        Err("unknown rate unit `S`; did you mean `s`? expected one of: `s`, `min`, `h`, `day`"),
    ),
    (
        "100/x",
        Err("unknown rate unit `x`; did you mean `s`? expected one of: `s`, `min`, `h`, `day`"),
    ),
    (
        "100/",
        Err(
            "malformed rate `100/`: write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`",
        ),
    ),
    (
        "abc",
        Err(
            "malformed rate `abc`: write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`",
        ),
    ),
    (
        "100",
        Err(
            "malformed rate `100`: write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`",
        ),
    ),
    (
        "/s",
        Err(
            "malformed rate `/s`: write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`",
        ),
    ),
    (
        "1.5/s",
        Err(
            "malformed rate `1.5/s`: write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`",
        ),
    ),
    (
        "+5/s",
        Err(
            "malformed rate `+5/s`: write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`",
        ),
    ),
    (
        "-1/s",
        Err(
            "a rate cannot be negative: write a rate as `N/unit` with a unit of `s`, `min`, `h` or `day`, e.g. `\"100/s\"`",
        ),
    ),
    (
        "0/s",
        Err(
            "a rate of zero allows nothing; give a positive rate, or `rate = \"unlimited\"` to opt out of rate limiting",
        ),
    ),
    (
        "4294967296/s",
        Err("rate count `4294967296` is too large; the most is 4294967295 per period"),
    ),
    (
        "99999999999999999999999/s",
        Err("rate count `99999999999999999999999` is too large; the most is 4294967295 per period"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every input of `cases` and compares with the expected value or message.
    fn table<T: PartialEq + std::fmt::Debug + Copy>(
        parse: fn(&str) -> Result<T, String>,
        cases: &[(&str, Result<T, &str>)],
    ) {
        for (input, expected) in cases {
            assert_eq!(parse(input), expected.map_err(str::to_owned), "{input:?}");
        }
    }

    #[test]
    fn rates() {
        table(rate, RATE_CASES);
    }

    #[test]
    fn every_rate_unit_parses() {
        for (unit, secs) in RATE_UNITS {
            assert_eq!(rate(&format!("7/{unit}")), Ok((7, *secs)));
        }
    }

    const DURATION_FORM: &str = "write a duration as a whole number and a unit of `ms`, `s`, `min`, `h` or `day`, e.g. `\"24h\"`";

    #[test]
    fn durations() {
        let malformed = format!("malformed duration `-5s`: {DURATION_FORM}");
        let fraction = format!("duration `1.5h` is not a whole number: {DURATION_FORM}");
        let no_unit = format!("duration `10` has no unit: {DURATION_FORM}");
        let zero = format!("a duration of zero is not allowed: {DURATION_FORM}");
        table(
            duration,
            &[
                ("24h", Ok(86_400_000)),
                ("500ms", Ok(500)),
                ("30day", Ok(30 * 86_400_000)),
                (
                    "24 h",
                    Err("duration \"24 h\" contains whitespace; write \"24h\""),
                ),
                (
                    " 2s",
                    Err("duration \" 2s\" contains whitespace; write \"2s\""),
                ),
                (
                    "24 hours",
                    Err(
                        "unknown duration unit `hours`; expected one of: `ms`, `s`, `min`, `h`, `day`",
                    ),
                ),
                (
                    "24H",
                    Err(
                        "unknown duration unit `H`; did you mean `h`? expected one of: `ms`, `s`, `min`, `h`, `day`",
                    ),
                ),
                ("-5s", Err(&malformed)),
                ("1.5h", Err(&fraction)),
                ("10", Err(&no_unit)),
                ("0s", Err(&zero)),
                (
                    "18446744073709551615day",
                    Err("duration `18446744073709551615day` is too large"),
                ),
                (
                    "18446744073709551616ms",
                    Err("duration `18446744073709551616ms` is too large"),
                ),
            ],
        );
    }

    const SIZE_FORM: &str = "write a size as a whole number and a unit of `B`, `KB`, `KiB`, `MB`, `MiB`, `GB` or `GiB`, e.g. `\"16KiB\"`";

    #[test]
    fn sizes() {
        let fraction = format!("size `1.5MiB` is not a whole number: {SIZE_FORM}");
        let zero = format!("a body limit of zero refuses every body: {SIZE_FORM}");
        let over = |s: &str| {
            format!(
                "size `{s}` is over the 1GiB maximum; stream large uploads instead of buffering them"
            )
        };
        let (over_mib, over_gib) = (over("1025MiB"), over("2GiB"));
        table(
            size,
            &[
                ("16KiB", Ok(16_384)),
                ("16KB", Ok(16_000)),
                ("512B", Ok(512)),
                ("1GB", Ok(1_000_000_000)),
                ("1GiB", Ok(MAX_BODY_LIMIT)),
                (
                    "16 KiB",
                    Err("size \"16 KiB\" contains whitespace; write \"16KiB\""),
                ),
                (
                    "16kib",
                    Err(
                        "unknown size unit `kib`; did you mean `KiB`? expected one of: `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`",
                    ),
                ),
                ("1.5MiB", Err(&fraction)),
                ("0B", Err(&zero)),
                ("1025MiB", Err(&over_mib)),
                ("2GiB", Err(&over_gib)),
                (
                    "99999999999999999999B",
                    Err("size `99999999999999999999B` is too large; the most is 1GiB"),
                ),
            ],
        );
    }
}
