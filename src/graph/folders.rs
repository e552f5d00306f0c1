//! The rep's `Salesforce_Sync` contacts folder: a child of the default Contacts folder
//! (`/users/{id}/contactFolders` lists exactly those), found by name or created. A create
//! answered 409 `ErrorFolderExists`, or a 5xx after which the folder may exist, is followed
//! by a look-up by name.

use super::client::{GraphClient, Request};
use super::error::{ErrorKind, GraphError};
use super::property;
use reqwest::Method;
use serde_json::json;

/// The folder Lightning Sync and tether keep synced contacts in.
pub const SYNC_FOLDER: &str = "Salesforce_Sync";

/// A child folder of the default Contacts folder as tether reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactFolder {
    pub id: String,
    /// Its marker (`property::synced_by_property`), read with the folder.
    pub synced_by: Option<String>,
}

impl GraphClient {
    /// The id of the child folder of the default Contacts folder named `name`, if any.
    pub async fn find_contact_folder(
        &self,
        mailbox: &str,
        name: &str,
    ) -> Result<Option<String>, GraphError> {
        Ok(self
            .find_contact_folder_marked(mailbox, name)
            .await?
            .map(|f| f.id))
    }

    /// The child folder of the default Contacts folder named `name`, if any, with its marker
    /// (one list call with `$expand`).
    pub async fn find_contact_folder_marked(
        &self,
        mailbox: &str,
        name: &str,
    ) -> Result<Option<ContactFolder>, GraphError> {
        let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
        let expand = property::expand_synced_by();
        let url = self.user_url(
            mailbox,
            &["contactFolders"],
            &[
                ("$filter", &filter),
                ("$select", "id,displayName"),
                ("$expand", &expand),
            ],
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
                .and_then(contact_folder)
        });
        Ok(found)
    }

    /// The id of the folder `name` under the default Contacts folder, created if missing.
    pub async fn ensure_contact_folder(
        &self,
        mailbox: &str,
        name: &str,
    ) -> Result<String, GraphError> {
        Ok(self
            .ensure_contact_folder_marked(mailbox, name, None)
            .await?
            .id)
    }

    /// The folder `name` under the default Contacts folder, created if missing (with the
    /// marker `synced_by`, when given). A folder found is left as it is.
    pub async fn ensure_contact_folder_marked(
        &self,
        mailbox: &str,
        name: &str,
        synced_by: Option<&str>,
    ) -> Result<ContactFolder, GraphError> {
        if let Some(f) = self.find_contact_folder_marked(mailbox, name).await? {
            return Ok(f);
        }
        let mut body = json!({"displayName": name});
        if let Some(v) = synced_by {
            body["singleValueExtendedProperties"] =
                json!([{"id": property::synced_by_property(), "value": v}]);
        }
        let mut create = Request::new(
            Method::POST,
            self.user_url(mailbox, &["contactFolders"], &[]),
            "contactFolders",
        )
        .body(body);
        create.once = true;
        match self.send(mailbox, &create).await {
            Ok(answer) => answer.body["id"]
                .as_str()
                .map(|id| ContactFolder {
                    id: id.to_string(),
                    synced_by: synced_by.map(str::to_string),
                })
                .ok_or_else(|| {
                    GraphError::new(
                        ErrorKind::Transport,
                        format!("creating folder {name} of {mailbox}: the answer has no id"),
                    )
                }),
            // Made meanwhile, or perhaps made before the answer was lost.
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::Unavailable) => self
                .find_contact_folder_marked(mailbox, name)
                .await?
                .ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// PATCH of the contactFolder `id`: its marker set to `value`.
    pub async fn set_contact_folder_marker(
        &self,
        mailbox: &str,
        id: &str,
        value: &str,
    ) -> Result<(), GraphError> {
        let patch = Request::new(
            Method::PATCH,
            self.user_url(mailbox, &["contactFolders", id], &[]),
            "contactFolder",
        )
        .body(json!({
            "singleValueExtendedProperties": [{"id": property::synced_by_property(), "value": value}]
        }));
        self.send(mailbox, &patch).await.map(|_| ())
    }
}

fn contact_folder(f: &serde_json::Value) -> Option<ContactFolder> {
    Some(ContactFolder {
        id: f["id"].as_str()?.to_string(),
        synced_by: property::value(f, &property::synced_by_property()).map(str::to_string),
    })
}
