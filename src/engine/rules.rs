//! The admin guide's rules as small pure functions: the settings a rep's configuration gives
//! an object, the `since` window, which events and contacts may sync in which direction,
//! contact filters, and the keys first-sync matching uses.

use crate::config::model::{
    ConflictPolicy, ContactScope, Direction, EventSelection, Filter, FilterOp, ScalarValue,
    SinceWindow, SyncConfiguration,
};
use crate::model::mapping::MappingDifference;
use crate::model::normalize;
use crate::model::{Contact, EffectiveMapping, Event, EventTime, ObjectKind, Recurrence};
use crate::state::SyncDirection;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

/// How one object syncs for a rep.
#[derive(Debug, Clone)]
pub struct ObjectSettings {
    pub object: ObjectKind,
    pub direction: Direction,
    /// The winner when both sides changed; for one-way sync the source always wins.
    pub conflict: ConflictPolicy,
    pub mapping: EffectiveMapping,
    pub scope: ContactScope,
    pub filters: Vec<Filter>,
    pub which: EventSelection,
    pub since: SinceWindow,
    pub sync_private: bool,
    pub delete_synced: bool,
    /// Deleting a meeting the rep organised with attendees may mail them a cancellation.
    pub send_cancellations: bool,
    /// Moving a meeting the rep organised with attendees may mail them an update.
    pub update_meetings: bool,
    pub auto_relate: bool,
    pub sync_series: bool,
}

impl ObjectSettings {
    pub fn of(configuration: &SyncConfiguration, object: ObjectKind) -> ObjectSettings {
        let mut s = ObjectSettings {
            object,
            direction: Direction::None,
            conflict: ConflictPolicy::SalesforceWins,
            mapping: EffectiveMapping::defaults(object),
            scope: ContactScope::UsersRecords,
            filters: Vec::new(),
            which: EventSelection::All,
            since: SinceWindow::Today,
            sync_private: false,
            delete_synced: false,
            send_cancellations: false,
            update_meetings: false,
            auto_relate: false,
            sync_series: false,
        };
        match object {
            ObjectKind::Contact => {
                if let Some(c) = &configuration.contacts {
                    s.direction = c.direction;
                    s.conflict = winner(c.direction, c.conflict);
                    s.mapping = EffectiveMapping::new(object, &c.field_mappings);
                    s.scope = c.scope.unwrap_or(ContactScope::UsersRecords);
                    s.filters = c.filters.clone();
                }
            }
            ObjectKind::Event => {
                if let Some(e) = &configuration.events {
                    s.direction = e.direction;
                    s.conflict = winner(e.direction, e.conflict);
                    s.mapping = EffectiveMapping::new(object, &e.field_mappings);
                    s.which = e.which;
                    s.since = e.since.window().unwrap_or(SinceWindow::Today);
                    s.sync_private = e.sync_private;
                    s.delete_synced = e.delete_synced;
                    s.send_cancellations = e.send_cancellations;
                    s.update_meetings = e.update_meetings;
                    s.auto_relate = e.auto_relate;
                    s.sync_series = e.sync_series;
                }
            }
        }
        s
    }

    pub fn syncs(&self, direction: SyncDirection) -> bool {
        match direction {
            SyncDirection::ExchangeToSalesforce => self.direction.to_salesforce(),
            SyncDirection::SalesforceToExchange => self.direction.to_exchange(),
        }
    }
}

/// Each active configuration's field mappings that differ from the defaults, per object it
/// syncs (only those with a difference): configuration name, object, differences.
pub fn mapping_differences(
    config: &crate::config::model::Config,
) -> Vec<(String, ObjectKind, Vec<MappingDifference>)> {
    let mut out = Vec::new();
    for c in config.sync_configurations.iter().filter(|c| c.active) {
        for object in ObjectKind::ALL {
            let s = ObjectSettings::of(c, object);
            let differences = s.mapping.differences_from_defaults();
            if s.direction != Direction::None && !differences.is_empty() {
                out.push((c.name.clone(), object, differences));
            }
        }
    }
    out
}

fn winner(direction: Direction, conflict: Option<ConflictPolicy>) -> ConflictPolicy {
    match direction {
        Direction::ExchangeToSalesforce => ConflictPolicy::ExchangeWins,
        Direction::SalesforceToExchange => ConflictPolicy::SalesforceWins,
        _ => conflict.unwrap_or(ConflictPolicy::SalesforceWins),
    }
}

/// The first instant of the `since` window for a rep in `zone`: TODAY is 00:00 today,
/// LAST_MONTH the first of last month, LAST_N_DAYS:n 00:00 n days ago, all local.
pub fn window_start(since: SinceWindow, now: DateTime<Utc>, zone: chrono_tz::Tz) -> DateTime<Utc> {
    let today = now.with_timezone(&zone).date_naive();
    let day = match since {
        SinceWindow::Today => today,
        SinceWindow::LastMonth => {
            let (y, m) = if today.month() == 1 {
                (today.year() - 1, 12)
            } else {
                (today.year(), today.month() - 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(today)
        }
        SinceWindow::LastNDays(n) => today - Duration::days(i64::from(n)),
    };
    normalize::local_midnight(day, zone)
}

/// When an event ends; `None` for a series without an end. A series ends with its last
/// occurrence, not its first (the times a series carries): judged by its first, a weekly
/// meeting that began before the since window and still runs never synced. With `COUNT`
/// the last occurrence is bounded from above (each period holds at least one occurrence),
/// so a series that has just ended may still sync; one that still runs never stays out.
fn last_end(event: &Event, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let first_end = event.end_instant(zone);
    let Recurrence::Series { rule } = &event.recurrence else {
        return Some(first_end);
    };
    let mut period = Duration::days(1);
    let mut interval = 1;
    let mut end = None;
    for part in rule.trim_start_matches("RRULE:").split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => {
                period = match v.trim().to_ascii_uppercase().as_str() {
                    "WEEKLY" => Duration::days(7),
                    "MONTHLY" => Duration::days(31),
                    "YEARLY" => Duration::days(366),
                    _ => Duration::days(1),
                }
            }
            "INTERVAL" => interval = v.trim().parse::<i32>().unwrap_or(1).max(1),
            "COUNT" => end = v.trim().parse::<i32>().ok().map(Err),
            // A date (or date-time) the last occurrence starts on or before.
            "UNTIL" => {
                end = NaiveDate::parse_from_str(v.trim().get(..8)?, "%Y%m%d")
                    .ok()
                    .map(Ok)
            }
            _ => {}
        }
    }
    let length = first_end - event.start_instant(zone);
    match end? {
        Ok(until) => Some(normalize::local_midnight(until.succ_opt()?, zone) + length),
        Err(count) => Some(first_end + period * (interval * (count.max(1) - 1))),
    }
}

/// The longest event Salesforce stores, in days.
pub const MAX_EVENT_DAYS: i64 = 14;

/// Why an event does not sync in a direction; `None` when it does.
pub fn event_skip_reason(
    s: &ObjectSettings,
    event: &Event,
    direction: SyncDirection,
    related_in_outlook: bool,
    window_start: DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> Option<&'static str> {
    match event.recurrence {
        Recurrence::ClassicRecurring => {
            return Some("classic recurring events (IsRecurrence) never sync");
        }
        Recurrence::Series { .. } if !s.sync_series => {
            return Some("event series sync is off (sync_series: false)");
        }
        _ => {}
    }
    if event.private && !s.sync_private {
        return Some("private event; sync_private is off");
    }
    if last_end(event, zone).is_some_and(|end| end < window_start) {
        return Some("ended before the since window");
    }
    // Salesforce refuses an event longer than 14 days (FIELD_INTEGRITY_EXCEPTION), as
    // Lightning Sync knew: sending it failed the record, and re-read the rep, every cycle.
    let length = match event.time {
        EventTime::Timed { start, end } => end - start,
        EventTime::AllDay { start, end } => end - start,
    };
    if direction == SyncDirection::ExchangeToSalesforce && length > Duration::days(MAX_EVENT_DAYS) {
        return Some("longer than 14 days, which Salesforce events cannot be");
    }
    if direction == SyncDirection::ExchangeToSalesforce
        && s.which == EventSelection::UserSelected
        && !related_in_outlook
    {
        return Some("not related to Salesforce in the Outlook integration (which: user_selected)");
    }
    None
}

fn scalar_text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Bool(b) => b.to_string(),
        ScalarValue::Number(n) => n.to_string(),
        ScalarValue::Text(t) => t.clone(),
    }
}

fn compare(field: &str, value: &ScalarValue) -> Option<std::cmp::Ordering> {
    match value {
        ScalarValue::Number(n) => field.trim().parse::<f64>().ok()?.partial_cmp(n),
        other => Some(
            field
                .trim()
                .to_lowercase()
                .cmp(&scalar_text(other).to_lowercase()),
        ),
    }
}

/// Whether a Salesforce contact passes one filter (Salesforce→Exchange only). Text compares
/// case-insensitively, as SOQL does.
pub fn filter_passes(contact: &Contact, filter: &Filter) -> bool {
    use std::cmp::Ordering::*;
    let field = contact.get(&filter.field);
    let one = filter.value.as_ref();
    let list = filter.values.as_deref().unwrap_or(&[]);
    let eq = |v: &ScalarValue| compare(field, v) == Some(Equal);
    match filter.op {
        FilterOp::Equals => one.is_some_and(eq),
        FilterOp::NotEquals => !one.is_some_and(eq),
        FilterOp::In => list.iter().any(eq),
        FilterOp::NotIn => !list.iter().any(eq),
        FilterOp::LessThan => one.and_then(|v| compare(field, v)) == Some(Less),
        FilterOp::LessOrEqual => matches!(one.and_then(|v| compare(field, v)), Some(Less | Equal)),
        FilterOp::GreaterThan => one.and_then(|v| compare(field, v)) == Some(Greater),
        FilterOp::GreaterOrEqual => {
            matches!(one.and_then(|v| compare(field, v)), Some(Greater | Equal))
        }
        FilterOp::StartsWith => one.is_some_and(|v| {
            field
                .to_lowercase()
                .starts_with(&scalar_text(v).to_lowercase())
        }),
        FilterOp::Contains => one.is_some_and(|v| {
            field
                .to_lowercase()
                .contains(&scalar_text(v).to_lowercase())
        }),
    }
}

pub fn filters_pass(contact: &Contact, filters: &[Filter]) -> bool {
    filters.iter().all(|f| filter_passes(contact, f))
}

/// First-sync match keys by rank, strongest first: contacts by email, then by first + last
/// name + company; events by subject + start + end. A key a record lacks is `None`, so a
/// contact without an email is still matched by name against one with an email.
pub fn match_keys(record: &crate::model::Record) -> [Option<String>; 2] {
    match record {
        crate::model::Record::Contact(c) => {
            let email = normalize::email(c.email());
            let name = (!normalize::text(c.last_name()).is_empty()).then(|| {
                format!(
                    "name:{}|{}|{}",
                    normalize::text(c.first_name()).to_lowercase(),
                    normalize::text(c.last_name()).to_lowercase(),
                    normalize::text(c.company()).to_lowercase()
                )
            });
            [(!email.is_empty()).then(|| format!("email:{email}")), name]
        }
        crate::model::Record::Event(e) => {
            let when = match e.time {
                EventTime::Timed { start, end } => format!(
                    "{}|{}",
                    normalize::instant(start).timestamp(),
                    normalize::instant(end).timestamp()
                ),
                EventTime::AllDay { start, end } => format!("{start}|{end}"),
            };
            [
                Some(format!(
                    "event:{}|{when}",
                    normalize::text(&e.subject).to_lowercase()
                )),
                None,
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_series_ends_with_its_last_occurrence() {
        let utc = chrono_tz::UTC;
        let start = at("2026-04-07T09:00:00Z");
        let series = |rule: &str| {
            let mut e = Event::new(
                "Weekly",
                EventTime::Timed {
                    start,
                    end: start + Duration::minutes(30),
                },
            );
            e.recurrence = Recurrence::Series { rule: rule.into() };
            e
        };
        assert_eq!(last_end(&series("FREQ=WEEKLY;BYDAY=TU"), utc), None);
        assert_eq!(
            last_end(&series("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;COUNT=3"), utc),
            Some(at("2026-05-05T09:30:00Z"))
        );
        assert_eq!(
            last_end(&series("RRULE:FREQ=DAILY;UNTIL=20260410T090000Z"), utc),
            Some(at("2026-04-11T00:30:00Z"))
        );
        let single = series("");
        let single = Event {
            recurrence: Recurrence::Single,
            ..single
        };
        assert_eq!(last_end(&single, utc), Some(at("2026-04-07T09:30:00Z")));
    }

    #[test]
    fn since_today_starts_at_local_midnight() {
        let zone: chrono_tz::Tz = "America/New_York".parse().unwrap();
        // 03:00 UTC on the 10th is still the 9th in New York.
        let start = window_start(SinceWindow::Today, at("2026-03-10T03:00:00Z"), zone);
        // (DST began on the 8th: EDT, UTC-4.)
        assert_eq!(start, at("2026-03-09T04:00:00Z"));
    }

    #[test]
    fn since_last_month_starts_on_the_first_of_last_month() {
        let start = window_start(
            SinceWindow::LastMonth,
            at("2026-01-15T12:00:00Z"),
            chrono_tz::UTC,
        );
        assert_eq!(start, at("2025-12-01T00:00:00Z"));
    }

    #[test]
    fn last_n_days_30_includes_an_event_that_ended_29_days_ago_and_excludes_31() {
        let now = at("2026-06-30T12:00:00Z");
        let settings = ObjectSettings {
            since: SinceWindow::LastNDays(30),
            ..ObjectSettings::of(
                &serde_json::from_value(serde_json::json!({"name": "x"})).unwrap(),
                ObjectKind::Event,
            )
        };
        let start = window_start(settings.since, now, chrono_tz::UTC);
        let ended = |days: i64| {
            let end = now - Duration::days(days);
            Event::new(
                "x",
                EventTime::Timed {
                    start: end - Duration::hours(1),
                    end,
                },
            )
        };
        let dir = SyncDirection::ExchangeToSalesforce;
        assert_eq!(
            event_skip_reason(&settings, &ended(29), dir, false, start, chrono_tz::UTC),
            None
        );
        assert!(
            event_skip_reason(&settings, &ended(31), dir, false, start, chrono_tz::UTC).is_some()
        );
    }

    #[test]
    fn filters_compare_text_case_insensitively_and_numbers_numerically() {
        let c = Contact::default()
            .with("MailingCountry", "de")
            .with("NumberOfEmployees", "12");
        let f = |json: serde_json::Value| -> Filter { serde_json::from_value(json).unwrap() };
        assert!(filter_passes(
            &c,
            &f(serde_json::json!({"field": "MailingCountry", "op": "in", "values": ["DE", "FR"]}))
        ));
        assert!(!filter_passes(
            &c,
            &f(serde_json::json!({"field": "MailingCountry", "op": "equals", "value": "FR"}))
        ));
        assert!(filter_passes(
            &c,
            &f(serde_json::json!({"field": "NumberOfEmployees", "op": "greater_than", "value": 9}))
        ));
    }
}
