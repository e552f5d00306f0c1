//! Microsoft Graph client (app-only) for Exchange Online mailboxes.
