//! Published facts that tether's clients and its emulators both rely on, kept apart from either
//! so that neither judges the other with its own code: only what a vendor or standards body
//! publishes belongs here, never behaviour of tether or of a server.
//!
//! - [`windows_zones`]: CLDR's Windows ↔ IANA time-zone mapping (`data/windowsZones.xml`,
//!   embedded as published; provenance in `data/PROVENANCE.md`).
//! - [`salesforce_id`]: Salesforce's 15 → 18 character record-id checksum.

pub mod salesforce_id;
pub mod windows_zones;
