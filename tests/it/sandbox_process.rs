//! `tether sandbox` as a user runs it: a process serving both emulators until SIGTERM, with
//! `sandbox.env` for the quick-start configuration, and its org kept across a restart.

use crate::common;

use common::{Output, Scratch, tether_with_env};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Sandbox {
    child: Child,
    /// Lines of stdout, as they come.
    lines: mpsc::Receiver<String>,
    banner: String,
}

impl Sandbox {
    /// Starts `tether sandbox` and waits for its "Ready." line.
    fn start(cwd: &Path, args: &[&str]) -> Sandbox {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .arg("sandbox")
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tether sandbox");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sandbox = Sandbox {
            child,
            lines,
            banner: String::new(),
        };
        sandbox.banner = sandbox.read_until("Ready.", Duration::from_secs(60));
        sandbox
    }

    /// Output up to and including the first line starting with `prefix`.
    fn read_until(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.starts_with(prefix) {
                        return seen;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("no `{prefix}` from tether sandbox ({e}); output so far:\n{seen}");
                }
            }
        }
    }

    /// SIGTERM, then the exit status and the last output.
    fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let goodbye = self.read_until("Saved the org", Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), goodbye);
            }
            assert!(Instant::now() < deadline, "tether sandbox did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `export NAME=value` lines of sandbox.env.
fn read_env(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(scratch: &Scratch, env: &[(String, String)], args: &[&str]) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = tether_with_env(args, scratch.dir.path(), &env);
    assert!(
        !out.stdout.contains("sandbox-exchange-password")
            && !out.stdout.contains("sandbox-client-secret"),
        "a credential was printed:\n{}",
        out.stdout
    );
    out
}

const NO_CHANGES: &str = "No changes. Sync settings and data are up to date.";

#[test]
fn quickstart_against_the_sandbox_process_and_its_org_survives_a_restart() {
    let scratch = Scratch::new();
    let (ews_port, sf_port) = (free_port(), free_port());
    let ports = [
        "--exchange-port",
        &ews_port.to_string(),
        "--salesforce-port",
        &sf_port.to_string(),
    ]
    .map(String::from);
    let mut args: Vec<&str> = ports.iter().map(String::as_str).collect();
    args.extend(["--data", "sbx", "--reps", "6"]);
    let sandbox = Sandbox::start(scratch.dir.path(), &args);
    assert!(
        sandbox.banner.contains("Seeded a new org (6 reps, seed 1)"),
        "{}",
        sandbox.banner
    );
    assert!(
        sandbox
            .banner
            .contains(&format!("http://127.0.0.1:{ews_port}/EWS/Exchange.asmx")),
        "{}",
        sandbox.banner
    );

    // The environment the example reads, in a private file.
    let env_file = scratch.path("sbx/sandbox.env");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&env_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let env = read_env(&env_file);
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "EXCHANGE_SERVICE_PASSWORD",
            "SF_CLIENT_SECRET",
            "GRAPH_URL",
            "GRAPH_TOKEN_URL",
            "GRAPH_TENANT",
            "GRAPH_CLIENT_ID",
            "GRAPH_CLIENT_SECRET",
            "GRAPH_OUT_OF_SCOPE_USER",
            "GRAPH_NO_MAILBOX_USER",
        ]
    );
    // The same mailboxes through the Graph face, with the app credentials of sandbox.env.
    let value = |name: &str| env.iter().find(|(k, _)| k == name).unwrap().1.clone();
    let graph_statuses = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let http = reqwest::Client::new();
        let form = [
            ("client_id", value("GRAPH_CLIENT_ID")),
            ("client_secret", value("GRAPH_CLIENT_SECRET")),
            ("scope", "https://graph.microsoft.com/.default".to_string()),
            ("grant_type", "client_credentials".to_string()),
        ];
        let token: serde_json::Value = http
            .post(value("GRAPH_TOKEN_URL"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut statuses = Vec::new();
        for user in [
            "celia.kung@example.com".to_string(),
            value("GRAPH_OUT_OF_SCOPE_USER"),
            value("GRAPH_NO_MAILBOX_USER"),
        ] {
            let url = format!("{}/users/{user}/contactFolders", value("GRAPH_URL"));
            let answer = http
                .get(url)
                .bearer_auth(token["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body: serde_json::Value = answer.json().await.unwrap();
            statuses.push((status, body["error"]["code"].as_str().map(str::to_string)));
        }
        statuses
    });
    // The banner's two special users: outside the app's scope, and without a mailbox.
    assert_eq!(
        graph_statuses,
        [
            (200, None),
            (403, Some("ErrorAccessDenied".to_string())),
            (404, Some("MailboxNotEnabledForRESTAPI".to_string())),
        ]
    );
    assert!(
        sandbox
            .banner
            .contains("GRAPH_OUT_OF_SCOPE_USER): a mailbox outside the app's scope"),
        "{}",
        sandbox.banner
    );

    // The banner lists the reps with their profiles (all of them in reps.csv), and its
    // "Try:" names a configuration on this sandbox's ports: examples/quickstart.yaml's copy.
    assert!(
        sandbox
            .banner
            .contains("  celia.kung@example.com               Sales User     Europe/Berlin\n"),
        "{}",
        sandbox.banner
    );
    assert_eq!(
        sandbox.banner.matches(" Sales Manager ").count(),
        1,
        "{}",
        sandbox.banner
    );
    let reps = std::fs::read_to_string(scratch.path("sbx/reps.csv")).unwrap();
    assert_eq!(reps.lines().count(), 7, "{reps}");
    assert!(reps.starts_with("email,name,profile,time_zone\ncelia.kung@example.com,Celia Kung,Sales User,Europe/Berlin\n"), "{reps}");
    assert!(
        sandbox
            .banner
            .contains("Try:  source sbx/sandbox.env && tether plan sbx/quickstart.yaml\n"),
        "{}",
        sandbox.banner
    );
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.yaml"
    ))
    .unwrap();
    let copy = std::fs::read_to_string(scratch.path("sbx/quickstart.yaml")).unwrap();
    assert!(
        copy.contains(&format!(
            "ews_url: http://127.0.0.1:{ews_port}/EWS/Exchange.asmx"
        )) && copy.contains(&format!("instance_url: http://127.0.0.1:{sf_port}\n"))
            && copy.contains(&format!("login_url: http://127.0.0.1:{sf_port}\n")),
        "{copy}"
    );
    assert_eq!(
        copy.lines().filter(|l| !l.starts_with('#')).count(),
        example.lines().filter(|l| !l.starts_with('#')).count()
    );
    std::fs::write(scratch.path("quickstart.yaml"), copy).unwrap();

    let validate = run(&scratch, &env, &["validate", "quickstart.yaml"]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);

    let plan = run(&scratch, &env, &["plan", "quickstart.yaml"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("Sales Reps / celia.kung@example.com"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("1 private event"), "{}", plan.stdout);
    // Rep 5 is a Sales Manager: not a member of the example's configuration.
    let reps = plan.stdout.matches("\n  Sales Reps / ").count();
    assert_eq!(reps, 5, "{}", plan.stdout);

    let apply = run(
        &scratch,
        &env,
        &["apply", "quickstart.yaml", "--auto-approve"],
    );
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains(" 0 failed"), "{}", apply.stdout);

    let plan = run(
        &scratch,
        &env,
        &["plan", "quickstart.yaml", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(
        plan.stdout.lines().last(),
        Some(NO_CHANGES),
        "{}",
        plan.stdout
    );

    let (code, goodbye) = sandbox.terminate();
    assert_eq!(code, 0, "{goodbye}");

    // Same directory, same ports: the org comes back as it was left, so the state's links,
    // cursors and watermarks still hold.
    let sandbox = Sandbox::start(scratch.dir.path(), &args);
    assert!(
        sandbox
            .banner
            .contains("Restored the org saved in sbx (6 reps, seed 1)"),
        "{}",
        sandbox.banner
    );
    let plan = run(
        &scratch,
        &env,
        &["plan", "quickstart.yaml", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(
        plan.stdout.lines().last(),
        Some(NO_CHANGES),
        "{}",
        plan.stdout
    );
    let status = run(&scratch, &env, &["status", "quickstart.yaml"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    let (code, _) = sandbox.terminate();
    assert_eq!(code, 0);

    // --reset seeds a new org: the old links point at nothing, and tether says so rather
    // than planning as if nothing happened.
    args.push("--reset");
    let sandbox = Sandbox::start(scratch.dir.path(), &args);
    assert!(
        sandbox.banner.contains("Seeded a new org"),
        "{}",
        sandbox.banner
    );
    let plan = run(
        &scratch,
        &env,
        &["plan", "quickstart.yaml", "--detailed-exitcode"],
    );
    assert_ne!(
        plan.stdout.lines().last(),
        Some(NO_CHANGES),
        "{}",
        plan.stdout
    );
    drop(sandbox);
}
