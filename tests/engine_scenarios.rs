//! One test per sync rule, over the in-memory connectors, each named after the rule.

mod world;

use serde_json::json;
use tether::engine::connector::Folder;
use tether::model::{ObjectKind, Record};
use world::*;

#[tokio::test]
async fn contact_created_in_exchange_syncs_to_salesforce_and_back_is_quiet() {
    let mut w = World::new(config(both_contacts(), serde_json::Value::Null), 1);
    w.sync().await;
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    let r = w.sync().await;
    assert_eq!(r.exec.succeeded, 1, "{:?}", r.plan);
    let sf = w.sf_contacts();
    assert_eq!(sf.len(), 1);
    assert_eq!(sf[0].email(), "ana@x.com");
    assert!(w.plan().await.is_empty());
}
