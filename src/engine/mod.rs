//! The sync engine: resolve reps, read changes from both sides, plan (a pure function), and
//! execute the plan through the connectors, recording every step in the state store.
//!
//! Wiring: implement `connector::MailConnector` on the EWS client and
//! `connector::CrmConnector` on the Salesforce client (converting to and from the canonical
//! records with `model::EffectiveMapping`), open a `state::SqliteState`, then call
//! `cycle::run_cycle` (apply/run) or `cycle::read_and_plan` (plan, writes nothing). The
//! in-memory connectors in `memory` are the reference behaviour the real ones must match:
//! change feeds with opaque cursors, per-record outcomes, ambiguous creates, batch limits.

pub mod connector;
pub mod cycle;
pub mod execute;
pub mod facts;
pub mod memory;
pub mod plan;
pub mod recheck;
pub mod reps;
pub mod rules;

pub use connector::{CrmConnector, MailConnector};
pub use cycle::{CycleError, CycleReport, SyncOptions, read_and_plan, run_cycle};
pub use execute::{ExecReport, Executor, Killed, StepBudget};
pub use plan::{Action, Operation, Plan, PlanInput, plan};
pub use reps::{Rep, RepProblem, resolve_reps};
