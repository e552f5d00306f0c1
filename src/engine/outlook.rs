//! `events.which: user_selected` syncs only the events reps relate to Salesforce in Outlook,
//! which they do through the org's Outlook integration. A cycle that has such a
//! configuration reads the org's setting first (one call; none otherwise): off, nothing can
//! be related, so the cycle stops before planning and says what to do; unreadable (no
//! permission), it goes on and the reason is kept for `tether status`.

use crate::config::model::{Config, Direction, EventSelection};
use crate::engine::connector::CrmConnector;
use crate::engine::cycle::CycleError;
use crate::state::OutlookIntegrationFact;

/// The active configurations that sync only the events reps select in Outlook.
pub fn configurations_needing_it(config: &Config) -> Vec<&str> {
    config
        .sync_configurations
        .iter()
        .filter(|c| c.active)
        .filter(|c| {
            c.events.as_ref().is_some_and(|e| {
                e.which == EventSelection::UserSelected && e.direction != Direction::None
            })
        })
        .map(|c| c.name.as_str())
        .collect()
}

/// Reads the setting when a configuration needs it: `Ok(None)` when none does (or the CRM
/// has no such setting), an error when it is off.
pub async fn check<C: CrmConnector>(
    config: &Config,
    crm: &C,
) -> Result<Option<OutlookIntegrationFact>, CycleError> {
    let needing = configurations_needing_it(config);
    if needing.is_empty() {
        return Ok(None);
    }
    match crm.outlook_integration().await {
        Ok(None) => Ok(None),
        Ok(Some(true)) => Ok(Some(OutlookIntegrationFact::Enabled(true))),
        Ok(Some(false)) => Err(CycleError::OrgSetting(format!(
            "the org's Outlook integration is disabled, and sync configuration{} {} sync only \
             the events reps relate to Salesforce in Outlook (events.which: user_selected), \
             which needs it: nothing would sync. Enable it in Salesforce Setup (Outlook \
             Integration and Sync), or set `events.which: all`",
            if needing.len() == 1 { "" } else { "s" },
            needing
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Err(why) => {
            tracing::warn!(%why, "the org's Outlook integration setting could not be read");
            Ok(Some(OutlookIntegrationFact::NotRead(why)))
        }
    }
}
