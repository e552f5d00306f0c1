//! `tether validate` end to end: each rule and each kind of bad input gives the exact
//! diagnostic (severity, file, line, column, message) and exit code.

use crate::common;

use common::*;

/// A small valid configuration; tests change one thing in it.
const BASE: &str = r#"version: 1
org: { name: acme-prod, kind: production }
connections:
  exchange:
    method: service_account
    ews_url: https://mail.acme.com/EWS/Exchange.asmx
    username: svc@acme.com
    password: ${env:TETHER_TEST_PASSWORD}
  salesforce:
    instance_url: https://acme.my.salesforce.com
    auth: { flow: access_token, access_token: "${env:TETHER_TEST_TOKEN}" }
sync_configurations:
  - name: Reps
    members: { users: [ana@acme.com] }
    contacts:
      direction: both
      conflict: salesforce_wins
      scope: users_records
    events:
      direction: exchange_to_salesforce
      since: TODAY
"#;

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "`{from}` not in BASE");
    BASE.replacen(from, to, 1)
}

/// Validates one file; returns the exit code and the JSON report.
fn check(text: &str) -> (i32, serde_json::Value) {
    let s = Scratch::new();
    s.write("tether.yaml", text);
    let out = tether(
        &["validate", "--format", "json", "tether.yaml"],
        s.dir.path(),
    );
    (out.code, out.json())
}

/// Asserts that `text` yields exactly the diagnostic `summary` at the first occurrence of
/// `at`, and the exit code that its severity implies.
fn expect(text: &str, severity: &str, summary: &str, at: &str) -> serde_json::Value {
    let (code, report) = check(text);
    let d = find(&report, summary).clone();
    assert_at(&d, severity, "tether.yaml", position_of(text, at));
    let errors = report["error_count"].as_u64().unwrap();
    assert_eq!(code, if errors > 0 { 1 } else { 0 }, "{report}");
    if severity == "error" {
        assert_eq!(code, 1);
    }
    d
}

#[test]
fn base_configuration_is_valid() {
    let (code, report) = check(BASE);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["valid"], true);
    assert_eq!(report["error_count"], 0);
    assert_eq!(report["warning_count"], 0, "{report}");
}

#[test]
fn a_postgres_state_url_with_a_password_or_in_clear_text_is_an_error_at_its_line() {
    let state = |url: &str| {
        format!(
            "{BASE}state:\n  postgres:\n    url: {url}\n    password: ${{env:TETHER_TEST_PASSWORD}}\n"
        )
    };
    let d = expect(
        &state("postgres://tether:hunter2@db.acme.com/tether"),
        "error",
        "the Postgres state URL holds a password",
        "postgres://tether:hunter2",
    );
    assert!(!d.to_string().contains("hunter2"), "{d}");
    // The human rendering shows the source line; the password in it is masked.
    let s = Scratch::new();
    s.write(
        "tether.yaml",
        state("postgres://tether:hunter2@db.acme.com/tether"),
    );
    let human = tether(&["validate", "tether.yaml"], s.dir.path());
    assert_eq!(human.code, 1);
    assert!(
        human
            .stdout
            .contains("postgres://tether:*******@db.acme.com"),
        "{}",
        human.stdout
    );
    assert!(!format!("{}{}", human.stdout, human.stderr).contains("hunter2"));
    expect(
        &state("postgres://tether@db.acme.com/tether?sslmode=disable"),
        "error",
        "the Postgres state URL is not usable: sslmode=disable sends the password and the state in clear text; plain connections are allowed only to loopback hosts",
        "postgres://tether@db.acme.com/tether?sslmode",
    );
    assert_eq!(check(&state("postgres://tether@db.acme.com/tether")).0, 0);
}

/// The change read's lookback must cover a Salesforce transaction (up to 10 minutes).
#[test]
fn salesforce_change_lookback_shorter_than_a_transaction_is_an_error() {
    let text = with(
        "    auth: { flow: access_token",
        "    change_lookback_minutes: 5\n    auth: { flow: access_token",
    );
    expect(
        &text,
        "error",
        "`connections.salesforce.change_lookback_minutes`: value is less than the minimum of 10",
        "5\n",
    );
    let text = with(
        "    auth: { flow: access_token",
        "    change_lookback_minutes: 30\n    auth: { flow: access_token",
    );
    assert_eq!(check(&text).0, 0);
}

#[test]
fn json_report_has_the_documented_fields() {
    let (_, report) = check(&with("since: TODAY", "since: SOMEDAY"));
    assert_eq!(report["format_version"], "1.0");
    assert_eq!(report["valid"], false);
    assert!(report["error_count"].as_u64().unwrap() >= 1);
    assert!(report["warning_count"].is_u64());
    let d = &report["diagnostics"][0];
    for key in ["severity", "summary", "detail", "range"] {
        assert!(d.get(key).is_some(), "missing {key}: {d}");
    }
    for key in ["line", "column", "byte"] {
        assert!(d["range"]["start"][key].is_u64());
        assert!(d["range"]["end"][key].is_u64());
    }
    assert!(d["range"]["filename"].is_string());
}

// ---- semantic rules -------------------------------------------------------------------

#[test]
fn rule_configuration_names_are_unique() {
    let text = format!("{BASE}  - name: reps\n    members: {{ users: [bo@acme.com] }}\n");
    let d = expect(
        &text,
        "error",
        "sync configuration name `reps` is used twice",
        "reps\n",
    );
    assert_eq!(d["related"][0]["range"]["start"]["line"], 13);
}

#[test]
fn rule_user_listed_in_two_active_configurations_is_an_error() {
    let text = format!("{BASE}  - name: Other\n    members: {{ users: [ANA@acme.com] }}\n");
    let d = expect(
        &text,
        "error",
        "user `ANA@acme.com` is listed in two active configurations: `Reps` and `Other`",
        "ANA@acme.com",
    );
    assert_eq!(d["related"][0]["range"]["start"]["line"], 14);
}

#[test]
fn rule_user_in_an_inactive_configuration_is_fine() {
    let text = format!(
        "{BASE}  - name: Other\n    active: false\n    members: {{ users: [ana@acme.com] }}\n"
    );
    let (code, report) = check(&text);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn rule_individual_listing_beats_profile_membership() {
    let text = format!("{BASE}  - name: By Profile\n    members: {{ profiles: [Sales User] }}\n");
    expect(
        &text,
        "info",
        "users listed in `Reps` sync under it even if they have a profile of `By Profile` (Sales User): listed individually wins over membership through a profile",
        "users: [ana",
    );
}

#[test]
fn rule_last_n_days_must_be_1_to_180() {
    expect(
        &with("since: TODAY", "since: LAST_N_DAYS:181"),
        "error",
        "`since: LAST_N_DAYS:181` is out of range: LAST_N_DAYS:n needs n from 1 to 180",
        "LAST_N_DAYS:181",
    );
    expect(
        &with("since: TODAY", "since: LAST_N_DAYS:0"),
        "error",
        "`since: LAST_N_DAYS:0` is out of range: LAST_N_DAYS:n needs n from 1 to 180",
        "LAST_N_DAYS:0",
    );
    let (code, _) = check(&with("since: TODAY", "since: LAST_N_DAYS:180"));
    assert_eq!(code, 0);
}

#[test]
fn rule_other_since_values_list_the_valid_forms() {
    expect(
        &with("since: TODAY", "since: YESTERDAY"),
        "error",
        "`sync_configurations[0].events.since` must be TODAY, LAST_MONTH or LAST_N_DAYS:n (n from 1 to 180); found `YESTERDAY`",
        "YESTERDAY",
    );
}

#[test]
fn rule_conflict_is_required_with_direction_both() {
    expect(
        &with("      conflict: salesforce_wins\n", ""),
        "error",
        "`direction: both` needs a `conflict` policy",
        "both",
    );
}

#[test]
fn rule_conflict_is_rejected_for_one_way_sync() {
    let d = expect(
        &with(
            "      direction: exchange_to_salesforce\n",
            "      direction: exchange_to_salesforce\n      conflict: exchange_wins\n",
        ),
        "error",
        "`conflict` applies only with `direction: both`",
        "conflict: exchange_wins",
    );
    assert_eq!(
        d["detail"],
        "remove it: in a one-way sync the source side always wins"
    );
}

#[test]
fn rule_contacts_to_exchange_need_a_scope() {
    expect(
        &with("      scope: users_records\n", ""),
        "error",
        "contacts syncing Salesforce→Exchange need a `scope`",
        "both",
    );
}

#[test]
fn rule_filters_have_no_effect_exchange_to_salesforce() {
    let text = with(
        "      direction: both\n      conflict: salesforce_wins\n      scope: users_records\n",
        "      direction: exchange_to_salesforce\n      filters: [{ field: MailingCountry, op: equals, value: DE }]\n",
    );
    expect(
        &text,
        "warning",
        "contact `filters` have no effect with `direction: exchange_to_salesforce`",
        "filters:",
    );
}

#[test]
fn rule_user_selected_needs_the_outlook_integration() {
    let text = with(
        "      since: TODAY\n",
        "      since: TODAY\n      which: user_selected\n",
    );
    expect(
        &text,
        "error",
        "`which: user_selected` needs the Outlook integration",
        "user_selected",
    );
    let enabled = text.replace(
        "sync_configurations:",
        "outlook_integration: { enabled: true }\nsync_configurations:",
    );
    assert_eq!(check(&enabled).0, 0);
}

fn with_contact_mapping(mapping: &str) -> String {
    with(
        "      scope: users_records\n",
        &format!("      scope: users_records\n      field_mappings:\n        {mapping}\n"),
    )
}

#[test]
fn rule_field_mappings_name_known_salesforce_fields() {
    let d = expect(
        &with_contact_mapping("Titel: JobTitle"),
        "error",
        "unknown Salesforce Contact field `Titel`",
        "Titel",
    );
    assert_eq!(d["detail"], "did you mean `Title`?");
}

#[test]
fn rule_field_mappings_name_known_exchange_properties() {
    let d = expect(
        &with_contact_mapping("Title: JobTitel"),
        "error",
        "unknown Exchange contact property `JobTitel`",
        "JobTitel",
    );
    assert_eq!(d["detail"], "did you mean `JobTitle`?");
}

#[test]
fn rule_field_mappings_need_compatible_types() {
    expect(
        &with_contact_mapping("Birthdate: JobTitle"),
        "error",
        "cannot map `Birthdate` (date) to `JobTitle` (text): the types do not match",
        "JobTitle\n",
    );
}

#[test]
fn rule_matching_mappings_cannot_be_changed() {
    expect(
        &with_contact_mapping("Email: EmailAddress2"),
        "error",
        "the mapping Email ↔ EmailAddress1 cannot be changed: matching and linking records depend on it",
        "EmailAddress2",
    );
}

#[test]
fn rule_matching_mappings_cannot_be_removed() {
    expect(
        &with_contact_mapping("LastName: ~"),
        "error",
        "the mapping LastName ↔ Surname cannot be removed: matching and linking records depend on it",
        "LastName",
    );
}

#[test]
fn rule_event_matching_mappings_cannot_be_changed() {
    let text = with(
        "      since: TODAY\n",
        "      since: TODAY\n      field_mappings: { StartDateTime: End }\n",
    );
    expect(
        &text,
        "error",
        "the mapping StartDateTime ↔ Start cannot be changed: matching and linking records depend on it",
        "End }",
    );
}

#[test]
fn rule_an_exchange_property_has_one_source() {
    expect(
        &with_contact_mapping("Department: JobTitle"),
        "error",
        "Exchange property `JobTitle` is the target of more than one field: Department, Title",
        "JobTitle\n",
    );
}

#[test]
fn rule_read_only_fields_cannot_be_written_from_exchange() {
    expect(
        &with_contact_mapping("LastActivityDate: Birthday"),
        "error",
        "`LastActivityDate` is read-only in Salesforce, so Exchange→Salesforce sync cannot write it",
        "LastActivityDate",
    );
}

fn with_filter(filter: &str) -> String {
    with(
        "      scope: users_records\n",
        &format!("      scope: users_records\n      filters:\n        - {filter}\n"),
    )
}

#[test]
fn rule_filters_name_known_contact_fields() {
    let d = expect(
        &with_filter("{ field: MailingCountri, op: equals, value: DE }"),
        "error",
        "unknown Salesforce Contact field `MailingCountri`",
        "MailingCountri",
    );
    assert_eq!(d["detail"], "did you mean `MailingCountry`?");
}

#[test]
fn rule_filter_operators_fit_the_field_type() {
    let d = expect(
        &with_filter("{ field: IsEmailBounced, op: contains, value: x }"),
        "error",
        "operator `contains` does not apply to `IsEmailBounced`, a boolean field",
        "contains",
    );
    assert_eq!(d["detail"], "use one of: equals, not_equals");
    expect(
        &with_filter("{ field: MailingCountry, op: greater_than, value: DE }"),
        "error",
        "operator `greater_than` does not apply to `MailingCountry`, a text field",
        "greater_than",
    );
}

#[test]
fn rule_filter_values_fit_the_operator_and_type() {
    expect(
        &with_filter("{ field: MailingCountry, op: in, value: DE }"),
        "error",
        "operator `in` needs `values`",
        "op: in",
    );
    expect(
        &with_filter("{ field: Birthdate, op: less_than, value: last week }"),
        "error",
        "`Birthdate` is a date field; this value does not fit it",
        "last week",
    );
    assert_eq!(
        check(&with_filter(
            "{ field: Birthdate, op: less_than, value: '2000-01-31' }"
        ))
        .0,
        0
    );
}

#[test]
fn rule_exchange_username_is_upn_or_down_level() {
    expect(
        &with("username: svc@acme.com", "username: svcacct"),
        "error",
        "`svcacct` is neither a UPN nor a down-level logon name",
        "svcacct",
    );
    assert_eq!(
        check(&with("username: svc@acme.com", r"username: acme.com\svc")).0,
        0
    );
}

#[test]
fn rule_urls_are_https_except_loopback() {
    expect(
        &with(
            "https://mail.acme.com/EWS/Exchange.asmx",
            "http://mail.acme.com/EWS/Exchange.asmx",
        ),
        "error",
        "http://mail.acme.com/EWS/Exchange.asmx uses plain http; use https (plain http is allowed only for loopback hosts such as the sandbox)",
        "http://mail",
    );
    let loopback = with(
        "https://mail.acme.com/EWS/Exchange.asmx",
        "http://127.0.0.1:8081/EWS/Exchange.asmx",
    );
    assert_eq!(check(&loopback).0, 0);
}

#[test]
fn rule_unknown_keys_get_a_suggestion() {
    let d = expect(
        &with("    password:", "    pasword:"),
        "error",
        "unknown key `pasword` in `connections.exchange`",
        "pasword",
    );
    assert_eq!(d["detail"], "did you mean `password`?");
    let d = expect(
        &with("      since: TODAY", "      sinse: TODAY"),
        "error",
        "unknown key `sinse` in `sync_configurations[0].events`",
        "sinse",
    );
    assert_eq!(d["detail"], "did you mean `since`?");
}

#[test]
fn rule_unknown_enum_values_get_a_suggestion() {
    let d = expect(
        &with("direction: both", "direction: bothh"),
        "error",
        "`sync_configurations[0].contacts.direction` must be one of exchange_to_salesforce, salesforce_to_exchange, both, none; found `bothh`",
        "bothh",
    );
    assert_eq!(d["detail"], "did you mean `both`?");
}

#[test]
fn rule_unknown_connection_method_is_named() {
    let d = expect(
        &with("method: service_account", "method: service-account"),
        "error",
        "unknown method `service-account` in `connections.exchange`; expected one of service_account, oauth2",
        "service-account",
    );
    assert_eq!(d["detail"], "did you mean `service_account`?");
}

#[test]
fn rule_missing_required_keys_are_named() {
    expect(
        &with("    username: svc@acme.com\n", ""),
        "error",
        "missing required key `username` in `connections.exchange`",
        "exchange:",
    );
}

#[test]
fn rule_secrets_must_be_references() {
    let text = with("${env:TETHER_TEST_PASSWORD}", "Summer2026!");
    let d = expect(
        &text,
        "error",
        "`connections.exchange.password` must be a secret reference, not a literal value",
        "Summer2026!",
    );
    assert!(d["detail"].as_str().unwrap().contains("${env:NAME}"));
    // The literal is not repeated anywhere in either output format.
    let s = Scratch::new();
    s.write("tether.yaml", &text);
    for format in ["human", "json"] {
        let out = tether(
            &["validate", "--format", format, "tether.yaml"],
            s.dir.path(),
        );
        assert!(!out.stdout.contains("Summer2026"), "{}", out.stdout);
        assert!(!out.stderr.contains("Summer2026"));
    }
}

#[test]
fn rule_unset_secret_references_warn_or_fail_with_strict() {
    let text = with("TETHER_TEST_PASSWORD", "TETHER_TEST_UNSET_VARIABLE");
    expect(
        &text,
        "warning",
        "environment variable `TETHER_TEST_UNSET_VARIABLE` is not set",
        "${env:TETHER_TEST_UNSET",
    );
    let s = Scratch::new();
    s.write("tether.yaml", &text);
    let out = tether(
        &["validate", "--strict", "--format", "json", "tether.yaml"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1);
    let d = find(
        &out.json(),
        "environment variable `TETHER_TEST_UNSET_VARIABLE` is not set",
    )
    .clone();
    assert_eq!(d["severity"], "error");
}

#[test]
fn rule_secret_files_resolve_relative_to_their_file() {
    let s = Scratch::new();
    s.write("org/keys/sf.pem", "not a real key");
    s.write(
        "org/tether.yaml",
        with("\"${env:TETHER_TEST_TOKEN}\"", "\"${file:keys/sf.pem}\""),
    );
    let out = tether(&["validate", "--strict", "org"], s.dir.path());
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn rule_same_user_active_in_two_orgs_is_an_error() {
    let s = Scratch::new();
    s.write("prod/tether.yaml", BASE);
    let sandbox = with("acme-prod, kind: production", "acme-uat, kind: sandbox");
    s.write("uat/tether.yaml", &sandbox);
    let out = tether(
        &["validate", "--format", "json", "uat", "prod"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1);
    let report = out.json();
    let d = find(
        &report,
        "user `ana@acme.com` is active in two orgs: `acme-uat` and `acme-prod`",
    );
    assert_at(
        d,
        "error",
        "prod/tether.yaml",
        position_of(BASE, "ana@acme.com"),
    );
    assert!(
        d["related"][0]["range"]["filename"]
            .as_str()
            .unwrap()
            .ends_with("uat/tether.yaml")
    );
}

#[test]
fn two_roots_with_one_org_name_are_refused() {
    let s = Scratch::new();
    s.write("prod/tether.yaml", BASE);
    // A copy of the same org, with the same user active in it: every rep would sync twice.
    s.write("copy/tether.yaml", BASE);
    let out = tether(
        &["validate", "--format", "json", "prod", "copy"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let report = out.json();
    let d = find(
        &report,
        "org `acme-prod` is configured twice: by prod/tether.yaml and by copy/tether.yaml",
    );
    assert_at(
        d,
        "error",
        "copy/tether.yaml",
        position_of(BASE, "acme-prod"),
    );
    assert!(
        d["related"][0]["range"]["filename"]
            .as_str()
            .unwrap()
            .ends_with("prod/tether.yaml")
    );
    assert!(
        d["detail"].as_str().unwrap().contains("its own `org.name`"),
        "{d}"
    );
}

#[test]
fn inactive_configuration_listing_a_user_active_in_another_org_warns() {
    let s = Scratch::new();
    s.write("prod/tether.yaml", BASE);
    let sandbox = with("acme-prod, kind: production", "acme-uat, kind: sandbox")
        .replace("  - name: Reps\n", "  - name: Pilot\n    active: false\n");
    s.write("uat/tether.yaml", &sandbox);
    let out = tether(
        &["validate", "--format", "json", "uat", "prod"],
        s.dir.path(),
    );
    assert_eq!(out.code, 0, "a warning: {}", out.stdout);
    let report = out.json();
    let d = find(
        &report,
        "user `ana@acme.com` is listed in the inactive configuration `Pilot` of org `acme-uat` and is active in org `acme-prod`",
    );
    assert_at(
        d,
        "warning",
        "uat/tether.yaml",
        position_of(&sandbox, "ana@acme.com"),
    );
    assert_eq!(
        d["detail"],
        "reactivating `Pilot` would sync the user in two orgs; remove the user from it"
    );
    assert!(
        d["related"][0]["range"]["filename"]
            .as_str()
            .unwrap()
            .ends_with("prod/tether.yaml")
    );
}

// ---- several files ------------------------------------------------------------------

#[test]
fn a_directory_merges_fragments_into_one_configuration() {
    let s = Scratch::new();
    let (head, configs) = BASE.split_at(BASE.find("sync_configurations:").unwrap());
    s.write("org/tether.yaml", head);
    s.write("org/sync/reps.yaml", configs);
    s.write(
        "org/sync/more.yaml",
        "sync_configurations:\n  - name: More\n    members: { users: [bo@acme.com] }\n",
    );
    let out = tether(&["validate", "--format", "json", "org"], s.dir.path());
    assert_eq!(out.code, 0, "{}", out.stdout);
    // A duplicate across files names both places.
    s.write(
        "org/sync/dup.yaml",
        "sync_configurations:\n  - name: Reps\n    members: { users: [cy@acme.com] }\n",
    );
    let out = tether(&["validate", "--format", "json", "org"], s.dir.path());
    assert_eq!(out.code, 1);
    let report = out.json();
    let d = find(&report, "sync configuration name `Reps` is used twice");
    assert_at(d, "error", "org/sync/reps.yaml", (2, 11));
    assert!(
        d["related"][0]["range"]["filename"]
            .as_str()
            .unwrap()
            .ends_with("dup.yaml")
    );
}

#[test]
fn other_yaml_in_a_directory_is_skipped_but_near_misses_are_not() {
    let s = Scratch::new();
    s.write("org/tether.yaml", BASE);
    s.write("org/.github/ci.yml", "on: push\njobs: {}\n");
    s.write(
        "org/deploy/workflow.yml",
        "name: deploy\non: [push]\njobs: {}\n",
    );
    let out = tether(&["validate", "--format", "json", "org"], s.dir.path());
    assert_eq!(out.code, 0, "{}", out.stdout);
    let report = out.json();
    let d = find(
        &report,
        "not a tether file (none of its top-level keys is tether's); ignored",
    );
    assert_at(d, "info", "org/deploy/workflow.yml", (1, 1));
    // A typo in a fragment's only key is an error, not a silently skipped file.
    s.write(
        "org/sync/more.yaml",
        "sync_configuration:\n  - name: More\n",
    );
    let out = tether(&["validate", "--format", "json", "org"], s.dir.path());
    assert_eq!(out.code, 1);
    let report = out.json();
    let d = find(&report, "unknown key `sync_configuration` at the top level");
    assert_at(d, "error", "org/sync/more.yaml", (1, 1));
    assert_eq!(d["detail"], "did you mean `sync_configurations`?");
}

#[test]
fn a_section_defined_in_two_files_names_both() {
    let s = Scratch::new();
    s.write("org/tether.yaml", BASE);
    s.write(
        "org/extra.yaml",
        "outlook_integration: { enabled: true }\nconnections:\n  exchange: {}\n",
    );
    s.write("org/more.yaml", "outlook_integration: { enabled: false }\n");
    let out = tether(&["validate", "--format", "json", "org"], s.dir.path());
    assert_eq!(out.code, 1);
    let report = out.json();
    let d = find(
        &report,
        "`outlook_integration` is defined in more than one file",
    );
    assert_at(d, "error", "org/more.yaml", (1, 1));
    assert!(
        d["related"][0]["range"]["filename"]
            .as_str()
            .unwrap()
            .ends_with("extra.yaml")
    );
    let d = find(&report, "`exchange` is defined in more than one file");
    assert_at(d, "error", "org/extra.yaml", (3, 3));
}

// ---- bad input ----------------------------------------------------------------------

fn bad_file(contents: &[u8]) -> serde_json::Value {
    let s = Scratch::new();
    s.write("tether.yaml", contents);
    let out = tether(
        &["validate", "--format", "json", "tether.yaml"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["error_count"], 1, "{report}");
    report["diagnostics"][0].clone()
}

#[test]
fn bad_input_empty_file() {
    let d = bad_file(b"");
    assert_eq!(d["summary"], "file is empty");
    assert_at(&d, "error", "tether.yaml", (1, 1));
}

#[test]
fn bad_input_tabs() {
    let d = bad_file(b"version: 1\norg:\n\tname: x\n");
    assert!(
        d["summary"]
            .as_str()
            .unwrap()
            .starts_with("YAML syntax error"),
        "{d}"
    );
    assert_at(&d, "error", "tether.yaml", (3, 1));
    assert_eq!(
        d["detail"],
        "YAML does not allow tabs for indentation; indent with spaces"
    );
}

#[test]
fn bad_input_bad_indentation() {
    let d = bad_file(b"version: 1\norg:\n  name: x\n   kind: sandbox\n");
    assert!(
        d["summary"]
            .as_str()
            .unwrap()
            .starts_with("YAML syntax error"),
        "{d}"
    );
    assert_eq!(d["range"]["start"]["line"], 4, "{d}");
    assert!(d["detail"].as_str().unwrap().contains("indentation"), "{d}");
}

#[test]
fn bad_input_duplicate_keys() {
    let d = bad_file(b"version: 1\norg: {}\nversion: 1\n");
    assert_eq!(d["summary"], "duplicate key `version`");
    assert_at(&d, "error", "tether.yaml", (3, 1));
    assert_eq!(d["related"][0]["range"]["start"]["line"], 1);
}

#[test]
fn bad_input_alias_bomb() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        let (prev, name) = (w[0], w[1]);
        let refs = vec![format!("*{prev}"); 10].join(", ");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let d = bad_file(text.as_bytes());
    assert_eq!(d["summary"], "document expands to more than 200000 nodes");
    // Reported at the alias that crosses the bound.
    assert_eq!(d["severity"], "error");
    assert_eq!(d["range"]["start"]["line"], 6, "{d}");
    assert!(d["detail"].as_str().unwrap().contains("billion laughs"));
    assert!(
        started.elapsed().as_secs() < 20,
        "alias expansion must be bounded"
    );
}

#[test]
fn bad_input_ten_megabyte_file() {
    let mut text = String::from("version: 1\ndescription: |\n");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("  lorem ipsum dolor sit amet, consectetur adipiscing elit\n");
    }
    let d = bad_file(text.as_bytes());
    assert_eq!(
        d["summary"],
        "file is 10.0 MiB; configuration files are limited to 4 MiB"
    );
}

#[test]
fn bad_input_binary_garbage() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let d = bad_file(&garbage);
    assert_eq!(
        d["summary"],
        "file is not valid UTF-8 text; save it as UTF-8"
    );
    assert_at(&d, "error", "tether.yaml", (1, 2));
    // Valid UTF-8 with NUL bytes is binary too.
    let d = bad_file(b"version: 1\n\0\0\0\x01\x02");
    assert_eq!(
        d["summary"],
        "file contains a NUL byte: it is binary, not YAML"
    );
    assert_at(&d, "error", "tether.yaml", (2, 1));
}

#[test]
fn bad_input_non_utf8_file() {
    // Latin-1 "Müller".
    let d = bad_file(b"version: 1\norg: { name: M\xfcller, kind: sandbox }\n");
    assert_eq!(
        d["summary"],
        "file is not valid UTF-8 text; save it as UTF-8"
    );
    assert_at(&d, "error", "tether.yaml", (2, 15));
}

#[test]
fn bad_input_directory_without_yaml() {
    let s = Scratch::new();
    s.write("empty/readme.txt", "nothing here");
    let out = tether(&["validate", "--format", "json", "empty"], s.dir.path());
    assert_eq!(out.code, 1);
    let report = out.json();
    let d = &report["diagnostics"][0];
    assert_eq!(d["summary"], "empty: no YAML files (*.yaml, *.yml) found");
    assert_eq!(d["severity"], "error");
}

#[test]
fn bad_input_top_level_not_a_mapping() {
    let d = bad_file(b"- just\n- a list\n");
    assert_eq!(d["summary"], "the top level must be a mapping of keys");
}

// ---- human output -------------------------------------------------------------------

#[test]
fn human_output_shows_location_source_line_marker_and_hint() {
    let s = Scratch::new();
    s.write("tether.yaml", with("    password:", "    pasword:"));
    let out = tether(&["validate", "tether.yaml"], s.dir.path());
    assert_eq!(out.code, 1);
    let expected = "tether.yaml:8:5: error: unknown key `pasword` in `connections.exchange`
  |
8 |     pasword: ${env:TETHER_TEST_PASSWORD}
  |     ^^^^^^^
  = hint: did you mean `password`?
";
    assert!(out.stdout.starts_with(expected), "{}", out.stdout);
    assert!(
        out.stdout
            .ends_with("Configuration is not valid: 1 error, 0 warnings.\n"),
        "{}",
        out.stdout
    );
}

// ---- output -------------------------------------------------------------------------

/// Runs tether with its stdout a pipe nobody reads any more (as `tether plan | head -0`
/// leaves it): the exit code and stderr.
fn with_stdout_closed(args: &[&str], cwd: &std::path::Path) -> (i32, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .current_dir(cwd)
        .envs(TEST_ENV.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tether");
    // The reader goes away before tether has read its configuration, let alone printed.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn closed_stdout_ends_quietly() {
    let s = Scratch::new();
    s.write("org/tether.yaml", BASE);
    // `plan --out` with no data read creates the state `errors` reads; the plan is saved
    // though nobody reads what plan prints.
    for args in [
        &["validate", "org"][..],
        &["validate", "--format", "json", "org"],
        &["plan", "org", "--refresh=false", "--out", "p.tfplan"],
        &["plan", "org", "--refresh=false", "--format", "json"],
        &["errors", "org"],
        &["errors", "org", "--format", "csv"],
    ] {
        let (code, stderr) = with_stdout_closed(args, s.dir.path());
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, 0, "{args:?}: {stderr}");
    }
    assert!(s.path("p.tfplan").exists(), "the plan was saved");
}

// ---- odd files in a configuration directory -----------------------------------------

/// Runs tether, killing it and failing the test if it has not finished within 20 s: these
/// inputs used to hang or read without end, and a regression must not hang CI.
#[cfg(unix)]
fn tether_within_20s(args: &[&str], cwd: &std::path::Path) -> Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .current_dir(cwd)
        .envs(TEST_ENV.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tether");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait for tether").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tether {args:?} did not finish within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("tether output");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[cfg(unix)]
#[test]
fn fifo_named_yaml_in_a_config_directory_does_not_hang() {
    let s = Scratch::new();
    s.write("org/tether.yaml", BASE);
    let fifo = s.path("org/pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    for command in ["validate", "plan"] {
        let out = tether_within_20s(&[command, "org"], s.dir.path());
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains("org/pipe.yaml is not a regular file (it is a FIFO)"),
            "{command}: {text}"
        );
    }
}

#[cfg(unix)]
#[test]
fn yaml_symlink_to_dev_zero_is_refused_with_a_bounded_read() {
    let s = Scratch::new();
    s.write("org/tether.yaml", BASE);
    std::os::unix::fs::symlink("/dev/zero", s.path("org/zero.yaml")).unwrap();
    let out = tether_within_20s(&["validate", "--format", "json", "org"], s.dir.path());
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report = out.json();
    let d = find(
        &report,
        "org/zero.yaml is not a regular file (it is a character device)",
    );
    assert_eq!(d["severity"], "error");
    // Given alone, too.
    let out = tether_within_20s(&["validate", "org/zero.yaml"], s.dir.path());
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("org/zero.yaml is not a regular file"),
        "{}",
        out.stdout
    );
}

#[cfg(unix)]
#[test]
fn symlink_loop_is_followed_once_and_validate_and_plan_agree() {
    let s = Scratch::new();
    s.write("org/tether.yaml", BASE);
    std::os::unix::fs::symlink(".", s.path("org/again")).unwrap();
    std::os::unix::fs::symlink("..", s.path("org/up")).unwrap();
    let out = tether_within_20s(&["validate", "--format", "json", "org"], s.dir.path());
    assert_eq!(out.code, 0, "{}", out.stdout);
    let report = out.json();
    let files: std::collections::BTreeSet<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["range"]["filename"].as_str())
        .collect();
    assert!(files.iter().all(|f| *f == "org/tether.yaml"), "{report}");
    // plan loads the same one configuration: it gets past loading to the state file (a
    // directory here, so that it stops before connecting anywhere).
    std::fs::create_dir(s.path("not-a-state-file")).unwrap();
    let out = tether_within_20s(
        &["plan", "org", "--state", "not-a-state-file"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("state file not-a-state-file is not a file"),
        "{}",
        out.stderr
    );
}

#[cfg(unix)]
#[test]
fn plan_of_dev_null_says_it_is_not_a_configuration_file() {
    let s = Scratch::new();
    let out = tether_within_20s(&["plan", "/dev/null"], s.dir.path());
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("/dev/null is not a regular file (it is a character device)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("no such file"), "{}", out.stderr);
}

// ---- secret files that are not files ------------------------------------------------

/// The one diagnostic `validate --strict` gives for `${file:PATH}` as the Salesforce token.
fn secret_file_finding(setup: impl FnOnce(&Scratch), path: &str) -> serde_json::Value {
    let s = Scratch::new();
    setup(&s);
    let text = with(
        "\"${env:TETHER_TEST_TOKEN}\"",
        &format!("\"${{file:{path}}}\""),
    );
    s.write("tether.yaml", &text);
    let out = tether(
        &["validate", "--strict", "--format", "json", "tether.yaml"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let report = out.json();
    assert_eq!(report["error_count"], 1, "{report}");
    let d = report["diagnostics"][0].clone();
    assert_at(&d, "error", "tether.yaml", position_of(&text, "\"${file:"));
    d
}

#[test]
fn secret_file_that_is_a_directory_says_so() {
    let d = secret_file_finding(|s| std::fs::create_dir(s.path("keys")).unwrap(), "keys");
    assert_eq!(
        d["summary"],
        "secret file `keys` is a directory, not a file"
    );
}

#[cfg(unix)]
#[test]
fn secret_file_that_is_a_device_says_so() {
    let d = secret_file_finding(|_| {}, "/dev/zero");
    assert_eq!(
        d["summary"],
        "secret file `/dev/zero` is not a regular file (it is a character device)"
    );
    // Still named as missing when it is.
    let d = secret_file_finding(|_| {}, "keys/none");
    assert_eq!(d["summary"], "secret file `keys/none` does not exist");
}

/// An `oauth2` exchange connection replacing BASE's service account.
fn oauth2(extra: &str) -> String {
    let conn = "    method: service_account\n    ews_url: https://mail.acme.com/EWS/Exchange.asmx\n    username: svc@acme.com\n    password: ${env:TETHER_TEST_PASSWORD}\n";
    let to = format!(
        "    method: oauth2\n    tenant: acme.onmicrosoft.com\n    client_id: 7f3c9d1e-0000-4000-8000-000000000000\n    client_secret: ${{env:TETHER_TEST_PASSWORD}}\n{extra}"
    );
    with(conn, &to)
}

#[test]
fn rule_graph_api_on_a_service_account_says_graph_needs_oauth2() {
    let d = expect(
        &with(
            "    method: service_account\n",
            "    method: service_account\n    api: graph\n",
        ),
        "error",
        "unknown key `api` in `connections.exchange`",
        "api: graph",
    );
    let hint = d["detail"].as_str().unwrap();
    assert!(
        hint.contains("Microsoft Graph needs `method: oauth2`"),
        "{d}"
    );
}

#[test]
fn rule_exchange_online_ews_warns_with_the_retirement_dates() {
    // Absent, the EWS URL is Exchange Online's; named, it is warned about at the URL.
    let summary = "Exchange Online blocks EWS since 1 October 2026 unless the tenant allow-listed this app, and turns EWS off on 1 April 2027";
    let d = expect(&oauth2(""), "warning", summary, "exchange:");
    assert!(d["detail"].as_str().unwrap().contains("api: graph"), "{d}");
    expect(
        &oauth2("    ews_url: https://outlook.office365.com/EWS/Exchange.asmx\n"),
        "warning",
        summary,
        "https://outlook.office365.com",
    );
    // On premises (or the sandbox), no warning.
    let (code, report) = check(&oauth2(
        "    ews_url: https://mail.acme.com/EWS/Exchange.asmx\n",
    ));
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["warning_count"], 0, "{report}");
}

#[test]
fn rule_graph_connection_validates_its_urls_and_is_not_told_sync_is_unavailable() {
    let text = oauth2(
        "    api: graph\n    graph_url: https://graph.microsoft.us/v1.0\n    token_url: https://login.microsoftonline.us/acme.onmicrosoft.com/oauth2/v2.0/token\n",
    );
    let (code, report) = check(&text);
    assert_eq!(code, 0, "{report}");
    // Graph syncs since the Graph connector landed; validate said it could not.
    assert_eq!(report["warning_count"], 0, "{report}");
    expect(
        &oauth2("    api: graph\n    graph_url: http://graph.example.com/v1.0\n"),
        "error",
        "http://graph.example.com/v1.0 uses plain http; use https (plain http is allowed only for loopback hosts such as the sandbox)",
        "http://graph.example.com",
    );
    // GCC High signs in at its own login host.
    let d = expect(
        &oauth2("    api: graph\n    graph_url: https://graph.microsoft.us/v1.0\n"),
        "warning",
        "this national cloud's apps sign in at login.microsoftonline.us, not at the default token URL",
        "https://graph.microsoft.us",
    );
    assert_eq!(
        d["detail"],
        "set `token_url: https://login.microsoftonline.us/<tenant>/oauth2/v2.0/token`"
    );
    expect(
        &oauth2("    api: graph\n    ews_url: https://outlook.office365.com/EWS/Exchange.asmx\n"),
        "warning",
        "`ews_url` is not used with `api: graph`",
        "ews_url",
    );
}

#[test]
fn rule_certificate_thumbprint_is_sha1_or_sha256() {
    let cert = |t: &str| {
        oauth2("").replace(
            "    client_secret: ${env:TETHER_TEST_PASSWORD}\n",
            &format!("    api: graph\n    certificate:\n      private_key: ${{env:TETHER_TEST_PASSWORD}}\n      thumbprint: {t}\n"),
        )
    };
    for good in ["a1".repeat(20), "B2".repeat(32)] {
        let (code, report) = check(&cert(&good));
        assert_eq!(code, 0, "{good}: {report}");
    }
    expect(
        &cert(&"a1".repeat(24)),
        "error",
        "`connections.exchange.certificate.thumbprint` must be the certificate's thumbprint: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits",
        &"a1".repeat(24),
    );
}

/// CI gives an undefined secret as an empty string: `--strict` refuses it like an unset
/// one, at the reference's file:line:col, and so does an empty secret file.
#[test]
fn strict_validate_refuses_a_secret_that_resolves_to_an_empty_string() {
    let s = Scratch::new();
    s.write("tether.yaml", BASE);
    let out = tether_with_env(
        &["validate", "--strict", "--format", "json", "tether.yaml"],
        s.dir.path(),
        &[("TETHER_TEST_PASSWORD", "")],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let d = find(
        &out.json(),
        "environment variable `TETHER_TEST_PASSWORD` is set to an empty string",
    )
    .clone();
    assert_at(
        &d,
        "error",
        "tether.yaml",
        position_of(BASE, "${env:TETHER_TEST_PASSWORD}"),
    );
    let human = tether_with_env(
        &["validate", "--strict", "tether.yaml"],
        s.dir.path(),
        &[("TETHER_TEST_PASSWORD", "")],
    );
    let (line, col) = position_of(BASE, "${env:TETHER_TEST_PASSWORD}");
    assert!(
        human.stdout.contains(&format!("tether.yaml:{line}:{col}")),
        "{}",
        human.stdout
    );

    let text = with("\"${env:TETHER_TEST_TOKEN}\"", "\"${file:token.txt}\"");
    s.write("tether.yaml", &text);
    s.write("token.txt", "\n");
    let out = tether(
        &["validate", "--strict", "--format", "json", "tether.yaml"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let d = find(&out.json(), "secret file `token.txt` is empty").clone();
    assert_at(&d, "error", "tether.yaml", position_of(&text, "\"${file:"));
}

/// `send_cancellations` governs Graph deletes only; over EWS it silently did nothing.
#[test]
fn send_cancellations_over_ews_warns_that_it_has_no_effect() {
    let text = with(
        "      since: TODAY\n",
        "      since: TODAY\n      send_cancellations: true\n",
    );
    expect(
        &text,
        "warning",
        "`send_cancellations` has no effect over EWS: EWS deletes a meeting without mailing its attendees",
        "send_cancellations",
    );
    let graph = oauth2("    api: graph\n").replace(
        "      since: TODAY\n",
        "      since: TODAY\n      send_cancellations: true\n",
    );
    let (code, report) = check(&graph);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["warning_count"], 0, "{report}");
}
