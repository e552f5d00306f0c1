//! Recurrence patterns (daily, weekly, monthly and yearly, absolute or relative, with their
//! range) ↔ RFC 5545 RRULE text, the form the canonical model (`Recurrence::Series`) and
//! Salesforce's Recurrence2PatternText use; the mail side's patterns map onto these. Both
//! directions produce one canonical spelling (`FREQ` first, `INTERVAL` always present, fixed
//! part order), so a rule that made the round trip compares equal to the original.

use chrono::{NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// Which week of the month a relative pattern falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

impl WeekIndex {
    const ALL: [WeekIndex; 5] = [
        WeekIndex::First,
        WeekIndex::Second,
        WeekIndex::Third,
        WeekIndex::Fourth,
        WeekIndex::Last,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            WeekIndex::First => "First",
            WeekIndex::Second => "Second",
            WeekIndex::Third => "Third",
            WeekIndex::Fourth => "Fourth",
            WeekIndex::Last => "Last",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s.trim())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    Daily {
        interval: u32,
    },
    Weekly {
        interval: u32,
        days: Vec<Weekday>,
        first_day: Option<Weekday>,
    },
    AbsoluteMonthly {
        interval: u32,
        day: u32,
    },
    RelativeMonthly {
        interval: u32,
        weekday: Weekday,
        index: WeekIndex,
    },
    AbsoluteYearly {
        month: u32,
        day: u32,
    },
    RelativeYearly {
        month: u32,
        weekday: Weekday,
        index: WeekIndex,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeEnd {
    NoEnd,
    EndDate(NaiveDate),
    Count(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub pattern: Pattern,
    pub start: NaiveDate,
    pub end: RangeEnd,
}

fn day_code(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn parse_day_code(s: &str) -> Option<Weekday> {
    Some(match s {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn index_number(i: WeekIndex) -> i32 {
    match i {
        WeekIndex::First => 1,
        WeekIndex::Second => 2,
        WeekIndex::Third => 3,
        WeekIndex::Fourth => 4,
        WeekIndex::Last => -1,
    }
}

fn index_of(n: i32) -> Option<WeekIndex> {
    Some(match n {
        1 => WeekIndex::First,
        2 => WeekIndex::Second,
        3 => WeekIndex::Third,
        4 => WeekIndex::Fourth,
        -1 => WeekIndex::Last,
        _ => return None,
    })
}

/// The RRULE of an EWS recurrence (without `RRULE:` and without DTSTART).
pub fn to_rrule(r: &Recurrence) -> String {
    let mut parts: Vec<String> = match &r.pattern {
        Pattern::Daily { interval } => vec!["FREQ=DAILY".into(), format!("INTERVAL={interval}")],
        Pattern::Weekly { interval, days, .. } => {
            let mut days = days.clone();
            days.sort_by_key(|d| d.num_days_from_monday());
            let codes: Vec<&str> = days.iter().map(|d| day_code(*d)).collect();
            vec![
                "FREQ=WEEKLY".into(),
                format!("INTERVAL={interval}"),
                format!("BYDAY={}", codes.join(",")),
            ]
        }
        Pattern::AbsoluteMonthly { interval, day } => vec![
            "FREQ=MONTHLY".into(),
            format!("INTERVAL={interval}"),
            format!("BYMONTHDAY={day}"),
        ],
        Pattern::RelativeMonthly {
            interval,
            weekday,
            index,
        } => vec![
            "FREQ=MONTHLY".into(),
            format!("INTERVAL={interval}"),
            format!("BYDAY={}{}", index_number(*index), day_code(*weekday)),
        ],
        Pattern::AbsoluteYearly { month, day } => vec![
            "FREQ=YEARLY".into(),
            "INTERVAL=1".into(),
            format!("BYMONTH={month}"),
            format!("BYMONTHDAY={day}"),
        ],
        Pattern::RelativeYearly {
            month,
            weekday,
            index,
        } => vec![
            "FREQ=YEARLY".into(),
            "INTERVAL=1".into(),
            format!("BYMONTH={month}"),
            format!("BYDAY={}{}", index_number(*index), day_code(*weekday)),
        ],
    };
    match r.end {
        RangeEnd::NoEnd => {}
        RangeEnd::Count(n) => parts.push(format!("COUNT={n}")),
        RangeEnd::EndDate(d) => parts.push(format!("UNTIL={}", d.format("%Y%m%d"))),
    }
    parts.join(";")
}

/// An EWS recurrence from an RRULE, starting on `start` (the series' first local date).
/// None for rules EWS cannot express (e.g. BYSETPOS, hourly).
pub fn from_rrule(rule: &str, start: NaiveDate) -> Option<Recurrence> {
    let rule = rule.trim();
    let rule = rule.strip_prefix("RRULE:").unwrap_or(rule);
    let mut freq = None;
    let mut interval = 1u32;
    let mut byday: Vec<String> = Vec::new();
    let mut bymonthday = None;
    let mut bymonth = None;
    let mut end = RangeEnd::NoEnd;
    for part in rule.split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim();
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v.to_ascii_uppercase()),
            "INTERVAL" => interval = v.parse().ok().filter(|n| *n >= 1)?,
            "BYDAY" => {
                byday = v
                    .split(',')
                    .map(|d| d.trim().to_ascii_uppercase())
                    .collect()
            }
            "BYMONTHDAY" => {
                bymonthday = Some(v.parse::<u32>().ok().filter(|d| (1..=31).contains(d))?)
            }
            "BYMONTH" => bymonth = Some(v.parse::<u32>().ok().filter(|m| (1..=12).contains(m))?),
            "COUNT" => end = RangeEnd::Count(v.parse().ok()?),
            "UNTIL" => {
                let date = v.get(..8)?;
                end = RangeEnd::EndDate(NaiveDate::parse_from_str(date, "%Y%m%d").ok()?);
            }
            "WKST" => {}
            _ => return None,
        }
    }
    let relative = |code: &str| -> Option<(WeekIndex, Weekday)> {
        let split = code.len().checked_sub(2)?;
        let (n, d) = code.split_at(split);
        Some((index_of(n.parse().ok()?)?, parse_day_code(d)?))
    };
    let pattern = match freq?.as_str() {
        "DAILY" => Pattern::Daily { interval },
        "WEEKLY" => {
            let mut days: Vec<Weekday> = byday
                .iter()
                .map(|d| parse_day_code(d))
                .collect::<Option<_>>()?;
            if days.is_empty() {
                days.push(chrono::Datelike::weekday(&start));
            }
            Pattern::Weekly {
                interval,
                days,
                first_day: None,
            }
        }
        "MONTHLY" => match (bymonthday, byday.as_slice()) {
            (Some(day), []) => Pattern::AbsoluteMonthly { interval, day },
            (None, [code]) => {
                let (index, weekday) = relative(code)?;
                Pattern::RelativeMonthly {
                    interval,
                    weekday,
                    index,
                }
            }
            (None, []) => Pattern::AbsoluteMonthly {
                interval,
                day: chrono::Datelike::day(&start),
            },
            _ => return None,
        },
        "YEARLY" if interval == 1 => {
            let month = bymonth.unwrap_or(chrono::Datelike::month(&start));
            match (bymonthday, byday.as_slice()) {
                (Some(day), []) => Pattern::AbsoluteYearly { month, day },
                (None, [code]) => {
                    let (index, weekday) = relative(code)?;
                    Pattern::RelativeYearly {
                        month,
                        weekday,
                        index,
                    }
                }
                (None, []) => Pattern::AbsoluteYearly {
                    month,
                    day: chrono::Datelike::day(&start),
                },
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Recurrence {
        pattern,
        start,
        end,
    })
}

/// The canonical spelling of an RRULE (parsed and written again); the input trimmed when it
/// is not one EWS can express.
pub fn canonical(rule: &str, start: NaiveDate) -> String {
    from_rrule(rule, start)
        .map(|r| to_rrule(&r))
        .unwrap_or_else(|| rule.trim().trim_start_matches("RRULE:").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_make_the_round_trip_in_one_spelling() {
        let start = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        for (input, out) in [
            (
                "FREQ=WEEKLY;BYDAY=WE,MO",
                "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE",
            ),
            (
                "RRULE:FREQ=DAILY;INTERVAL=2;COUNT=5",
                "FREQ=DAILY;INTERVAL=2;COUNT=5",
            ),
            (
                "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20261231T000000Z",
                "FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR;UNTIL=20261231",
            ),
            (
                "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=9",
                "FREQ=YEARLY;INTERVAL=1;BYMONTH=3;BYMONTHDAY=9",
            ),
        ] {
            let r = from_rrule(input, start).unwrap();
            assert_eq!(to_rrule(&r), out);
            assert_eq!(to_rrule(&from_rrule(out, start).unwrap()), out);
        }
        assert!(from_rrule("FREQ=HOURLY", start).is_none());
        assert!(from_rrule("FREQ=MONTHLY;BYSETPOS=2", start).is_none());
    }
}
