//! Whether the app may open a rep's mailbox: one cheap read of each kind the sync does
//! (contact folders, calendar). A denial or a missing mailbox concerns that rep only.

use super::client::{GraphClient, Request};
use super::error::GraphError;
use reqwest::Method;

impl GraphClient {
    /// Reads one contact folder id and one event id of `mailbox`. Fails with
    /// `ErrorKind::Denied` (outside the app's RBAC scope or access policy), `NoMailbox`, or
    /// another kind.
    pub async fn check_mailbox(&self, mailbox: &str) -> Result<(), GraphError> {
        let top = [("$top", "1"), ("$select", "id")];
        for (segments, op) in [
            (&["contactFolders"][..], "contactFolders"),
            (&["calendar", "events"][..], "events"),
        ] {
            let url = self.user_url(mailbox, segments, &top);
            self.send(mailbox, &Request::new(Method::GET, url, op))
                .await?;
        }
        Ok(())
    }
}
