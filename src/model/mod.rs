//! The canonical record model shared by the engine, the connectors and validation.

pub mod catalog;
pub mod mapping;
pub mod merge;
pub mod normalize;
pub mod record;
pub mod rrule;

pub use mapping::EffectiveMapping;
pub use record::{Contact, Event, EventTime, ObjectKind, Record, Recurrence, ShowAs};
