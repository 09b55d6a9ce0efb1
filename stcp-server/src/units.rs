//! Human units for command lines: sizes (`64k`, `1m`, `16MiB`, `4096`) and durations
//! (`500ms`, `10s`, `2m`, `1h`, `off`), shared by the server and the load generator.

use std::time::Duration;

/// What a value was meant to be, so that an error can say what would have been right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// A number of bytes.
    Size,
    /// A span of time.
    Duration,
}

impl Quantity {
    fn name(self) -> &'static str {
        match self {
            Quantity::Size => "size",
            Quantity::Duration => "duration",
        }
    }

    /// What a valid value looks like.
    fn expected(self) -> &'static str {
        match self {
            Quantity::Size => {
                "give bytes with an optional unit b, k, m or g (binary multiples), e.g. 256, 64k, 1m"
            }
            Quantity::Duration => "give a number and a unit ns, us, ms, s, m or h, e.g. 500ms, 10s, 2m",
        }
    }
}

/// A size or duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing to parse.
    #[error("empty {}: {}", .0.name(), .0.expected())]
    Empty(Quantity),
    /// The number part is missing or malformed.
    #[error("{input:?} is not a {}: {}", quantity.name(), quantity.expected())]
    BadNumber {
        /// The whole input.
        input: String,
        /// What it was meant to be.
        quantity: Quantity,
    },
    /// The unit suffix is not known.
    #[error("unknown unit {unit:?} in {input:?}: {}", quantity.expected())]
    BadUnit {
        /// The whole input.
        input: String,
        /// The suffix that was not understood.
        unit: String,
        /// What it was meant to be.
        quantity: Quantity,
    },
    /// A size that is not a whole number of bytes (`1.3`, `0.5b`).
    #[error("{0:?} is not a whole number of bytes: give e.g. 1536 or 1.5k")]
    Fraction(String),
    /// The value does not fit.
    #[error("{0:?} is too large")]
    Overflow(String),
}

fn split_number(input: &str, quantity: Quantity) -> Result<(f64, &str), UnitError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(UnitError::Empty(quantity));
    }
    let bad_number = || UnitError::BadNumber {
        input: input.to_string(),
        quantity,
    };
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() {
        return Err(bad_number());
    }
    let n: f64 = num.parse().map_err(|_| bad_number())?;
    Ok((n, unit.trim()))
}

/// Parses a byte size. Suffixes are binary multiples (`k` = 1024): `b`, `k`/`kb`/`kib`,
/// `m`/`mb`/`mib`, `g`/`gb`/`gib`, case-insensitive; no suffix means bytes. Fractions are allowed
/// (`1.5k` = 1536) when the result is a whole number of bytes.
pub fn parse_size(input: &str) -> Result<usize, UnitError> {
    let (n, unit) = split_number(input, Quantity::Size)?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(UnitError::BadUnit {
                input: input.to_string(),
                unit: unit.to_string(),
                quantity: Quantity::Size,
            })
        }
    };
    let v = n * mult;
    if v.fract() != 0.0 {
        return Err(UnitError::Fraction(input.to_string()));
    }
    if v > usize::MAX as f64 {
        return Err(UnitError::Overflow(input.to_string()));
    }
    Ok(v as usize)
}

/// Parses a duration: `ns`, `us`, `ms`, `s`, `m` (minutes), `h`; a bare number means seconds.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let (n, unit) = split_number(input, Quantity::Duration)?;
    let secs: f64 = match unit.to_ascii_lowercase().as_str() {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "" | "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(UnitError::BadUnit {
                input: input.to_string(),
                unit: unit.to_string(),
                quantity: Quantity::Duration,
            })
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| UnitError::Overflow(input.to_string()))
}

/// Like [`parse_duration`], but `off`, `none`, `never` and `0` mean "no limit" (`None`).
pub fn parse_optional_duration(input: &str) -> Result<Option<Duration>, UnitError> {
    match input.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "never" | "0" => Ok(None),
        _ => parse_duration(input).map(Some),
    }
}

/// Formats bytes with a binary unit (`1.5 MiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size(" 256 b "), Ok(256));
        assert!(matches!(parse_size("1.3"), Err(UnitError::Fraction(_))));
        assert!(matches!(parse_size("12q"), Err(UnitError::BadUnit { .. })));
        assert!(matches!(parse_size("k"), Err(UnitError::BadNumber { .. })));
        assert_eq!(parse_size(""), Err(UnitError::Empty(Quantity::Size)));
        assert!(matches!(
            parse_size("99999999999999999999999g"),
            Err(UnitError::Overflow(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(matches!(
            parse_duration("3 days"),
            Err(UnitError::BadUnit { .. })
        ));
        assert_eq!(parse_optional_duration("off"), Ok(None));
        assert_eq!(
            parse_optional_duration("300s"),
            Ok(Some(Duration::from_secs(300)))
        );
    }

    #[test]
    fn errors_say_what_a_valid_value_looks_like() {
        assert_eq!(
            parse_size("12q").unwrap_err().to_string(),
            "unknown unit \"q\" in \"12q\": give bytes with an optional unit b, k, m or g \
             (binary multiples), e.g. 256, 64k, 1m"
        );
        assert_eq!(
            parse_duration("soon").unwrap_err().to_string(),
            "\"soon\" is not a duration: give a number and a unit ns, us, ms, s, m or h, e.g. \
             500ms, 10s, 2m"
        );
        assert!(parse_duration("3 days")
            .unwrap_err()
            .to_string()
            .contains("ns, us, ms, s, m or h"));
        assert!(parse_size("1.3")
            .unwrap_err()
            .to_string()
            .contains("whole number of bytes"));
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(12), "12 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(3 << 20), "3.0 MiB");
    }
}
