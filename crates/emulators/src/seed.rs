//! The sandbox's org: both emulators started on the ports `examples/quickstart.yaml` names,
//! with the service account, the connected app, the reps, and records on both sides that a
//! first sync has to sort out: the demo's two reps and their story, and for `tether
//! sandbox` a generated org around them (see `generate`).

use super::exchange::{self as ews_emu, ImpersonationScope};
use super::generate::{self, Shape, Summary};
use super::salesforce as sf_emu;
use crate::clock::SystemClock;
use crate::exchange::model::{CalendarEvent, Contact};
use crate::secret::Secret;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::sync::Arc;

pub const EWS_PORT: u16 = 8081;
pub const SALESFORCE_PORT: u16 = 8082;
pub const SERVICE_ACCOUNT: &str = "svc-tether@example.com";
pub const CLIENT_ID: &str = "tether-demo";
/// Credentials of the local emulators only: they guard nothing outside this machine.
pub const SANDBOX_EXCHANGE_PASSWORD: &str = "sandbox-exchange-password";
pub const SANDBOX_CLIENT_SECRET: &str = "sandbox-client-secret";
/// The Entra app registration the Graph face knows (client credentials).
pub const GRAPH_CLIENT_ID: &str = "5a1d7e0c-0000-4000-8000-000000000de0";
pub const SANDBOX_GRAPH_CLIENT_SECRET: &str = "sandbox-graph-client-secret";
/// The environment variables `examples/quickstart.yaml` reads, with the sandbox's values.
pub const ENV: &[(&str, &str)] = &[
    ("EXCHANGE_SERVICE_PASSWORD", SANDBOX_EXCHANGE_PASSWORD),
    ("SF_CLIENT_SECRET", SANDBOX_CLIENT_SECRET),
];

pub const REPS: &[(&str, &str)] = &[
    ("celia.kung@example.com", "Celia Kung"),
    ("omar.haddad@example.com", "Omar Haddad"),
];

/// A Salesforce user whose mailbox is outside the apps' scope (Marketing, not Sales): Graph
/// answers 403 ErrorAccessDenied, EWS refuses to impersonate. A Marketing User, so the
/// quick start's Sales User members do not include her.
pub const OUT_OF_SCOPE_USER: (&str, &str) = ("nora.lindqvist@example.com", "Nora Lindqvist");
/// A Salesforce user with no Exchange Online mailbox (it is hosted on premises): Graph
/// answers 404 MailboxNotEnabledForRESTAPI, EWS finds no mailbox. A Standard User.
pub const NO_MAILBOX_USER: (&str, &str) = ("theo.brandt@example.com", "Theo Brandt");

pub struct SandboxOrg {
    pub exchange: ews_emu::RunningEmulator,
    pub salesforce: sf_emu::RunningEmulator,
    /// Salesforce user id per rep, in `generate::reps` order (`REPS` first).
    pub rep_ids: Vec<String>,
}

/// The demo's org: the two reps of `REPS` and the records of its story, nothing generated.
pub const DEMO: Shape = Shape {
    reps: 2,
    contacts_per_rep: 0,
    events_per_rep: 0,
    seed: 0,
};

/// Starts both emulators on `ews_port` and `sf_port` (0: any free port) and seeds the demo's
/// org.
pub async fn start(ews_port: u16, sf_port: u16) -> Result<SandboxOrg, String> {
    let mut org = start_empty(ews_port, sf_port).await?;
    org.seed(&DEMO, Utc::now())?;
    Ok(org)
}

/// Starts both emulators with the service account and the connected app, and no data.
pub async fn start_empty(ews_port: u16, sf_port: u16) -> Result<SandboxOrg, String> {
    let exchange = ews_emu::Emulator::start(ews_emu::EmulatorOptions {
        port: ews_port,
        deterministic: false,
        clock: Some(Arc::new(SystemClock)),
        // A long-running sandbox must not keep every body it ever served.
        record_bodies: false,
        ..ews_emu::EmulatorOptions::default()
    })
    .await
    .map_err(|e| format!("the Exchange emulator cannot listen on 127.0.0.1:{ews_port}: {e} (is another sandbox running?)"))?;
    let mut options = sf_emu::EmulatorOptions {
        port: sf_port,
        ..sf_emu::EmulatorOptions::default()
    };
    options.app.client_id = CLIENT_ID.into();
    options.app.client_secret = Secret::new(SANDBOX_CLIENT_SECRET);
    let salesforce = sf_emu::Emulator::start(options)
        .await
        .map_err(|e| format!("{e} (is another sandbox running?)"))?;
    exchange.add_service_account(
        SERVICE_ACCOUNT,
        SANDBOX_EXCHANGE_PASSWORD,
        ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    );
    // The same mailboxes through Graph, for an app whose RBAC for Applications scope is
    // the same recipient filter.
    exchange.add_graph_app(crate::graph::GraphApp {
        client_id: GRAPH_CLIENT_ID.into(),
        client_secret: Some(SANDBOX_GRAPH_CLIENT_SECRET.into()),
        certificate_pem: None,
        scope: ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    });
    // A directory entry, not store contents: registered on every start, restored or not.
    exchange.add_user_without_mailbox(NO_MAILBOX_USER.0);
    Ok(SandboxOrg {
        exchange,
        salesforce,
        rep_ids: Vec::new(),
    })
}

impl SandboxOrg {
    /// The Graph face's variables for `sandbox.env`: service root, token URL, tenant, and
    /// the app's credentials (the local emulator's own; they guard nothing else).
    pub fn graph_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GRAPH_URL", self.exchange.graph_url()),
            ("GRAPH_TOKEN_URL", self.exchange.graph_token_url()),
            ("GRAPH_TENANT", self.exchange.graph_tenant().to_string()),
            ("GRAPH_CLIENT_ID", GRAPH_CLIENT_ID.to_string()),
            (
                "GRAPH_CLIENT_SECRET",
                SANDBOX_GRAPH_CLIENT_SECRET.to_string(),
            ),
            ("GRAPH_OUT_OF_SCOPE_USER", OUT_OF_SCOPE_USER.0.to_string()),
            ("GRAPH_NO_MAILBOX_USER", NO_MAILBOX_USER.0.to_string()),
        ]
    }

    /// Seeds an org of `shape` (at least the two reps of `REPS`): the reps, the generated
    /// records, and the demo's story on top.
    pub fn seed(&mut self, shape: &Shape, now: DateTime<Utc>) -> Result<Summary, String> {
        if shape.reps < REPS.len() {
            return Err(format!("the sandbox needs at least {} reps", REPS.len()));
        }
        let reps = generate::reps(shape);
        self.rep_ids = generate::add_reps(&self.exchange, self.salesforce.handle(), &reps);
        let summary = generate::populate(
            &self.exchange,
            self.salesforce.handle(),
            shape,
            &reps,
            &self.rep_ids,
            now,
        )?;
        self.seed_story(now)?;
        self.seed_unreachable_users();
        Ok(summary)
    }

    /// The two Salesforce users tether cannot sync through Exchange: one whose mailbox is
    /// outside the scope, one without a mailbox (see `OUT_OF_SCOPE_USER`, `NO_MAILBOX_USER`).
    fn seed_unreachable_users(&self) {
        let sf = self.salesforce.handle();
        let (email, name) = OUT_OF_SCOPE_USER;
        self.exchange.add_mailbox(email, Some("Marketing"));
        sf.add_user(email, email, name, "Marketing User", "Europe/Stockholm");
        let (email, name) = NO_MAILBOX_USER;
        sf.add_user(email, email, name, "Standard User", "Europe/Berlin");
    }

    /// The demo's records: what its narration walks through.
    fn seed_story(&self, now: DateTime<Utc>) -> Result<(), String> {
        let sf = self.salesforce.handle();
        let contact = |owner: &str, first: &str, last: &str, email: &str, title: &str| {
            sf.insert(
                "Contact",
                json!({"FirstName": first, "LastName": last, "Email": email, "Title": title, "OwnerId": owner}),
            )
            .map(|_| ())
            .map_err(|e| format!("seeding Salesforce: {e:?}"))
        };
        let (celia, omar) = (&self.rep_ids[0], &self.rep_ids[1]);
        contact(
            celia,
            "Ana",
            "Diaz",
            "ana.diaz@northwind.example",
            "Head of Purchasing",
        )?;
        contact(celia, "Ben", "Okafor", "ben.okafor@contoso.example", "CFO")?;
        contact(
            omar,
            "Chloé",
            "Martin",
            "chloe.martin@fabrikam.example",
            "IT Director",
        )?;
        // A contact the rep keeps in Outlook's Salesforce_Sync folder, not yet in Salesforce.
        let sync_folder = self.sync_folder(REPS[0].0)?;
        self.exchange.put_contact(
            REPS[0].0,
            &sync_folder,
            Contact {
                given_name: Some("Dev".into()),
                surname: Some("Patel".into()),
                company_name: Some("Tailspin Toys".into()),
                job_title: Some("Buyer".into()),
                emails: [Some("dev.patel@tailspin.example".into()), None, None],
                ..Contact::default()
            },
        );
        // A personal contact outside Salesforce_Sync: never synced.
        let contacts = self
            .exchange
            .folder_id(REPS[0].0, "contacts")
            .ok_or("seeding Exchange: no Contacts folder")?;
        self.exchange.put_contact(
            REPS[0].0,
            &contacts,
            Contact {
                given_name: Some("Mum".into()),
                emails: [Some("mum@family.example".into()), None, None],
                ..Contact::default()
            },
        );
        // Meetings in the rep's calendar tomorrow: one with a customer, one private.
        let tomorrow = (now + Duration::days(1))
            .date_naive()
            .and_hms_opt(9, 0, 0)
            .expect("valid time")
            .and_utc();
        let mut call = CalendarEvent::new(tomorrow, tomorrow + Duration::minutes(30));
        call.subject = Some("Pricing call with Northwind".into());
        call.location = Some("Teams".into());
        self.exchange.put_event(REPS[0].0, call);
        let mut private =
            CalendarEvent::new(tomorrow + Duration::hours(3), tomorrow + Duration::hours(4));
        private.subject = Some("Dentist".into());
        private.sensitivity = Some(crate::exchange::model::Sensitivity::Private);
        self.exchange.put_event(REPS[0].0, private);
        Ok(())
    }

    /// The rep's Salesforce_Sync folder, created as the rep would in Outlook.
    pub fn sync_folder(&self, rep: &str) -> Result<String, String> {
        generate::sync_folder(&self.exchange, rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The status and error code of a Graph GET of the user's contact folders.
    async fn contact_folders(org: &SandboxOrg, token: &str, user: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!(
                "{}/users/{}/contactFolders",
                org.exchange.graph_url(),
                user.replace('@', "%40")
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().await.unwrap()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_seeded_org_has_a_user_outside_the_app_scope_and_one_without_a_mailbox() {
        let mut org = start_empty(0, 0).await.unwrap();
        org.seed(&DEMO, Utc::now()).unwrap();
        let env = org.graph_env();
        let var = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        assert_eq!(
            var("GRAPH_OUT_OF_SCOPE_USER").as_deref(),
            Some(OUT_OF_SCOPE_USER.0)
        );
        assert_eq!(
            var("GRAPH_NO_MAILBOX_USER").as_deref(),
            Some(NO_MAILBOX_USER.0)
        );
        // Both are active Salesforce users, of profiles the quick start does not sync.
        let users = org.salesforce.handle().records("User");
        for (email, _) in [OUT_OF_SCOPE_USER, NO_MAILBOX_USER] {
            let user = users
                .iter()
                .find(|u| u["Email"] == email)
                .unwrap_or_else(|| panic!("{email} is not a Salesforce user"));
            assert_eq!(user["IsActive"], true, "{user:?}");
        }
        let form = [
            ("client_id", GRAPH_CLIENT_ID),
            ("client_secret", SANDBOX_GRAPH_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let answer = reqwest::Client::new()
            .post(org.exchange.graph_token_url())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let token: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        let token = token["access_token"].as_str().unwrap();
        let (status, _) = contact_folders(&org, token, REPS[0].0).await;
        assert_eq!(status, 200);
        let (status, body) = contact_folders(&org, token, OUT_OF_SCOPE_USER.0).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (403, &Value::from("ErrorAccessDenied"))
        );
        let (status, body) = contact_folders(&org, token, NO_MAILBOX_USER.0).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &Value::from("MailboxNotEnabledForRESTAPI"))
        );
    }
}
