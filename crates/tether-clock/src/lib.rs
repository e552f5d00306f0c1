//! Time as a dependency: tether's connectors and the emulators read the time and sleep
//! (back-off, retries, token lifetimes) through a `Clock`, so tests run with one manual clock
//! instead of real sleeps. No protocol code lives here: the crate is shared by the clients and
//! the emulators that judge them without letting them share a codec.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type SleepFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, duration: Duration) -> SleepFuture<'_>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock for tests: `sleep` returns at once and advances the time; every sleep is recorded
/// so a test can assert the back-off it asked for.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: DateTime<Utc>,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualState {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut s = self.inner.lock().expect("clock lock");
        s.now += chrono::Duration::from_std(by).expect("duration in range");
    }

    /// Every duration passed to `sleep`, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner.lock().expect("clock lock").sleeps.clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.lock().expect("clock lock").now
    }
    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        {
            let mut s = self.inner.lock().expect("clock lock");
            s.sleeps.push(duration);
            s.now += chrono::Duration::from_std(duration).expect("duration in range");
        }
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_records_sleeps_and_advances() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        clock.sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.sleeps(), vec![Duration::from_millis(1500)]);
        assert_eq!(clock.now(), start + chrono::Duration::milliseconds(1500));
    }
}
