//! Time as a dependency: connectors read the time and sleep (back-off, retries) through a
//! `Clock`, so tests run with a manual clock instead of real sleeps. The emulators use the same
//! clock crate, so one manual clock drives both sides of a test.

pub use tether_clock::{Clock, ManualClock, SleepFuture, SystemClock};
