//! Who may read which record, answered through `UserRecordAccess`.
//!
//! A deliberately small sharing model: every object starts with the organization-wide
//! default Public Read Only (every user reads every record, as tests not about sharing
//! expect). An object made private (`EmulatorHandle::set_private`) is readable by the
//! record's owner, by users it was shared with (`EmulatorHandle::share`, standing in for
//! manual shares, sharing rules and the role hierarchy) and by System Administrators (View
//! All Data); owners and System Administrators may also edit and delete.
//!
//! UserRecordAccess (Object Reference): "a query must include `UserId = [single ID]` and
//! `RecordId = [single ID]` or `RecordId IN [list of IDs]`", at most 200 RecordIds. The
//! documentation names no error for a query that breaks this; MALFORMED_QUERY is what SOQL
//! answers for a query it cannot run.

use super::soql::{Cond, Literal, SoqlError};
use super::store::Store;
use crate::salesforce::ids;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// RecordIds one UserRecordAccess query may name.
pub const MAX_RECORD_IDS: usize = 200;

#[derive(Debug, Default, Clone)]
pub struct Sharing {
    /// Objects (lower-case names) whose organization-wide default is Private.
    pub private: BTreeSet<String>,
    /// (record id, user id), both 18 characters: the record is shared with the user.
    pub shares: BTreeSet<(String, String)>,
}

/// A user's access to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    Read,
    /// The owner's (or a System Administrator's): read, edit, delete.
    All,
}

impl Store {
    /// What `user_id` may do with the live record `record_id`.
    pub fn access(&self, user_id: &str, record_id: &str) -> Access {
        let (Some(user), Some(record)) = (ids::to_18(user_id), ids::to_18(record_id)) else {
            return Access::None;
        };
        let Some((schema, rec)) = self.find(&record).filter(|(_, r)| r.deleted.is_none()) else {
            return Access::None;
        };
        if self.views_all_data(&user)
            || rec.fields.get("OwnerId").and_then(Value::as_str) == Some(user.as_str())
        {
            Access::All
        } else if !self
            .sharing
            .private
            .contains(&schema.name.to_ascii_lowercase())
            || self.sharing.shares.contains(&(record, user))
        {
            Access::Read
        } else {
            Access::None
        }
    }

    /// System Administrators have View All Data.
    fn views_all_data(&self, user_id: &str) -> bool {
        let profile = self
            .find(user_id)
            .and_then(|(_, u)| u.fields.get("ProfileId")?.as_str().map(str::to_string));
        profile
            .and_then(|p| self.find(&p))
            .and_then(|(_, p)| p.fields.get("Name")?.as_str().map(str::to_string))
            .is_some_and(|name| name == "System Administrator")
    }

    /// The UserRecordAccess rows a query's filter asks for: one per RecordId named, for the
    /// one UserId named.
    pub fn user_record_access(
        &self,
        filter: Option<&Cond>,
    ) -> Result<Vec<Map<String, Value>>, SoqlError> {
        let malformed = |message: &str| SoqlError {
            code: "MALFORMED_QUERY",
            message: message.into(),
        };
        let parts: Vec<&Cond> = match filter {
            Some(Cond::And(items)) => items.iter().collect(),
            Some(c) => vec![c],
            None => Vec::new(),
        };
        let mut user = None;
        let mut records: Option<Vec<String>> = None;
        for c in parts {
            match c {
                Cond::Cmp(p, "=", Literal::Str(v)) if p.hops.is_empty() => {
                    match p.leaf.name.as_str() {
                        "UserId" => user = Some(v.clone()),
                        "RecordId" => records = Some(vec![v.clone()]),
                        _ => {}
                    }
                }
                Cond::In(p, false, lits) if p.hops.is_empty() && p.leaf.name == "RecordId" => {
                    records = Some(
                        lits.iter()
                            .filter_map(|l| match l {
                                Literal::Str(s) => Some(s.clone()),
                                _ => None,
                            })
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        let (Some(user), Some(records)) = (user, records) else {
            return Err(malformed(
                "UserRecordAccess: the query must filter on UserId = one user and on RecordId = one id or RecordId IN (ids)",
            ));
        };
        if records.len() > MAX_RECORD_IDS {
            return Err(malformed(&format!(
                "UserRecordAccess: at most {MAX_RECORD_IDS} RecordIds per query, got {}",
                records.len()
            )));
        }
        Ok(records
            .into_iter()
            .map(|record| {
                let access = self.access(&user, &record);
                let all = access == Access::All;
                let row = json!({
                    "UserId": user, "RecordId": record,
                    "HasReadAccess": access >= Access::Read, "HasEditAccess": all,
                    "HasDeleteAccess": all,
                    "MaxAccessLevel": match access {
                        Access::All => "All",
                        Access::Read => "Read",
                        Access::None => "None",
                    },
                });
                match row {
                    Value::Object(m) => m,
                    _ => Map::new(),
                }
            })
            .collect())
    }
}
