//! One mailbox, one org: two tether states, each with its own Salesforce org, pointed at one
//! rep's mailbox. The first marks the rep's Salesforce_Sync folder (shown in its plan); the
//! second refuses that rep, naming the first org, and writes nothing to the mailbox; a
//! `tether reset` in the second moves the mailbox over. Over EWS and over Graph, every body
//! checked against the vendor's schema.

use crate::common::Scratch;
use crate::emulated::{self, ONE_REP_SYNC, REP};
use tether_emulators::exchange::{self, ImpersonationScope};
use tether_emulators::graph::GraphApp;
use tether_emulators::salesforce;

const APP: &str = "0b7a3c2d-0000-4000-8000-0000000015aa";
const SECRET: &str = "mailbox-claim-secret";
const MARKER: &str = "tether.SyncedBy";

/// Production (`org/`) and a sandbox (`sandbox/`): two Salesforce orgs, one Exchange.
struct TwoOrgs {
    prod: emulated::Org,
    sandbox: salesforce::RunningEmulator,
    password: &'static str,
}

impl TwoOrgs {
    async fn start(graph: bool) -> TwoOrgs {
        let prod = emulated::start(salesforce::EmulatorOptions::default(), ONE_REP_SYNC).await;
        emulated::add_rep_with_a_contact(&prod.ews, &prod.sf);
        let sandbox = salesforce::Emulator::start(salesforce::EmulatorOptions {
            id_seed: 7,
            ..salesforce::EmulatorOptions::default()
        })
        .await
        .unwrap();
        let rep = sandbox
            .handle()
            .add_user(REP, REP, "Celia Kung", "Sales User", "Europe/Berlin");
        sandbox
            .handle()
            .insert(
                "Contact",
                serde_json::json!({"FirstName": "Sandy", "LastName": "Box", "Email": "sandy@customer.com", "OwnerId": rep}),
            )
            .unwrap();
        let sandbox_config = emulated::config(&prod.ews.ews_url(), sandbox.url(), "", ONE_REP_SYNC)
            .replace(
                "org: { name: corp, kind: production }",
                "org: { name: corp-sandbox, kind: sandbox }",
            );
        prod.scratch.write("sandbox/tether.yaml", sandbox_config);
        let mut password = emulated::PASSWORD;
        if graph {
            prod.ews.add_graph_app(GraphApp {
                client_id: APP.into(),
                client_secret: Some(SECRET.into()),
                certificate_pem: None,
                scope: ImpersonationScope::Filter("Department -eq 'Sales'".into()),
            });
            for dir in ["org", "sandbox"] {
                to_graph(&prod.scratch, dir, &prod.ews);
            }
            password = SECRET;
        }
        TwoOrgs {
            prod,
            sandbox,
            password,
        }
    }

    async fn tether(&self, args: &[&str]) -> crate::common::Output {
        self.prod.tether(args, self.password).await
    }

    fn sync_folder(&self) -> String {
        self.prod
            .ews
            .find_folder(REP, "Salesforce_Sync")
            .expect("Salesforce_Sync exists")
    }

    fn marker(&self) -> Option<String> {
        self.prod
            .ews
            .folder_property(REP, &self.sync_folder(), MARKER)
    }

    /// Display names of the contacts in the rep's Salesforce_Sync.
    fn synced_contacts(&self) -> Vec<String> {
        let folder = self.sync_folder();
        let mut names: Vec<String> = self
            .prod
            .ews
            .items(REP, &folder)
            .into_iter()
            .filter_map(|i| match i {
                exchange::model::Item::Contact(c) => c.surname.clone(),
                _ => None,
            })
            .collect();
        names.sort();
        names
    }
}

/// Rewrites `dir/tether.yaml`'s Exchange connection to Microsoft Graph.
fn to_graph(scratch: &Scratch, dir: &str, ews: &exchange::RunningEmulator) {
    let path = format!("{dir}/tether.yaml");
    let text = std::fs::read_to_string(scratch.path(&path)).unwrap();
    let (head, rest) = text.split_once("  exchange:\n").unwrap();
    let (_, salesforce) = rest.split_once("  salesforce:\n").unwrap();
    scratch.write(
        &path,
        format!(
            "{head}  exchange:\n    method: oauth2\n    api: graph\n    tenant: {}\n    client_id: {APP}\n    client_secret: ${{env:TEST_EWS_PASSWORD}}\n    token_url: {}\n    graph_url: {}\n  salesforce:\n{salesforce}",
            ews.graph_tenant(),
            ews.graph_token_url(),
            ews.graph_url()
        ),
    );
}

/// The scenario over either API: returns the two orgs for the API's own checks.
async fn second_org_is_refused_with_the_first_orgs_name(graph: bool) -> TwoOrgs {
    let w = TwoOrgs::start(graph).await;
    let prod_org = w.prod.sf.handle().org_id()[..15].to_string();
    let sandbox_org = w.sandbox.handle().org_id()[..15].to_string();
    assert_ne!(prod_org, sandbox_org);

    // Production syncs first: the folder it creates carries its marker.
    let apply = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let marker = w.marker().expect("the folder is marked when created");
    assert!(
        marker.contains(&prod_org) && marker.contains("\"corp\""),
        "{marker}"
    );
    assert_eq!(w.synced_contacts(), ["Diaz"]);

    // The sandbox, pointed at the same mailbox, refuses the rep, naming production.
    let plan = w.tether(&["plan", "sandbox"]).await;
    let refusal = format!("mailbox {REP} is synced by org {prod_org} (corp, state ");
    assert!(
        plan.stdout.contains("cannot sync") && plan.stdout.contains(&refusal),
        "{}\n{}",
        plan.stdout,
        plan.stderr
    );
    let apply = w.tether(&["apply", "sandbox", "--auto-approve"]).await;
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    let errors = w.tether(&["errors", "sandbox"]).await;
    assert!(
        errors.stdout.contains("MAILBOX_SYNCED_BY_ANOTHER_ORG") && errors.stdout.contains(&refusal),
        "{}\n{}",
        errors.stdout,
        errors.stderr
    );
    let status = w.tether(&["status", "sandbox", "--user", REP]).await;
    assert_eq!(status.code, 1, "{}", status.stdout);
    assert!(
        status.stdout.contains(&format!(
            "Salesforce_Sync folder found: not checked — the mailbox could not be read: \
             MAILBOX_SYNCED_BY_ANOTHER_ORG: {refusal}"
        )),
        "{}",
        status.stdout
    );
    assert_eq!(w.synced_contacts(), ["Diaz"], "the sandbox wrote nothing");
    assert_eq!(w.marker().as_deref(), Some(marker.as_str()), "left alone");
    // Production goes on syncing its rep.
    let again = w.tether(&["plan", "org"]).await;
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // Moving the mailbox: reset it in the sandbox; its next plan shows the take-over and
    // its apply rewrites the marker; production is refused from then on.
    let reset = w.tether(&["reset", REP, "--config", "sandbox"]).await;
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    let plan = w.tether(&["plan", "sandbox"]).await;
    assert!(
        plan.stdout.contains("mark mailbox")
            && plan
                .stdout
                .contains(&format!("taken over from org {prod_org} (corp, state ")),
        "{}",
        plan.stdout
    );
    let apply = w.tether(&["apply", "sandbox", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        w.marker().is_some_and(|m| m.contains(&sandbox_org)),
        "{:?}",
        w.marker()
    );
    let prod = w.tether(&["plan", "org"]).await;
    assert!(
        prod.stdout.contains(&format!(
            "mailbox {REP} is synced by org {sandbox_org} (corp-sandbox, state "
        )),
        "{}",
        prod.stdout
    );
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mailbox_one_org_over_ews() {
    let w = second_org_is_refused_with_the_first_orgs_name(false).await;
    assert!(
        w.prod.ews.calls("UpdateFolder") == 1,
        "{:?}",
        w.prod.ews.all_calls()
    );
    crate::ews::validate_all(&w.prod.ews.bodies());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mailbox_one_org_over_graph() {
    let w = second_org_is_refused_with_the_first_orgs_name(true).await;
    assert_eq!(
        w.prod.ews.all_calls().values().sum::<u64>(),
        0,
        "nothing over EWS"
    );
    crate::connectors::graph_face::validate_all(&w.prod.ews);
}

/// A Salesforce_Sync folder made before tether marked folders (or by Lightning Sync) has
/// no marker: the plan shows the marker to write, and apply writes it with one call.
#[tokio::test(flavor = "multi_thread")]
async fn an_unmarked_sync_folder_is_marked_as_the_plan_shows() {
    let w = TwoOrgs::start(false).await;
    let contacts = w.prod.ews.folder_id(REP, "contacts").unwrap();
    let folder = w
        .prod
        .ews
        .create_folder(REP, &contacts, "Salesforce_Sync", "IPF.Contact")
        .unwrap();
    let plan = w.tether(&["plan", "org"]).await;
    let prod_org = &w.prod.sf.handle().org_id()[..15];
    assert!(
        plan.stdout.contains(&format!(
            "{REP}: mark mailbox: Contacts/Salesforce_Sync marked as synced by org {prod_org} (corp, state "
        )),
        "{}",
        plan.stdout
    );
    assert_eq!(
        w.prod.ews.folder_property(REP, &folder, MARKER),
        None,
        "plan writes nothing"
    );
    let apply = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        w.prod
            .ews
            .folder_property(REP, &folder, MARKER)
            .is_some_and(|m| m.contains(prod_org))
    );
    assert_eq!(w.prod.ews.calls("UpdateFolder"), 1);
    let again = w.tether(&["plan", "org"]).await;
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}
