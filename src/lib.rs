//! tether: Exchange ↔ Salesforce contact and calendar sync, with its settings as code.

pub mod clock;
pub mod config;
pub mod net;
pub mod salesforce;
pub mod sandbox;
pub mod secret;
