//! Plans: what `tether apply` would change, in the settings and in the data.

pub mod build;
pub mod document;
pub mod file;
pub mod render;
pub mod settings;

#[cfg(test)]
mod snapshot_tests;
