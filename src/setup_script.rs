//! The PowerShell an Exchange administrator runs to give tether access to the configured
//! reps' mailboxes, and to nobody else's (`tether setup exchange`):
//!
//! - `api: graph` (and EWS in Exchange Online): RBAC for Applications — the app's service
//!   principal, a management scope over the members, role assignments limited to it, and a
//!   check per rep. RBAC is additive, so a tenant-wide Entra consent for the same
//!   permissions must go.
//! - Exchange on premises (`method: service_account`): ApplicationImpersonation for the
//!   service account, limited by a management scope.
//!
//! Every value the configuration supplies is written as a PowerShell single-quoted string
//! ([`quote`]), so nothing in it is interpolated or run. The script names no secret.

use crate::config::model::{Config, ExchangeApi, ExchangeConnection};

/// What the script covers besides the configuration itself.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Where the configuration was read from, for the header.
    pub source: String,
    /// The members' addresses (lower case, sorted, unique).
    pub members: Vec<String>,
    /// Where the members came from, for the header (e.g. "members.users").
    pub members_from: String,
    /// Profiles whose users are not among `members` (Salesforce was not asked).
    pub unresolved_profiles: Vec<String>,
    /// Configured users left out, with why (resolved through Salesforce).
    pub left_out: Vec<String>,
    /// A mail-enabled group (name or address) whose members the scope covers, instead of
    /// the list of addresses.
    pub group: Option<String>,
    /// The app's resolved client id (`api: graph` / Exchange Online).
    pub client_id: Option<String>,
    /// The Object ID of the app's service principal, when the administrator gave it.
    pub object_id: Option<String>,
}

/// Why no script can be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    pub message: String,
    pub hint: String,
}

/// `text` as a PowerShell single-quoted string: nothing inside is expanded. PowerShell takes
/// the typographic single quotes (U+2018–U+201B) as quote marks too, so they are doubled
/// like `'`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        // A line break would end a comment or a command in the script around it.
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A value inside an OPATH filter (`'…'`, a single quote doubled), itself later quoted for
/// PowerShell by [`quote`].
fn opath_value(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The script for `config`.
pub fn exchange(config: &Config, setup: &Setup) -> Result<String, SetupError> {
    if setup.members.is_empty() && setup.group.is_none() {
        return Err(SetupError {
            message: format!(
                "no rep to give access to: no member of the active sync configurations was \
                 found in {}",
                setup.members_from
            ),
            hint: if setup.unresolved_profiles.is_empty() {
                "list users in members.users, or give --group with a mail-enabled group of the reps"
                    .into()
            } else {
                "add --from-salesforce to resolve the profiles' members through Salesforce, or \
                 give --group with a mail-enabled group of the reps"
                    .into()
            },
        });
    }
    let mut s = Script::default();
    let org = &config.org.name;
    s.comment(&format!(
        "tether setup exchange: mailbox access for org {}, generated from {}.",
        quote(org),
        setup.source
    ));
    s.comment("Review it, then run it as an Exchange administrator. It holds no secret.");
    match &config.connections.exchange {
        ExchangeConnection::ServiceAccount { username, .. } => {
            s.comment("Exchange on premises: run in the Exchange Management Shell.");
            s.blank();
            s.members(setup);
            s.scope(setup, org);
            impersonation(&mut s, username, org);
        }
        ExchangeConnection::Oauth2 { api, .. } => {
            let client_id = setup.client_id.as_deref().ok_or_else(|| SetupError {
                message: "the app's client id is not known".into(),
                hint: "set connections.exchange.client_id, or the variable it names".into(),
            })?;
            s.comment(
                "Exchange Online: run in Exchange Online PowerShell (Connect-ExchangeOnline).",
            );
            if *api == ExchangeApi::Ews {
                s.comment(
                    "This configuration uses EWS (`api: ews`). Exchange Online blocks EWS since \
                     1 October 2026 unless the tenant allow-listed the app, and turns it off on \
                     1 April 2027: switch to `api: graph`.",
                );
            }
            s.blank();
            s.members(setup);
            rbac_for_applications(&mut s, config, setup, client_id, *api, org);
        }
    }
    s.blank();
    s.comment("Then check everything from tether's side:");
    s.comment(&format!("  tether test-connection {}", setup.source));
    Ok(s.text)
}

fn impersonation(s: &mut Script, username: &str, org: &str) {
    s.step("Let the service account impersonate the mailboxes in the scope, and no others.");
    s.line(&format!(
        "New-ManagementRoleAssignment -Name {} -Role ApplicationImpersonation -User {} -CustomRecipientWriteScope $Scope",
        quote(&format!("tether {org} impersonation")),
        quote(username)
    ));
    s.blank();
    s.step("Check: the assignment and its scope.");
    s.line(&format!(
        "Get-ManagementRoleAssignment -Role ApplicationImpersonation -RoleAssignee {} | Format-List Name,RoleAssigneeName,CustomRecipientWriteScope",
        quote(username)
    ));
    s.comment(
        "If an older assignment of ApplicationImpersonation to this account has no scope, it \
         still reaches every mailbox: remove it (Remove-ManagementRoleAssignment).",
    );
}

fn rbac_for_applications(
    s: &mut Script,
    config: &Config,
    setup: &Setup,
    client_id: &str,
    api: ExchangeApi,
    org: &str,
) {
    s.step("The app's service principal in Exchange Online. AppId is the app's client id.");
    s.comment(
        "   ObjectId is the Object ID of its service principal: Entra admin center → Enterprise \
         applications → the app → Overview → Object ID (not the Object ID of the app \
         registration). Fill it in below.",
    );
    s.line(&format!("$AppId = {}", quote(client_id)));
    let object_id = setup
        .object_id
        .as_deref()
        .unwrap_or("<service principal object id>");
    s.line(&format!("$ObjectId = {}", quote(object_id)));
    s.line(
        "if ($ObjectId -notmatch '^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$') { throw 'Set $ObjectId to the service principal''s Object ID (see above) first.' }",
    );
    s.line(&format!(
        "New-ServicePrincipal -AppId $AppId -ObjectId $ObjectId -DisplayName {}",
        quote(&format!("tether {org}"))
    ));
    s.blank();
    s.scope(setup, org);
    let roles: Vec<(&str, &str)> = match api {
        ExchangeApi::Graph => {
            let mut roles = Vec::new();
            let active = || config.sync_configurations.iter().filter(|c| c.active);
            if active().any(|c| c.contacts.is_some()) {
                roles.push(("Application Contacts.ReadWrite", "contacts"));
            }
            if active().any(|c| c.events.is_some()) {
                roles.push(("Application Calendars.ReadWrite", "calendars"));
            }
            roles
        }
        ExchangeApi::Ews => vec![("Application EWS.AccessAsApp", "EWS")],
    };
    s.step(
        "The app's permissions, limited to the scope (only those the active sync \
         configurations need).",
    );
    if roles.is_empty() {
        s.comment("   No active sync configuration syncs contacts or events: no role is needed.");
    }
    for (role, what) in &roles {
        s.line(&format!(
            "New-ManagementRoleAssignment -Name {} -App $AppId -Role {} -CustomResourceScope $Scope",
            quote(&format!("tether {org} {what}")),
            quote(role)
        ));
    }
    s.blank();
    s.step("Check each rep: InScope must be True for every role above.");
    for member in &setup.members {
        s.line(&format!(
            "Test-ServicePrincipalAuthorization -Identity $AppId -Resource {} | Format-Table RoleName,GrantedPermissions,InScope",
            quote(member)
        ));
    }
    if setup.members.is_empty() {
        s.comment("   (no rep is listed in the configuration: name one of the group's members)");
        s.line("Test-ServicePrincipalAuthorization -Identity $AppId -Resource '<a rep''s address>' | Format-Table RoleName,GrantedPermissions,InScope");
    }
    s.blank();
    let permissions = match api {
        ExchangeApi::Graph => {
            "Microsoft Graph application permissions Contacts.ReadWrite and Calendars.ReadWrite"
        }
        ExchangeApi::Ews => "Office 365 Exchange Online application permission full_access_as_app",
    };
    s.step(&format!(
        "WARNING: RBAC for Applications is additive. If the app registration also has \
         tenant-wide admin consent in Entra ID for the {permissions}, the app can still open \
         EVERY mailbox: remove that consent (Entra admin center → App registrations → the app → \
         API permissions → Remove permission / Revoke admin consent). The roles above grant \
         what tether needs."
    ));
}

#[derive(Default)]
struct Script {
    text: String,
    /// The last numbered step.
    steps: usize,
}

/// Comments are wrapped at this width.
const WIDTH: usize = 96;

impl Script {
    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }

    /// A `#` comment, wrapped; continuation lines keep the text's leading indent.
    fn comment(&mut self, text: &str) {
        let indent = " ".repeat(text.len() - text.trim_start().len());
        self.wrapped(&format!("#{indent}"), &format!("#{indent}"), text);
    }

    /// The next numbered step's comment, continuation lines indented under its text.
    fn step(&mut self, text: &str) {
        self.steps += 1;
        let first = format!("# {}.", self.steps);
        let next = format!("#{}", " ".repeat(first.len() - 1));
        self.wrapped(&first, &next, text);
    }

    /// `text`'s words after `first`, wrapped at `WIDTH` onto lines starting with `next`.
    /// Splitting on whitespace also keeps a line break in a value from ending the comment.
    fn wrapped(&mut self, first: &str, next: &str, text: &str) {
        let mut line = first.to_string();
        let mut empty = true;
        for word in text.split_whitespace() {
            if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
                self.line(&line);
                line = next.to_string();
            }
            line.push(' ');
            line.push_str(word);
            empty = false;
        }
        self.line(&line);
    }

    /// Who the script covers, and who it leaves out.
    fn members(&mut self, setup: &Setup) {
        if !setup.members.is_empty() {
            self.comment(&format!(
                "Reps ({}, from {}):",
                setup.members.len(),
                setup.members_from
            ));
            for m in &setup.members {
                self.comment(&format!("  {m}"));
            }
        }
        if !setup.unresolved_profiles.is_empty() {
            let profiles: Vec<String> =
                setup.unresolved_profiles.iter().map(|p| quote(p)).collect();
            self.comment(&format!(
                "Not listed: the members of the profiles {} are known to Salesforce only. Run \
                 `tether setup exchange --from-salesforce` to list them too, or give --group \
                 with a mail-enabled group that holds every rep.",
                profiles.join(", ")
            ));
        }
        for why in &setup.left_out {
            self.comment(&format!("Left out: {why}"));
        }
        self.blank();
    }

    /// `$Scope`: a management scope over the group's members or the listed addresses.
    fn scope(&mut self, setup: &Setup, org: &str) {
        let name = format!("tether {org} reps");
        self.step("A management scope holding the reps' mailboxes and no others.");
        self.line(&format!("$Scope = {}", quote(&name)));
        match &setup.group {
            Some(group) => {
                self.comment(
                    "   Its filter names the group's distinguished name; MemberOfGroup covers the \
                     group's direct members (not the members of nested groups).",
                );
                if !setup.members.is_empty() {
                    self.comment("   Every rep must be a member; to add one:");
                }
                for m in &setup.members {
                    self.comment(&format!(
                        "   Add-DistributionGroupMember -Identity {} -Member {}",
                        quote(group),
                        quote(m)
                    ));
                }
                self.line(&format!(
                    "$GroupDN = (Get-DistributionGroup -Identity {}).DistinguishedName",
                    quote(group)
                ));
                self.line(
                    "New-ManagementScope -Name $Scope -RecipientRestrictionFilter \"MemberOfGroup -eq '$($GroupDN -replace \"'\", \"''\")'\"",
                );
            }
            None => {
                self.comment(
                    "   Its filter lists the reps' primary SMTP addresses: run this again when the \
                     members change (Set-ManagementScope -Identity $Scope \
                     -RecipientRestrictionFilter …), or use a mail-enabled group (--group).",
                );
                let filter: Vec<String> = setup
                    .members
                    .iter()
                    .map(|m| format!("PrimarySmtpAddress -eq {}", opath_value(m)))
                    .collect();
                self.line(&format!(
                    "New-ManagementScope -Name $Scope -RecipientRestrictionFilter {}",
                    quote(&filter.join(" -or "))
                ));
            }
        }
        self.blank();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(exchange: serde_json::Value) -> Config {
        serde_json::from_value(json!({
            "version": 1,
            "org": { "name": "demo", "kind": "production" },
            "connections": {
                "exchange": exchange,
                "salesforce": { "instance_url": "https://example.my.salesforce.com",
                                "auth": { "flow": "access_token", "access_token": "${env:T}" } }
            },
            "sync_configurations": [{
                "name": "Reps",
                "members": { "users": ["celia.kung@example.com", "o'brien@example.com"],
                             "profiles": ["Sales User"] },
                "contacts": { "direction": "both" },
                "events": { "direction": "exchange_to_salesforce" }
            }]
        }))
        .unwrap()
    }

    fn graph() -> Config {
        config(json!({
            "method": "oauth2", "api": "graph", "tenant": "contoso.onmicrosoft.com",
            "client_id": "5a1d7e0c-0000-4000-8000-000000000de0",
            "client_secret": "${env:GRAPH_CLIENT_SECRET}"
        }))
    }

    fn on_premises() -> Config {
        config(json!({
            "method": "service_account",
            "ews_url": "https://mail.example.com/EWS/Exchange.asmx",
            "username": "svc-tether@example.com",
            "password": "${env:EXCHANGE_SERVICE_PASSWORD}"
        }))
    }

    fn setup() -> Setup {
        Setup {
            source: "tether.yaml".into(),
            members: vec![
                "celia.kung@example.com".into(),
                "o'brien@example.com".into(),
            ],
            members_from: "members.users".into(),
            unresolved_profiles: vec!["Sales User".into()],
            client_id: Some("5a1d7e0c-0000-4000-8000-000000000de0".into()),
            ..Setup::default()
        }
    }

    #[test]
    fn graph_setup_scopes_rbac_for_applications_to_the_members() {
        insta::assert_snapshot!(exchange(&graph(), &setup()).unwrap());
    }

    #[test]
    fn graph_setup_with_a_group() {
        let s = Setup {
            group: Some("Sales Reps".into()),
            object_id: Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into()),
            ..setup()
        };
        insta::assert_snapshot!(exchange(&graph(), &s).unwrap());
    }

    #[test]
    fn on_premises_setup_scopes_impersonation_to_the_members() {
        insta::assert_snapshot!(exchange(&on_premises(), &setup()).unwrap());
    }

    #[test]
    fn only_the_roles_the_configurations_need_are_assigned() {
        let mut c = graph();
        c.sync_configurations[0].events = None;
        let text = exchange(&c, &setup()).unwrap();
        assert!(text.contains("'Application Contacts.ReadWrite'"), "{text}");
        assert!(!text.contains("New-ManagementRoleAssignment -Name 'tether demo calendars'"));
    }

    #[test]
    fn exchange_online_ews_gets_ews_access_as_app_and_the_retirement_warning() {
        let mut c = graph();
        if let ExchangeConnection::Oauth2 { api, .. } = &mut c.connections.exchange {
            *api = ExchangeApi::Ews;
        }
        let text = exchange(&c, &setup()).unwrap();
        assert!(
            text.contains("-Role 'Application EWS.AccessAsApp'"),
            "{text}"
        );
        assert!(text.contains("1 April 2027"), "{text}");
        assert!(text.contains("full_access_as_app"), "{text}");
    }

    #[test]
    fn no_members_and_no_group_is_an_error_naming_the_ways_out() {
        let s = Setup {
            members: Vec::new(),
            ..setup()
        };
        let e = exchange(&graph(), &s).unwrap_err();
        assert!(e.hint.contains("--from-salesforce"), "{e:?}");
    }

    #[test]
    fn quoting_doubles_every_single_quote_powershell_knows_and_drops_line_breaks() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("o'brien"), "'o''brien'");
        assert_eq!(quote("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(
            quote("x'; Remove-Mailbox y; '"),
            "'x''; Remove-Mailbox y; '''"
        );
        assert_eq!(quote("a\nb\r"), "'ab'");
        // An address with a quote inside an OPATH filter: doubled for OPATH, then for
        // PowerShell.
        assert_eq!(
            quote(&format!("PrimarySmtpAddress -eq {}", opath_value("o'b@x"))),
            "'PrimarySmtpAddress -eq ''o''''b@x'''"
        );
    }

    #[test]
    fn the_script_names_no_secret() {
        let text = exchange(&graph(), &setup()).unwrap();
        assert!(!text.contains("GRAPH_CLIENT_SECRET"), "{text}");
        let text = exchange(&on_premises(), &setup()).unwrap();
        assert!(!text.contains("EXCHANGE_SERVICE_PASSWORD"), "{text}");
    }
}
