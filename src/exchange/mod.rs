//! Exchange Web Services (EWS) client.

pub mod model;
pub mod tz;
pub mod xml;
