//! Plans: what `tether apply` would change, in the settings and in the data.

pub mod settings;
