//! Normalised comparison. Both sides reformat what they store (Exchange adds CRLFs, Salesforce
//! trims, phones come back formatted, times come back in another zone), so records are
//! compared in a normal form: a record read back unchanged must never look changed. The
//! normal form is also cut to Salesforce field lengths, so a value Salesforce truncated
//! compares equal to the longer original it came from.

use crate::model::catalog::FieldType;
use crate::model::mapping::EffectiveMapping;
use crate::model::record::{Contact, Event, EventTime, Record};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Trim and collapse every run of whitespace to one space.
pub fn text(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Long text keeps its lines: CRLF/CR become LF, trailing spaces of lines and blank lines at
/// either end go.
pub fn long_text(value: &str) -> String {
    let unified = value.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = unified.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').to_string()
}

pub fn email(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Digits only, a leading `+` kept: `(555) 010-2030` and `555.010.2030` are the same phone.
pub fn phone(value: &str) -> String {
    let trimmed = value.trim();
    let mut out = String::new();
    if trimmed.starts_with('+') {
        out.push('+');
    }
    out.extend(trimmed.chars().filter(char::is_ascii_digit));
    out
}

/// UTC, whole seconds (neither side keeps sub-seconds).
pub fn instant(value: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(value.timestamp(), 0).unwrap_or(value)
}

/// 00:00 of `date` in `zone`, as a UTC instant. A midnight skipped by a DST change falls to
/// the earliest valid instant of that day.
pub fn local_midnight(date: NaiveDate, zone: chrono_tz::Tz) -> DateTime<Utc> {
    let mut t = date.and_time(NaiveTime::MIN);
    for _ in 0..4 {
        if let Some(local) = zone.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// Normalise one value by its field type.
pub fn by_type(ty: FieldType, value: &str) -> String {
    match ty {
        FieldType::Email => email(value),
        FieldType::Phone => phone(value),
        FieldType::LongText => long_text(value),
        _ => text(value),
    }
}

/// Cut `value` to at most `max` characters (not bytes: Salesforce counts characters).
pub fn truncate(value: &str, max: usize) -> &str {
    match value.char_indices().nth(max) {
        Some((i, _)) if max > 0 => &value[..i],
        _ => value,
    }
}

/// The comparison form of a record under a mapping: mapped fields only, each normalised and
/// cut to its Salesforce length; empty values left out.
pub fn comparison_form(record: &Record, mapping: &EffectiveMapping) -> BTreeMap<String, String> {
    form(record, mapping, true)
}

/// The mapped values as the record holds them (not normalised, not cut), under the same keys
/// as `comparison_form`: what `tether plan --show-values` shows.
pub fn display_form(record: &Record, mapping: &EffectiveMapping) -> BTreeMap<String, String> {
    form(record, mapping, false)
}

fn form(record: &Record, mapping: &EffectiveMapping, normalise: bool) -> BTreeMap<String, String> {
    let value = |ty: FieldType, max_len: usize, v: &str| {
        if normalise {
            truncate(&by_type(ty, v), max_len).to_string()
        } else {
            v.trim().to_string()
        }
    };
    match record {
        Record::Contact(c) => contact_form(c, mapping, value),
        Record::Event(e) => event_form(e, mapping, value),
    }
}

fn put(out: &mut BTreeMap<String, String>, key: &str, value: String) {
    if !value.is_empty() {
        out.insert(key.to_string(), value);
    }
}

fn contact_form(
    c: &Contact,
    mapping: &EffectiveMapping,
    value: impl Fn(FieldType, usize, &str) -> String,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for f in &mapping.fields {
        put(
            &mut out,
            &f.salesforce,
            value(f.ty, f.max_len, c.get(&f.salesforce)),
        );
    }
    out
}

fn event_form(
    e: &Event,
    mapping: &EffectiveMapping,
    value: impl Fn(FieldType, usize, &str) -> String,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for f in &mapping.fields {
        let v = match f.salesforce.as_str() {
            "StartDateTime" | "EndDateTime" | "IsAllDayEvent" => continue,
            // Attendees relate an event to Contacts or a Lead on its first sync
            // (auto_relate); Salesforce keeps them as EventRelations, not on the Event, so
            // they are not a field to compare: comparing them would rewrite every meeting
            // on every cycle.
            crate::model::catalog::ATTENDEES => continue,
            "Subject" => value(f.ty, f.max_len, &e.subject),
            "Location" => value(f.ty, f.max_len, &e.location),
            "Description" => value(f.ty, f.max_len, &e.body),
            "ShowAs" => e.show_as.name().to_string(),
            "IsPrivate" => e.private.to_string(),
            other => value(
                f.ty,
                f.max_len,
                e.extra.get(other).map(String::as_str).unwrap_or(""),
            ),
        };
        put(&mut out, &f.salesforce, v);
    }
    // The time is protected (always mapped) and is what the event is.
    match e.time {
        EventTime::Timed { start, end } => {
            put(&mut out, "StartDateTime", instant(start).to_rfc3339());
            put(&mut out, "EndDateTime", instant(end).to_rfc3339());
        }
        EventTime::AllDay { start, end } => {
            put(&mut out, "ActivityDate", start.to_string());
            put(&mut out, "EndDate", end.to_string());
            put(&mut out, "IsAllDayEvent", "true".into());
        }
    }
    // The series pattern is written when a copy is created and never compared: Salesforce
    // sets Recurrence2PatternText only on create, so a pattern changed in Outlook read back
    // unchanged from Salesforce, looked like a Salesforce edit, and reverted the rep's
    // change. (Series links made before this hash differently on both sides alike, so they
    // refresh once without writing.) Classic recurring events never sync.
    out
}

/// A stable hash of the comparison form (SHA-256, hex). Stored with each link as "the
/// record as last synced"; it must not change across releases for unchanged input, so it
/// is built from an explicit encoding, not from `std::hash`.
pub fn record_hash(record: &Record, mapping: &EffectiveMapping) -> String {
    let form = comparison_form(record, mapping);
    let mut h = Sha256::new();
    h.update(record.kind().name().as_bytes());
    for (k, v) in &form {
        h.update([0x1e]);
        h.update(k.as_bytes());
        h.update([0x1f]);
        h.update(v.as_bytes());
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A value cut to fit a Salesforce field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub field: String,
    pub length: usize,
    pub max_len: usize,
}

impl Truncation {
    pub fn message(&self) -> String {
        format!(
            "{} was {} characters; Salesforce keeps {}, so the rest was cut",
            self.field, self.length, self.max_len
        )
    }
}

fn cut(field: &str, value: &mut String, max_len: usize, out: &mut Vec<Truncation>) {
    let length = value.chars().count();
    if max_len > 0 && length > max_len {
        *value = truncate(value, max_len).to_string();
        out.push(Truncation {
            field: field.to_string(),
            length,
            max_len,
        });
    }
}

/// Cut every mapped value that is too long for its Salesforce field, before a write to
/// Salesforce; each cut is returned so it can be recorded as a warning (not a failed sync).
pub fn truncate_for_salesforce(record: &mut Record, mapping: &EffectiveMapping) -> Vec<Truncation> {
    let mut out = Vec::new();
    match record {
        Record::Contact(c) => {
            for f in &mapping.fields {
                if let Some(v) = c.fields.get_mut(&f.salesforce) {
                    cut(&f.salesforce, v, f.max_len, &mut out);
                }
            }
        }
        Record::Event(e) => {
            for f in &mapping.fields {
                let target = match f.salesforce.as_str() {
                    "Subject" => Some(&mut e.subject),
                    "Location" => Some(&mut e.location),
                    "Description" => Some(&mut e.body),
                    other => e.extra.get_mut(other),
                };
                if let Some(v) = target {
                    cut(&f.salesforce, v, f.max_len, &mut out);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::record::ObjectKind;

    fn contact(pairs: &[(&str, &str)]) -> Record {
        let mut c = Contact::default();
        for (k, v) in pairs {
            c.set(k, *v);
        }
        Record::Contact(c)
    }

    #[test]
    fn whitespace_phone_and_email_forms_compare_equal() {
        let m = EffectiveMapping::defaults(ObjectKind::Contact);
        let a = contact(&[
            ("Email", "Ana.Diaz@Example.com "),
            ("FirstName", " Ana"),
            ("LastName", "Diaz  Lopez"),
            ("Phone", "(555) 010-2030"),
            ("Description", "line one\r\nline two  \r\n"),
        ]);
        let b = contact(&[
            ("Email", "ana.diaz@example.com"),
            ("FirstName", "Ana"),
            ("LastName", "Diaz Lopez"),
            ("Phone", "555.010.2030"),
            ("Description", "line one\nline two"),
            ("Title", ""),
        ]);
        assert_eq!(record_hash(&a, &m), record_hash(&b, &m));
        let c = contact(&[("Email", "ana.diaz@example.com"), ("Phone", "555 010 2031")]);
        assert_ne!(record_hash(&a, &m), record_hash(&c, &m));
    }

    #[test]
    fn unmapped_fields_do_not_change_the_hash() {
        let custom = [("Title".to_string(), None)].into_iter().collect();
        let m = EffectiveMapping::new(ObjectKind::Contact, &custom);
        let a = contact(&[("Email", "a@x.com"), ("Title", "CEO")]);
        let b = contact(&[("Email", "a@x.com"), ("Title", "CTO")]);
        assert_eq!(record_hash(&a, &m), record_hash(&b, &m));
    }

    #[test]
    fn instants_in_other_zones_and_subseconds_compare_equal() {
        let m = EffectiveMapping::defaults(ObjectKind::Event);
        let start = DateTime::parse_from_rfc3339("2026-03-02T10:00:00+01:00").unwrap();
        let end = DateTime::parse_from_rfc3339("2026-03-02T09:30:00.250Z").unwrap();
        let a = Event::new(
            "Demo",
            EventTime::Timed {
                start: start.with_timezone(&Utc),
                end: end.with_timezone(&Utc),
            },
        );
        let mut b = a.clone();
        b.time = EventTime::Timed {
            start: "2026-03-02T09:00:00Z".parse().unwrap(),
            end: "2026-03-02T09:30:00Z".parse().unwrap(),
        };
        b.attendees = vec![];
        assert_eq!(
            record_hash(&Record::Event(a.clone()), &m),
            record_hash(&Record::Event(b), &m)
        );
        let mut all_day = a;
        all_day.time = EventTime::AllDay {
            start: "2026-03-02".parse().unwrap(),
            end: "2026-03-03".parse().unwrap(),
        };
        let mut all_day2 = all_day.clone();
        all_day2.attendees = vec!["B@x.com".into(), "a@x.com".into()];
        all_day.attendees = vec!["a@x.com".into(), "b@x.com".into(), "A@x.com".into()];
        assert_eq!(
            record_hash(&Record::Event(all_day), &m),
            record_hash(&Record::Event(all_day2), &m)
        );
    }

    #[test]
    fn too_long_values_are_truncated_with_a_warning_and_compare_equal_to_the_original() {
        let m = EffectiveMapping::defaults(ObjectKind::Event);
        let long = "é".repeat(300);
        let mut e = Event::new(
            "x",
            EventTime::AllDay {
                start: "2026-01-01".parse().unwrap(),
                end: "2026-01-02".parse().unwrap(),
            },
        );
        e.location = long.clone();
        let original = Record::Event(e);
        let mut written = original.clone();
        let warnings = truncate_for_salesforce(&mut written, &m);
        assert_eq!(
            warnings,
            vec![Truncation {
                field: "Location".into(),
                length: 300,
                max_len: 255
            }]
        );
        assert_eq!(written.as_event().unwrap().location.chars().count(), 255);
        assert_eq!(record_hash(&original, &m), record_hash(&written, &m));
    }

    #[test]
    fn local_midnight_honours_the_zone() {
        let zone: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let t = local_midnight("2026-07-01".parse().unwrap(), zone);
        assert_eq!(t.to_rfc3339(), "2026-06-30T22:00:00+00:00");
    }
}
