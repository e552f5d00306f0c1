//! The clock the emulators read and sleep by (shared with tether through `tether-clock`,
//! which holds no protocol code, so one manual clock drives a test's both sides).

pub use tether_clock::{Clock, ManualClock, SleepFuture, SystemClock};
