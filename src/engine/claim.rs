//! One mailbox, one org: before a rep's mailbox is synced, the marker on its Salesforce_Sync
//! folder (read with the folder, no call of its own) tells who syncs it. This tether's own
//! marker: go on. None: the plan shows the marker to write, and apply writes it (one call)
//! before anything else in the mailbox. Another org's: the rep is refused with a per-rep
//! error naming that org, and the other reps sync — unless the rep is marked for reset
//! here, which is how an admin moves a mailbox to this org (the marker is rewritten, and
//! the reset re-links the rep's records by matching). Another state of this same org (a
//! state file lost or moved aside) is this org: it goes on, re-linking by matching.

use crate::engine::connector::{FolderMarker, MailConnector, MailboxMarker, Refusal, RepError};
use crate::engine::reps::Rep;

/// The code of the per-rep error for a mailbox another tether syncs.
pub const CLAIMED_ELSEWHERE: &str = "MAILBOX_SYNCED_BY_ANOTHER_ORG";

/// A marker the cycle writes (or, planning, would write) on a rep's Salesforce_Sync folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerWrite {
    /// The rep's email.
    pub rep: String,
    /// The marker it replaces (a reset taking the mailbox over), if any.
    pub previous: Option<MailboxMarker>,
}

/// Checks `rep`'s mailbox marker against `ours` once its Salesforce_Sync folder was read:
/// `Ok(Some(_))` when it is to be written (and, unless `read_only`, was written), `Err` when
/// another tether syncs the mailbox. `reset`: the rep is marked for reset in this state.
pub async fn check<M: MailConnector>(
    mail: &M,
    rep: &Rep,
    ours: &MailboxMarker,
    reset: bool,
    read_only: bool,
) -> Result<Option<MarkerWrite>, RepError> {
    let previous = match mail.folder_marker(&rep.mailbox) {
        None => return Ok(None),
        Some(FolderMarker::Unmarked) => None,
        Some(FolderMarker::Marked(value)) => match MailboxMarker::parse(&value) {
            Some(theirs) if theirs.is_same_org(ours) => return Ok(None),
            Some(theirs) if reset => Some(theirs),
            Some(theirs) => return Err(claimed(rep, &theirs)),
            None if reset => None,
            None => return Err(unreadable(rep, &value)),
        },
    };
    if !read_only {
        mail.mark_folder(&rep.mailbox, ours).await?;
    }
    Ok(Some(MarkerWrite {
        rep: rep.email.clone(),
        previous,
    }))
}

fn refused(message: String, hint: String) -> RepError {
    RepError::ClaimedElsewhere(Refusal {
        code: CLAIMED_ELSEWHERE.into(),
        message,
        hint,
    })
}

/// How to move a mailbox from one tether to this one.
fn to_move(rep: &Rep, other: &str) -> String {
    format!(
        "the same user must not sync from two orgs: leave {} out of \
         one org's sync configurations. To move the mailbox to this org, stop syncing it in \
         {other} (remove the user from its configurations, or `tether reset` it there if that \
         state goes on), then run `tether reset {}` here: the next apply takes the mailbox \
         over and re-links its records by matching, without duplicates.",
        rep.email, rep.email
    )
}

fn claimed(rep: &Rep, theirs: &MailboxMarker) -> RepError {
    refused(
        format!("mailbox {} is synced by {theirs}", rep.mailbox.address),
        to_move(rep, &format!("org {}", theirs.org)),
    )
}

fn unreadable(rep: &Rep, value: &str) -> RepError {
    let shown: String = value.chars().take(80).collect();
    refused(
        format!(
            "mailbox {}: its Salesforce_Sync folder carries a sync marker tether cannot read \
             ({shown:?})",
            rep.mailbox.address
        ),
        to_move(rep, "the tether that wrote it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::Mailbox;

    fn rep() -> Rep {
        Rep {
            user_id: "005A".into(),
            email: "rep@example.com".into(),
            mailbox: Mailbox {
                address: "rep@example.com".into(),
            },
            configuration: 0,
            time_zone: chrono_tz::UTC,
        }
    }

    #[test]
    fn a_marker_round_trips_and_names_the_org() {
        let m = MailboxMarker {
            org: "00D000000000001".into(),
            name: "acme-prod".into(),
            state: "0123456789abcdef".into(),
        };
        assert_eq!(MailboxMarker::parse(&m.encode()), Some(m.clone()));
        let e = claimed(&rep(), &m);
        assert_eq!(e.code(), CLAIMED_ELSEWHERE);
        assert_eq!(
            e.message(),
            "mailbox rep@example.com is synced by org 00D000000000001 (acme-prod, state \
             0123456789abcdef)"
        );
        assert!(
            e.suggestion()
                .contains("`tether reset rep@example.com` here")
        );
    }
}
