//! The command-line conventions admins expect: shell completions, a man page, `--version`
//! with the commit and build date, examples and environment variables in `--help`, colour
//! on a terminal and none with NO_COLOR, TETHER_CONFIG, validate's GitHub and SARIF formats.

use crate::common::*;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Subcommands every generated document must know (a sample across the list).
const COMMANDS: [&str; 6] = ["plan", "apply", "show", "run", "status", "validate"];

#[test]
fn completions_script_for_each_shell_names_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = tether(&["completions", shell], &repo());
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for command in COMMANDS {
            assert!(
                out.stdout.contains(command),
                "{shell} script lacks {command}:\n{}",
                out.stdout
            );
        }
    }
    let bash = tether(&["completions", "bash"], &repo());
    assert!(bash.stdout.contains("complete -F"), "{}", bash.stdout);
    assert!(bash.stdout.contains("--lock-timeout"), "{}", bash.stdout);
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let out = tether(&["completions", "tcsh"], &repo());
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bash"), "{}", out.stderr);
}

#[test]
fn man_page_is_roff_and_lists_the_commands() {
    let out = tether(&["man"], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(".TH tether 1"), "{}", out.stdout);
    for command in COMMANDS {
        assert!(
            out.stdout.contains(&format!("tether\\-{command}(1)")),
            "{command}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn man_out_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = tether(&["man", "--out", dir.path().to_str().unwrap()], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dir.path().join("tether.1").is_file());
    for command in COMMANDS {
        let page = std::fs::read_to_string(dir.path().join(format!("tether-{command}.1")))
            .unwrap_or_else(|e| panic!("tether-{command}.1: {e}"));
        assert!(page.contains(".TH"), "{page}");
    }
}

#[test]
fn man_out_into_a_missing_directory_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let out = tether(&["man", "--out", missing.to_str().unwrap()], &repo());
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no/such/dir"), "{}", out.stderr);
}

/// `--version` names the package version, the commit it was built from (the checkout's
/// HEAD here; "unknown" only without git) and the build date.
#[test]
fn version_shows_the_commit_and_build_date() {
    let out = tether(&["--version"], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.trim();
    let prefix = format!("tether {} (commit ", env!("CARGO_PKG_VERSION"));
    let rest = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, rest) = rest
        .split_once(", built ")
        .unwrap_or_else(|| panic!("{line}"));
    let date = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line}"));
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{line}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit, head, "{line}"),
        None => assert_eq!(commit, "unknown", "{line}"),
    }
}

#[test]
fn help_of_plan_apply_and_run_has_examples_that_parse() {
    use clap::Parser;
    for command in ["plan", "apply", "run"] {
        let out = tether(&[command, "--help"], &repo());
        assert_eq!(out.code, 0, "{}", out.stderr);
        let examples = out
            .stdout
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command} --help has no examples:\n{}", out.stdout));
        for line in examples
            .lines()
            .filter(|l| l.trim_start().starts_with("tether "))
        {
            let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
            assert_eq!(words[1], command, "{line}");
            if let Err(e) = tether::cli::Cli::try_parse_from(&words) {
                panic!("{line}: {e}");
            }
        }
    }
}

/// The top-level `--help` lists the environment variables tether reads.
#[test]
fn top_level_help_lists_the_environment_variables() {
    let out = tether(&["--help"], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let environment = out
        .stdout
        .split("Environment:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", out.stdout));
    for name in [
        "TETHER_CONFIG",
        "TETHER_STATE",
        "TETHER_LOG_FILE",
        "RUST_LOG",
        "PGPASSWORD",
    ] {
        assert!(environment.contains(name), "{name}:\n{}", out.stdout);
    }
}

/// A configuration with one error (an unknown key) and one warning (a secret not set here).
fn invalid_config(s: &Scratch) -> PathBuf {
    let quickstart = std::fs::read_to_string(repo().join("examples/quickstart.yaml")).unwrap();
    s.write(
        "org/tether.yaml",
        quickstart.replace(
            "    conflict: salesforce_wins",
            "    conflcit: salesforce_wins",
        ),
    )
}

fn has_escapes(text: &str) -> bool {
    text.contains('\x1b')
}

/// Runs `args` with stdout and stderr on a terminal (util-linux `script` gives it one).
fn on_a_terminal(args: &[&str], cwd: &std::path::Path, no_color: Option<&str>) -> String {
    let command = std::iter::once(env!("CARGO_BIN_EXE_tether"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .current_dir(cwd)
        .env_remove("NO_COLOR");
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let out = script
        .output()
        .expect("util-linux `script` runs (it gives the command a terminal)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The defect: no colour anywhere. On a terminal the diagnostics (stdout) and an error
/// (stderr) are coloured; with NO_COLOR set to any non-empty value, or when not a terminal,
/// there is no escape code; `--color always|never` decides over both.
#[test]
fn colour_on_a_terminal_none_with_no_color_or_in_a_pipe_and_forced_with_color_always() {
    let s = Scratch::new();
    invalid_config(&s);
    let dir = s.dir.path();
    let terminal = on_a_terminal(&["validate", "org"], dir, None);
    assert!(terminal.contains("conflcit"), "{terminal}");
    assert!(
        has_escapes(&terminal),
        "a terminal gets colour:\n{terminal}"
    );
    for value in ["1", "false"] {
        let plain = on_a_terminal(&["validate", "org"], dir, Some(value));
        assert!(plain.contains("conflcit"), "{plain}");
        assert!(!has_escapes(&plain), "NO_COLOR={value}:\n{plain:?}");
    }
    let empty = on_a_terminal(&["validate", "org"], dir, Some(""));
    assert!(has_escapes(&empty), "an empty NO_COLOR is unset:\n{empty}");
    let never = on_a_terminal(&["validate", "org", "--color", "never"], dir, None);
    assert!(!has_escapes(&never), "{never:?}");
    // An error on stderr (plan of an invalid configuration), on a terminal.
    let error = on_a_terminal(&["plan", "org"], dir, None);
    assert!(error.contains("\x1b[1;31merror\x1b[0m"), "{error:?}");

    // Not a terminal: plain, unless forced.
    let piped = tether(&["validate", "org"], dir);
    assert_eq!(piped.code, 1);
    assert!(!has_escapes(&piped.stdout), "{:?}", piped.stdout);
    let forced = tether_with_env(
        &["validate", "org", "--color", "always"],
        dir,
        &[("NO_COLOR", "1")],
    );
    assert!(
        forced.stdout.contains("\x1b[1;31merror\x1b[0m: "),
        "{:?}",
        forced.stdout
    );
    let forced_error = tether(&["plan", "org", "--color", "always"], dir);
    assert!(
        has_escapes(&forced_error.stderr),
        "{:?}",
        forced_error.stderr
    );
}

/// A plan (here settings only, `--refresh=false`) is coloured by its markers when forced,
/// and plain in a pipe; the text is the same either way.
#[test]
fn the_plan_is_coloured_by_its_markers_with_color_always() {
    let s = Scratch::new();
    let env = [
        ("EXCHANGE_SERVICE_PASSWORD", "x"),
        ("SF_CLIENT_SECRET", "y"),
    ];
    let state = s.path("state.db");
    let plan = |color: &str| {
        tether_with_env(
            &[
                "plan",
                "examples/quickstart.yaml",
                "--refresh=false",
                "--state",
                state.to_str().unwrap(),
                "--color",
                color,
            ],
            &repo(),
            &env,
        )
    };
    let plain = plan("auto");
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(!has_escapes(&plain.stdout), "{:?}", plain.stdout);
    let painted = plan("always");
    assert!(
        painted
            .stdout
            .contains("  \x1b[32m+ sync configuration \"Sales Reps\"\x1b[0m\n"),
        "{:?}",
        painted.stdout
    );
    assert!(
        painted.stdout.contains("\x1b[1mSettings\x1b[0m\n"),
        "{:?}",
        painted.stdout
    );
}

/// TETHER_CONFIG names the configuration when a command is given none; a path given wins.
#[test]
fn tether_config_names_the_configuration_when_no_path_is_given() {
    let s = Scratch::new();
    invalid_config(&s);
    let dir = s.dir.path();
    let from_env = tether_with_env(&["validate"], dir, &[("TETHER_CONFIG", "org")]);
    assert_eq!(from_env.code, 1, "{}", from_env.stdout);
    assert!(
        from_env.stdout.contains("org/tether.yaml:"),
        "{}",
        from_env.stdout
    );
    let given = tether_with_env(
        &[
            "validate",
            repo().join("examples/quickstart.yaml").to_str().unwrap(),
        ],
        dir,
        &[("TETHER_CONFIG", "org")],
    );
    assert_eq!(given.code, 0, "{}", given.stdout);
    // And for a command that loads one org (status reads the state next to it).
    let status = tether_with_env(&["status"], dir, &[("TETHER_CONFIG", "org")]);
    assert!(
        status.stderr.contains("org/.tether/state.db"),
        "{}",
        status.stderr
    );
}

/// `validate --format github`: a workflow command per finding at its file, line and column,
/// escaped as GitHub's toolkit escapes them, then the verdict.
#[test]
fn validate_format_github_writes_one_annotation_per_finding() {
    let s = Scratch::new();
    let path = invalid_config(&s);
    let text = std::fs::read_to_string(&path).unwrap();
    let out = tether(&["validate", "org", "--format", "github"], s.dir.path());
    assert_eq!(out.code, 1, "{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let (line, col) = position_of(&text, "conflcit");
    let error = lines
        .iter()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(
        *error,
        format!(
            "::error file=org/tether.yaml,line={line},col={col},title=tether validate::unknown key `conflcit` in `sync_configurations[0].contacts`%0Ahint: did you mean `conflict`?"
        )
    );
    assert_eq!(
        lines.last().unwrap(),
        &"Configuration is not valid: 1 error, 0 warnings."
    );
    // A property's `:` and `,` are escaped (here in the file's name); warnings are warnings.
    s.write(
        "a,b:c/tether.yaml",
        std::fs::read(repo().join("examples/quickstart.yaml")).unwrap(),
    );
    let out = tether(&["validate", "a,b:c", "--format", "github"], s.dir.path());
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.starts_with("::warning file=a%2Cb%3Ac/tether.yaml,line=15,col=15,title=tether validate::environment variable `EXCHANGE_SERVICE_PASSWORD` is not set%0Ahint: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("\nConfiguration is valid (2 warnings).\n"),
        "{}",
        out.stdout
    );
}

/// `validate --format sarif`: a SARIF 2.1.0 log with the members the OASIS schema
/// (sarif-schema-2.1.0.json) requires: the log's `version` and `runs`, a run's `tool`, the
/// tool's `driver` with its `name`, a result's `message` with `text`; `level` one of its
/// values, regions 1-based.
#[test]
fn validate_format_sarif_is_a_sarif_2_1_0_log() {
    let required = serde_json::json!({
        "type": "object",
        "required": ["version", "runs"],
        "properties": {
            "version": {"const": "2.1.0"},
            "runs": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {"type": "object", "required": ["driver"], "properties": {
                        "driver": {"type": "object", "required": ["name"],
                                   "properties": {"name": {"type": "string"}}}}},
                    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                    "results": {"type": "array", "items": {"$ref": "#/$defs/result"}}
                }
            }}
        },
        "$defs": {
            "result": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": {"type": "object", "required": ["text"]},
                    "level": {"enum": ["none", "note", "warning", "error"]},
                    "locations": {"type": "array", "items": {"$ref": "#/$defs/location"}},
                    "relatedLocations": {"type": "array", "items": {"$ref": "#/$defs/location"}}
                }
            },
            "location": {"type": "object", "properties": {"physicalLocation": {
                "type": "object",
                "required": ["artifactLocation"],
                "properties": {
                    "artifactLocation": {"type": "object", "required": ["uri"]},
                    "region": {"type": "object", "properties": {
                        "startLine": {"type": "integer", "minimum": 1},
                        "startColumn": {"type": "integer", "minimum": 1},
                        "endLine": {"type": "integer", "minimum": 1},
                        "endColumn": {"type": "integer", "minimum": 1}
                    }}
                }
            }}}
        }
    });
    let validator = jsonschema::validator_for(&required).unwrap();
    let s = Scratch::new();
    let path = invalid_config(&s);
    let text = std::fs::read_to_string(&path).unwrap();
    let out = tether(&["validate", "org", "--format", "sarif"], s.dir.path());
    assert_eq!(out.code, 1, "{}", out.stdout);
    let log = out.json();
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{log:#}");
    let results = log["runs"][0]["results"].as_array().unwrap();
    let error = results.iter().find(|r| r["level"] == "error").unwrap();
    let (line, col) = position_of(&text, "conflcit");
    let location = &error["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "org/tether.yaml");
    assert_eq!(location["region"]["startLine"], line);
    assert_eq!(location["region"]["startColumn"], col);
    assert_eq!(
        location["region"]["endColumn"],
        col + "conflcit".len() as u64
    );
    assert!(
        error["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with("unknown key `conflcit`"),
        "{error}"
    );
    // A valid configuration: a log with no results.
    let valid = tether(
        &["validate", "examples/full.yaml", "--format", "sarif"],
        &repo(),
    );
    assert_eq!(valid.code, 0);
    let results = valid.json()["runs"][0]["results"].clone();
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["level"] != "error")
    );
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// `tether init DIR` writes an org folder, the schemas its modelines name, a .gitignore for
/// state and secrets, the CI workflow of examples/ci and a README; the result validates,
/// and a second init overwrites nothing (and writes nothing when anything is in the way).
#[test]
fn init_scaffolds_a_repository_that_validates_and_overwrites_nothing() {
    let s = Scratch::new();
    let out = tether(&["init", "repo", "--org", "acme-prod"], s.dir.path());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let repo_dir = s.path("repo");
    assert_eq!(
        files_under(&repo_dir),
        [
            ".github/tether/update-pr-comment.sh",
            ".github/workflows/tether.yml",
            ".gitignore",
            "README.md",
            "schemas/tether-fragment.schema.json",
            "schemas/tether.schema.json",
            "tether/acme-prod/sync/sales-reps.yaml",
            "tether/acme-prod/tether.yaml",
        ]
    );
    for target in ["repo/tether/acme-prod", "repo"] {
        let validate = tether(&["validate", "--format", "json", target], s.dir.path());
        assert_eq!(validate.code, 0, "{target}: {}", validate.stdout);
        // Only the secrets not set here (Exchange Online over Graph: no EWS warning).
        for d in validate.json()["diagnostics"].as_array().unwrap() {
            let summary = d["summary"].as_str().unwrap();
            assert!(summary.starts_with("environment variable"), "{target}: {d}");
        }
    }
    // The modelines name the schemas written beside them, which are this tether's.
    for (file, schema) in [
        ("tether/acme-prod/tether.yaml", "config"),
        ("tether/acme-prod/sync/sales-reps.yaml", "fragment"),
    ] {
        let text = std::fs::read_to_string(repo_dir.join(file)).unwrap();
        let modeline = text.lines().next().unwrap();
        let target = modeline
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{file}: {modeline}"));
        let written = std::fs::read_to_string(repo_dir.join(file).parent().unwrap().join(target))
            .unwrap_or_else(|e| panic!("{file}: {target}: {e}"));
        assert_eq!(
            written,
            tether(&["schema", schema], &repo()).stdout,
            "{file}"
        );
    }
    let workflow = std::fs::read_to_string(repo_dir.join(".github/workflows/tether.yml")).unwrap();
    let example = std::fs::read_to_string(repo().join("examples/ci/github-actions.yml")).unwrap();
    assert_eq!(
        workflow,
        example.replace(
            "examples/ci/update-pr-comment.sh",
            ".github/tether/update-pr-comment.sh"
        )
    );
    use std::os::unix::fs::PermissionsExt;
    let script = repo_dir.join(".github/tether/update-pr-comment.sh");
    assert!(script.metadata().unwrap().permissions().mode() & 0o111 != 0);
    let gitignore = std::fs::read_to_string(repo_dir.join(".gitignore")).unwrap();
    for ignored in [".tether/", "*.plan", "*.pem", ".env"] {
        assert!(
            gitignore.lines().any(|l| l == ignored),
            "{ignored}:\n{gitignore}"
        );
    }

    // Again: refused, naming what is there, nothing changed.
    std::fs::write(repo_dir.join("README.md"), "mine\n").unwrap();
    let again = tether(&["init", "repo", "--org", "acme-prod"], s.dir.path());
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains("not overwriting what is there: repo/.gitignore, repo/README.md"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("README.md")).unwrap(),
        "mine\n"
    );
    // One file in the way: nothing at all is written.
    s.write("other/README.md", "mine\n");
    let blocked = tether(&["init", "other"], s.dir.path());
    assert_eq!(blocked.code, 1, "{}", blocked.stdout);
    assert_eq!(files_under(&s.path("other")), ["README.md"]);
    // Without --org, the directory names the org.
    let named = tether(&["init", "Acme Sandbox", "--kind", "sandbox"], s.dir.path());
    assert_eq!(named.code, 0, "{}", named.stderr);
    let root =
        std::fs::read_to_string(s.path("Acme Sandbox/tether/acme-sandbox/tether.yaml")).unwrap();
    assert!(
        root.contains("  name: \"acme-sandbox\"\n  kind: sandbox\n"),
        "{root}"
    );
    assert!(
        root.contains("login_url: https://test.salesforce.com"),
        "{root}"
    );
}

/// `init --from-lightning-sync CSV` writes one file per configuration of the CSV, with its
/// users, profiles and directions; a wrong row is named by its line and nothing is written.
#[test]
fn init_from_a_lightning_sync_csv_writes_one_file_per_configuration() {
    let s = Scratch::new();
    s.write(
        "lightning.csv",
        "configuration,member_type,member,contacts,events\n\
         Sales Reps EMEA,profile,Sales User EMEA,salesforce_to_exchange,both\n\
         Sales Reps EMEA,user,celia.kung@acme.com,,\n\
         \"Managers, Americas\",user,ana@acme.com,none,\n",
    );
    let out = tether(
        &[
            "init",
            "repo",
            "--org",
            "acme",
            "--from-lightning-sync",
            "lightning.csv",
        ],
        s.dir.path(),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let validate = tether(&["validate", "repo/tether/acme"], s.dir.path());
    assert_eq!(validate.code, 0, "{}", validate.stdout);
    let sync = s.path("repo/tether/acme/sync");
    assert_eq!(
        files_under(&sync),
        ["managers-americas.yaml", "sales-reps-emea.yaml"]
    );
    let emea = std::fs::read_to_string(sync.join("sales-reps-emea.yaml")).unwrap();
    assert_eq!(
        emea,
        "# yaml-language-server: $schema=../../../schemas/tether-fragment.schema.json
sync_configurations:
  - name: \"Sales Reps EMEA\"
    members:
      users: [\"celia.kung@acme.com\"]
      profiles: [\"Sales User EMEA\"]
    contacts:
      direction: salesforce_to_exchange
      scope: users_records
    events:
      direction: both
      conflict: salesforce_wins
      since: LAST_N_DAYS:30
"
    );
    let managers = std::fs::read_to_string(sync.join("managers-americas.yaml")).unwrap();
    assert!(
        managers.contains("  - name: \"Managers, Americas\"\n"),
        "{managers}"
    );
    assert!(!managers.contains("contacts:"), "{managers}");
    assert!(
        managers.contains("      direction: exchange_to_salesforce\n"),
        "{managers}"
    );

    s.write(
        "wrong.csv",
        "configuration,member_type,member\nA,user,a@acme.com\nA,group,Sales\n",
    );
    let wrong = tether(
        &[
            "init",
            "fresh",
            "--org",
            "acme",
            "--from-lightning-sync",
            "wrong.csv",
        ],
        s.dir.path(),
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong
            .stderr
            .contains("wrong.csv:3: member_type must be user or profile, not `group`"),
        "{}",
        wrong.stderr
    );
    assert!(!s.path("fresh").exists());
}

/// `init --from-lightning-sync` without a CSV asks Lightning Sync's Setup questions on a
/// terminal (here `script`'s, fed the answers) and writes what was answered; without a
/// terminal it asks nothing and says to give the CSV.
#[test]
fn init_asks_lightning_sync_questions_only_on_a_terminal() {
    use std::io::Write;
    let s = Scratch::new();
    let command = format!(
        "'{}' init repo --org acme --from-lightning-sync",
        env!("CARGO_BIN_EXE_tether")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(s.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"Sales Reps EMEA\ncelia@acme.com\nSales User EMEA\nsalesforce_to_exchange\n\n\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("Lightning Sync configuration's name"),
        "{stdout}"
    );
    let file = std::fs::read_to_string(s.path("repo/tether/acme/sync/sales-reps-emea.yaml"))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        file.contains("      users: [\"celia@acme.com\"]\n      profiles: [\"Sales User EMEA\"]\n    contacts:\n      direction: salesforce_to_exchange\n"),
        "{file}"
    );
    assert_eq!(
        tether(&["validate", "repo/tether/acme"], s.dir.path()).code,
        0
    );

    let piped = tether(&["init", "other", "--from-lightning-sync"], s.dir.path());
    assert_eq!(piped.code, 1);
    assert!(
        piped
            .stderr
            .contains("asks its questions on a terminal, and stdin is not one"),
        "{}",
        piped.stderr
    );
    assert!(!s.path("other").exists());
}
