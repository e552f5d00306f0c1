//! `tether setup exchange`: prints the PowerShell that gives tether access to the configured
//! reps' mailboxes and no others (see `crate::setup_script`).

use super::error::{CommandError, CommandResult, Done};
use super::output::out;
use super::{Loaded, load_configuration_checking};
use crate::config::model::{Config, ExchangeConnection};
use crate::config::secrets::resolve_value;
use crate::engine::connector::CrmConnector;
use crate::setup_script::{self, Setup};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub target: Target,
}

#[derive(Debug, clap::Subcommand)]
pub enum Target {
    /// Print the PowerShell that limits Exchange access to the configured reps' mailboxes.
    ///
    /// For `api: graph` (and EWS in Exchange Online): RBAC for Applications — the app's
    /// service principal, a management scope over the reps, the role assignments limited to
    /// it, Test-ServicePrincipalAuthorization per rep, and the warning that a tenant-wide
    /// Entra consent for the same permissions must be removed. For Exchange on premises:
    /// ApplicationImpersonation for the service account with a management scope. The reps are
    /// the users the active sync configurations list; members through profiles are known to
    /// Salesforce only (--from-salesforce asks it). No secret is printed. Review the script,
    /// then run it as an Exchange administrator.
    Exchange(ExchangeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExchangeArgs {
    /// Configuration file or directory (one org). Default: $TETHER_CONFIG, else the current directory.
    pub paths: Vec<PathBuf>,
    /// Also resolve the members of `members.profiles` through Salesforce, as `plan` does
    /// (signs in to Salesforce with the configured connection).
    #[arg(long)]
    pub from_salesforce: bool,
    /// Scope access to the members of this mail-enabled group (name or address) instead of a
    /// filter listing the reps' addresses.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// The Object ID of the app's service principal (Entra: Enterprise applications → the
    /// app → Object ID); without it the script has a placeholder to fill in.
    #[arg(long, value_name = "GUID", value_parser = guid)]
    pub object_id: Option<String>,
}

fn guid(text: &str) -> Result<String, String> {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(text.to_string())
    } else {
        Err("expected a GUID such as 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into())
    }
}

pub fn run(args: &Args) -> CommandResult {
    let Target::Exchange(args) = &args.target;
    // The script needs no secret; --from-salesforce resolves the Salesforce connection's
    // when it connects, and names the one it cannot read.
    let Loaded {
        config,
        home,
        settings,
    } = load_configuration_checking(&args.paths, false)?;
    let mut setup = Setup {
        source: super::config_paths(&args.paths)
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        group: args.group.clone(),
        object_id: args.object_id.clone(),
        client_id: match &config.connections.exchange {
            ExchangeConnection::Oauth2 { client_id, .. } => {
                Some(resolve_value(client_id, &home).map_err(|e| {
                    CommandError::input(format!(
                        "{}: {e}",
                        settings.describe("connections.exchange.client_id")
                    ))
                    .hint("set the variable, or write the app's client id in the configuration")
                })?)
            }
            ExchangeConnection::ServiceAccount { .. } => None,
        },
        ..Setup::default()
    };
    if args.from_salesforce {
        members_from_salesforce(&config, &home, &settings, &mut setup)?;
    } else {
        members_from_configuration(&config, &mut setup);
    }
    let script = setup_script::exchange(&config, &setup)
        .map_err(|e| CommandError::input(e.message).hint(e.hint))?;
    out!("{script}");
    Ok(Done::Success)
}

fn active(config: &Config) -> impl Iterator<Item = &crate::config::model::SyncConfiguration> {
    config.sync_configurations.iter().filter(|c| c.active)
}

/// The users the active configurations list; their profiles are named as not resolved.
fn members_from_configuration(config: &Config, setup: &mut Setup) {
    let users: BTreeSet<String> = active(config)
        .flat_map(|c| &c.members.users)
        .map(|u| u.trim().to_lowercase())
        .collect();
    let profiles: BTreeSet<String> = active(config)
        .flat_map(|c| &c.members.profiles)
        .cloned()
        .collect();
    setup.members = users.into_iter().collect();
    setup.members_from = "members.users".into();
    setup.unresolved_profiles = profiles.into_iter().collect();
}

/// The reps `plan` would sync: listed users and profiles' members, as Salesforce knows them.
fn members_from_salesforce(
    config: &Config,
    home: &std::path::Path,
    settings: &super::error::Settings,
    setup: &mut Setup,
) -> Result<(), CommandError> {
    let client = crate::connect::salesforce(config, home)
        .map_err(|e| super::error::connect_failed(e, settings))?;
    let crm = crate::salesforce::connector::SalesforceConnector::new(client);
    let users = super::runtime().block_on(crm.users()).map_err(|e| {
        CommandError::new(
            super::error::Kind::Connection,
            "the Salesforce users could not be read",
        )
        .caused_by(e)
        .hint("check the Salesforce connection with `tether test-connection`, or leave out --from-salesforce")
    })?;
    let (reps, problems) = crate::engine::reps::resolve_reps(config, &users);
    let members: BTreeSet<String> = reps.into_iter().map(|r| r.email).collect();
    setup.members = members.into_iter().collect();
    setup.members_from = "Salesforce (members.users and members.profiles)".into();
    setup.left_out = problems
        .into_iter()
        .map(|p| format!("{} — {}", p.user, p.message))
        .collect();
    Ok(())
}
