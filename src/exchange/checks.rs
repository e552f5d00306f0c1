//! `tether test-connection`'s Exchange checks over EWS: the endpoint (Autodiscover or the
//! configured URL), the service account's credentials and impersonation of a rep, the rep's
//! Salesforce_Sync folder and calendar. Each passes or fails with what to do.

use super::client::{EwsClient, FolderRef};
use super::error::{EwsError, MailboxProblem, mailbox_problem};
use crate::checks::{Check, fail, pass};

pub async fn run(client: &EwsClient, mailbox: Option<String>, out: &mut Vec<Check>) {
    match client.ews_url().await {
        Ok(url) => out.push(pass("Exchange: EWS endpoint", url.to_string())),
        Err(e) => {
            out.push(fail(
                "Exchange: EWS endpoint",
                e.to_string(),
                "set `ews_url`, or make Autodiscover answer for the service account's domain",
            ));
            return;
        }
    }
    let Some(mailbox) = mailbox else {
        out.push(fail(
            "Exchange: impersonation",
            "no rep to test with",
            "pass --user EMAIL, or list a user in an active sync configuration",
        ));
        return;
    };
    // One call tells three things: TLS and reachability, the credentials, impersonation.
    match client.get_folder(&mailbox, &FolderRef::contacts()).await {
        Ok(_) => {
            out.push(pass("Exchange: service account credentials", "accepted"));
            out.push(pass(
                format!("Exchange: impersonation of {mailbox}"),
                "allowed",
            ));
        }
        Err(e) => {
            out.push(exchange_failure(&mailbox, &e));
            return;
        }
    }
    match client
        .find_folder(&mailbox, &FolderRef::contacts(), "Salesforce_Sync")
        .await
    {
        Ok(Some(_)) => out.push(pass(
            format!("Exchange: Salesforce_Sync folder of {mailbox}"),
            "found",
        )),
        Ok(None) => out.push(pass(
            format!("Exchange: Salesforce_Sync folder of {mailbox}"),
            "not there yet; the first apply creates it under Contacts",
        )),
        Err(e) => out.push(fail(
            format!("Exchange: Salesforce_Sync folder of {mailbox}"),
            e.to_string(),
            "check the service account's access to the mailbox's Contacts folder",
        )),
    }
    match client.get_folder(&mailbox, &FolderRef::calendar()).await {
        Ok(_) => out.push(pass(format!("Exchange: calendar of {mailbox}"), "found")),
        Err(e) => out.push(fail(
            format!("Exchange: calendar of {mailbox}"),
            e.to_string(),
            "check the service account's access to the mailbox's calendar",
        )),
    }
}

/// What a failed first EWS call says about the setup.
fn exchange_failure(mailbox: &str, e: &EwsError) -> Check {
    match e {
        EwsError::Unauthorized(_) => fail(
            "Exchange: service account credentials",
            e.to_string(),
            "check the username and password (or the app's client secret) and that the account is not locked",
        ),
        EwsError::Transport(_) | EwsError::Config(_) => fail(
            "Exchange: EWS reachable over TLS",
            e.to_string(),
            "check the URL, the network path and the server certificate (`ca_file` for a private CA)",
        ),
        _ => match e.code().and_then(mailbox_problem) {
            Some(MailboxProblem::ImpersonationDenied) => fail(
                format!("Exchange: impersonation of {mailbox}"),
                e.to_string(),
                "give the service account the ApplicationImpersonation role with a management scope that includes this mailbox (`tether setup exchange` prints the commands)",
            ),
            Some(MailboxProblem::NoMailbox) => fail(
                format!("Exchange: impersonation of {mailbox}"),
                e.to_string(),
                "check that the rep's Salesforce email is their Exchange primary address, or add the domain to `additional_domains`",
            ),
            _ => fail(
                format!("Exchange: impersonation of {mailbox}"),
                e.to_string(),
                "see the error; run again with --user to test another mailbox",
            ),
        },
    }
}
