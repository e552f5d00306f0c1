//! What one record written over another does to it, and the merge of a first link.
//!
//! A linked pair has a base (the record as last synced), so a field emptied since is a
//! delete. Two records linked for the first time have none: a field empty on one side is
//! unknown there, not deleted, so the merge fills it from the other side.

use crate::model::normalize::comparison_form;
use crate::model::{EffectiveMapping, Record};

/// The mapped fields (comparison-form keys) a write of `after` over `before` empties and
/// changes to another value. Fields it only fills are neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldEffects {
    pub clears: Vec<String>,
    pub overwrites: Vec<String>,
}

impl FieldEffects {
    pub fn of(before: &Record, after: &Record, mapping: &EffectiveMapping) -> Self {
        let old = comparison_form(before, mapping);
        let new = comparison_form(after, mapping);
        let mut out = FieldEffects::default();
        for (k, v) in &old {
            match new.get(k) {
                None => out.clears.push(k.clone()),
                Some(n) if n != v => out.overwrites.push(k.clone()),
                Some(_) => {}
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.clears.is_empty() && self.overwrites.is_empty()
    }
}

/// `winner` with every mapped field it leaves empty taken from `other`. Only free text is
/// filled: an event's time, free/busy and privacy are never empty, and its attendees are
/// not compared.
pub fn fill_empty(winner: &Record, other: &Record, mapping: &EffectiveMapping) -> Record {
    let mut out = winner.clone();
    let empty = |v: &str| v.trim().is_empty();
    match (&mut out, other) {
        (Record::Contact(w), Record::Contact(o)) => {
            for f in &mapping.fields {
                let theirs = o.get(&f.salesforce);
                if empty(w.get(&f.salesforce)) && !empty(theirs) {
                    w.set(&f.salesforce, theirs);
                }
            }
        }
        (Record::Event(w), Record::Event(o)) => {
            for f in &mapping.fields {
                let (mine, theirs) = match f.salesforce.as_str() {
                    "Subject" => (&mut w.subject, o.subject.as_str()),
                    "Location" => (&mut w.location, o.location.as_str()),
                    "Description" => (&mut w.body, o.body.as_str()),
                    "StartDateTime"
                    | "EndDateTime"
                    | "IsAllDayEvent"
                    | "ShowAs"
                    | "IsPrivate"
                    | crate::model::catalog::ATTENDEES => continue,
                    name => {
                        let theirs = o.extra.get(name).map(String::as_str).unwrap_or("");
                        let mine = w.extra.entry(name.to_string()).or_default();
                        if empty(mine) && !empty(theirs) {
                            *mine = theirs.to_string();
                        }
                        continue;
                    }
                };
                if empty(mine) && !empty(theirs) {
                    *mine = theirs.to_string();
                }
            }
            w.extra.retain(|_, v| !v.is_empty());
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Contact, ObjectKind};

    fn contact(fields: &[(&str, &str)]) -> Record {
        let mut c = Contact::default();
        for (k, v) in fields {
            c.set(k, *v);
        }
        Record::Contact(c)
    }

    #[test]
    fn fill_keeps_the_winners_values_and_takes_only_what_it_lacks() {
        let mapping = EffectiveMapping::defaults(ObjectKind::Contact);
        let exchange = contact(&[("LastName", "Kung"), ("Title", "CEO"), ("MailingCity", " ")]);
        let salesforce = contact(&[
            ("LastName", "Kung"),
            ("Title", "Chief"),
            ("MailingCity", "Oslo"),
            ("Phone", "+47 1"),
        ]);
        let merged = fill_empty(&exchange, &salesforce, &mapping);
        let c = merged.as_contact().unwrap();
        assert_eq!(
            (c.get("Title"), c.get("MailingCity"), c.get("Phone")),
            ("CEO", "Oslo", "+47 1")
        );
        let effects = FieldEffects::of(&salesforce, &merged, &mapping);
        assert_eq!(effects.overwrites, vec!["Title".to_string()]);
        assert!(effects.clears.is_empty());
        assert_eq!(
            FieldEffects::of(&salesforce, &exchange, &mapping).clears,
            vec!["MailingCity".to_string(), "Phone".to_string()]
        );
    }
}
