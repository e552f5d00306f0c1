//! Salesforce record ids: the published 15 → 18 character checksum (tether-spec), and the
//! key prefix that names an id's object type.

pub use tether_spec::salesforce_id::{is_valid, to_18};

/// The three-character key prefix naming the object type (003 Contact, 00Q Lead, …).
pub fn key_prefix(id: &str) -> Option<&str> {
    id.get(..3)
}
