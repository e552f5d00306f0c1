//! Creating tether's items so that a lost answer never makes a duplicate: every item carries
//! the Salesforce id in its extended property (searched before creating again), and an
//! event also a `transactionId`, with which the service itself refuses a second copy.

use super::client::{GraphClient, Request};
use super::error::{ErrorKind, GraphError};
use super::property;
use reqwest::Method;
use serde_json::Value;

impl GraphClient {
    /// Creates `contact` in folder `folder_id`, marked with `salesforce_id`. Sent once: if the
    /// answer is lost the error is `Unavailable`; look for it with
    /// [`find_contact_by_salesforce_id`](Self::find_contact_by_salesforce_id) before trying again.
    pub async fn create_contact(
        &self,
        mailbox: &str,
        folder_id: &str,
        mut contact: Value,
        salesforce_id: &str,
    ) -> Result<Value, GraphError> {
        contact["singleValueExtendedProperties"] = property::member(salesforce_id);
        let url = self.user_url(mailbox, &["contactFolders", folder_id, "contacts"], &[]);
        let mut req = Request::new(Method::POST, url, "contacts").body(contact);
        req.once = true;
        Ok(self.send(mailbox, &req).await?.body)
    }

    /// Creates `event` in the default calendar, marked with `salesforce_id` and carrying
    /// `transaction_id` (the same for every attempt at this event), so it may be resent.
    pub async fn create_event(
        &self,
        mailbox: &str,
        mut event: Value,
        salesforce_id: &str,
        transaction_id: &str,
    ) -> Result<Value, GraphError> {
        event["singleValueExtendedProperties"] = property::member(salesforce_id);
        event["transactionId"] = Value::String(transaction_id.to_string());
        let url = self.user_url(mailbox, &["events"], &[]);
        let req = Request::new(Method::POST, url, "events").body(event);
        Ok(self.send(mailbox, &req).await?.body)
    }

    /// The contacts of folder `folder_id` marked with `salesforce_id` (normally one).
    pub async fn find_contact_by_salesforce_id(
        &self,
        mailbox: &str,
        folder_id: &str,
        salesforce_id: &str,
    ) -> Result<Vec<Value>, GraphError> {
        self.find_marked(
            mailbox,
            &["contactFolders", folder_id, "contacts"],
            salesforce_id,
        )
        .await
    }

    /// The events of the rep's mailbox marked with `salesforce_id`.
    pub async fn find_event_by_salesforce_id(
        &self,
        mailbox: &str,
        salesforce_id: &str,
    ) -> Result<Vec<Value>, GraphError> {
        self.find_marked(mailbox, &["events"], salesforce_id).await
    }

    async fn find_marked(
        &self,
        mailbox: &str,
        collection: &[&str],
        salesforce_id: &str,
    ) -> Result<Vec<Value>, GraphError> {
        let (filter, expand) = (property::filter(salesforce_id), property::expand());
        let url = self.user_url(
            mailbox,
            collection,
            &[("$filter", &filter), ("$expand", &expand)],
        );
        let answer = self
            .send(mailbox, &Request::new(Method::GET, url, "find"))
            .await?;
        let items = answer.body["value"].as_array().ok_or_else(|| {
            GraphError::new(
                ErrorKind::Transport,
                format!("search of {mailbox}: the answer has no `value` list"),
            )
        })?;
        // Only items that really carry the id: the filter is the service's.
        Ok(items
            .iter()
            .filter(|i| property::value_of(i) == Some(salesforce_id))
            .cloned()
            .collect())
    }
}
