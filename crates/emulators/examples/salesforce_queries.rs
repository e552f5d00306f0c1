//! Times the Salesforce emulator alone on the queries a sync makes of a generated org: the
//! whole table in `SystemModstamp` order, `IN` lists of owners, ids, emails and account
//! names, and the change read (`SystemModstamp >=` over queryAll). A measurement, not a
//! test: it prints milliseconds per query kind.
//!
//!     cargo run -p tether-emulators --example salesforce_queries -- 400

use serde_json::Value;
use std::time::Instant;
use tether_emulators::generate::{self, Shape};
use tether_emulators::seed;

#[tokio::main]
async fn main() -> Result<(), String> {
    let reps: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| format!("reps {n}: {e}"))?,
        None => 400,
    };
    let org = seed::start_empty(0, 0).await?;
    let sf = org.salesforce.handle();
    sf.set_daily_allowance(u64::MAX / 2);
    let shape = Shape {
        reps,
        contacts_per_rep: 100,
        events_per_rep: 50,
        seed: 1,
    };
    let people = generate::reps(&shape);
    let rep_ids = generate::add_reps(&org.exchange, sf, &people);
    generate::populate(
        &org.exchange,
        sf,
        &shape,
        &people,
        &rep_ids,
        chrono::Utc::now(),
    )?;
    let started = chrono::Utc::now() - chrono::Duration::minutes(1);
    let contacts = sf.records("Contact");
    let text = |r: &serde_json::Map<String, Value>, f: &str| {
        r.get(f).and_then(Value::as_str).unwrap_or("").to_string()
    };
    let quoted = |values: Vec<String>| {
        values
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "\\'")))
            .collect::<Vec<_>>()
            .join(",")
    };
    // A rep's contacts changed since the sync started (every one of them: the org is new).
    let since = started.format("%Y-%m-%dT%H:%M:%SZ");
    let owners = quoted(rep_ids.iter().take(100).cloned().collect());
    let ids = quoted(
        contacts
            .iter()
            .step_by(7)
            .take(200)
            .map(|r| text(r, "Id"))
            .collect(),
    );
    let emails = quoted(
        contacts
            .iter()
            .step_by(3)
            .take(500)
            .map(|r| text(r, "Email").to_uppercase())
            .collect(),
    );
    let accounts = quoted(
        sf.records("Account")
            .iter()
            .step_by(2)
            .take(500)
            .map(|r| text(r, "Name"))
            .collect(),
    );
    let queries = [
        (
            "all contacts by SystemModstamp",
            "query",
            "SELECT Id, FirstName, LastName, Email, Title, OwnerId, SystemModstamp FROM Contact ORDER BY SystemModstamp".to_string(),
        ),
        (
            "contacts of 100 owners",
            "query",
            format!("SELECT Id, Email FROM Contact WHERE OwnerId IN ({owners})"),
        ),
        (
            "200 contacts by Id",
            "query",
            format!("SELECT Id, SystemModstamp FROM Contact WHERE Id IN ({ids})"),
        ),
        (
            "500 contacts by Email",
            "query",
            format!("SELECT Id, Email FROM Contact WHERE Email IN ({emails})"),
        ),
        (
            "500 leads by Email",
            "query",
            format!("SELECT Id, Email FROM Lead WHERE Email IN ({emails})"),
        ),
        (
            "500 accounts by Name",
            "query",
            format!("SELECT Id, Name FROM Account WHERE Name IN ({accounts})"),
        ),
        (
            "changed events (queryAll)",
            "queryAll",
            format!(
                "SELECT Id, Subject, SystemModstamp, IsDeleted FROM Event WHERE SystemModstamp >= {since} ORDER BY SystemModstamp"
            ),
        ),
    ];

    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/services/oauth2/token", org.salesforce.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", seed::CLIENT_ID),
            ("client_secret", seed::SANDBOX_CLIENT_SECRET),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_str(&b).map_err(|e| e.to_string()))?;
    let token = token["access_token"].as_str().ok_or("no access token")?;
    let version = sf.api_version().to_string();
    println!(
        "{reps} reps: {} contacts, {} leads, {} accounts, {} events",
        contacts.len(),
        sf.records("Lead").len(),
        sf.records("Account").len(),
        sf.records("Event").len()
    );
    for (name, path, soql) in &queries {
        const RUNS: u32 = 5;
        let t = Instant::now();
        let mut rows = 0;
        for _ in 0..RUNS {
            let mut next = Some(format!(
                "{}/services/data/v{version}/{path}",
                org.salesforce.url()
            ));
            let mut first = true;
            rows = 0;
            while let Some(url) = next.take() {
                let mut request = http.get(&url).bearer_auth(token);
                if first {
                    request = request.query(&[("q", soql)]);
                    first = false;
                }
                let page: Value = request
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_str(&b).map_err(|e| e.to_string()))?;
                let records = page["records"]
                    .as_array()
                    .ok_or_else(|| format!("{name}: {page}"))?;
                rows += records.len();
                next = page["nextRecordsUrl"]
                    .as_str()
                    .map(|p| format!("{}{p}", org.salesforce.url()));
            }
        }
        println!(
            "  {name:<34} {rows:>6} rows  {:>9.1} ms",
            t.elapsed().as_secs_f64() * 1000.0 / f64::from(RUNS)
        );
    }
    Ok(())
}
