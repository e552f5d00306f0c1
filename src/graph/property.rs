//! The single-value extended property that carries the Salesforce id on items tether
//! creates: PublicStrings, name `tether.SalesforceId` — the same named property the EWS
//! connector writes, so an item made over one API is found over the other.

use serde_json::{Value, json};

/// PublicStrings property set (PSETID_PublicStrings).
pub const PUBLIC_STRINGS: &str = "00020329-0000-0000-C000-000000000046";

/// The property's Graph id: `String {PublicStrings} Name tether.SalesforceId`.
pub fn salesforce_id_property() -> String {
    format!(
        "String {{{PUBLIC_STRINGS}}} Name {}",
        crate::exchange::model::PROP_SALESFORCE_ID
    )
}

/// The Salesforce_Sync folder's marker property (who syncs the mailbox):
/// `String {PublicStrings} Name tether.SyncedBy`, as the EWS connector names it.
pub fn synced_by_property() -> String {
    format!(
        "String {{{PUBLIC_STRINGS}}} Name {}",
        crate::exchange::model::PROP_SYNCED_BY
    )
}

/// `$expand` that returns the folder marker with each contactFolder.
pub fn expand_synced_by() -> String {
    format!(
        "singleValueExtendedProperties($filter=id eq {})",
        literal(&synced_by_property())
    )
}

/// An OData string literal: quoted, inner quotes doubled.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `$expand` that returns the property with each item.
pub fn expand() -> String {
    format!(
        "singleValueExtendedProperties($filter=id eq {})",
        literal(&salesforce_id_property())
    )
}

/// `$expand` that returns the property and the extended properties `others` (ids) with
/// each item.
pub fn expand_with(others: &[&str]) -> String {
    let mut ids = vec![literal(&salesforce_id_property())];
    ids.extend(others.iter().map(|o| literal(o)));
    let filter: Vec<String> = ids.iter().map(|i| format!("id eq {i}")).collect();
    format!(
        "singleValueExtendedProperties($filter={})",
        filter.join(" or ")
    )
}

/// `$filter` for the items whose property holds `salesforce_id`.
pub fn filter(salesforce_id: &str) -> String {
    format!(
        "singleValueExtendedProperties/Any(ep: ep/id eq {} and ep/value eq {})",
        literal(&salesforce_id_property()),
        literal(salesforce_id)
    )
}

/// The member to set on a POST or PATCH body.
pub fn member(salesforce_id: &str) -> Value {
    json!([{"id": salesforce_id_property(), "value": salesforce_id}])
}

/// The property's value on an item read with [`expand`].
pub fn value_of(item: &Value) -> Option<&str> {
    value(item, &salesforce_id_property())
}

/// The value of the extended property `id` on an item read with it expanded. Graph may
/// answer the id with another case of the GUID or name.
pub fn value<'a>(item: &'a Value, id: &str) -> Option<&'a str> {
    item.get("singleValueExtendedProperties")?
        .as_array()?
        .iter()
        .find(|p| {
            p.get("id")
                .and_then(Value::as_str)
                .is_some_and(|i| i.eq_ignore_ascii_case(id))
        })?
        .get("value")?
        .as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_same_property_as_the_ews_connector() {
        assert_eq!(
            salesforce_id_property(),
            "String {00020329-0000-0000-C000-000000000046} Name tether.SalesforceId"
        );
        assert_eq!(
            filter("003O'1"),
            "singleValueExtendedProperties/Any(ep: ep/id eq 'String {00020329-0000-0000-C000-000000000046} Name tether.SalesforceId' and ep/value eq '003O''1')"
        );
        let item = json!({"id": "AAMk", "singleValueExtendedProperties": [
            {"id": "String {00020329-0000-0000-c000-000000000046} Name tether.SalesforceId", "value": "003x"}
        ]});
        assert_eq!(value_of(&item), Some("003x"));
        assert_eq!(value_of(&json!({"id": "AAMk"})), None);
    }
}
