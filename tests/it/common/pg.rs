//! A Postgres server for the tests: `TETHER_TEST_POSTGRES` (a URL with a user allowed to
//! create schemas) when set, else a throwaway cluster this test process starts once: initdb
//! into a temporary directory and pg_ctl on a free loopback port, with password
//! authentication. Postgres refuses to run as root, so as root the cluster runs as the
//! `postgres` user (Debian's package makes it). A watchdog stops the cluster and removes its
//! directory when this process is gone. Each test works in a schema of its own.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The server's user and the password it is reached with (the throwaway cluster's).
pub const PG_USER: &str = "tether";
pub const PG_PASSWORD: &str = "pg-Secret-59f1c2";

pub struct Server {
    /// `postgres://USER@HOST:PORT/DATABASE`, no password.
    pub url: String,
    pub password: String,
    /// The CA of the server's certificate (the throwaway cluster's, which also serves TLS).
    pub ca_file: Option<PathBuf>,
}

/// A role of the throwaway cluster that may connect over TLS only (pg_hba.conf rejects its
/// plain connections).
pub const TLS_ONLY_USER: &str = "tls_only";

/// The throwaway cluster, whatever TETHER_TEST_POSTGRES says: for tests that need to know
/// how the server is set up (TLS).
pub fn throwaway() -> &'static Server {
    static CLUSTER: OnceLock<Server> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster)
}

/// The server, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(given) = std::env::var("TETHER_TEST_POSTGRES")
            && !given.is_empty()
        {
            let mut url = url::Url::parse(&given).expect("TETHER_TEST_POSTGRES is a URL");
            let password = url.password().unwrap_or_default().to_string();
            url.set_password(None).unwrap();
            return Server {
                url: url.to_string(),
                password,
                ca_file: None,
            };
        }
        let local = throwaway();
        Server {
            url: local.url.clone(),
            password: local.password.clone(),
            ca_file: local.ca_file.clone(),
        }
    })
}

/// A fresh schema's URL, with the password in it (for the store's own tests).
pub fn fresh_url() -> String {
    let server = server();
    let mut url = url::Url::parse(&server.url).unwrap();
    url.set_password(Some(&server.password)).unwrap();
    url.query_pairs_mut().append_pair("schema", &fresh_schema());
    url.to_string()
}

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros() % 1_000_000_000,
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A raw client on the server, to look at or tamper with a state as another program would.
pub fn raw_client(schema: &str) -> postgres::Client {
    let server = server();
    let mut config: postgres::Config = server.url.parse().unwrap();
    config.password(&server.password);
    let mut client = config.connect(postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("SET search_path TO \"{schema}\""))
        .unwrap();
    client
}

fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect(
        "no PostgreSQL server found (initdb): install Debian's `postgresql` package (.ci/run \
         does) or set TETHER_TEST_POSTGRES",
    )
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` in the bin dir, as the `postgres` user when this process is root.
fn pg_command(bin: &std::path::Path, program: &str) -> Command {
    let path = bin.join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// The watchdog is never waited for: it outlives this process on purpose.
#[allow(clippy::zombie_processes)]
fn start_cluster() -> Server {
    let bin = bin_dir();
    // The `postgres` user must reach it: /tmp, not a TMPDIR that may be root's own.
    let base = if is_root() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("tether-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, PG_PASSWORD).unwrap();
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:"]).arg(&dir);
                c
            },
            "chown the cluster's directory to postgres",
        );
    }
    let data = dir.join("data");
    let mut initdb = pg_command(&bin, "initdb");
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            PG_USER,
            "-E",
            "UTF8",
            "--no-sync",
            "--auth=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()));
    run(initdb, "initdb");
    let ca_file = serve_tls(&dir, &data);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut start = pg_command(&bin, "pg_ctl");
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "-t", "60", "-o"])
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c ssl=on",
            dir.display()
        ))
        .arg("start");
    run(start, "pg_ctl start");
    // The watchdog: once this test process is gone, stop the cluster and remove it. It is
    // meant to outlive this process, so nobody waits for it.
    let stop = if is_root() {
        format!(
            "runuser -u postgres -- {} -D {} stop -m fast",
            bin.join("pg_ctl").display(),
            data.display()
        )
    } else {
        format!(
            "{} -D {} stop -m fast",
            bin.join("pg_ctl").display(),
            data.display()
        )
    };
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = dir.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the cluster's watchdog starts");
    Server {
        url: format!("postgres://{PG_USER}@127.0.0.1:{port}/postgres"),
        password: PG_PASSWORD.to_string(),
        ca_file: Some(ca_file),
    }
}

/// A private CA (its certificate in `dir/ca.pem`, returned) and a server certificate for
/// 127.0.0.1 and localhost in the data directory; TLS-only connections for `TLS_ONLY_USER`.
fn serve_tls(dir: &std::path::Path, data: &std::path::Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "tether test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "postgres");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(data.join("server.crt"), cert.pem()).unwrap();
    let key_file = data.join("server.key");
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let hba = data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("hostnossl all {TLS_ONLY_USER} 127.0.0.1/32 reject\n{rules}"),
    )
    .unwrap();
    if is_root() {
        let mut c = Command::new("chown");
        c.args(["postgres:"])
            .arg(&key_file)
            .arg(data.join("server.crt"))
            .arg(&hba);
        run(c, "chown the server's certificate to postgres");
    }
    ca_file
}
