//! Local emulators of the services tether talks to, for tests, benchmarks and `tether sandbox`.

pub mod exchange;
pub mod generate;
pub mod persist;
pub mod salesforce;
pub mod seed;
pub mod tls;
