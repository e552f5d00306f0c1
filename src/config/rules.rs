//! Semantic rules: what the schema cannot say. Each rule reads the typed configuration and
//! points its findings at the YAML node they are about.

use super::diag::{Diagnostic, Severity};
use super::load::Unit;
use super::model::*;
use super::schema::did_you_mean;
use super::source::Span;
use super::yaml::{Kind, Node};
use crate::model::catalog::{
    self, DEFAULT_CONTACT_MAPPINGS, DEFAULT_EVENT_MAPPINGS, DefaultMapping, EXCHANGE_CALENDAR,
    EXCHANGE_CONTACT, ExchangeProperty, FieldType, SalesforceObject,
};
use std::collections::BTreeMap;
use std::path::Path;

/// A configuration that passed the schema, with its tree for positions.
pub struct Checked<'a> {
    pub unit: &'a Unit,
    pub config: &'a Config,
}

impl Checked<'_> {
    fn at(&self, pointer: &str) -> Option<Span> {
        self.unit.tree.lookup(pointer, false).map(|n| n.span)
    }
    fn key_at(&self, pointer: &str) -> Option<Span> {
        self.unit.tree.lookup(pointer, true).map(|n| n.span)
    }
}

fn esc(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Rules about one configuration.
pub fn check(c: &Checked<'_>, strict: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    postgres_state(c, &mut out);
    unique_configuration_names(c, &mut out);
    one_active_configuration_per_user(c, &mut out);
    for (i, sc) in c.config.sync_configurations.iter().enumerate() {
        let base = format!("/sync_configurations/{i}");
        if sc.active && sc.members.users.is_empty() && sc.members.profiles.is_empty() {
            out.push(
                Diagnostic::warning(
                    c.key_at(&format!("{base}/name")),
                    format!("active configuration `{}` has no members", sc.name),
                )
                .with_hint("add users or profiles under `members`, or set `active: false`"),
            );
        }
        member_emails(c, &base, sc, &mut out);
        if let Some(contacts) = &sc.contacts {
            let p = format!("{base}/contacts");
            conflict_policy(c, &p, contacts.direction, contacts.conflict, &mut out);
            contact_scope_and_filters(c, &p, contacts, &mut out);
            field_mappings(
                c,
                &p,
                SalesforceObject::Contact,
                contacts.direction,
                &contacts.field_mappings,
                &mut out,
            );
        }
        if let Some(events) = &sc.events {
            let p = format!("{base}/events");
            conflict_policy(c, &p, events.direction, events.conflict, &mut out);
            since_window(c, &p, &events.since, &mut out);
            if events.send_cancellations && c.config.connections.exchange.api() == ExchangeApi::Ews
            {
                out.push(
                    Diagnostic::warning(
                        c.key_at(&format!("{p}/send_cancellations")),
                        "`send_cancellations` has no effect over EWS: EWS deletes a meeting without mailing its attendees",
                    )
                    .with_hint("remove it, or keep it for when the connection moves to `api: graph`"),
                );
            }
            if events.which == EventSelection::UserSelected && !c.config.outlook_integration.enabled
            {
                out.push(
                    Diagnostic::error(c.at(&format!("{p}/which")), "`which: user_selected` needs the Outlook integration")
                        .with_hint("set `outlook_integration: { enabled: true }` (and enable it in Salesforce Setup), or use `which: all`"),
                );
            }
            field_mappings(
                c,
                &p,
                SalesforceObject::Event,
                events.direction,
                &events.field_mappings,
                &mut out,
            );
        }
    }
    connections(c, &mut out);
    secret_references(c, strict, &mut out);
    out
}

fn unique_configuration_names(c: &Checked<'_>, out: &mut Vec<Diagnostic>) {
    let configs = &c.config.sync_configurations;
    for (j, sc) in configs.iter().enumerate() {
        if let Some(i) = configs[..j]
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&sc.name))
        {
            let mut d = Diagnostic::error(
                c.at(&format!("/sync_configurations/{j}/name")),
                format!("sync configuration name `{}` is used twice", sc.name),
            )
            .with_hint("configuration names must be unique (ignoring case); rename one");
            if let Some(first) = c.at(&format!("/sync_configurations/{i}/name")) {
                d = d.with_related("first used", first);
            }
            out.push(d);
        }
    }
}

fn one_active_configuration_per_user(c: &Checked<'_>, out: &mut Vec<Diagnostic>) {
    let configs = &c.config.sync_configurations;
    // email → (configuration index, user index), first active listing.
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, sc) in configs.iter().enumerate().filter(|(_, sc)| sc.active) {
        for (u, user) in sc.members.users.iter().enumerate() {
            let here = format!("/sync_configurations/{i}/members/users/{u}");
            match seen.get(&user.to_lowercase()) {
                Some(&(fi, fu)) => {
                    let first = format!("/sync_configurations/{fi}/members/users/{fu}");
                    let summary = if fi == i {
                        format!("user `{user}` is listed twice in `{}`", sc.name)
                    } else {
                        format!(
                            "user `{user}` is listed in two active configurations: `{}` and `{}`",
                            configs[fi].name, sc.name
                        )
                    };
                    let severity = if fi == i {
                        Severity::Warning
                    } else {
                        Severity::Error
                    };
                    let mut d = Diagnostic::new(severity, c.at(&here), summary).with_hint(
                        "a user syncs under one configuration; remove the user from one of them",
                    );
                    if let Some(span) = c.at(&first) {
                        d = d.with_related("first listed", span);
                    }
                    out.push(d);
                }
                None => {
                    seen.insert(user.to_lowercase(), (i, u));
                }
            }
        }
    }
    // A profile in two active configurations would put its users in both.
    let mut profiles: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, sc) in configs.iter().enumerate().filter(|(_, sc)| sc.active) {
        for (p, profile) in sc.members.profiles.iter().enumerate() {
            let here = format!("/sync_configurations/{i}/members/profiles/{p}");
            if let Some(&(fi, fp)) = profiles.get(&profile.to_lowercase()) {
                if fi != i {
                    let mut d = Diagnostic::error(
                        c.at(&here),
                        format!(
                            "profile `{profile}` is in two active configurations: `{}` and `{}`",
                            configs[fi].name, sc.name
                        ),
                    )
                    .with_hint(
                        "its users would sync under both; keep the profile in one configuration",
                    );
                    if let Some(span) =
                        c.at(&format!("/sync_configurations/{fi}/members/profiles/{fp}"))
                    {
                        d = d.with_related("first listed", span);
                    }
                    out.push(d);
                }
            } else {
                profiles.insert(profile.to_lowercase(), (i, p));
            }
        }
    }
    // Listed individually beats membership through a profile: say so where both occur.
    for (i, sc) in configs
        .iter()
        .enumerate()
        .filter(|(_, sc)| sc.active && !sc.members.users.is_empty())
    {
        for other in configs
            .iter()
            .filter(|o| o.active && o.name != sc.name && !o.members.profiles.is_empty())
        {
            out.push(Diagnostic::info(
                c.key_at(&format!("/sync_configurations/{i}/members/users")),
                format!(
                    "users listed in `{}` sync under it even if they have a profile of `{}` ({}): listed individually wins over membership through a profile",
                    sc.name,
                    other.name,
                    other.members.profiles.join(", ")
                ),
            ));
        }
    }
}

fn member_emails(c: &Checked<'_>, base: &str, sc: &SyncConfiguration, out: &mut Vec<Diagnostic>) {
    for (u, user) in sc.members.users.iter().enumerate() {
        if !is_email(user) {
            out.push(
                Diagnostic::error(
                    c.at(&format!("{base}/members/users/{u}")),
                    format!("`{user}` is not an email address"),
                )
                .with_hint("list users by their Salesforce email, e.g. `celia.kung@example.com`"),
            );
        }
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && is_domain(domain)
        && !s
            .chars()
            .any(|ch| ch.is_whitespace() || ch == '\\' || ch == ',')
}

fn is_domain(s: &str) -> bool {
    s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|ch| ch.is_alphanumeric() || ch == '-')
        })
}

fn conflict_policy(
    c: &Checked<'_>,
    p: &str,
    direction: Direction,
    conflict: Option<ConflictPolicy>,
    out: &mut Vec<Diagnostic>,
) {
    match (direction, conflict) {
        (Direction::Both, None) => out.push(
            Diagnostic::error(c.at(&format!("{p}/direction")), "`direction: both` needs a `conflict` policy")
                .with_hint("add `conflict: salesforce_wins` or `conflict: exchange_wins`: it decides records changed on both sides since the last sync"),
        ),
        (d, Some(_)) if d != Direction::Both => out.push(
            Diagnostic::error(c.key_at(&format!("{p}/conflict")), "`conflict` applies only with `direction: both`")
                .with_hint("remove it: in a one-way sync the source side always wins"),
        ),
        _ => {}
    }
}

fn contact_scope_and_filters(
    c: &Checked<'_>,
    p: &str,
    contacts: &ContactSync,
    out: &mut Vec<Diagnostic>,
) {
    if contacts.direction.to_exchange() && contacts.scope.is_none() {
        out.push(
            Diagnostic::error(c.at(&format!("{p}/direction")), "contacts syncing Salesforce→Exchange need a `scope`")
                .with_hint("add `scope: users_records` (the rep's own and selected contacts) or `scope: all_contacts` (all the rep can see)"),
        );
    }
    if contacts.direction == Direction::ExchangeToSalesforce {
        if !contacts.filters.is_empty() {
            out.push(
                Diagnostic::warning(c.key_at(&format!("{p}/filters")), "contact `filters` have no effect with `direction: exchange_to_salesforce`")
                    .with_hint("filters choose which Salesforce contacts go to Exchange; every contact in the rep's Salesforce_Sync folder syncs to Salesforce"),
            );
        }
        if contacts.scope.is_some() {
            out.push(Diagnostic::warning(
                c.key_at(&format!("{p}/scope")),
                "contact `scope` has no effect with `direction: exchange_to_salesforce`",
            ));
        }
    }
    for (i, f) in contacts.filters.iter().enumerate() {
        filter(c, &format!("{p}/filters/{i}"), f, out);
    }
}

fn filter(c: &Checked<'_>, p: &str, f: &Filter, out: &mut Vec<Diagnostic>) {
    let Some(field) = catalog::salesforce_field(SalesforceObject::Contact, &f.field) else {
        let names: Vec<String> = catalog::salesforce_fields(SalesforceObject::Contact)
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let mut d = Diagnostic::error(
            c.at(&format!("{p}/field")),
            format!("unknown Salesforce Contact field `{}`", f.field),
        );
        if let Some(s) = did_you_mean(&f.field, &names) {
            d = d.with_hint(format!("did you mean `{s}`?"));
        }
        out.push(d);
        return;
    };
    use FilterOp::*;
    let ops: &[FilterOp] = match field.ty {
        FieldType::Text
        | FieldType::LongText
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => &[Equals, NotEquals, In, NotIn, StartsWith, Contains],
        FieldType::Picklist | FieldType::Reference => &[Equals, NotEquals, In, NotIn],
        FieldType::Date | FieldType::DateTime | FieldType::Number => &[
            Equals,
            NotEquals,
            In,
            NotIn,
            LessThan,
            LessOrEqual,
            GreaterThan,
            GreaterOrEqual,
        ],
        FieldType::Boolean => &[Equals, NotEquals],
        FieldType::Structured => &[],
    };
    if !ops.contains(&f.op) {
        let valid: Vec<&str> = ops.iter().map(|o| o.name()).collect();
        out.push(
            Diagnostic::error(
                c.at(&format!("{p}/op")),
                format!(
                    "operator `{}` does not apply to `{}`, a {} field",
                    f.op.name(),
                    f.field,
                    field.ty.name()
                ),
            )
            .with_hint(if valid.is_empty() {
                format!("`{}` cannot be filtered on", f.field)
            } else {
                format!("use one of: {}", valid.join(", "))
            }),
        );
        return;
    }
    let (want, other) = if f.op.takes_list() {
        ("values", "value")
    } else {
        ("value", "values")
    };
    let given = if f.op.takes_list() {
        f.values.is_some()
    } else {
        f.value.is_some()
    };
    if !given {
        let mut d = Diagnostic::error(
            c.key_at(&format!("{p}/op")),
            format!("operator `{}` needs `{want}`", f.op.name()),
        );
        if c.at(&format!("{p}/{other}")).is_some() {
            d = d.with_hint(format!("write `{want}:` instead of `{other}:`"));
        }
        out.push(d);
        return;
    }
    let values: Vec<(String, &ScalarValue)> = match (&f.value, &f.values) {
        (Some(v), _) if !f.op.takes_list() => vec![(format!("{p}/value"), v)],
        (_, Some(vs)) => vs
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{p}/values/{i}"), v))
            .collect(),
        _ => Vec::new(),
    };
    for (at, v) in values {
        let ok = match (field.ty, v) {
            (FieldType::Boolean, ScalarValue::Bool(_)) => true,
            (FieldType::Number, ScalarValue::Number(_)) => true,
            (FieldType::Date, ScalarValue::Text(s)) => is_date(s),
            (FieldType::DateTime, ScalarValue::Text(s)) => {
                is_date(s) || s.len() > 10 && is_date(&s[..10])
            }
            (FieldType::Boolean | FieldType::Number | FieldType::Date | FieldType::DateTime, _) => {
                false
            }
            (_, ScalarValue::Text(_)) => true,
            _ => false,
        };
        if !ok {
            out.push(
                Diagnostic::error(
                    c.at(&at),
                    format!(
                        "`{}` is a {} field; this value does not fit it",
                        f.field,
                        field.ty.name()
                    ),
                )
                .with_hint(match field.ty {
                    FieldType::Date | FieldType::DateTime => {
                        "write dates as YYYY-MM-DD".to_string()
                    }
                    FieldType::Boolean => "write true or false".to_string(),
                    FieldType::Number => "write a number".to_string(),
                    _ => "write the value as text (quote it)".to_string(),
                }),
            );
        }
    }
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn since_window(c: &Checked<'_>, p: &str, since: &Since, out: &mut Vec<Diagnostic>) {
    if since.window().is_none() {
        let mut d = Diagnostic::error(
            c.at(&format!("{p}/since")),
            format!("`since: {}` is not valid; use {}", since.0, Since::FORMS),
        );
        if since.0.starts_with("LAST_N_DAYS:") {
            d = Diagnostic::error(
                c.at(&format!("{p}/since")),
                format!(
                    "`since: {}` is out of range: LAST_N_DAYS:n needs n from 1 to {}",
                    since.0,
                    Since::MAX_DAYS
                ),
            )
            .with_hint("Exchange→Salesforce event sync reaches back at most 180 days");
        }
        out.push(d);
    }
}

fn field_mappings(
    c: &Checked<'_>,
    p: &str,
    object: SalesforceObject,
    direction: Direction,
    mappings: &BTreeMap<String, Option<String>>,
    out: &mut Vec<Diagnostic>,
) {
    let (defaults, props, side): (&[DefaultMapping], &[ExchangeProperty], &str) = match object {
        SalesforceObject::Event => (DEFAULT_EVENT_MAPPINGS, EXCHANGE_CALENDAR, "calendar item"),
        _ => (DEFAULT_CONTACT_MAPPINGS, EXCHANGE_CONTACT, "contact"),
    };
    let obj = object.name();
    // The effective Exchange target of each Salesforce field, to find double targets.
    let mut effective: BTreeMap<String, (String, Option<String>)> = defaults
        .iter()
        .map(|d| (d.salesforce.to_string(), (d.exchange.to_string(), None)))
        .collect();
    for (sf, ex) in mappings {
        let key_ptr = format!("{p}/field_mappings/{}", esc(sf));
        let key_span = c.key_at(&key_ptr);
        let value_span = c.at(&key_ptr);
        let default = defaults.iter().find(|d| d.salesforce == sf);
        if let Some(d) = default.filter(|d| d.protected)
            && ex.as_deref() != Some(d.exchange)
        {
            out.push(
                Diagnostic::error(
                    if ex.is_some() { value_span } else { key_span },
                    format!(
                        "the mapping {} ↔ {} cannot be {}: matching and linking records depend on it",
                        d.salesforce,
                        d.exchange,
                        if ex.is_some() { "changed" } else { "removed" }
                    ),
                )
                .with_hint(format!("remove `{sf}` from field_mappings")),
            );
            continue;
        }
        let field = catalog::salesforce_field(object, sf);
        if field.is_none() && default.is_none() {
            if sf.ends_with("__c") {
                out.push(Diagnostic::warning(
                    key_span,
                    format!("custom field `{sf}` is not in the built-in {obj} catalog; it is checked against the org when tether connects"),
                ));
            } else {
                let names: Vec<String> = catalog::salesforce_fields(object)
                    .iter()
                    .map(|f| f.name.clone())
                    .collect();
                let mut d =
                    Diagnostic::error(key_span, format!("unknown Salesforce {obj} field `{sf}`"));
                if let Some(s) = did_you_mean(sf, &names) {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                out.push(d);
                continue;
            }
        }
        let Some(ex) = ex else {
            if default.is_none() {
                out.push(Diagnostic::warning(
                    key_span,
                    format!("`{sf}: ~` removes nothing: `{sf}` has no default mapping"),
                ));
            }
            effective.remove(sf);
            continue;
        };
        let Some(prop) = props.iter().find(|q| q.name == ex) else {
            let names: Vec<String> = props.iter().map(|q| q.name.to_string()).collect();
            let mut d = Diagnostic::error(
                value_span,
                format!("unknown Exchange {side} property `{ex}`"),
            );
            d = match did_you_mean(ex, &names) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None => d.with_hint(format!("known properties: {}", names.join(", "))),
            };
            out.push(d);
            continue;
        };
        if let Some(field) = &field {
            if prop.ty == FieldType::Structured || !field.ty.compatible_with(prop.ty) {
                out.push(Diagnostic::error(
                    value_span,
                    format!(
                        "cannot map `{sf}` ({}) to `{ex}` ({}): the types do not match",
                        field.ty.name(),
                        prop.ty.name()
                    ),
                ));
                continue;
            }
            if direction.to_salesforce() && !(field.createable && field.updateable) {
                out.push(
                    Diagnostic::error(key_span, format!("`{sf}` is read-only in Salesforce, so Exchange→Salesforce sync cannot write it"))
                        .with_hint("map a writable field, or sync this object Salesforce→Exchange only"),
                );
                continue;
            }
        }
        effective.insert(sf.clone(), (ex.clone(), Some(key_ptr)));
    }
    // Two Salesforce fields written into one Exchange property would overwrite each other.
    let mut by_target: BTreeMap<&str, Vec<(&str, &Option<String>)>> = BTreeMap::new();
    for (sf, (ex, ptr)) in &effective {
        by_target
            .entry(ex.as_str())
            .or_default()
            .push((sf.as_str(), ptr));
    }
    for (ex, sources) in by_target.into_iter().filter(|(_, s)| s.len() > 1) {
        let names: Vec<&str> = sources.iter().map(|(sf, _)| *sf).collect();
        let at = sources
            .iter()
            .find_map(|(_, ptr)| ptr.as_ref())
            .and_then(|ptr| c.at(ptr));
        out.push(
            Diagnostic::error(at, format!("Exchange property `{ex}` is the target of more than one field: {}", names.join(", ")))
                .with_hint("map each Exchange property from one Salesforce field; `Field: ~` removes a default mapping"),
        );
    }
}

fn connections(c: &Checked<'_>, out: &mut Vec<Diagnostic>) {
    let ex = "/connections/exchange";
    match &c.config.connections.exchange {
        ExchangeConnection::ServiceAccount {
            username,
            ews_url,
            additional_domains,
            ..
        } => {
            if !is_upn(username) && !is_down_level(username) {
                out.push(
                    Diagnostic::error(c.at(&format!("{ex}/username")), format!("`{username}` is neither a UPN nor a down-level logon name"))
                        .with_hint("write `svcacct@example.com` (UPN) or `example.com\\svcacct` (down-level; in YAML quote it or use single backslash in a plain scalar)"),
                );
            }
            url_rule(c, &format!("{ex}/ews_url"), ews_url.as_deref(), out);
            domains(c, ex, additional_domains, out);
        }
        ExchangeConnection::Oauth2 {
            client_secret,
            certificate,
            token_url,
            ews_url,
            graph_url,
            api,
            additional_domains,
            ..
        } => {
            match (client_secret, certificate) {
                (Some(_), Some(_)) => out.push(Diagnostic::error(
                    c.key_at(&format!("{ex}/certificate")),
                    "give `client_secret` or `certificate`, not both",
                )),
                (None, None) => out.push(
                    Diagnostic::error(
                        c.key_at(ex),
                        "the oauth2 connection needs `client_secret` or `certificate`",
                    )
                    .with_hint("a certificate is recommended for production app registrations"),
                ),
                _ => {}
            }
            url_rule(c, &format!("{ex}/token_url"), token_url.as_deref(), out);
            url_rule(c, &format!("{ex}/ews_url"), ews_url.as_deref(), out);
            url_rule(c, &format!("{ex}/graph_url"), graph_url.as_deref(), out);
            domains(c, ex, additional_domains, out);
            api_rules(c, *api, ews_url.as_deref(), graph_url.as_deref(), out);
            if *api == ExchangeApi::Graph && token_url.is_none() {
                national_cloud_sign_in(c, graph_url.as_deref(), out);
            }
        }
    }
    let sf = &c.config.connections.salesforce;
    url_rule(
        c,
        "/connections/salesforce/instance_url",
        Some(&sf.instance_url),
        out,
    );
    url_rule(
        c,
        "/connections/salesforce/login_url",
        sf.login_url.as_deref(),
        out,
    );
    if let SalesforceAuth::UsernamePassword { .. } = sf.auth {
        out.push(
            Diagnostic::warning(
                c.at("/connections/salesforce/auth/flow"),
                "the username-password flow is blocked by default in newer orgs",
            )
            .with_hint("prefer `flow: jwt_bearer` with a connected app certificate"),
        );
    }
}

/// Which API an `oauth2` connection uses: an endpoint of the other one is a mistake;
/// Exchange Online's EWS is being retired.
fn api_rules(
    c: &Checked<'_>,
    api: ExchangeApi,
    ews_url: Option<&str>,
    graph_url: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let ex = "/connections/exchange";
    match api {
        ExchangeApi::Graph => {
            if ews_url.is_some() {
                out.push(
                    Diagnostic::warning(
                        c.key_at(&format!("{ex}/ews_url")),
                        "`ews_url` is not used with `api: graph`",
                    )
                    .with_hint("remove it, or set `graph_url` for a national cloud"),
                );
            }
        }
        ExchangeApi::Ews => {
            if graph_url.is_some() {
                out.push(
                    Diagnostic::warning(
                        c.key_at(&format!("{ex}/graph_url")),
                        "`graph_url` is used only with `api: graph`",
                    )
                    .with_hint("set `api: graph`, or remove `graph_url`"),
                );
            }
            // Absent, the EWS URL is Exchange Online's.
            if ews_url.is_none_or(is_exchange_online_ews) {
                let at = match ews_url {
                    Some(_) => c.at(&format!("{ex}/ews_url")),
                    None => c.key_at(ex),
                };
                out.push(
                    Diagnostic::warning(at, "Exchange Online blocks EWS since 1 October 2026 unless the tenant allow-listed this app, and turns EWS off on 1 April 2027")
                        .with_hint("move this connection to Microsoft Graph (`api: graph`) before April 2027; until then EWS works only if the tenant allow-listed the app for EWS"),
                );
            }
        }
    }
}

/// A national cloud's Graph signs in at its own login host, not the default
/// login.microsoftonline.com (Microsoft's national cloud deployments page).
fn national_cloud_sign_in(c: &Checked<'_>, graph_url: Option<&str>, out: &mut Vec<Diagnostic>) {
    let host = graph_url
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    let login = match host.as_deref() {
        Some("graph.microsoft.us" | "dod-graph.microsoft.us") => "login.microsoftonline.us",
        Some("microsoftgraph.chinacloudapi.cn") => "login.chinacloudapi.cn",
        _ => return,
    };
    out.push(
        Diagnostic::warning(
            c.at("/connections/exchange/graph_url"),
            format!("this national cloud's apps sign in at {login}, not at the default token URL"),
        )
        .with_hint(format!(
            "set `token_url: https://{login}/<tenant>/oauth2/v2.0/token`"
        )),
    );
}

/// Exchange Online's EWS endpoint (outlook.office365.com, outlook.office.com).
fn is_exchange_online_ews(ews_url: &str) -> bool {
    url::Url::parse(ews_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h == "outlook.office365.com" || h == "outlook.office.com")
}

fn domains(c: &Checked<'_>, ex: &str, list: &[String], out: &mut Vec<Diagnostic>) {
    for (i, d) in list.iter().enumerate() {
        if !is_domain(d) {
            out.push(Diagnostic::error(
                c.at(&format!("{ex}/additional_domains/{i}")),
                format!("`{d}` is not a mail domain (write it like `example.net`)"),
            ));
        }
    }
}

fn is_upn(s: &str) -> bool {
    is_email(s)
}

fn is_down_level(s: &str) -> bool {
    let Some((domain, user)) = s.split_once('\\') else {
        return false;
    };
    !domain.is_empty()
        && !user.is_empty()
        && !s.chars().any(|ch| ch.is_whitespace() || ch == '@')
        && !user.contains('\\')
}

/// The `state:` setting's Postgres URL: usable, and without a password (which is given by
/// reference, as every secret).
fn postgres_state(c: &Checked<'_>, out: &mut Vec<Diagnostic>) {
    let Some(super::model::StateSetting::Postgres(pg)) = &c.config.state else {
        return;
    };
    let span = c.at("/state/postgres/url");
    if url::Url::parse(&pg.url).is_ok_and(|u| u.password().is_some()) {
        out.push(
            Diagnostic::error(span, "the Postgres state URL holds a password").with_hint(
                "remove it from the URL and give it by reference: `password: ${env:NAME}`",
            ),
        );
    } else if let Err(e) = crate::state::PostgresTarget::parse(&pg.url, None, &c.unit.home) {
        out.push(Diagnostic::error(span, e.message).with_hint(e.hint));
    }
}

fn url_rule(c: &Checked<'_>, pointer: &str, value: Option<&str>, out: &mut Vec<Diagnostic>) {
    let Some(value) = value else { return };
    let span = c.at(pointer);
    match url::Url::parse(value) {
        Err(e) => out.push(Diagnostic::error(
            span,
            format!("`{value}` is not a valid URL: {e}"),
        )),
        Ok(u) => {
            if let Err(message) = crate::net::check_transport(&u) {
                out.push(Diagnostic::error(span, message));
            }
        }
    }
}

/// Every `${…}` value: well formed, and available (warnings unless `--strict`).
fn secret_references(c: &Checked<'_>, strict: bool, out: &mut Vec<Diagnostic>) {
    let mut refs = Vec::new();
    collect_refs(&c.unit.tree, &mut refs);
    let missing = if strict {
        Severity::Error
    } else {
        Severity::Warning
    };
    for (text, span) in refs {
        match parse_reference(&text) {
            Err(message) => out.push(
                Diagnostic::error(Some(span), message)
                    .with_hint("write `${env:NAME}` or `${file:PATH}`"),
            ),
            Ok(Reference::Env(name)) => {
                // CI passes an undefined secret as an empty string: as good as unset.
                let problem = match std::env::var_os(name) {
                    None => Some("is not set"),
                    Some(v) if v.is_empty() => Some("is set to an empty string"),
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    out.push(
                        Diagnostic::new(
                            missing,
                            Some(span),
                            format!("environment variable `{name}` {problem}"),
                        )
                        .with_hint(
                            "set it where tether runs (e.g. as a CI secret) before plan or apply; \
                             a secret CI does not define arrives empty",
                        ),
                    );
                }
            }
            Ok(Reference::File(path)) => {
                let full = c.unit.home.join(path);
                let problem = super::secrets::open_file(&full).err().or_else(|| {
                    super::secrets::is_empty_file(&full).then(|| super::secrets::FileProblem {
                        message: format!("secret file `{}` is empty", full.display()),
                        hint: "write the secret into it",
                    })
                });
                if let Some(problem) = problem {
                    out.push(
                        Diagnostic::new(missing, Some(span), problem.message)
                            .with_hint(problem.hint),
                    );
                }
            }
        }
    }
}

fn collect_refs(node: &Node, out: &mut Vec<(String, Span)>) {
    match &node.kind {
        Kind::Str(s) if s.starts_with("${") => out.push((s.clone(), node.span)),
        Kind::Seq(items) => items.iter().for_each(|n| collect_refs(n, out)),
        Kind::Map(entries) => entries.iter().for_each(|(_, v)| collect_refs(v, out)),
        _ => {}
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reference<'a> {
    Env(&'a str),
    File(&'a Path),
}

/// Parses `${env:NAME}` / `${file:PATH}`. The message never contains the text itself,
/// which might be a mistyped secret.
pub fn parse_reference(text: &str) -> Result<Reference<'_>, String> {
    let inner = text
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .ok_or("a reference must be the whole value, `${…}`")?;
    if let Some(name) = inner.strip_prefix("env:") {
        let valid = name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        return if valid {
            Ok(Reference::Env(name))
        } else {
            Err("invalid environment variable name in `${env:…}`".into())
        };
    }
    if let Some(path) = inner.strip_prefix("file:") {
        return if path.is_empty() {
            Err("empty path in `${file:…}`".into())
        } else {
            Ok(Reference::File(Path::new(path)))
        };
    }
    Err("unknown reference kind: only `${env:NAME}` and `${file:PATH}` exist".into())
}

/// Rules across configuration roots validated together: one root per org, and a user
/// active in one org only.
pub fn check_across(checked: &[Checked<'_>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    one_root_per_org(checked, &mut out);
    // email → the first active listing: root and where.
    let mut active: BTreeMap<String, (usize, Span)> = BTreeMap::new();
    // Inactive listings, checked once every active one is known.
    let mut inactive: Vec<(usize, &str, &str, Span)> = Vec::new();
    for (n, c) in checked.iter().enumerate() {
        for (i, sc) in c.config.sync_configurations.iter().enumerate() {
            for (u, user) in sc.members.users.iter().enumerate() {
                let Some(span) = c.at(&format!("/sync_configurations/{i}/members/users/{u}"))
                else {
                    continue;
                };
                if !sc.active {
                    inactive.push((n, sc.name.as_str(), user.as_str(), span));
                    continue;
                }
                match active.get(&user.to_lowercase()) {
                    // Roots of one org are refused above; within an org, `check` says it.
                    Some(&(first, first_span))
                        if checked[first].config.org.name != c.config.org.name =>
                    {
                        out.push(
                            Diagnostic::error(
                                Some(span),
                                format!(
                                    "user `{user}` is active in two orgs: `{}` and `{}`",
                                    checked[first].config.org.name, c.config.org.name
                                ),
                            )
                            .with_related("also active", first_span)
                            .with_hint("a user syncs in one org only: remove the user from the sandbox configuration before adding them to production"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        active.insert(user.to_lowercase(), (n, span));
                    }
                }
            }
        }
    }
    // The admin guide: an inactive configuration is easy to reactivate by accident.
    for (n, configuration, user, span) in inactive {
        let org = &checked[n].config.org.name;
        if let Some(&(other, other_span)) = active.get(&user.to_lowercase())
            && &checked[other].config.org.name != org
        {
            out.push(
                Diagnostic::warning(
                    Some(span),
                    format!(
                        "user `{user}` is listed in the inactive configuration `{configuration}` of org `{org}` and is active in org `{}`",
                        checked[other].config.org.name
                    ),
                )
                .with_related("active", other_span)
                .with_hint(format!(
                    "reactivating `{configuration}` would sync the user in two orgs; remove the user from it"
                )),
            );
        }
    }
    out
}

/// Two roots with one `org.name` would sync every rep of that org twice.
fn one_root_per_org(checked: &[Checked<'_>], out: &mut Vec<Diagnostic>) {
    let mut first: BTreeMap<&str, &Checked<'_>> = BTreeMap::new();
    for c in checked {
        let name = c.config.org.name.as_str();
        let Some(earlier) = first.get(name) else {
            first.insert(name, c);
            continue;
        };
        let mut d = Diagnostic::error(
            c.at("/org/name"),
            format!(
                "org `{name}` is configured twice: by {} and by {}",
                earlier.unit.label.display(),
                c.unit.label.display()
            ),
        )
        .with_hint(
            "each org has one configuration root, or every rep of it syncs twice: merge the \
             two, or give the other org its own `org.name`",
        );
        if let Some(span) = earlier.at("/org/name") {
            d = d.with_related("also named here", span);
        }
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_strictly() {
        assert_eq!(
            parse_reference("${env:SF_TOKEN}"),
            Ok(Reference::Env("SF_TOKEN"))
        );
        assert_eq!(
            parse_reference("${file:keys/sf.pem}"),
            Ok(Reference::File(Path::new("keys/sf.pem")))
        );
        assert!(parse_reference("${env:1X}").is_err());
        assert!(parse_reference("${vault:x}").is_err());
        assert!(parse_reference("${env:X").is_err());
    }

    #[test]
    fn logon_name_forms() {
        assert!(is_upn("svc@corp.example.com"));
        assert!(is_down_level("corp.example.com\\svc"));
        assert!(!is_upn("svc"));
        assert!(!is_down_level("corp\\svc\\x"));
        assert!(!is_down_level("svc@corp.com"));
    }
}
