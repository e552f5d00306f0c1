//! tether: Exchange ↔ Salesforce contact and calendar sync, with its settings as code.

pub mod clock;
pub mod config;
pub mod exchange;
pub mod net;
pub mod sandbox;
pub mod secret;
