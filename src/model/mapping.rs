//! The field mappings in force for one sync configuration: the admin guide's defaults, then
//! the configuration's own `field_mappings` (a value adds or changes a mapping, `~` removes
//! one). Protected mappings are what matching and linking rely on, so they always stay;
//! validation already rejects attempts to change them.

use crate::model::catalog::{
    DEFAULT_CONTACT_MAPPINGS, DEFAULT_EVENT_MAPPINGS, DefaultMapping, FieldType, SalesforceObject,
    salesforce_field,
};
use crate::model::record::{Contact, ObjectKind, Record};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    /// Salesforce field API name; also the key of the value in the canonical record.
    pub salesforce: String,
    /// Exchange property name.
    pub exchange: String,
    pub protected: bool,
    pub ty: FieldType,
    /// Salesforce field length (0 when unbounded or not textual).
    pub max_len: usize,
}

/// A field a configuration maps otherwise than the defaults.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct MappingDifference {
    pub salesforce: String,
    /// The Exchange property it syncs with; `None`: not synced.
    pub exchange: Option<String>,
    /// The default's Exchange property; `None`: a mapping the configuration adds.
    pub default: Option<String>,
}

impl std::fmt::Display for MappingDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.exchange, &self.default) {
            (Some(ex), Some(d)) => write!(f, "{} → {ex} (default {d})", self.salesforce),
            (Some(ex), None) => write!(f, "{} → {ex} (added)", self.salesforce),
            (None, _) => write!(f, "{} not synced (removed)", self.salesforce),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveMapping {
    pub object: ObjectKind,
    pub fields: Vec<MappedField>,
}

fn sf_object(object: ObjectKind) -> SalesforceObject {
    match object {
        ObjectKind::Contact => SalesforceObject::Contact,
        ObjectKind::Event => SalesforceObject::Event,
    }
}

fn field(object: ObjectKind, salesforce: &str, exchange: &str, protected: bool) -> MappedField {
    let described = salesforce_field(sf_object(object), salesforce);
    let (ty, max_len) = match &described {
        Some(f) => (f.ty, f.length as usize),
        None => (FieldType::Structured, 0),
    };
    MappedField {
        salesforce: salesforce.to_string(),
        exchange: exchange.to_string(),
        protected,
        ty,
        max_len,
    }
}

impl EffectiveMapping {
    /// Defaults plus `custom` (Salesforce field → Exchange property, `None` removes).
    pub fn new(object: ObjectKind, custom: &BTreeMap<String, Option<String>>) -> Self {
        let defaults: &[DefaultMapping] = match object {
            ObjectKind::Contact => DEFAULT_CONTACT_MAPPINGS,
            ObjectKind::Event => DEFAULT_EVENT_MAPPINGS,
        };
        let mut fields: Vec<MappedField> = defaults
            .iter()
            .map(|d| field(object, d.salesforce, d.exchange, d.protected))
            .collect();
        for (sf, ex) in custom {
            let existing = fields.iter().position(|f| &f.salesforce == sf);
            match (existing, ex) {
                (Some(i), _) if fields[i].protected => {}
                (Some(i), None) => {
                    fields.remove(i);
                }
                (Some(i), Some(ex)) => fields[i].exchange = ex.clone(),
                (None, Some(ex)) => fields.push(field(object, sf, ex, false)),
                (None, None) => {}
            }
        }
        EffectiveMapping { object, fields }
    }

    pub fn defaults(object: ObjectKind) -> Self {
        Self::new(object, &BTreeMap::new())
    }

    pub fn maps(&self, salesforce: &str) -> bool {
        self.fields.iter().any(|f| f.salesforce == salesforce)
    }

    pub fn get(&self, salesforce: &str) -> Option<&MappedField> {
        self.fields.iter().find(|f| f.salesforce == salesforce)
    }

    /// `record` as a write under this mapping. A contact names every mapped field (empty:
    /// clear it) and nothing else; an event names only the custom fields mapped here and
    /// lists the modelled ones this mapping leaves out (`Event::unmapped`). Connectors write
    /// only what a written record names, so a write never touches a field this mapping does
    /// not map, whatever other configurations map.
    pub fn project(&self, record: &Record) -> Record {
        match record {
            Record::Contact(c) => Record::Contact(Contact {
                fields: self
                    .fields
                    .iter()
                    .map(|f| (f.salesforce.clone(), c.get(&f.salesforce).to_string()))
                    .collect(),
            }),
            Record::Event(e) => {
                let mut e = e.clone();
                let custom: Vec<&str> = self
                    .fields
                    .iter()
                    .map(|f| f.salesforce.as_str())
                    .filter(|f| !DEFAULT_EVENT_MAPPINGS.iter().any(|d| d.salesforce == *f))
                    .collect();
                e.extra.retain(|k, _| custom.contains(&k.as_str()));
                for f in custom {
                    e.extra.entry(f.to_string()).or_default();
                }
                // The privacy flag is always carried: a private meeting must not turn
                // public on the other side.
                e.unmapped = ["Subject", "Location", "Description", "ShowAs"]
                    .into_iter()
                    .filter(|f| !self.maps(f))
                    .map(str::to_string)
                    .collect();
                Record::Event(e)
            }
        }
    }

    /// How this mapping differs from the admin guide's defaults, by Salesforce field: what
    /// `tether plan` and `tether status` show of each configuration's mapping.
    pub fn differences_from_defaults(&self) -> Vec<MappingDifference> {
        let defaults = Self::defaults(self.object);
        let mut out: Vec<MappingDifference> = defaults
            .fields
            .iter()
            .filter(|d| self.exchange_for(&d.salesforce) != Some(d.exchange.as_str()))
            .map(|d| MappingDifference {
                salesforce: d.salesforce.clone(),
                exchange: self.exchange_for(&d.salesforce).map(str::to_string),
                default: Some(d.exchange.clone()),
            })
            .collect();
        out.extend(
            self.fields
                .iter()
                .filter(|f| !defaults.maps(&f.salesforce))
                .map(|f| MappingDifference {
                    salesforce: f.salesforce.clone(),
                    exchange: Some(f.exchange.clone()),
                    default: None,
                }),
        );
        out.sort_by(|a, b| a.salesforce.cmp(&b.salesforce));
        out
    }

    /// The Exchange property a Salesforce field maps to.
    pub fn exchange_for(&self, salesforce: &str) -> Option<&str> {
        self.get(salesforce).map(|f| f.exchange.as_str())
    }

    /// The Salesforce field an Exchange property maps to (connectors converting items).
    pub fn salesforce_for(&self, exchange: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.exchange == exchange)
            .map(|f| f.salesforce.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_mappings_add_change_and_remove_but_never_touch_protected_ones() {
        let custom = BTreeMap::from([
            ("Title".to_string(), None),
            ("Department".to_string(), Some("Nickname".to_string())),
            ("Email".to_string(), None),
            ("LeadSource".to_string(), Some("Profession".to_string())),
        ]);
        let m = EffectiveMapping::new(ObjectKind::Contact, &custom);
        assert!(!m.maps("Title"));
        assert_eq!(m.exchange_for("Department"), Some("Nickname"));
        assert_eq!(m.exchange_for("Email"), Some("EmailAddress1"));
        assert_eq!(m.salesforce_for("Profession"), Some("LeadSource"));
        assert_eq!(m.get("Email").unwrap().max_len, 80);
        let shown: Vec<String> = m
            .differences_from_defaults()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "Department → Nickname (default Department)",
                "LeadSource → Profession (added)",
                "Title not synced (removed)"
            ]
        );
    }
}
