//! The command line's durations (`run --interval`, `plan --expires-in`, `errors --since`): a
//! whole number and a unit, at most 100 years. The limit keeps every date computed from one
//! (a cutoff, a saved plan's expiry, which the plan file records as an RFC 3339 date) well
//! inside what a date can hold; a larger value is a usage error, never a panic or a default.

/// 100 years (of 365.25 days), in seconds.
const MAX_SECONDS: u64 = 36_525 * 86_400;

/// Seconds in `text` (`30s`, `10m`, `7d`…), given the units a flag takes as (suffix,
/// seconds) and the unit of a bare number, if it may have none.
fn seconds(
    text: &str,
    units: &[(&str, u64)],
    bare: Option<&str>,
    example: &str,
) -> Result<u64, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    if number.is_empty() {
        return Err(format!(
            "`{text}`: write a whole number and a unit, e.g. {example}"
        ));
    }
    let unit = if unit.is_empty() {
        bare.unwrap_or("")
    } else {
        unit
    };
    let Some(&(unit, scale)) = units.iter().find(|(u, _)| *u == unit) else {
        let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
        return Err(format!("`{text}`: the unit is {}", names.join(", ")));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| *s <= MAX_SECONDS)
        .ok_or_else(|| {
            format!(
                "`{text}` is too long: at most 100 years ({}{unit})",
                MAX_SECONDS / scale
            )
        })
}

/// A time span in s, m or h, zero included (a bare number is minutes): `--lock-timeout`.
pub fn timeout(text: &str) -> Result<std::time::Duration, String> {
    seconds(
        text,
        &[("s", 1), ("m", 60), ("h", 3600)],
        Some("m"),
        "0s, 30s, 5m",
    )
    .map(std::time::Duration::from_secs)
}

/// A time span above zero in s, m or h (a bare number is minutes): `run --interval`.
pub fn interval(text: &str) -> Result<std::time::Duration, String> {
    let seconds = seconds(
        text,
        &[("s", 1), ("m", 60), ("h", 3600)],
        Some("m"),
        "30s, 10m, 1h",
    )?;
    if seconds == 0 {
        return Err("the interval must be longer than zero".into());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// How long a saved plan may be applied (`plan --expires-in`): as [`interval`].
pub fn expiry(text: &str) -> Result<chrono::Duration, String> {
    let span = interval(text)?;
    // At most 100 years, so always in chrono's range.
    chrono::Duration::from_std(span).map_err(|e| format!("`{text}`: {e}"))
}

/// How far back to look (`errors --since`), in m, h or d.
pub fn age(text: &str) -> Result<chrono::Duration, String> {
    let seconds = seconds(
        text,
        &[("m", 60), ("h", 3600), ("d", 86_400)],
        None,
        "30m, 24h, 7d",
    )?;
    // At most 100 years, so always in i64 and in chrono's range.
    Ok(chrono::Duration::seconds(seconds as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn intervals_in_seconds_minutes_and_hours() {
        assert_eq!(interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(interval("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(interval("10"), Ok(Duration::from_secs(600)));
        assert_eq!(interval("2h"), Ok(Duration::from_secs(7200)));
        assert!(interval("0s").is_err());
        assert!(interval("10 minutes").is_err());
        assert!(interval("m").is_err());
        assert!(interval("").is_err());
        assert_eq!(interval("1d"), Err("`1d`: the unit is s, m, h".into()));
    }

    #[test]
    fn ages_in_minutes_hours_and_days() {
        assert_eq!(age("7d"), Ok(chrono::Duration::days(7)));
        assert_eq!(age("0m"), Ok(chrono::Duration::zero()));
        assert_eq!(age("24h"), Ok(chrono::Duration::hours(24)));
        assert!(age("7").is_err());
    }

    #[test]
    fn up_to_100_years_and_no_further() {
        assert_eq!(age("36525d"), Ok(chrono::Duration::days(36_525)));
        assert_eq!(
            age("36526d"),
            Err("`36526d` is too long: at most 100 years (36525d)".into())
        );
        assert_eq!(expiry("876600h"), Ok(chrono::Duration::hours(876_600)));
        assert_eq!(
            expiry("99999999999999h"),
            Err("`99999999999999h` is too long: at most 100 years (876600h)".into())
        );
        // Beyond u64, and beyond u64 once multiplied.
        assert!(interval("99999999999999999999s").is_err());
        assert_eq!(
            interval("9999999999999999999"),
            Err("`9999999999999999999` is too long: at most 100 years (52596000m)".into())
        );
    }
}
