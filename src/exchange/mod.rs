//! Exchange Web Services (EWS) client.

pub mod error;
pub mod model;
pub mod soap;
pub mod tz;
pub mod xml;

pub use error::{EwsError, ItemError};
