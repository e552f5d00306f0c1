//! tether: Exchange ↔ Salesforce contact and calendar sync, with its settings as code.

pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod model;
pub mod net;
pub mod secret;
pub mod state;
