//! The rep's `Salesforce_Sync` contacts folder: a child of the default Contacts folder
//! (`/users/{id}/contactFolders` lists exactly those), found by name or created. A create
//! answered 409 `ErrorFolderExists`, or a 5xx after which the folder may exist, is followed
//! by a look-up by name.

use super::client::{GraphClient, Request};
use super::error::{ErrorKind, GraphError};
use reqwest::Method;
use serde_json::json;

/// The folder Lightning Sync and tether keep synced contacts in.
pub const SYNC_FOLDER: &str = "Salesforce_Sync";

impl GraphClient {
    /// The id of the child folder of the default Contacts folder named `name`, if any.
    pub async fn find_contact_folder(
        &self,
        mailbox: &str,
        name: &str,
    ) -> Result<Option<String>, GraphError> {
        let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
        let url = self.user_url(
            mailbox,
            &["contactFolders"],
            &[("$filter", &filter), ("$select", "id,displayName")],
        );
        let answer = self
            .send(mailbox, &Request::new(Method::GET, url, "contactFolders"))
            .await?;
        let found = answer.body["value"].as_array().and_then(|folders| {
            folders
                .iter()
                // The filter is the service's; the name check is ours (case as Exchange: none).
                .find(|f| {
                    f["displayName"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .and_then(|f| f["id"].as_str())
                .map(str::to_string)
        });
        Ok(found)
    }

    /// The id of the folder `name` under the default Contacts folder, created if missing.
    pub async fn ensure_contact_folder(
        &self,
        mailbox: &str,
        name: &str,
    ) -> Result<String, GraphError> {
        if let Some(id) = self.find_contact_folder(mailbox, name).await? {
            return Ok(id);
        }
        let mut create = Request::new(
            Method::POST,
            self.user_url(mailbox, &["contactFolders"], &[]),
            "contactFolders",
        )
        .body(json!({"displayName": name}));
        create.once = true;
        match self.send(mailbox, &create).await {
            Ok(answer) => answer.body["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    GraphError::new(
                        ErrorKind::Transport,
                        format!("creating folder {name} of {mailbox}: the answer has no id"),
                    )
                }),
            // Made meanwhile, or perhaps made before the answer was lost.
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::Unavailable) => {
                self.find_contact_folder(mailbox, name).await?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }
}
