//! The field catalog: which fields exist on each side, their types, and the default
//! mappings between them. Salesforce fields come from real describe results; Exchange
//! properties from the EWS schema. Validation and the sync engine both read it.

use serde_json::Value;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    LongText,
    Email,
    Phone,
    Url,
    Picklist,
    Date,
    DateTime,
    Boolean,
    Number,
    Reference,
    /// Structured values (compound address, attendees, recurrence) mapped only by default.
    Structured,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long text",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::Date => "date",
            FieldType::DateTime => "date/time",
            FieldType::Boolean => "boolean",
            FieldType::Number => "number",
            FieldType::Reference => "reference",
            FieldType::Structured => "structured",
        }
    }

    fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::LongText
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Picklist
        )
    }

    /// Whether values of a Salesforce field of this type can sync with an Exchange property
    /// of type `other` (both ways: the engine converts, never guesses).
    pub fn compatible_with(self, other: FieldType) -> bool {
        match (self, other) {
            (a, b) if a.is_textual() && b.is_textual() => true,
            (FieldType::Date, FieldType::Date | FieldType::DateTime) => true,
            (FieldType::DateTime, FieldType::DateTime) => true,
            (FieldType::Boolean, FieldType::Boolean) => true,
            (FieldType::Number, FieldType::Number) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SalesforceObject {
    Contact,
    Event,
    Lead,
}

impl SalesforceObject {
    pub fn name(self) -> &'static str {
        match self {
            SalesforceObject::Contact => "Contact",
            SalesforceObject::Event => "Event",
            SalesforceObject::Lead => "Lead",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SalesforceField {
    pub name: String,
    pub ty: FieldType,
    pub length: u32,
    pub createable: bool,
    pub updateable: bool,
}

/// Describe results recorded from a real org (published facts); the emulator serves the
/// same files, kept beside it.
fn describe_json(object: SalesforceObject) -> &'static str {
    match object {
        SalesforceObject::Contact => {
            include_str!("../../crates/emulators/src/salesforce/describe/describe_Contact.json")
        }
        SalesforceObject::Event => {
            include_str!("../../crates/emulators/src/salesforce/describe/describe_Event.json")
        }
        SalesforceObject::Lead => {
            include_str!("../../crates/emulators/src/salesforce/describe/describe_Lead.json")
        }
    }
}

fn field_type(describe_type: &str) -> FieldType {
    match describe_type {
        "string" | "combobox" => FieldType::Text,
        "textarea" => FieldType::LongText,
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        "url" => FieldType::Url,
        "picklist" | "multipicklist" => FieldType::Picklist,
        "date" => FieldType::Date,
        "datetime" => FieldType::DateTime,
        "boolean" => FieldType::Boolean,
        "double" | "int" | "currency" | "percent" => FieldType::Number,
        "reference" | "id" => FieldType::Reference,
        _ => FieldType::Structured,
    }
}

fn parse_describe(text: &str) -> Vec<SalesforceField> {
    let value: Value = serde_json::from_str(text).expect("bundled describe is valid JSON");
    value["fields"]
        .as_array()
        .expect("describe has fields")
        .iter()
        .map(|f| SalesforceField {
            name: f["name"].as_str().unwrap_or_default().to_string(),
            ty: field_type(f["type"].as_str().unwrap_or_default()),
            length: f["length"].as_u64().unwrap_or(0) as u32,
            createable: f["createable"].as_bool().unwrap_or(false),
            updateable: f["updateable"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// Every field of a Salesforce object, as described.
pub fn salesforce_fields(object: SalesforceObject) -> &'static [SalesforceField] {
    static CONTACT: OnceLock<Vec<SalesforceField>> = OnceLock::new();
    static EVENT: OnceLock<Vec<SalesforceField>> = OnceLock::new();
    static LEAD: OnceLock<Vec<SalesforceField>> = OnceLock::new();
    let cell = match object {
        SalesforceObject::Contact => &CONTACT,
        SalesforceObject::Event => &EVENT,
        SalesforceObject::Lead => &LEAD,
    };
    cell.get_or_init(|| parse_describe(describe_json(object)))
}

/// `Account.Name` is reached through the Contact's account; it stands for the company.
pub const ACCOUNT_NAME: &str = "Account.Name";

pub fn salesforce_field(object: SalesforceObject, name: &str) -> Option<SalesforceField> {
    if object == SalesforceObject::Contact && name == ACCOUNT_NAME {
        return Some(SalesforceField {
            name: ACCOUNT_NAME.into(),
            ty: FieldType::Text,
            length: 255,
            createable: true,
            updateable: true,
        });
    }
    salesforce_fields(object)
        .iter()
        .find(|f| f.name == name)
        .cloned()
}

/// An Exchange item property as tether names it in mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeProperty {
    pub name: &'static str,
    pub ty: FieldType,
}

const fn p(name: &'static str, ty: FieldType) -> ExchangeProperty {
    ExchangeProperty { name, ty }
}

use FieldType as T;

/// Contact properties (EWS ContactItemType; indexed entries by their key): the ones the EWS
/// client reads and writes, so that validation refuses a mapping that could not sync.
pub const EXCHANGE_CONTACT: &[ExchangeProperty] = &[
    p("GivenName", T::Text),
    p("MiddleName", T::Text),
    p("Surname", T::Text),
    p("Nickname", T::Text),
    p("DisplayName", T::Text),
    p("CompanyName", T::Text),
    p("JobTitle", T::Text),
    p("Department", T::Text),
    p("AssistantName", T::Text),
    p("Birthday", T::Date),
    p("Body", T::LongText),
    p("EmailAddress1", T::Email),
    p("EmailAddress2", T::Email),
    p("EmailAddress3", T::Email),
    p("BusinessPhone", T::Phone),
    p("BusinessPhone2", T::Phone),
    p("MobilePhone", T::Phone),
    p("HomePhone", T::Phone),
    p("HomePhone2", T::Phone),
    p("OtherTelephone", T::Phone),
    p("BusinessFax", T::Phone),
    p("HomeFax", T::Phone),
    p("AssistantPhone", T::Phone),
    p("Pager", T::Phone),
    p("BusinessStreet", T::Text),
    p("BusinessCity", T::Text),
    p("BusinessState", T::Text),
    p("BusinessPostalCode", T::Text),
    p("BusinessCountryOrRegion", T::Text),
    p("HomeStreet", T::Text),
    p("HomeCity", T::Text),
    p("HomeState", T::Text),
    p("HomePostalCode", T::Text),
    p("HomeCountryOrRegion", T::Text),
    p("OtherStreet", T::Text),
    p("OtherCity", T::Text),
    p("OtherState", T::Text),
    p("OtherPostalCode", T::Text),
    p("OtherCountryOrRegion", T::Text),
];

/// Calendar item properties (EWS CalendarItemType).
pub const EXCHANGE_CALENDAR: &[ExchangeProperty] = &[
    p("Subject", T::Text),
    p("Body", T::LongText),
    p("Start", T::DateTime),
    p("End", T::DateTime),
    p("IsAllDayEvent", T::Boolean),
    p("Location", T::Text),
    p("LegacyFreeBusyStatus", T::Picklist),
    p("Sensitivity", T::Picklist),
    p("Importance", T::Picklist),
    p("Categories", T::Text),
    p("Organizer", T::Email),
    p("Attendees", T::Structured),
    p("Recurrence", T::Structured),
];

/// A default mapping. `protected` ones are what matching and linking rely on: they cannot be
/// changed or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultMapping {
    pub salesforce: &'static str,
    pub exchange: &'static str,
    pub protected: bool,
}

const fn m(salesforce: &'static str, exchange: &'static str, protected: bool) -> DefaultMapping {
    DefaultMapping {
        salesforce,
        exchange,
        protected,
    }
}

/// The admin guide's contact field mappings.
pub const DEFAULT_CONTACT_MAPPINGS: &[DefaultMapping] = &[
    m("Email", "EmailAddress1", true),
    m("FirstName", "GivenName", true),
    m("LastName", "Surname", true),
    m(ACCOUNT_NAME, "CompanyName", true),
    m("Title", "JobTitle", false),
    m("Department", "Department", false),
    m("Phone", "BusinessPhone", false),
    m("MobilePhone", "MobilePhone", false),
    m("HomePhone", "HomePhone", false),
    m("OtherPhone", "OtherTelephone", false),
    m("Fax", "BusinessFax", false),
    m("AssistantName", "AssistantName", false),
    m("AssistantPhone", "AssistantPhone", false),
    m("Birthdate", "Birthday", false),
    m("Description", "Body", false),
    m("MailingStreet", "BusinessStreet", false),
    m("MailingCity", "BusinessCity", false),
    m("MailingState", "BusinessState", false),
    m("MailingPostalCode", "BusinessPostalCode", false),
    m("MailingCountry", "BusinessCountryOrRegion", false),
    m("OtherStreet", "OtherStreet", false),
    m("OtherCity", "OtherCity", false),
    m("OtherState", "OtherState", false),
    m("OtherPostalCode", "OtherPostalCode", false),
    m("OtherCountry", "OtherCountryOrRegion", false),
];

/// Event attendees are EventRelation records, not an Event field.
pub const ATTENDEES: &str = "Attendees";

/// The admin guide's event field mappings.
pub const DEFAULT_EVENT_MAPPINGS: &[DefaultMapping] = &[
    m("StartDateTime", "Start", true),
    m("EndDateTime", "End", true),
    m("IsAllDayEvent", "IsAllDayEvent", true),
    m(ATTENDEES, ATTENDEES, true),
    m("Subject", "Subject", false),
    m("Location", "Location", false),
    m("Description", "Body", false),
    m("ShowAs", "LegacyFreeBusyStatus", false),
    m("IsPrivate", "Sensitivity", false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_comes_from_the_describe_results() {
        let email = salesforce_field(SalesforceObject::Contact, "Email").unwrap();
        assert_eq!((email.ty, email.length), (FieldType::Email, 80));
        let loc = salesforce_field(SalesforceObject::Event, "Location").unwrap();
        assert_eq!((loc.ty, loc.length), (FieldType::Text, 255));
        assert!(
            !salesforce_field(SalesforceObject::Event, "AccountId")
                .unwrap()
                .createable
        );
        assert!(salesforce_field(SalesforceObject::Contact, "Nope").is_none());
    }

    #[test]
    fn every_default_mapping_names_real_fields() {
        for (object, maps, props) in [
            (
                SalesforceObject::Contact,
                DEFAULT_CONTACT_MAPPINGS,
                EXCHANGE_CONTACT,
            ),
            (
                SalesforceObject::Event,
                DEFAULT_EVENT_MAPPINGS,
                EXCHANGE_CALENDAR,
            ),
        ] {
            for mapping in maps {
                assert!(
                    props.iter().any(|p| p.name == mapping.exchange),
                    "{mapping:?}"
                );
                if mapping.salesforce != ATTENDEES {
                    assert!(
                        salesforce_field(object, mapping.salesforce).is_some(),
                        "{mapping:?}"
                    );
                }
            }
        }
    }
}
