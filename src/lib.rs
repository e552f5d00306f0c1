//! tether: Exchange ↔ Salesforce contact and calendar sync, with its settings as code.

pub mod bench;
pub mod checks;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod engine;
pub mod entra;
pub mod exchange;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod golden;
pub mod graph;
pub mod lock;
pub mod mail;
pub mod model;
pub mod mutex;
pub mod net;
pub mod plan;
pub mod salesforce;
pub mod secret;
pub mod setup_script;
pub mod state;
pub mod workflow;
