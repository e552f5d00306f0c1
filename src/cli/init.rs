//! `tether init [DIR]`: scaffolds a GitOps repository for one org — its folder under
//! `tether/` (connections in `tether.yaml`, one file per sync configuration in `sync/`), the
//! schemas the files' modelines name, a `.gitignore` for the state and secrets, the CI
//! workflow of examples/ci and a short README. `--from-lightning-sync CSV` writes the
//! configurations from a CSV of Lightning Sync's members, one row per user or profile.
//! Nothing existing is overwritten: when any file is there already, nothing is written.

use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use crate::config::model::{Direction, OrgKind};
use clap::ValueEnum;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tether init acme-gitops --org acme-prod
  tether init . --org acme-prod --from-lightning-sync lightning-sync.csv
  tether init . --org acme-prod --from-lightning-sync   # asks, on a terminal

The CSV (a header row, then one row per member; columns in any order, names as here):
  configuration  the sync configuration's name (one file each in tether/ORG/sync/)
  member_type    user or profile
  member         the user's email, or the profile's name
  contacts       optional: both, exchange_to_salesforce, salesforce_to_exchange or none
  events         optional: as contacts
A configuration's directions are those its rows give (the first row that gives one);
default: contacts both (Salesforce wins a conflict), events exchange_to_salesforce.")]
pub struct Args {
    /// The repository's directory (created when missing). Default: the current directory.
    pub dir: Option<PathBuf>,
    /// The org's name, as plans and the state name it (and its folder, tether/NAME).
    /// Default: the directory's name.
    #[arg(long, value_name = "NAME")]
    pub org: Option<String>,
    /// Whether the org is a production org or a sandbox (its login host differs).
    #[arg(long, value_enum, default_value_t = Kind::Production)]
    pub kind: Kind,
    /// Write the sync configurations of Lightning Sync instead of one example: from this
    /// CSV of its configurations' members (see below), or without CSV by asking, on a
    /// terminal, what its Setup pages held (name, users, profiles, directions).
    #[arg(long, value_name = "CSV")]
    pub from_lightning_sync: Option<Option<PathBuf>>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Production,
    Sandbox,
}

/// The CI workflow, as examples/ci has it, with the comment script where `init` puts it.
const WORKFLOW: &str = include_str!("../../examples/ci/github-actions.yml");
const COMMENT_SCRIPT: &str = include_str!("../../examples/ci/update-pr-comment.sh");
const EXAMPLE_SCRIPT_PATH: &str = "examples/ci/update-pr-comment.sh";
const SCRIPT_PATH: &str = ".github/tether/update-pr-comment.sh";

const GITIGNORE: &str = "\
# tether's state (SQLite beside each configuration) and its lock
.tether/
# saved plans (`tether plan --out`): applied from CI artifacts, not from git
*.plan
*.tfplan
# secrets are given by reference (${env:…}, ${file:…}); the files they name stay out of git
secrets/
*.pem
*.key
.env
";

/// One sync configuration to write.
#[derive(Debug, PartialEq)]
struct Configuration {
    name: String,
    users: Vec<String>,
    profiles: Vec<String>,
    contacts: Direction,
    events: Direction,
}

impl Configuration {
    fn new(name: &str) -> Self {
        Configuration {
            name: name.to_string(),
            users: Vec::new(),
            profiles: Vec::new(),
            contacts: Direction::Both,
            events: Direction::ExchangeToSalesforce,
        }
    }
}

pub fn run(args: &Args) -> CommandResult {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let org = match &args.org {
        Some(org) => org.trim().to_string(),
        None => slug(
            &std::path::absolute(&dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default(),
        ),
    };
    if org.is_empty() || org.len() > 80 || org.contains(['/', '\\']) || org.starts_with('.') {
        return Err(CommandError::input(format!(
            "`{org}` cannot name the org (its folder is tether/NAME)"
        ))
        .hint("give --org NAME: 1 to 80 characters, no `/`, e.g. acme-prod"));
    }
    let kind = match args.kind {
        Kind::Production => OrgKind::Production,
        Kind::Sandbox => OrgKind::Sandbox,
    };
    let configurations = match &args.from_lightning_sync {
        Some(None) => {
            if !std::io::stdin().is_terminal() {
                return Err(CommandError::input(
                    "--from-lightning-sync without a CSV asks its questions on a terminal, and stdin is not one",
                )
                .hint("give the CSV: --from-lightning-sync FILE (its columns are in `tether init --help`)"));
            }
            let answered = ask(&mut std::io::stdin().lock(), &mut std::io::stderr())
                .map_err(|e| CommandError::failed(format!("cannot read the answers: {e}")))?;
            if answered.is_empty() {
                return Err(CommandError::input(
                    "no configuration was named; nothing written",
                ));
            }
            answered
        }
        Some(Some(csv)) => {
            let text = std::fs::read_to_string(csv)
                .map_err(|e| CommandError::input(format!("cannot read {}: {e}", csv.display())))?;
            from_csv(&text).map_err(|e| CommandError::input(format!("{}:{e}", csv.display())))?
        }
        None => vec![Configuration {
            profiles: vec!["Sales User".into()],
            ..Configuration::new("Sales Reps")
        }],
    };
    let files = scaffold(&org, kind, &configurations);
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| dir.join(path).symlink_metadata().is_ok())
        .map(|(path, _)| dir.join(path).display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(CommandError::input(format!(
            "not overwriting what is there: {}",
            existing.join(", ")
        ))
        .hint("init writes into a new repository; move those files away or pick another DIR"));
    }
    for (path, text) in &files {
        write_new(&dir.join(path), text)?;
    }
    outln!(
        "Wrote a tether repository for org `{org}` in {}:",
        dir.display()
    );
    for (path, _) in &files {
        outln!("  {}", path.display());
    }
    outln!(
        "\nNext: fill in tether/{org}/tether.yaml's connections, then `tether validate tether/{org}` and `tether plan tether/{org}`."
    );
    Ok(Done::Success)
}

/// Every file of the repository, by path relative to it.
fn scaffold(org: &str, kind: OrgKind, configurations: &[Configuration]) -> Vec<(PathBuf, String)> {
    let org_dir = Path::new("tether").join(org);
    let mut files = vec![
        (PathBuf::from(".gitignore"), GITIGNORE.to_string()),
        (PathBuf::from("README.md"), readme(org)),
        (
            PathBuf::from(".github/workflows/tether.yml"),
            WORKFLOW.replace(EXAMPLE_SCRIPT_PATH, SCRIPT_PATH),
        ),
        (PathBuf::from(SCRIPT_PATH), COMMENT_SCRIPT.to_string()),
        (
            PathBuf::from("schemas/tether.schema.json"),
            crate::config::schema::schema_text(),
        ),
        (
            PathBuf::from("schemas/tether-fragment.schema.json"),
            crate::config::schema::fragment_schema_text(),
        ),
        (org_dir.join("tether.yaml"), root_file(org, kind)),
    ];
    let mut taken = Vec::new();
    for c in configurations {
        let mut name = slug(&c.name);
        if name.is_empty() {
            name = "configuration".into();
        }
        let base = name.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        files.push((
            org_dir.join("sync").join(format!("{name}.yaml")),
            configuration_file(c),
        ));
        taken.push(name);
    }
    files
}

fn write_new(path: &Path, text: &str) -> Result<(), CommandError> {
    use std::io::Write as _;
    let cannot =
        |e: std::io::Error| CommandError::failed(format!("cannot write {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(cannot)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(cannot)?;
    file.write_all(text.as_bytes()).map_err(cannot)?;
    #[cfg(unix)]
    if path.extension().is_some_and(|e| e == "sh") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(cannot)?;
    }
    Ok(())
}

/// `Sales Reps (EMEA)` → `sales-reps-emea`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// A YAML scalar that reads back as exactly `text`: a JSON string is a double-quoted YAML
/// scalar.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn root_file(org: &str, kind: OrgKind) -> String {
    let (kind, instance, login) = match kind {
        OrgKind::Production => (
            "production",
            "https://acme.my.salesforce.com",
            "https://login.salesforce.com",
        ),
        OrgKind::Sandbox => (
            "sandbox",
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://test.salesforce.com",
        ),
    };
    format!(
        "# yaml-language-server: $schema=../../schemas/tether.schema.json
#
# The org `{org}`: its connections. Each sync configuration is a file in sync/, merged
# with this one. Secrets are references only: ${{env:NAME}} (CI secrets) or ${{file:PATH}}.
# Replace the placeholders (tenant, client ids, URLs), then `tether validate` this folder.
version: 1
org:
  name: {org}
  kind: {kind}
connections:
  # Exchange Online through Microsoft Graph, as an Entra ID app registration (`tether setup
  # exchange` prints the PowerShell that limits it to the reps' mailboxes). On premises:
  # method: service_account with username, password and ews_url (README, \"Connecting a
  # real org\").
  exchange:
    method: oauth2
    api: graph
    tenant: contoso.onmicrosoft.com
    client_id: 00000000-0000-0000-0000-000000000000
    client_secret: ${{env:EXCHANGE_CLIENT_SECRET}}
  # A connected app for the JWT bearer flow, pre-authorized for the integration user.
  salesforce:
    instance_url: {instance}
    login_url: {login}
    auth:
      flow: jwt_bearer
      client_id: ${{env:SF_CLIENT_ID}}
      username: integration@acme.com
      private_key: ${{env:SF_PRIVATE_KEY}}
# For CI, keep the state in Postgres (the workflow's runners start empty):
# state:
#   postgres:
#     url: postgres://tether@db.example.com:5432/tether
#     password: ${{env:TETHER_DB_PASSWORD}}
",
        org = quoted(org),
    )
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Both => "both",
        Direction::ExchangeToSalesforce => "exchange_to_salesforce",
        Direction::SalesforceToExchange => "salesforce_to_exchange",
        Direction::None => "none",
    }
}

fn configuration_file(c: &Configuration) -> String {
    let list = |items: &[String]| {
        items
            .iter()
            .map(|i| quoted(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "# yaml-language-server: $schema=../../../schemas/tether-fragment.schema.json
sync_configurations:
  - name: {}
    members:
      users: [{}]
      profiles: [{}]
",
        quoted(&c.name),
        list(&c.users),
        list(&c.profiles)
    );
    if c.contacts != Direction::None {
        out.push_str(&format!(
            "    contacts:\n      direction: {}\n",
            direction(c.contacts)
        ));
        if c.contacts == Direction::Both {
            out.push_str("      conflict: salesforce_wins\n");
        }
        if c.contacts.to_exchange() {
            out.push_str("      scope: users_records\n");
        }
    }
    if c.events != Direction::None {
        out.push_str(&format!(
            "    events:\n      direction: {}\n",
            direction(c.events)
        ));
        if c.events == Direction::Both {
            out.push_str("      conflict: salesforce_wins\n");
        }
        out.push_str("      since: LAST_N_DAYS:30\n");
    }
    out
}

fn readme(org: &str) -> String {
    format!(
        "# tether configuration

This repository keeps tether's sync settings (contacts and events between Exchange and
Salesforce) for the org `{org}`: the connections in `tether/{org}/tether.yaml`, one file per sync configuration
in `tether/{org}/sync/`. The files start with a `yaml-language-server` modeline naming the
schemas in `schemas/` (`tether schema` and `tether schema fragment` print them again for a
newer tether), so editors complete and check them.

    tether validate tether/{org}                      # file:line:column findings
    tether plan tether/{org}                          # what apply would change
    tether apply tether/{org}                         # plan, confirm, sync

`.github/workflows/tether.yml` validates and plans each org under `tether/` on a pull
request (the plan as a comment, updated in place) and applies the saved plan after a
merge, once the org's environment approves it. Its header lists the secrets it needs; it
keeps the state in Postgres. Secrets are never written here: the files name them as
`${{env:NAME}}` or `${{file:PATH}}`, and `.gitignore` keeps state and key files out.
"
    )
}

/// The configurations of a Lightning Sync export (see `Args`'s help for the columns).
/// `Err` is `LINE: what is wrong`.
fn from_csv(text: &str) -> Result<Vec<Configuration>, String> {
    let mut rows = csv_rows(text).into_iter();
    let Some((_, header)) = rows.next() else {
        return Err("1: the CSV is empty; its first row names the columns".into());
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(name_at), Some(type_at), Some(member_at)) = (
        column("configuration"),
        column("member_type"),
        column("member"),
    ) else {
        return Err(format!(
            "1: the header must name the columns configuration, member_type and member (found: {})",
            header.join(", ")
        ));
    };
    let contacts_at = column("contacts");
    let events_at = column("events");
    let mut configurations: Vec<(Configuration, bool, bool)> = Vec::new();
    for (line, row) in rows {
        if row.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let cell = |at: Option<usize>| {
            at.and_then(|i| row.get(i))
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
        };
        let name = cell(Some(name_at)).ok_or(format!("{line}: the configuration is empty"))?;
        let member = cell(Some(member_at)).ok_or(format!("{line}: the member is empty"))?;
        let at = match configurations.iter().position(|(c, _, _)| c.name == name) {
            Some(at) => at,
            None => {
                configurations.push((Configuration::new(name), false, false));
                configurations.len() - 1
            }
        };
        let (c, contacts_set, events_set) = &mut configurations[at];
        match cell(Some(type_at)).map(str::to_lowercase).as_deref() {
            Some("user") => c.users.push(member.to_string()),
            Some("profile") => c.profiles.push(member.to_string()),
            other => {
                return Err(format!(
                    "{line}: member_type must be user or profile, not `{}`",
                    other.unwrap_or_default()
                ));
            }
        }
        for (at, set, target, what) in [
            (contacts_at, contacts_set, &mut c.contacts, "contacts"),
            (events_at, events_set, &mut c.events, "events"),
        ] {
            if let Some(value) = cell(at)
                && !*set
            {
                *target = parse_direction(value)
                    .ok_or(format!("{line}: {what} must be both, exchange_to_salesforce, salesforce_to_exchange or none, not `{value}`"))?;
                *set = true;
            }
        }
    }
    if configurations.is_empty() {
        return Err("2: the CSV has a header but no members".into());
    }
    Ok(configurations.into_iter().map(|(c, _, _)| c).collect())
}

/// The questions of Lightning Sync's Setup pages, a configuration at a time, until an empty
/// name (or the end of the input); a wrong answer is asked again.
fn ask(input: &mut impl BufRead, prompt: &mut impl Write) -> std::io::Result<Vec<Configuration>> {
    fn answer(
        input: &mut impl BufRead,
        prompt: &mut impl Write,
        question: &str,
    ) -> std::io::Result<Option<String>> {
        write!(prompt, "{question}")?;
        prompt.flush()?;
        let mut answer = String::new();
        Ok((input.read_line(&mut answer)? > 0).then(|| answer.trim().to_string()))
    }
    let mut line = |prompt: &mut _, question: &str| answer(input, prompt, question);
    let list = |answer: Option<String>| -> Vec<String> {
        answer
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut configurations: Vec<Configuration> = Vec::new();
    const NAME: &str = "Lightning Sync configuration's name (empty to finish): ";
    while let Some(name) = line(prompt, NAME)?.filter(|name| !name.is_empty()) {
        let mut c = Configuration::new(&name);
        loop {
            c.users = list(line(prompt, "  Users, by email, comma-separated: ")?);
            c.profiles = list(line(prompt, "  Profiles, comma-separated: ")?);
            if !c.users.is_empty() || !c.profiles.is_empty() {
                break;
            }
            writeln!(prompt, "  A configuration needs a user or a profile.")?;
        }
        for (what, target) in [("Contacts", &mut c.contacts), ("Events", &mut c.events)] {
            let default = direction(*target);
            loop {
                let question = format!(
                    "  {what}: both, exchange_to_salesforce, salesforce_to_exchange or none [{default}]: "
                );
                match line(prompt, &question)?.filter(|a| !a.is_empty()) {
                    None => break,
                    Some(answer) => match parse_direction(&answer) {
                        Some(d) => {
                            *target = d;
                            break;
                        }
                        None => writeln!(prompt, "  `{answer}` is none of those.")?,
                    },
                }
            }
        }
        configurations.push(c);
    }
    Ok(configurations)
}

fn parse_direction(value: &str) -> Option<Direction> {
    Some(match value.to_lowercase().as_str() {
        "both" => Direction::Both,
        "exchange_to_salesforce" => Direction::ExchangeToSalesforce,
        "salesforce_to_exchange" => Direction::SalesforceToExchange,
        "none" => Direction::None,
        _ => return None,
    })
}

/// RFC 4180 rows with the line each starts on: fields split at commas, a quoted field may
/// hold commas, line breaks and doubled quotes.
fn csv_rows(text: &str) -> Vec<(usize, Vec<String>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut line, mut start) = (false, 1, 1);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            ',' if !quoted => row.push(std::mem::take(&mut field)),
            '\r' if !quoted && chars.peek() == Some(&'\n') => {}
            '\n' if !quoted => {
                row.push(std::mem::take(&mut field));
                rows.push((start, std::mem::take(&mut row)));
                line += 1;
                start = line;
            }
            c => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push((start, row));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_is_the_examples_with_the_comment_script_where_init_writes_it() {
        assert!(WORKFLOW.contains(EXAMPLE_SCRIPT_PATH));
        let written = WORKFLOW.replace(EXAMPLE_SCRIPT_PATH, SCRIPT_PATH);
        assert!(!written.contains("examples/"), "{written}");
    }

    #[test]
    fn csv_rows_keep_quoted_commas_quotes_and_line_breaks() {
        let rows = csv_rows("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",z");
        assert_eq!(
            rows,
            [
                (1, vec!["a".to_string(), "b".into()]),
                (2, vec!["x, y".into(), "say \"hi\"".into()]),
                (3, vec!["two\nlines".into(), "z".into()]),
            ]
        );
    }

    #[test]
    fn the_csv_groups_members_by_configuration_and_says_which_line_is_wrong() {
        let csv = "Configuration,Member_Type,Member,Contacts,Events\n\
                   EMEA,profile,Sales User EMEA,salesforce_to_exchange,\n\
                   EMEA,user,celia@acme.com,,none\n\
                   AMER,user,ana@acme.com,,\n";
        let configurations = from_csv(csv).unwrap();
        assert_eq!(
            configurations,
            [
                Configuration {
                    users: vec!["celia@acme.com".into()],
                    profiles: vec!["Sales User EMEA".into()],
                    contacts: Direction::SalesforceToExchange,
                    events: Direction::None,
                    ..Configuration::new("EMEA")
                },
                Configuration {
                    users: vec!["ana@acme.com".into()],
                    ..Configuration::new("AMER")
                },
            ]
        );
        assert_eq!(
            from_csv("configuration,member_type,member\nA,group,x\n").unwrap_err(),
            "2: member_type must be user or profile, not `group`"
        );
        assert!(
            from_csv("name,member\n")
                .unwrap_err()
                .starts_with("1: the header")
        );
        assert_eq!(
            from_csv("configuration,member_type,member,events\nA,user,a@b.c,sideways\n")
                .unwrap_err(),
            "2: events must be both, exchange_to_salesforce, salesforce_to_exchange or none, not `sideways`"
        );
    }

    #[test]
    fn the_questions_of_lightning_sync_setup_write_configurations_and_ask_again_when_wrong() {
        let answers = "EMEA\n\n\nceli@acme.com, ana@acme.com\nSales User\nsideways\nsalesforce_to_exchange\n\nManagers\n\nSales Manager\nnone\nboth\n\n";
        let mut prompts = Vec::new();
        let configurations = ask(&mut answers.as_bytes(), &mut prompts).unwrap();
        let prompts = String::from_utf8(prompts).unwrap();
        assert_eq!(
            configurations,
            [
                Configuration {
                    users: vec!["celi@acme.com".into(), "ana@acme.com".into()],
                    profiles: vec!["Sales User".into()],
                    contacts: Direction::SalesforceToExchange,
                    ..Configuration::new("EMEA")
                },
                Configuration {
                    profiles: vec!["Sales Manager".into()],
                    contacts: Direction::None,
                    events: Direction::Both,
                    ..Configuration::new("Managers")
                },
            ]
        );
        assert!(
            prompts.contains("  A configuration needs a user or a profile.\n"),
            "{prompts}"
        );
        assert!(
            prompts.contains("  `sideways` is none of those.\n"),
            "{prompts}"
        );
        // The end of the input ends the questions.
        assert_eq!(ask(&mut "".as_bytes(), &mut Vec::new()).unwrap(), []);
    }

    #[test]
    fn slugs_name_files() {
        assert_eq!(slug("Sales Reps (EMEA)"), "sales-reps-emea");
        assert_eq!(slug("  ¿?  "), "");
    }
}
