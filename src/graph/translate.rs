//! `translateExchangeIds`: the Graph ids of items EWS named. An org that switches
//! `api: ews` to `api: graph` keeps its links, which hold EWS ItemIds; Graph names the same
//! items with other ids (immutable ids, as tether asks for), so the first Graph read
//! translates the links' ids (learn.microsoft.com/graph/api/user-translateexchangeids).
//!
//! Unverified on a real tenant: the 2021 revision of that page grants the call to apps
//! (`User.Read.All` application permission), today's v1.0 page says "Application: Not
//! supported". If the service refuses the app, the rep's read fails with that error (its
//! links are kept; nothing is created or deleted), and the org needs another way across.

use super::client::{GraphClient, Request};
use super::error::{ErrorKind, GraphError};
use reqwest::Method;
use serde_json::json;

/// Most ids one call takes ("Maximum size of this collection is 1000 strings").
pub const TRANSLATE_LIMIT: usize = 1000;

impl GraphClient {
    /// (EWS id, immutable Graph id) for each of `ews_ids` (≤ [`TRANSLATE_LIMIT`]) the
    /// service translated; an id it could not (gone, malformed) is left out.
    pub async fn translate_ews_ids(
        &self,
        mailbox: &str,
        ews_ids: &[String],
    ) -> Result<Vec<(String, String)>, GraphError> {
        let url = self.user_url(mailbox, &["translateExchangeIds"], &[]);
        let body = json!({
            "inputIds": ews_ids,
            "sourceIdType": "ewsId",
            "targetIdType": "restImmutableEntryId",
        });
        let req = Request::new(Method::POST, url, "translateExchangeIds").body(body);
        let answer = self.send(mailbox, &req).await?;
        let results = answer.body["value"].as_array().ok_or_else(|| {
            GraphError::new(
                ErrorKind::Transport,
                format!("translateExchangeIds of {mailbox}: the answer has no `value` list"),
            )
        })?;
        Ok(results
            .iter()
            .filter_map(|r| {
                let source = r["sourceId"].as_str()?;
                let target = r["targetId"].as_str()?;
                ews_ids
                    .iter()
                    .any(|i| i == source)
                    .then(|| (source.to_string(), target.to_string()))
            })
            .collect())
    }
}
