//! The canonical record model shared by the engine, the connectors and validation.

pub mod catalog;
