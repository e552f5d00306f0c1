//! Exchange Web Services (EWS) client.

pub mod xml;
