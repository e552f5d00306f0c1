//! Delta rounds: the changes since a cursor (a deltaLink), page by page through
//! `@odata.nextLink` until the round's `@odata.deltaLink`. Items gone carry `@removed`.
//! A cursor the service no longer accepts is its own outcome: the caller starts a full round
//! and reconciles it with what it knows, deleting nothing for it.

use super::client::{GraphClient, Request};
use super::error::{ErrorKind, GraphError};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::Value;
use url::Url;

/// A round is abandoned after this many pages (a service handing out nextLinks forever).
const MAX_PAGES: u32 = 10_000;

/// The changes of one complete round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaRound {
    /// Items added or changed, as Graph sent them (updates may be partial; an item may
    /// appear more than once in a round).
    pub changed: Vec<Value>,
    /// Ids of items deleted (or, for calendarView, moved out of the window).
    pub removed: Vec<String>,
    /// The cursor for the next round.
    pub delta_link: String,
    pub pages: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeltaOutcome {
    Round(DeltaRound),
    /// The cursor was refused (410 `SyncStateNotFound`, `resyncRequired`, …): start a full
    /// round without it. Carries the service's answer.
    CursorExpired(GraphError),
}

/// The calendar window of a calendarView delta; frozen in its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One page of a round: its items and where the round goes on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaPage {
    pub changed: Vec<Value>,
    pub removed: Vec<String>,
    /// `@odata.nextLink` (more pages) or, on the last page, `@odata.deltaLink`.
    pub link: String,
    /// `link` is the round's deltaLink: the round is complete.
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PageOutcome {
    Page(DeltaPage),
    /// The cursor was refused: start a full round without it.
    CursorExpired(GraphError),
}

impl GraphClient {
    /// The first request of a contacts round over folder `folder_id`; `select` limits the
    /// properties (id always comes).
    pub fn contacts_delta_url(&self, mailbox: &str, folder_id: &str, select: &[&str]) -> Url {
        let select = select.join(",");
        let query: Vec<(&str, &str)> = if select.is_empty() {
            Vec::new()
        } else {
            vec![("$select", select.as_str())]
        };
        self.user_url(
            mailbox,
            &["contactFolders", folder_id, "contacts", "delta"],
            &query,
        )
    }

    /// The first request of a calendarView round over `window` (the service takes no
    /// `$select` here).
    pub fn calendar_view_delta_url(&self, mailbox: &str, window: Window) -> Url {
        let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let (start, end) = (iso(window.start), iso(window.end));
        self.user_url(
            mailbox,
            &["calendarView", "delta"],
            &[("startDateTime", &start), ("endDateTime", &end)],
        )
    }

    /// Changes to the contacts of folder `folder_id` since `cursor` (a deltaLink), or all of
    /// them without one. `select` limits the properties (id always comes).
    pub async fn contacts_delta(
        &self,
        mailbox: &str,
        folder_id: &str,
        select: &[&str],
        cursor: Option<&str>,
    ) -> Result<DeltaOutcome, GraphError> {
        let first = match cursor {
            Some(link) => self.cursor_url(link)?,
            None => self.contacts_delta_url(mailbox, folder_id, select),
        };
        self.delta_round(mailbox, first, cursor.is_some()).await
    }

    /// Changes to the default calendar's events in `window` since `cursor`. Occurrences and
    /// exceptions come, series masters do not; `@removed` also names events that left the
    /// window. Times in UTC. The service takes no `$select` here.
    pub async fn calendar_view_delta(
        &self,
        mailbox: &str,
        window: Window,
        cursor: Option<&str>,
    ) -> Result<DeltaOutcome, GraphError> {
        let first = match cursor {
            Some(link) => self.cursor_url(link)?,
            None => self.calendar_view_delta_url(mailbox, window),
        };
        self.delta_round(mailbox, first, cursor.is_some()).await
    }

    /// A saved nextLink or deltaLink, checked to be on this Graph.
    pub fn cursor_url(&self, link: &str) -> Result<Url, GraphError> {
        let url = Url::parse(link).map_err(|_| {
            GraphError::new(
                ErrorKind::CursorExpired,
                "the saved delta link is not a URL",
            )
        })?;
        if !self.is_own_link(&url) {
            return Err(GraphError::new(
                ErrorKind::CursorExpired,
                format!(
                    "the saved delta link is not on {}",
                    self.options().graph_url
                ),
            ));
        }
        Ok(url)
    }

    /// One page of a round at `url` (a first request, a nextLink or a deltaLink).
    /// `resumed`: `url` carries a cursor's state (any link), so a refusal is
    /// `CursorExpired`.
    pub async fn delta_page(
        &self,
        mailbox: &str,
        url: Url,
        resumed: bool,
    ) -> Result<PageOutcome, GraphError> {
        let mut req = Request::new(Method::GET, url, "delta");
        req.prefer
            .push(format!("odata.maxpagesize={}", self.options().page_size));
        req.delta = resumed;
        let page = match self.send(mailbox, &req).await {
            Ok(a) => a.body,
            Err(e) if e.kind == ErrorKind::CursorExpired => {
                return Ok(PageOutcome::CursorExpired(e));
            }
            Err(e) => return Err(e),
        };
        let items = page["value"].as_array().ok_or_else(|| {
            GraphError::new(
                ErrorKind::Transport,
                format!("delta of {mailbox}: a page without `value`"),
            )
        })?;
        let mut out = DeltaPage::default();
        for item in items {
            let Some(id) = item["id"].as_str() else {
                return Err(GraphError::new(
                    ErrorKind::Transport,
                    format!("delta of {mailbox}: an item without `id`"),
                ));
            };
            if item.get("@removed").is_some() {
                out.removed.push(id.to_string());
            } else {
                out.changed.push(item.clone());
            }
        }
        let link = |name: &str| page[name].as_str().map(str::to_string);
        (out.link, out.last) = match (link("@odata.deltaLink"), link("@odata.nextLink")) {
            (Some(delta), _) => (delta, true),
            (None, Some(next)) => (next, false),
            (None, None) => {
                return Err(GraphError::new(
                    ErrorKind::Transport,
                    format!("delta of {mailbox}: a page with neither nextLink nor deltaLink"),
                ));
            }
        };
        // Links are followed with the app's token: never to another host.
        if Url::parse(&out.link)
            .ok()
            .filter(|u| self.is_own_link(u))
            .is_none()
        {
            return Err(GraphError::new(
                ErrorKind::Transport,
                format!("delta of {mailbox}: a link that is not on this Graph"),
            ));
        }
        Ok(PageOutcome::Page(out))
    }

    async fn delta_round(
        &self,
        mailbox: &str,
        first: Url,
        resumed: bool,
    ) -> Result<DeltaOutcome, GraphError> {
        let mut round = DeltaRound::default();
        let mut url = first;
        loop {
            if round.pages >= MAX_PAGES {
                return Err(GraphError::new(
                    ErrorKind::Transport,
                    format!("delta of {mailbox}: no deltaLink after {MAX_PAGES} pages"),
                ));
            }
            // Every link of a round carries the cursor's state.
            let page = match self
                .delta_page(mailbox, url, resumed || round.pages > 0)
                .await?
            {
                PageOutcome::Page(p) => p,
                PageOutcome::CursorExpired(e) => return Ok(DeltaOutcome::CursorExpired(e)),
            };
            round.pages += 1;
            round.changed.extend(page.changed);
            round.removed.extend(page.removed);
            if page.last {
                round.delta_link = page.link;
                return Ok(DeltaOutcome::Round(round));
            }
            url = Url::parse(&page.link).map_err(|_| {
                GraphError::new(ErrorKind::Transport, "a nextLink that is not a URL")
            })?;
        }
    }
}
