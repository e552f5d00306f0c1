//! Local emulators of the services tether talks to (Exchange Web Services and Salesforce),
//! for tests, benchmarks and `tether sandbox`. They follow the vendors' documentation and
//! share no code with tether's clients: their own store model, XML/SOAP codec, clock and
//! credentials type.

pub mod clock;
pub mod exchange;
pub mod generate;
pub mod persist;
pub mod salesforce;
pub mod secret;
pub mod seed;
pub mod tls;
