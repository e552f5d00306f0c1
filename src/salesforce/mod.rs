//! Salesforce REST client.

pub mod ids;
