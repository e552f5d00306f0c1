//! All integration tests in one binary: each former `tests/<name>.rs` is a module here, so
//! the crate is linked once instead of thirty times (a test build took ~20 GB of disk).
//! A new test file is a new `mod` line below; `every_test_file_is_in_the_module_tree`
//! fails when one is left out. Run one file's tests with `cargo test --test it <module>::`.

// Shared testkit: worlds, emulators and helpers the test modules build on.
mod cli_world;
mod common;
mod emulated;
mod engine_world;
mod ews;
mod reliability_doc;

// The tests, one module per subject.
mod bench;
mod cli_conventions;
mod connect;
mod connectors;
mod crash;
mod demo;
mod engine_properties;
mod engine_scenarios;
mod examples;
mod exchange_autodiscover;
mod exchange_hostile;
mod exchange_ops;
mod exchange_schema;
mod faults;
mod fuzz_smoke;
mod fuzz_targets;
mod graph_sync;
mod hostile_answers;
mod layout;
mod lock_cli;
mod mailbox_claim;
mod plan_build;
mod salesforce_client;
mod salesforce_emulator;
mod sandbox_process;
mod saved_plans;
mod secrets;
mod service;
mod setup;
mod state_safety;
mod state_store;
mod status;
mod sync_scenarios;
mod test_connection;
mod transport_tls;
mod validate;
mod validate_fuzz;
mod workflow;
