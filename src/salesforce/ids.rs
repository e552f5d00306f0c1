//! Salesforce record ids: 15 case-sensitive characters plus a 3-character suffix that makes
//! the id unique when compared case-insensitively. The checksum is a published fact shared
//! with the emulator, so it lives in the spec crate; this module adds what tether reads from
//! an id.

pub use tether_spec::salesforce_id::{checksum_suffix, is_valid, to_18};

/// The three-character key prefix naming the object type (003 Contact, 00Q Lead, …).
pub fn key_prefix(id: &str) -> Option<&str> {
    id.get(..3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefix_names_the_object_and_the_checksum_is_the_spec_crates() {
        assert_eq!(key_prefix("003A0000006Vm9r"), Some("003"));
        assert_eq!(key_prefix("00"), None);
        assert_eq!(
            to_18("001A0000006Vm9r").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        assert!(!is_valid("001A0000006Vm9rIAD"));
    }
}
