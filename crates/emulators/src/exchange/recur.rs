//! Which local days a recurring series falls on, for CalendarView: each day from the
//! series' start is tested against its pattern (one of types.xsd's RecurrencePatternTypes),
//! until the range or the caller's horizon ends.

use super::model::{Pattern, RangeEnd, Recurrence, WeekIndex};
use chrono::{Datelike, Days, NaiveDate, Weekday};

/// However hostile a series, its days are looked for in its first century only.
const HORIZON_DAYS: u64 = 100 * 366;

/// The number of days in a month (28 to 31).
fn month_length(year: i32, month: u32) -> u32 {
    (28..=31)
        .rev()
        .find(|day| NaiveDate::from_ymd_opt(year, month, *day).is_some())
        .unwrap_or(28)
}

/// Whole months from `a`'s month to `b`'s.
fn months_apart(a: NaiveDate, b: NaiveDate) -> i64 {
    i64::from(b.year() - a.year()) * 12 + i64::from(b.month()) - i64::from(a.month())
}

/// A day of the month as a pattern names it: past the month's end it is the last day
/// (DayOfMonth 31 falls on February's 28th or 29th).
fn is_day_of_month(day: NaiveDate, wanted: u32) -> bool {
    day.day() == wanted.clamp(1, month_length(day.year(), day.month()))
}

/// The weekday's first, second, third, fourth or last showing in its month.
fn is_nth_weekday(day: NaiveDate, weekday: Weekday, index: WeekIndex) -> bool {
    if day.weekday() != weekday {
        return false;
    }
    let week_of_month = (day.day() - 1) / 7;
    match index {
        WeekIndex::First => week_of_month == 0,
        WeekIndex::Second => week_of_month == 1,
        WeekIndex::Third => week_of_month == 2,
        WeekIndex::Fourth => week_of_month == 3,
        WeekIndex::Last => day.day() + 7 > month_length(day.year(), day.month()),
    }
}

/// Whether `n` periods after the start is a period the interval keeps.
fn on_interval(n: i64, interval: u32) -> bool {
    interval >= 1 && n.rem_euclid(i64::from(interval)) == 0
}

/// Whether the pattern of a series starting on `start` falls on `day` (not before start).
fn falls_on(pattern: &Pattern, start: NaiveDate, day: NaiveDate) -> bool {
    match pattern {
        Pattern::Daily { interval } => on_interval((day - start).num_days(), *interval),
        Pattern::Weekly {
            interval,
            days,
            first_day,
        } => {
            // Weeks are counted from the week (beginning on FirstDayOfWeek, Sunday when
            // unsaid) that holds the start.
            let week_start = first_day.unwrap_or(Weekday::Sun);
            let week_of = |d: NaiveDate| {
                let back = (7 + d.weekday().num_days_from_monday()
                    - week_start.num_days_from_monday())
                    % 7;
                (d - Days::new(u64::from(back)) - start)
                    .num_days()
                    .div_euclid(7)
            };
            days.contains(&day.weekday()) && on_interval(week_of(day) - week_of(start), *interval)
        }
        Pattern::AbsoluteMonthly { interval, day: dom } => {
            on_interval(months_apart(start, day), *interval) && is_day_of_month(day, *dom)
        }
        Pattern::RelativeMonthly {
            interval,
            weekday,
            index,
        } => {
            on_interval(months_apart(start, day), *interval)
                && is_nth_weekday(day, *weekday, *index)
        }
        Pattern::AbsoluteYearly { month, day: dom } => {
            day.month() == *month && is_day_of_month(day, *dom)
        }
        Pattern::RelativeYearly {
            month,
            weekday,
            index,
        } => day.month() == *month && is_nth_weekday(day, *weekday, *index),
    }
}

/// The local days of a series in order from its start: through `until` (inclusive) or the
/// range's end, whichever is first, and at most `cap` of them (a NumberedRecurrence counts
/// from the start, whatever the window).
pub fn occurrence_dates(r: &Recurrence, until: NaiveDate, cap: usize) -> Vec<NaiveDate> {
    let (last, count) = match r.end {
        RangeEnd::NoEnd => (until, cap),
        RangeEnd::EndDate(end) => (until.min(end), cap),
        RangeEnd::Count(n) => (until, cap.min(usize::try_from(n).unwrap_or(usize::MAX))),
    };
    let mut found = Vec::new();
    let mut day = r.start;
    for _ in 0..HORIZON_DAYS {
        if day > last || found.len() >= count {
            break;
        }
        if falls_on(&r.pattern, r.start, day) {
            found.push(day);
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn days(list: &[&str]) -> Vec<NaiveDate> {
        list.iter().map(|s| day(s)).collect()
    }

    fn series(pattern: Pattern, start: &str, end: RangeEnd) -> Recurrence {
        Recurrence {
            pattern,
            start: day(start),
            end,
        }
    }

    #[test]
    fn each_pattern_falls_on_the_days_outlook_shows() {
        let far = day("2040-01-01");
        // Every other week on Tuesday and Friday, weeks beginning on Monday, from a Friday.
        let weekly = series(
            Pattern::Weekly {
                interval: 2,
                days: vec![Weekday::Tue, Weekday::Fri],
                first_day: Some(Weekday::Mon),
            },
            "2026-03-06",
            RangeEnd::Count(4),
        );
        assert_eq!(
            occurrence_dates(&weekly, far, 100),
            days(&["2026-03-06", "2026-03-17", "2026-03-20", "2026-03-31"])
        );
        // The second Wednesday of every third month.
        let quarterly = series(
            Pattern::RelativeMonthly {
                interval: 3,
                weekday: Weekday::Wed,
                index: WeekIndex::Second,
            },
            "2026-02-01",
            RangeEnd::EndDate(day("2026-12-31")),
        );
        assert_eq!(
            occurrence_dates(&quarterly, far, 100),
            days(&["2026-02-11", "2026-05-13", "2026-08-12", "2026-11-11"])
        );
        // The 30th of every month: February takes its last day.
        let monthly = series(
            Pattern::AbsoluteMonthly {
                interval: 1,
                day: 30,
            },
            "2027-01-30",
            RangeEnd::Count(3),
        );
        assert_eq!(
            occurrence_dates(&monthly, far, 100),
            days(&["2027-01-30", "2027-02-28", "2027-03-30"])
        );
        // The last Monday of May.
        let memorial = series(
            Pattern::RelativeYearly {
                month: 5,
                weekday: Weekday::Mon,
                index: WeekIndex::Last,
            },
            "2026-01-01",
            RangeEnd::NoEnd,
        );
        assert_eq!(
            occurrence_dates(&memorial, day("2028-01-01"), 100),
            days(&["2026-05-25", "2027-05-31"])
        );
        let leap = series(
            Pattern::AbsoluteYearly { month: 2, day: 29 },
            "2027-01-01",
            RangeEnd::Count(2),
        );
        assert_eq!(
            occurrence_dates(&leap, far, 100),
            days(&["2027-02-28", "2028-02-29"])
        );
        let daily = series(
            Pattern::Daily { interval: 4 },
            "2026-12-30",
            RangeEnd::NoEnd,
        );
        assert_eq!(
            occurrence_dates(&daily, day("2027-01-07"), 100),
            days(&["2026-12-30", "2027-01-03", "2027-01-07"])
        );
        assert_eq!(occurrence_dates(&daily, far, 2).len(), 2, "the cap holds");
    }

    #[test]
    fn hostile_series_end_within_the_horizon() {
        let hostile = [
            Pattern::RelativeYearly {
                month: 13,
                weekday: Weekday::Mon,
                index: WeekIndex::Last,
            },
            Pattern::AbsoluteMonthly {
                interval: u32::MAX,
                day: 400,
            },
            Pattern::Weekly {
                interval: u32::MAX,
                days: vec![Weekday::Sat, Weekday::Sun],
                first_day: Some(Weekday::Wed),
            },
            Pattern::Daily { interval: 0 },
            Pattern::Daily { interval: u32::MAX },
        ];
        for pattern in hostile {
            let r = series(pattern, "2026-01-05", RangeEnd::Count(u32::MAX));
            assert!(occurrence_dates(&r, NaiveDate::MAX, usize::MAX).len() <= 2);
        }
        let every_day = series(
            Pattern::Daily { interval: 1 },
            "2026-01-01",
            RangeEnd::NoEnd,
        );
        let all = occurrence_dates(&every_day, NaiveDate::MAX, usize::MAX);
        assert_eq!(all.len() as u64, HORIZON_DAYS);
    }
}
