//! Graph events ↔ the canonical [`Event`], as the EWS connector converts calendar items:
//! tentative reads as busy, private and confidential as private, an all-day event is its
//! dates in its own zone (`originalStartTimeZone`; never a date guessed in UTC), a series
//! master's `recurrence` is its RRULE. Writes name only what the canonical event holds and
//! the writing rep's mapping maps, never `attendees` (Graph invites whoever a POST or PATCH
//! names, and has no SendToNone), and never the members Graph answers with besides those
//! (`@odata.etag`, `occurrenceId`, …). Times are read in UTC (no `Prefer: outlook.timezone`)
//! and written in the event's zone.

use super::property;
use crate::exchange::model::{PROP_OUTLOOK_RELATED, windows_zone};
use crate::model::rrule::{self, Pattern, RangeEnd, WeekIndex};
use crate::model::{Event, EventTime, Record, Recurrence, ShowAs};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use serde_json::{Map, Value, json};

/// The Outlook category a rep (or an add-in) puts on an event related to Salesforce.
const CATEGORY_SALESFORCE: &str = "Salesforce";

/// `$expand` for reads: tether's Salesforce id and the Outlook-related marker.
pub fn expand() -> String {
    let related = format!(
        "String {{{}}} Name {PROP_OUTLOOK_RELATED}",
        property::PUBLIC_STRINGS
    );
    property::expand_with(&[related.as_str()])
}

fn zone_of(name: &str) -> Result<chrono_tz::Tz, String> {
    if name.eq_ignore_ascii_case("UTC") || name.is_empty() {
        return Ok(chrono_tz::UTC);
    }
    windows_zone(name).or_else(|why| name.parse().map_err(|_| why))
}

/// A `dateTimeTimeZone` as an instant.
fn instant(v: &Value) -> Result<DateTime<Utc>, String> {
    let text = v["dateTime"].as_str().unwrap_or("");
    let zone = zone_of(v["timeZone"].as_str().unwrap_or("UTC"))?;
    let naive = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| format!("\"{text}\" is not a date and time"))?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("\"{text}\" does not exist in its zone"))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The event's type: `singleInstance`, `occurrence`, `exception` or `seriesMaster`.
pub fn kind(item: &Value) -> &str {
    item["type"].as_str().unwrap_or("singleInstance")
}

/// The organiser is the rep and others are invited: a meeting whose time or place a write
/// would mail to them, and whose delete would cancel it for them.
pub fn is_meeting_the_rep_organised(item: &Value) -> bool {
    item["isOrganizer"].as_bool().unwrap_or(false)
        && item["attendees"].as_array().is_some_and(|a| !a.is_empty())
}

/// Related to Salesforce in the Outlook integration (as over EWS).
pub fn related_in_outlook(item: &Value) -> bool {
    let related = format!(
        "String {{{}}} Name {PROP_OUTLOOK_RELATED}",
        property::PUBLIC_STRINGS
    );
    let marked = item["singleValueExtendedProperties"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| {
            p["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&related))
                && p["value"]
                    .as_str()
                    .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("false"))
        });
    marked
        || item["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c.as_str()
                    .is_some_and(|c| c.eq_ignore_ascii_case(CATEGORY_SALESFORCE))
            })
}

/// The canonical event of a Graph event from `mailbox`, or why it cannot be dated.
pub fn to_record(item: &Value, mailbox: &str) -> Result<Record, String> {
    let (start, end) = (instant(&item["start"])?, instant(&item["end"])?);
    let time = if item["isAllDay"].as_bool().unwrap_or(false) {
        let zone = item["originalStartTimeZone"].as_str().ok_or(
            "the answer does not say which time zone the all-day event is in \
             (no originalStartTimeZone)",
        )?;
        let tz = zone_of(zone)?;
        let (s, e) = (
            start.with_timezone(&tz).date_naive(),
            end.with_timezone(&tz).date_naive(),
        );
        EventTime::AllDay {
            start: s,
            end: e.max(s.succ_opt().unwrap_or(s)),
        }
    } else {
        EventTime::Timed { start, end }
    };
    let mut out = Event::new(text(&item["subject"]), time);
    out.location = text(&item["location"]["displayName"]);
    out.body = text(&item["body"]["content"]);
    out.show_as = match item["showAs"].as_str() {
        Some("free") => ShowAs::Free,
        Some("oof") => ShowAs::OutOfOffice,
        // No Tentative in Salesforce: tentative reads as busy (as over EWS).
        _ => ShowAs::Busy,
    };
    out.private = matches!(
        item["sensitivity"].as_str(),
        Some("private" | "confidential")
    );
    let mut attendees: Vec<String> = item["attendees"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["emailAddress"]["address"].as_str())
        .filter(|a| !a.is_empty() && !a.eq_ignore_ascii_case(mailbox))
        .map(str::to_string)
        .collect();
    attendees.sort_by_key(|a| a.to_lowercase());
    attendees.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    out.attendees = attendees;
    out.organizer = item["organizer"]["emailAddress"]["address"]
        .as_str()
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    if let Some(r) = read_recurrence(&item["recurrence"]) {
        out.recurrence = Recurrence::Series {
            rule: rrule::to_rrule(&r),
        };
    }
    Ok(Record::Event(out))
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn read_recurrence(v: &Value) -> Option<rrule::Recurrence> {
    let p = v.get("pattern")?;
    let r = v.get("range")?;
    let num = |k: &str| p[k].as_u64().unwrap_or(0) as u32;
    let interval = num("interval").max(1);
    let days: Vec<Weekday> = p["daysOfWeek"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().and_then(weekday))
        .collect();
    let index = || {
        let i = p["index"].as_str().unwrap_or("first");
        WeekIndex::parse(&(i[..1].to_ascii_uppercase() + &i[1..]))
    };
    let pattern = match p["type"].as_str()? {
        "daily" => Pattern::Daily { interval },
        "weekly" => Pattern::Weekly {
            interval,
            days,
            first_day: p["firstDayOfWeek"].as_str().and_then(weekday),
        },
        "absoluteMonthly" => Pattern::AbsoluteMonthly {
            interval,
            day: num("dayOfMonth"),
        },
        "relativeMonthly" => Pattern::RelativeMonthly {
            interval,
            weekday: *days.first()?,
            index: index()?,
        },
        "absoluteYearly" => Pattern::AbsoluteYearly {
            month: num("month"),
            day: num("dayOfMonth"),
        },
        "relativeYearly" => Pattern::RelativeYearly {
            month: num("month"),
            weekday: *days.first()?,
            index: index()?,
        },
        _ => return None,
    };
    let date = |k: &str| NaiveDate::parse_from_str(r[k].as_str().unwrap_or(""), "%Y-%m-%d").ok();
    let end = match r["type"].as_str()? {
        "endDate" => RangeEnd::EndDate(date("endDate")?),
        "numbered" => RangeEnd::Count(r["numberOfOccurrences"].as_u64().unwrap_or(0) as u32),
        _ => RangeEnd::NoEnd,
    };
    Some(rrule::Recurrence {
        pattern,
        start: date("startDate")?,
        end,
    })
}

fn write_recurrence(r: &rrule::Recurrence, zone: &str) -> Value {
    let mut p = Map::new();
    let mut put = |k: &str, v: Value| {
        p.insert(k.to_string(), v);
    };
    let days = |d: &[Weekday]| json!(d.iter().map(|d| weekday_name(*d)).collect::<Vec<_>>());
    let index = |i: WeekIndex| json!(i.as_str().to_ascii_lowercase());
    match &r.pattern {
        Pattern::Daily { interval } => {
            put("type", json!("daily"));
            put("interval", json!(interval));
        }
        Pattern::Weekly {
            interval,
            days: d,
            first_day,
        } => {
            put("type", json!("weekly"));
            put("interval", json!(interval));
            put("daysOfWeek", days(d));
            put(
                "firstDayOfWeek",
                json!(weekday_name(first_day.unwrap_or(Weekday::Sun))),
            );
        }
        Pattern::AbsoluteMonthly { interval, day } => {
            put("type", json!("absoluteMonthly"));
            put("interval", json!(interval));
            put("dayOfMonth", json!(day));
        }
        Pattern::RelativeMonthly {
            interval,
            weekday,
            index: i,
        } => {
            put("type", json!("relativeMonthly"));
            put("interval", json!(interval));
            put("daysOfWeek", days(&[*weekday]));
            put("index", index(*i));
        }
        Pattern::AbsoluteYearly { month, day } => {
            put("type", json!("absoluteYearly"));
            put("interval", json!(1));
            put("month", json!(month));
            put("dayOfMonth", json!(day));
        }
        Pattern::RelativeYearly {
            month,
            weekday,
            index: i,
        } => {
            put("type", json!("relativeYearly"));
            put("interval", json!(1));
            put("month", json!(month));
            put("daysOfWeek", days(&[*weekday]));
            put("index", index(*i));
        }
    }
    let mut range = json!({"startDate": r.start.to_string(), "recurrenceTimeZone": zone});
    match r.end {
        RangeEnd::NoEnd => range["type"] = json!("noEnd"),
        RangeEnd::EndDate(d) => {
            range["type"] = json!("endDate");
            range["endDate"] = json!(d.to_string());
        }
        RangeEnd::Count(n) => {
            range["type"] = json!("numbered");
            range["numberOfOccurrences"] = json!(n);
        }
    }
    json!({"pattern": Value::Object(p), "range": range})
}

/// A `dateTimeTimeZone` of `t` in `zone` (a Windows id, or UTC).
fn date_time(t: DateTime<Utc>, zone: &str, tz: chrono_tz::Tz) -> Value {
    json!({
        "dateTime": t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S").to_string(),
        "timeZone": zone,
    })
}

/// The body of a create (`current` None; `zone`: the Windows zone new all-day events and
/// series are created in) or of an update over the item as it is now (its own zone kept).
/// The series pattern is written on create only, as over EWS; attendees never.
pub fn body(e: &Event, zone: &str, current: Option<&Value>) -> Result<Value, String> {
    let zone = current
        .and_then(|c| c["originalStartTimeZone"].as_str())
        .filter(|z| zone_of(z).is_ok())
        .unwrap_or(zone)
        .to_string();
    let new_series = current.is_none() && matches!(e.recurrence, Recurrence::Series { .. });
    let tz = match zone_of(&zone) {
        Ok(tz) => tz,
        Err(why) if matches!(e.time, EventTime::AllDay { .. }) || new_series => return Err(why),
        Err(_) => chrono_tz::UTC,
    };
    let mut out = Map::new();
    let (start, end, all_day) = match e.time {
        EventTime::Timed { start, end } => (start, end, false),
        EventTime::AllDay { start, end } => {
            let midnight = |d: NaiveDate| crate::model::normalize::local_midnight(d, tz);
            (midnight(start), midnight(end), true)
        }
    };
    out.insert("start".into(), date_time(start, &zone, tz));
    out.insert("end".into(), date_time(end, &zone, tz));
    out.insert("isAllDay".into(), json!(all_day));
    let mapped = |field: &str| !e.unmapped.contains(field);
    if mapped("Subject") {
        out.insert("subject".into(), json!(e.subject));
    }
    if mapped("Description") {
        out.insert(
            "body".into(),
            json!({"contentType": "text", "content": e.body}),
        );
    }
    if mapped("Location") {
        out.insert("location".into(), json!({"displayName": e.location}));
    }
    if mapped("ShowAs") {
        let now = current.and_then(|c| c["showAs"].as_str());
        out.insert(
            "showAs".into(),
            json!(match (e.show_as, now) {
                // An update that says busy leaves a tentative meeting tentative.
                (ShowAs::Busy, Some("tentative")) => "tentative",
                (ShowAs::Free, _) => "free",
                (ShowAs::Tentative, _) => "tentative",
                (ShowAs::Busy, _) => "busy",
                (ShowAs::OutOfOffice, _) => "oof",
            }),
        );
    }
    if mapped("IsPrivate") {
        let now = current.and_then(|c| c["sensitivity"].as_str());
        out.insert(
            "sensitivity".into(),
            json!(match (e.private, now) {
                (true, Some("confidential")) => "confidential",
                (true, _) => "private",
                (false, Some("personal")) => "personal",
                (false, _) => "normal",
            }),
        );
    }
    if current.is_none()
        && let Recurrence::Series { rule } = &e.recurrence
    {
        let first = start.with_timezone(&tz).date_naive();
        if let Some(r) = rrule::from_rrule(rule, first) {
            out.insert("recurrence".into(), write_recurrence(&r, &zone));
        }
    }
    Ok(Value::Object(out))
}

/// Whether an update body changes what Graph mails to a meeting's attendees (its time or
/// place) compared with the item as it is now.
pub fn changes_time_or_place(body: &Value, current: &Value) -> bool {
    let same_time = |k: &str| match (instant(&body[k]), instant(&current[k])) {
        (Ok(a), Ok(b)) => a == b,
        _ => body.get(k).is_none(),
    };
    let place = |v: &Value| text(&v["location"]["displayName"]);
    !same_time("start")
        || !same_time("end")
        || (body.get("location").is_some() && place(body) != place(current))
        || (body.get("isAllDay").is_some() && body["isAllDay"] != current["isAllDay"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_all_day_event_keeps_its_day_in_its_own_zone_read_in_utc() {
        let mut e = Event::new(
            "Offsite",
            EventTime::AllDay {
                start: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
                end: NaiveDate::from_ymd_opt(2026, 3, 11).unwrap(),
            },
        );
        e.private = true;
        let body = body(&e, "Taipei Standard Time", None).unwrap();
        assert_eq!(body["start"]["dateTime"], "2026-03-10T00:00:00");
        assert!(body.get("attendees").is_none());
        // Graph answers in UTC (no Prefer zone): 16:00 the day before.
        let item = json!({"subject": "Offsite", "isAllDay": true,
            "start": {"dateTime": "2026-03-09T16:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-10T16:00:00.0000000", "timeZone": "UTC"},
            "originalStartTimeZone": "Taipei Standard Time", "sensitivity": "private",
            "body": {"contentType": "text", "content": ""}, "location": {"displayName": ""}});
        assert_eq!(to_record(&item, "ana@corp.com").unwrap(), Record::Event(e));
        let mut unknown = item.clone();
        unknown["originalStartTimeZone"] = json!("Mars Standard Time");
        assert!(
            to_record(&unknown, "ana@corp.com")
                .unwrap_err()
                .contains("Mars")
        );
    }

    #[test]
    fn a_series_pattern_round_trips_and_tentative_stays_tentative() {
        let mut e = Event::new(
            "Standup",
            EventTime::Timed {
                start: at("2026-06-01T07:00:00Z"),
                end: at("2026-06-01T07:15:00Z"),
            },
        );
        e.recurrence = Recurrence::Series {
            rule: "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE;COUNT=10".into(),
        };
        let created = body(&e, "W. Europe Standard Time", None).unwrap();
        assert_eq!(created["start"]["dateTime"], "2026-06-01T09:00:00");
        let mut item = created.clone();
        item["showAs"] = json!("tentative");
        let read = to_record(&item, "ana@corp.com").unwrap();
        assert_eq!(read.as_event().unwrap().recurrence, e.recurrence);
        let update = body(&e, "UTC", Some(&item)).unwrap();
        assert_eq!(update["showAs"], "tentative");
        assert!(
            update.get("recurrence").is_none(),
            "the pattern is written on create only"
        );
        assert!(!changes_time_or_place(&update, &item));
    }
}
