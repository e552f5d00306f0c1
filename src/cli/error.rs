//! The commands' one error type (after jj's `CommandError`): a kind that decides the exit
//! code, what failed, the causes beneath it (`Caused by:`) and what to do about it
//! (`Hint:`). Commands return it; `main` prints it, and nothing else prints errors.

use crate::config::model::{Config, ExchangeConnection};
use crate::config::yaml::Kind as NodeKind;
use crate::connect::ConnectError;
use crate::engine::cycle::CycleError;
use crate::workflow::PlanError;
use std::fmt;
use std::process::ExitCode;

/// What kind of thing went wrong, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The configuration, the command line or a saved plan is not right: fix the input.
    Input,
    /// Exchange or Salesforce could not be reached or refused tether.
    Connection,
    /// The state file or its lock.
    State,
    /// The command started and could not finish (a sync that stopped, a file not written).
    Failed,
}

impl Kind {
    /// Every error exits 1, as README documents ("1 on error"); 2 stays for
    /// `plan --detailed-exitcode`'s "changes" (and clap's usage errors).
    fn exit_code(self) -> u8 {
        match self {
            Kind::Input | Kind::Connection | Kind::State | Kind::Failed => 1,
        }
    }
}

/// How a command that ran to its end exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Success,
    /// `plan --detailed-exitcode` found changes.
    Changes,
    /// It ran, and what failed is in its own output: an invalid configuration, records or
    /// checks that failed, an apply the user did not confirm.
    Problems,
}

impl From<Done> for ExitCode {
    fn from(done: Done) -> ExitCode {
        ExitCode::from(match done {
            Done::Success => 0,
            Done::Changes => 2,
            Done::Problems => 1,
        })
    }
}

pub type CommandResult = Result<Done, CommandError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub kind: Kind,
    message: String,
    causes: Vec<String>,
    hints: Vec<String>,
    /// The findings were rendered in full already (the configuration's diagnostics, each
    /// with its own `error:` line): printed as they are.
    rendered: bool,
}

impl CommandError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        CommandError {
            kind,
            message: message.into(),
            causes: Vec::new(),
            hints: Vec::new(),
            rendered: false,
        }
    }

    pub fn input(message: impl fmt::Display) -> Self {
        CommandError::new(Kind::Input, message.to_string())
    }

    pub fn state(message: impl fmt::Display) -> Self {
        CommandError::new(Kind::State, message.to_string())
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        CommandError::new(Kind::Failed, message.to_string())
    }

    /// Findings already rendered in full, e.g. `Validation::render_human`.
    pub fn findings(rendered: String) -> Self {
        CommandError {
            rendered: true,
            ..CommandError::input(rendered)
        }
    }

    /// An error beneath this one (the first given is the nearest).
    pub fn caused_by(mut self, cause: impl fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind.exit_code())
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rendered {
            f.write_str(&self.message)?;
        } else {
            writeln!(f, "error: {}", self.message)?;
        }
        match self.causes.as_slice() {
            [] => {}
            [cause] => writeln!(f, "Caused by: {cause}")?,
            causes => {
                writeln!(f, "Caused by:")?;
                for (n, cause) in causes.iter().enumerate() {
                    writeln!(f, "{}: {cause}", n + 1)?;
                }
            }
        }
        for hint in &self.hints {
            writeln!(f, "Hint: {hint}")?;
        }
        Ok(())
    }
}

/// Where each setting of the configuration a command works on is written, so an error about
/// a connection can name the file, line and column to look at.
pub struct Settings {
    validation: crate::config::Validation,
    unit: usize,
}

impl Settings {
    pub fn new(validation: crate::config::Validation, unit: usize) -> Self {
        Settings { validation, unit }
    }

    /// `file:line:column` of a setting given as a dotted path
    /// (`connections.exchange.ews_url`), when the configuration has it: of its value, or of
    /// its key when it is a section (whose value starts on the next line).
    pub fn locate(&self, setting: &str) -> Option<String> {
        let (unit, _) = self.validation.units.get(self.unit)?;
        let pointer: String = setting.split('.').map(|s| format!("/{s}")).collect();
        let value = unit.tree.lookup(&pointer, false)?;
        let section = matches!(value.kind, NodeKind::Map(_) | NodeKind::Seq(_));
        let span = unit.tree.lookup(&pointer, section)?.span;
        Some(format!(
            "{}:{}:{}",
            self.validation.sources.path(span.file).display(),
            span.start.line,
            span.start.column
        ))
    }

    /// `setting (file:line:column)`, or the setting alone when it is not written down.
    pub fn describe(&self, setting: &str) -> String {
        match self.locate(setting) {
            Some(at) => format!("{setting} ({at})"),
            None => setting.to_string(),
        }
    }
}

/// The settings that say where tether connects to reach Exchange or Salesforce.
pub fn address_settings(config: &Config, salesforce: bool) -> Vec<&'static str> {
    if salesforce {
        let login = config.connections.salesforce.login_url.is_some();
        let mut settings = vec!["connections.salesforce.instance_url"];
        if login {
            settings.insert(0, "connections.salesforce.login_url");
        }
        return settings;
    }
    match &config.connections.exchange {
        ExchangeConnection::ServiceAccount { ews_url, .. } => match ews_url {
            Some(_) => vec!["connections.exchange.ews_url"],
            // Autodiscover finds the server from the account's domain.
            None => vec!["connections.exchange.username"],
        },
        ExchangeConnection::Oauth2 {
            token_url, ews_url, ..
        } => {
            let mut settings = Vec::new();
            if token_url.is_some() {
                settings.push("connections.exchange.token_url");
            }
            settings.push(match ews_url {
                Some(_) => "connections.exchange.ews_url",
                None => "connections.exchange.tenant",
            });
            settings
        }
    }
}

/// Why a plan could not be made, for the user: a connection that failed names the settings
/// that say where tether connects, at their file, line and column.
pub fn plan_failed(e: PlanError, config: &Config, settings: &Settings) -> CommandError {
    match e {
        PlanError::Read(CycleError::Crm(call)) => {
            let error = CommandError::new(
                Kind::Connection,
                "Salesforce could not be read; nothing was planned",
            );
            // A transport failure has no code from Salesforce: only the address can be wrong.
            let error = if call.code == "TRANSPORT" {
                error.caused_by(&call.message).hint(unreachable_hint(
                    "Salesforce",
                    config,
                    settings,
                    true,
                ))
            } else {
                error.caused_by(&call)
            };
            // What the connector says can be done about it.
            let error = match call.hint.as_str() {
                "" => error,
                hint => error.hint(hint),
            };
            error.hint("`tether test-connection` checks the connections one by one")
        }
        PlanError::Read(CycleError::State(e)) => CommandError::state(e),
        e => CommandError::failed(e),
    }
}

/// Which settings name the server tether could not reach, and where they are written.
pub fn unreachable_hint(
    service: &str,
    config: &Config,
    settings: &Settings,
    salesforce: bool,
) -> String {
    let places: Vec<String> = address_settings(config, salesforce)
        .into_iter()
        .map(|s| settings.describe(s))
        .collect();
    format!(
        "tether reaches {service} through {}: check the address, and that the server answers from this machine",
        places.join(" and ")
    )
}

/// A connection the configuration describes could not be opened: the setting it names, at
/// its file, line and column.
pub fn connect_failed(e: ConnectError, settings: &Settings) -> CommandError {
    CommandError::input(format!("{}: {}", settings.describe(&e.setting), e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_prints_its_causes_then_its_hints() {
        let one = CommandError::failed("Salesforce could not be read")
            .caused_by("connection refused")
            .hint("check connections.salesforce.instance_url");
        assert_eq!(
            one.to_string(),
            "error: Salesforce could not be read\nCaused by: connection refused\nHint: check connections.salesforce.instance_url\n"
        );
        let two = CommandError::state("the state cannot be opened")
            .caused_by("database is locked")
            .caused_by("another process");
        assert_eq!(
            two.to_string(),
            "error: the state cannot be opened\nCaused by:\n1: database is locked\n2: another process\n"
        );
    }

    #[test]
    fn findings_are_printed_as_rendered() {
        let e = CommandError::findings("error[schema]: x\n".into());
        assert_eq!(e.to_string(), "error[schema]: x\n");
        assert_eq!(e.kind, Kind::Input);
    }

    #[test]
    fn every_error_kind_exits_1_and_plan_changes_exit_2() {
        for kind in [Kind::Input, Kind::Connection, Kind::State, Kind::Failed] {
            assert_eq!(kind.exit_code(), 1);
        }
        assert_eq!(ExitCode::from(Done::Changes), ExitCode::from(2));
        assert_eq!(ExitCode::from(Done::Problems), ExitCode::from(1));
        assert_eq!(ExitCode::from(Done::Success), ExitCode::SUCCESS);
    }
}
