//! The fuzz targets of `fuzz/` without cargo-fuzz, in the default test run: each target's
//! function (`tether::fuzzing`) over its seed corpus (`fuzz/corpus/<target>/seed-*`), then
//! over a few thousand mutations of the seeds (byte edits, tokens that matter to the
//! format, splices, truncations, deep nesting). An input that panics or takes too long
//! fails the test, saved to a file that `cargo fuzz run <target> <file>` replays.
//!
//! `cargo test --test it fuzz_targets:: -- --ignored regenerate` rewrites the EWS, Salesforce and
//! SOQL seeds from the emulators (and copies the example configurations).

use crate::ews;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tether::fuzzing::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("seed-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Tokens that steer each format's parser into its interesting branches.
fn tokens(target: &str) -> &'static [&'static str] {
    match target {
        "config" => &[
            ": ",
            "- ",
            "\n  ",
            "&a ",
            "*a",
            "!!str ",
            "<<: *a",
            "{",
            "}",
            "[",
            "]",
            "'",
            "\"",
            "|\n",
            ">-\n",
            "---\n",
            "...\n",
            "? ",
            "${env:X}",
            "${file:/dev/zero}",
            "~",
            "1e999",
            "0x1F",
            "\t",
            "\u{feff}",
            "%YAML 1.2\n",
            "version: 2\n",
            "sync_configurations:\n",
        ],
        "ews_response" => &[
            "<",
            "</",
            ">",
            "/>",
            "&amp;",
            "&#xD800;",
            "&#0;",
            "&lt;",
            "<![CDATA[",
            "]]>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]>",
            "<?xml version=\"1.0\"?>",
            "xmlns:t=\"urn:x\"",
            "xmlns=\"\"",
            " ResponseClass=\"Error\"",
            "<m:ResponseCode>ErrorServerBusy</m:ResponseCode>",
            "1601-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "-P1D",
            "4294967296",
            "<t:Interval>0</t:Interval>",
            "<t:NumberOfOccurrences>999999999</t:NumberOfOccurrences>",
            "Feb",
            "Fifth",
            "Weekday",
        ],
        "salesforce_json" => &[
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            "null",
            "true",
            "1e999",
            "-0",
            "18446744073709551616",
            "\"\\ud800\"",
            "\"\\u0000\"",
            "\"done\":false",
            "\"nextRecordsUrl\":\"/services/data/v62.0/query/x\"",
            "\"nextRecordsUrl\":\"https://evil.example/\"",
            "\"totalSize\":-1",
            "\"records\":[{}]",
            "\"instance_url\":\"http://evil.example\"",
            "\"deletedDate\":\"2026-13-40T99:00:00Z\"",
        ],
        "soql" => &[
            "(",
            ")",
            "'",
            "\\",
            "\\'",
            ",",
            ".",
            ":",
            "=",
            "!=",
            "<>",
            "<=",
            " AND ",
            " OR ",
            " NOT ",
            " IN ",
            " LIKE ",
            " INCLUDES ",
            " WHERE ",
            " ORDER BY ",
            " NULLS LAST",
            " LIMIT ",
            " OFFSET ",
            "COUNT()",
            "LAST_N_DAYS:",
            "NEXT_N_MONTHS:2147483647",
            "TODAY",
            "2026-02-30",
            "2026-01-15T09:00:00Z",
            "-9999999999999999999",
            "Owner.Profile.Name",
            "Who.",
            "TYPEOF",
            "%",
            "_",
        ],
        _ => &[],
    }
}

/// xorshift64*: reproducible and enough to pick edits.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[(String, Vec<u8>)], tokens: &[&str]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(8) {
            0 if !data.is_empty() => {
                let n = 1 + rng.below(16.min(data.len()));
                let at = at.min(data.len() - n);
                data.drain(at..at + n);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            2 | 3 if !tokens.is_empty() => {
                let t = tokens[rng.below(tokens.len())].as_bytes();
                data.splice(at..at, t.iter().copied());
            }
            4 => data.truncate(at),
            5 => {
                // A slice of another seed, as libFuzzer's crossover does.
                let other = &seeds[rng.below(seeds.len())].1;
                let from = rng.below(other.len() + 1);
                let to = from + rng.below(other.len() - from + 1);
                data.splice(at..at, other[from..to].iter().copied());
            }
            6 if !data.is_empty() => {
                // Repeat a piece: deep nesting, long lists.
                let from = rng.below(data.len());
                let len = 1 + rng.below(32.min(data.len() - from));
                let piece = data[from..from + len].to_vec();
                let times = 2 + rng.below(200);
                let at = at.min(data.len());
                for _ in 0..times {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            _ => {
                let b = rng.next() as u8;
                data.insert(at.min(data.len()), b);
            }
        }
    }
    data
}

/// Runs `f` on `input`; a panic or a slow run fails the test after saving the input.
fn check(target: &str, what: &str, f: fn(&[u8]), input: &[u8]) {
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(|| f(input));
    let took = started.elapsed();
    if outcome.is_err() || took > Duration::from_secs(5) {
        let saved = std::env::temp_dir().join(format!("tether-fuzz-{target}-failure"));
        std::fs::write(&saved, input).unwrap();
        panic!(
            "fuzz target `{target}` {} on {what} ({} bytes, saved to {}; replay with `cargo fuzz run {target} {}`)",
            if outcome.is_err() {
                "panicked"
            } else {
                "was slow"
            },
            input.len(),
            saved.display(),
            saved.display()
        );
    }
}

/// Mutations per target: enough to reach the error paths of each parser, while the whole
/// file stays well under a minute in a debug build.
const MUTATIONS: usize = 2_000;

#[test]
fn every_fuzz_target_survives_its_seeds_and_their_mutations() {
    for (target, f) in TARGETS {
        let seeds = seeds(target);
        assert!(
            seeds.len() >= 3,
            "fuzz/corpus/{target} needs seed-* files (regenerate them, see the file comment)"
        );
        for (name, data) in &seeds {
            check(target, name, *f, data);
        }
        let mut rng = Rng(0x5eed_0000 + target.len() as u64);
        let tokens = tokens(target);
        let started = Instant::now();
        for i in 0..MUTATIONS {
            let input = mutate(&mut rng, &seeds, tokens);
            check(target, &format!("mutation {i}"), *f, &input);
        }
        eprintln!(
            "{target}: {} seeds, {MUTATIONS} mutations in {:.1?}",
            seeds.len(),
            started.elapsed()
        );
    }
}

#[test]
fn every_fuzz_target_has_a_cargo_fuzz_binary() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    for (target, _) in TARGETS {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("tether::fuzzing::{target}(data)")),
            "{}",
            file.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} missing in fuzz/Cargo.toml"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Seed corpus generation (run by hand; the seeds are committed).

fn write_seed(target: &str, name: &str, data: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

#[tokio::test]
#[ignore = "rewrites fuzz/corpus/*/seed-*; run by hand"]
async fn regenerate_seed_corpus() {
    config_seeds();
    ews_seeds().await;
    salesforce_seeds().await;
    soql_seeds();
}

fn config_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('/', "-");
                write_seed("config", &rel, &std::fs::read(&p).unwrap());
            }
        }
    }
}

async fn ews_seeds() {
    use chrono::{NaiveDate, Weekday};
    use ews::*;
    use tether::exchange::FolderRef;
    use tether::exchange::model::{
        Attendee, CalendarEvent, Contact, MailboxAddress, PROP_SALESFORCE_ID, Pattern, RangeEnd,
        Recurrence,
    };
    use tether_emulators::exchange::Fault;

    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    let fref = FolderRef::from(&folder);
    let mut c = Contact {
        given_name: Some("Ada & <Co>".into()),
        surname: Some("Lovelace".into()),
        company_name: Some("Engines".into()),
        birthday: NaiveDate::from_ymd_opt(1815, 12, 10),
        notes: Some("ünïcödé ✓\nline two".into()),
        emails: [Some("ada@engines.example".into()), None, None],
        ..Contact::default()
    };
    c.phones
        .insert("MobilePhone".into(), "+44 7700 900000".into());
    c.extended
        .insert(PROP_SALESFORCE_ID.into(), "003000000000001AAA".into());
    let ids = client
        .create_contacts(CELIA, &fref, &[c.clone(), c.clone()])
        .await
        .unwrap();
    let start = t("2026-01-06T10:00:00Z");
    let mut single = CalendarEvent::new(start, t("2026-01-06T11:00:00Z"));
    single.subject = Some("Review".into());
    single.location = Some("Room 1".into());
    single.required_attendees.push(Attendee {
        mailbox: MailboxAddress {
            name: Some("Ana".into()),
            email: "ana@customer.com".into(),
        },
        response: None,
    });
    let mut series = CalendarEvent::new(start, t("2026-01-06T10:30:00Z"));
    series.subject = Some("Stand-up".into());
    series.recurrence = Some(Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days: vec![Weekday::Tue, Weekday::Thu],
            first_day: None,
        },
        start: NaiveDate::from_ymd_opt(2026, 1, 6).unwrap(),
        end: RangeEnd::Count(10),
    });
    let allday = CalendarEvent::all_day(
        NaiveDate::from_ymd_opt(2026, 1, 9).unwrap(),
        NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(),
        "W. Europe Standard Time",
    )
    .unwrap();
    let event_ids = client
        .create_events(CELIA, &[single, series, allday])
        .await
        .unwrap();
    client
        .sync_folder(CELIA, &fref, None, 512, |_| {})
        .await
        .unwrap();
    let contact_ids: Vec<_> = ids.into_iter().map(Result::unwrap).collect();
    let got = client.get_contacts(CELIA, &contact_ids).await.unwrap();
    let event_ids: Vec<_> = event_ids.into_iter().map(Result::unwrap).collect();
    let view = client
        .calendar_view(CELIA, start, t("2026-02-01T00:00:00Z"), 100)
        .await
        .unwrap();
    client.get_events(CELIA, &event_ids).await.unwrap();
    if let Some(occ) = view
        .iter()
        .find_map(|e| e.item_id.clone().filter(|_| e.original_start.is_some()))
    {
        let _ = client.recurring_master(CELIA, &occ).await;
    }
    let mut changed = got[0].clone().unwrap();
    changed.surname = Some("Byron".into());
    let _ = client
        .update_contacts(CELIA, &[(contact_ids[0].clone(), changed)])
        .await;
    let _ = client
        .find_by_extended(
            CELIA,
            &fref,
            PROP_SALESFORCE_ID,
            &["003000000000001AAA".into()],
        )
        .await;
    let _ = client.delete_items(CELIA, &contact_ids[1..]).await;
    // Errors: a stale change key, an item that is gone, a mailbox outside the scope.
    let _ = client.delete_items(CELIA, &contact_ids[1..]).await;
    let _ = client.get_folder(FINANCE, &FolderRef::contacts()).await;
    let _ = client
        .sync_page(CELIA, &fref, Some("not-a-sync-state"), 10)
        .await;
    let mut n = 0;
    for body in emu.bodies() {
        let root = body.split([' ', '>']).next().unwrap_or("");
        if root.ends_with("Response") {
            let envelope = format!(
                r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{body}</s:Body></s:Envelope>"#
            );
            n += 1;
            write_seed(
                "ews_response",
                &format!(
                    "{n:02}-{}.xml",
                    root.trim_start_matches('<').replace(':', "-")
                ),
                envelope.as_bytes(),
            );
        }
    }
    // A throttling fault, Autodiscover (POX and SOAP) and a token answer, from the emulator.
    emu.inject(Fault::ServerBusy { back_off_ms: 2000 });
    let http = reqwest::Client::new();
    let headers = tether::exchange::soap::RequestHeaders {
        server_version: "Exchange2013_SP1",
        impersonate: Some(CELIA),
        time_zone: None,
    };
    let body = r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder>"#;
    let fault = http
        .post(emu.ews_url())
        .basic_auth(SVC, Some(PASSWORD))
        .body(tether::exchange::soap::request_envelope(&headers, body))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("ews_response", "fault-server-busy.xml", &fault);
    let pox = http
        .post(format!("{}/autodiscover/autodiscover.xml", emu.url()))
        .basic_auth(SVC, Some(PASSWORD))
        .header("Content-Type", "text/xml")
        .body(format!(r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{CELIA}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("ews_response", "autodiscover-pox.xml", &pox);
    let soap = http
        .post(format!("{}/autodiscover/autodiscover.svc", emu.url()))
        .basic_auth(SVC, Some(PASSWORD))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(format!(r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action><wsa:To>{}/autodiscover/autodiscover.svc</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{CELIA}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>"#, emu.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("ews_response", "autodiscover-soap.xml", &soap);
    emu.add_app(
        "app-id",
        "app-secret",
        tether_emulators::exchange::ImpersonationScope::All,
    );
    for (name, secret) in [
        ("token.json", "app-secret"),
        ("token-refused.json", "wrong"),
    ] {
        let token = http
            .post(emu.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app-id"),
                ("client_secret", secret),
                ("scope", "https://outlook.office365.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        write_seed("ews_response", name, &token);
    }
}

async fn salesforce_seeds() {
    use serde_json::json;
    use tether_emulators::salesforce::{Emulator, EmulatorOptions};

    let emu = Emulator::start(EmulatorOptions::deterministic())
        .await
        .unwrap();
    let h = emu.handle();
    let user = h.add_user(
        "celia.kung@corp.com",
        "celia.kung@corp.com",
        "Celia Kung",
        "Sales User",
        "Europe/Berlin",
    );
    for i in 0..3 {
        h.insert(
            "Contact",
            json!({"FirstName": format!("Ana{i}"), "LastName": "Díaz \"Q\"", "Email": format!("ana{i}@customer.com"), "OwnerId": user}),
        )
        .unwrap();
    }
    let http = reqwest::Client::new();
    let base = emu.url().to_string();
    let token = |secret: &'static str| {
        http.post(format!("{base}/services/oauth2/token"))
            .basic_auth("3MVG9tether.sandbox.client", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let good = token("sandbox-client-secret")
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("salesforce_json", "token.json", &good);
    let bad = token("wrong").await.unwrap().bytes().await.unwrap();
    write_seed("salesforce_json", "token-refused.json", &bad);
    let access = serde_json::from_slice::<serde_json::Value>(&good).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let v = format!("{base}/services/data/v62.0");
    let get = |path: String| http.get(path).bearer_auth(&access).send();
    let seeds: Vec<(&str, String)> = vec![
        (
            "query.json",
            format!(
                "{v}/query?q=SELECT+Id,FirstName,LastName,Email,Owner.Name,SystemModstamp+FROM+Contact"
            ),
        ),
        ("query-malformed.json", format!("{v}/query?q=SELEC+Id")),
        (
            "describe-contact.json",
            format!("{v}/sobjects/Contact/describe"),
        ),
        ("limits.json", format!("{v}/limits")),
        (
            "updated.json",
            format!(
                "{v}/sobjects/Contact/updated/?start=2026-01-14T00:00:00%2B00:00&end=2026-01-15T09:00:00%2B00:00"
            ),
        ),
        (
            "deleted.json",
            format!(
                "{v}/sobjects/Contact/deleted/?start=2026-01-14T00:00:00%2B00:00&end=2026-01-15T09:00:00%2B00:00"
            ),
        ),
        ("not-found.json", format!("{v}/sobjects/Nope/describe")),
    ];
    for (name, url) in seeds {
        let mut body = get(url).await.unwrap().bytes().await.unwrap().to_vec();
        if name.starts_with("describe") {
            // A dozen fields keep the shape and keep each fuzz run fast.
            let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            v["fields"].as_array_mut().unwrap().truncate(12);
            if let Some(a) = v["childRelationships"].as_array_mut() {
                a.truncate(2);
            }
            body = serde_json::to_vec(&v).unwrap();
        }
        write_seed("salesforce_json", name, &body);
    }
    let create = http
        .post(format!("{v}/composite/sobjects"))
        .bearer_auth(&access)
        .json(&json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Contact"}, "LastName": "New", "OwnerId": user},
            {"attributes": {"type": "Contact"}, "FirstName": "NoLastName"},
        ]}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("salesforce_json", "collection-create.json", &create);
    let ids: Vec<String> = h
        .records("Contact")
        .iter()
        .filter_map(|r| r["Id"].as_str().map(String::from))
        .collect();
    let retrieve = http
        .post(format!("{v}/composite/sobjects/Contact"))
        .bearer_auth(&access)
        .json(&json!({"ids": [ids[0], "003000000000000AAA"], "fields": ["Id", "LastName"]}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("salesforce_json", "collection-retrieve.json", &retrieve);
    let delete = http
        .delete(format!(
            "{v}/composite/sobjects?ids={},003000000000000AAA&allOrNone=false",
            ids[1]
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("salesforce_json", "collection-delete.json", &delete);
    let more = http
        .get(format!("{v}/query?q=SELECT+Id+FROM+Contact"))
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_seed("salesforce_json", "query-small.json", &more);
    // getDeleted with records, and a first page that is not the last, as Salesforce shapes
    // them (the deterministic org has nothing deleted in the window).
    write_seed(
        "salesforce_json",
        "deleted-records.json",
        br#"{"deletedRecords":[{"id":"003xx000004TmiQAAS","deletedDate":"2026-01-15T08:59:00.000+0000"}],"earliestDateAvailable":"2025-12-31T09:00:00.000+0000","latestDateCovered":"2026-01-15T09:00:00.000+0000"}"#,
    );
    write_seed(
        "salesforce_json",
        "query-page.json",
        br#"{"totalSize":2500,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/0r8xx0000000001-2000","records":[{"attributes":{"type":"Contact","url":"/services/data/v62.0/sobjects/Contact/003xx000004TmiQAAS"},"Id":"003xx000004TmiQAAS","Owner":{"attributes":{"type":"User"},"Name":"Celia"}}]}"#,
    );
}

fn soql_seeds() {
    use chrono::TimeZone;
    use tether::salesforce::soql::{Lit, Op, SoqlBuilder};
    let w = chrono::Utc.with_ymd_and_hms(2026, 1, 14, 8, 30, 0).unwrap();
    let mut queries: Vec<String> = vec![
        SoqlBuilder::select(
            "User",
            &["Id", "Email", "Profile.Name", "IsActive", "TimeZoneSidKey"],
        )
        .unwrap()
        .build(),
        SoqlBuilder::select(
            "Contact",
            &[
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "OwnerId",
                "SystemModstamp",
                "IsDeleted",
            ],
        )
        .and_then(|b| b.filter("SystemModstamp", Op::Ge, Lit::DateTime(w)))
        .and_then(|b| b.order_by("SystemModstamp", false))
        .unwrap()
        .build(),
        SoqlBuilder::select(
            "Event",
            &[
                "Id",
                "Subject",
                "StartDateTime",
                "EndDateTime",
                "IsAllDayEvent",
                "WhoId",
                "Who.Email",
            ],
        )
        .and_then(|b| b.filter("IsDeleted", Op::Eq, Lit::Bool(false)))
        .unwrap()
        .limit(200)
        .build(),
        SoqlBuilder::select("Lead", &["Id", "Email"])
            .and_then(|b| b.filter("IsConverted", Op::Eq, Lit::Bool(false)))
            .unwrap()
            .build(),
    ];
    let lits: Vec<Lit> = ["a@x.com", "o'neil@x.com", "ünï@x.de"]
        .iter()
        .map(|s| Lit::Str(s.to_string()))
        .collect();
    queries.extend(
        SoqlBuilder::select("Contact", &["Id", "Email", "Tether_Sync_Key__c"])
            .and_then(|b| b.chunked_in("Email", &lits, 15_000))
            .unwrap(),
    );
    queries.push("SELECT COUNT() FROM Contact WHERE CreatedDate = LAST_N_DAYS:30".into());
    queries.push("SELECT Id, Name FROM Account WHERE Name LIKE 'Ac%' AND (NOT Name IN ('x','y')) ORDER BY Name DESC NULLS LAST LIMIT 10 OFFSET 1".into());
    queries.push("SELECT Id FROM Event WHERE ActivityDate >= TODAY AND StartDateTime < 2026-02-01T00:00:00Z OR Owner.Name != null".into());
    for (i, q) in queries.iter().enumerate() {
        write_seed("soql", &format!("{i:02}.soql"), q.as_bytes());
    }
}
