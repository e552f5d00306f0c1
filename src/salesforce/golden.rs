//! The Salesforce decoders against golden answers (tests/fixtures/golden/salesforce,
//! provenance in its PROVENANCE.md): each answer goes through the reader a live one takes and
//! the facts it carries are checked.

use super::ops::{self, RecordOutcome};
use super::{SfError, decode_token, parse_errors};
use crate::golden;
use chrono::{DateTime, Utc};
use url::Url;

fn bytes(file: &str) -> Vec<u8> {
    golden::read("salesforce", file)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn login() -> Url {
    Url::parse("https://login.salesforce.com").unwrap()
}

/// `(errorCode, message)` of each request-level error in an error body.
fn errors(file: &str) -> Vec<(String, String)> {
    parse_errors(&bytes(file))
        .into_iter()
        .map(|e| (e.error_code, e.message))
        .collect()
}

#[test]
fn every_salesforce_golden_answer_has_provenance_and_a_test() {
    golden::assert_complete("salesforce", ".json", include_str!("golden.rs"));
}

#[test]
fn token_answers_give_the_access_token_and_the_instance_to_call() {
    for (file, token) in [
        (
            "oauth_token_success.json",
            "00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0Gomt9Czx9LjHnSSpwBMmbRcgKFmxOtvxjTrKW19ye6PE3Ds1eQz3z8jr3W7_VbWmEu4Q8TVGSTHxs",
        ),
        ("oauth_refresh_success.json", "refreshed_access_token"),
    ] {
        let (secret, instance) = decode_token("refresh_token", 200, &bytes(file), &login())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(secret.expose(), token, "{file}");
        assert_eq!(instance.as_str(), "https://na1.salesforce.com/", "{file}");
    }
}

#[test]
fn token_errors_keep_the_oauth_error_and_its_description() {
    for (file, description) in [
        (
            "oauth_error_invalid_password.json",
            "authentication failure - Invalid Password",
        ),
        (
            "oauth_error_expired_refresh_token.json",
            "expired access/refresh token",
        ),
    ] {
        match decode_token("refresh_token", 400, &bytes(file), &login()) {
            Err(SfError::Auth {
                error,
                description: d,
                ..
            }) => assert_eq!((error.as_str(), d.as_str()), ("invalid_grant", description)),
            other => panic!("{file}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn query_pages_give_records_total_and_the_next_page_until_done() {
    let first = ops::decode_query_page(&bytes("query_first_page_next_records_url.json")).unwrap();
    assert_eq!(first.total_size, 2);
    assert_eq!(
        first.next.as_deref(),
        Some("/services/data/v38.0/query/01gD")
    );
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.records[0]["Text_Label"], "First Page");

    let last = ops::decode_query_page(&bytes("query_last_page.json")).unwrap();
    assert_eq!((last.total_size, last.next), (2, None));
    assert_eq!(last.records[0]["Text_Label"], "Last Page");

    let empty = ops::decode_query_page(&bytes("query_empty.json")).unwrap();
    assert_eq!((empty.total_size, empty.records.len()), (0, 0));
    assert_eq!(empty.next, None);
}

#[test]
fn query_record_keeps_its_attributes_fields_and_parent_relationship() {
    let page = ops::decode_query_page(&bytes("query_with_parent_relationship.json")).unwrap();
    assert_eq!((page.total_size, page.next.as_deref()), (1, None));
    let r = &page.records[0];
    assert_eq!(r["attributes"]["type"], "Whizbang");
    assert_eq!(
        r["attributes"]["url"],
        "/services/data/v20.0/sobjects/Whizbang/foo"
    );
    assert_eq!(r["Checkbox_Label"], false);
    assert_eq!(r["DateTime_Label"], "2011-07-07T00:37:00.000+0000");
    assert_eq!(r["ParentWhizbang__r"]["Name"], "Parent Whizbang");
}

#[test]
fn aggregate_query_rows_without_a_record_url_are_still_records() {
    let page = ops::decode_query_page(&bytes("query_aggregate.json")).unwrap();
    assert_eq!(page.total_size, 3);
    let campaigns: Vec<Option<&str>> = page
        .records
        .iter()
        .map(|r| r["CampaignId"].as_str())
        .collect();
    assert_eq!(
        campaigns,
        [Some("701E0000000JuFHIA0"), Some("701E00000005ZqAIAU"), None]
    );
    assert_eq!(page.records[2]["expr0"], 400);
}

#[test]
fn get_updated_gives_the_ids_and_the_latest_date_covered() {
    let u = ops::decode_updated(&bytes("get_updated.json")).unwrap();
    assert_eq!(
        u.ids,
        [
            "003q000000KvQ1tAAF",
            "003q000000KvQ2DAAV",
            "003q000000KwKFhAAN",
            "003q000000KwKJoAAN",
            "003q000000KwJyqAAF",
            "003q000000KwJwLAAV",
            "003q000000KwYFaAAN"
        ]
    );
    // `+0000`, Salesforce's offset without a colon, is read as UTC.
    assert_eq!(u.latest_date_covered, Some(at("2015-08-19T08:17:00Z")));
}

#[test]
fn get_deleted_gives_each_id_with_its_date_and_the_window() {
    let d = ops::decode_deleted(&bytes("get_deleted.json")).unwrap();
    assert_eq!(
        d.records,
        [("a00D0000008pQRAIA2".to_string(), at("2013-05-07T22:07:19Z"))]
    );
    assert_eq!(d.earliest_date_available, Some(at("2013-05-03T15:57:00Z")));
    assert_eq!(d.latest_date_covered, Some(at("2013-05-08T21:20:00Z")));
}

#[test]
fn describe_gives_fields_with_type_length_and_write_rights() {
    let d = ops::decode_describe(&bytes("describe_whizbang.json")).unwrap();
    assert_eq!(d.name, "Whizbang");
    assert_eq!(d.key_prefix.as_deref(), Some("a01"));
    assert_eq!(d.fields.len(), 29);
    let id = d.field("id").unwrap();
    assert_eq!((id.kind.as_str(), id.length), ("id", 18));
    assert!(!id.createable && !id.updateable && !id.nillable);
    let name = d.field("Name").unwrap();
    assert_eq!((name.kind.as_str(), name.length), ("string", 80));
    assert!(name.createable && name.updateable && name.nillable);
    let once = d.field("CreateableButNotUpdateableField").unwrap();
    assert!(once.createable && !once.updateable);
    let later = d.field("UpdateableButNotCreateableField").unwrap();
    assert!(!later.createable && later.updateable);
    assert_eq!(d.field("TextAreaLong_Field").unwrap().length, 32768);
    // A field the answer gives no length has none.
    assert_eq!(d.field("ParentWhizbang__c").unwrap().length, 0);
    // Child relationships without a relationshipName are left out.
    assert_eq!(
        d.child_relationships,
        [
            "Attachments",
            "FeedSubscriptionsForEntity",
            "Notes",
            "NotesAndAttachments",
            "ProcessInstances",
            "ProcessSteps"
        ]
    );
}

#[test]
fn collection_answers_give_one_outcome_per_record_and_refuse_a_wrong_count() {
    assert_eq!(
        ops::decode_collection(&bytes("collection_create_success.json"), 1).unwrap(),
        [RecordOutcome::Success {
            id: "some_id".into()
        }]
    );
    assert_eq!(
        ops::decode_collection(&bytes("collection_delete_success.json"), 1).unwrap(),
        [RecordOutcome::Success { id: "Foo".into() }]
    );
    // Two records sent, one result back: nothing is matched up by guesswork.
    assert!(matches!(
        ops::decode_collection(&bytes("collection_create_success.json"), 2),
        Err(SfError::Malformed { .. })
    ));
}

#[test]
fn error_bodies_keep_each_error_code_and_message() {
    for (file, code, message) in [
        (
            "error_invalid_field_query.json",
            "INVALID_FIELD",
            "error_message",
        ),
        (
            "error_invalid_field_write.json",
            "INVALID_FIELD",
            "No such column 'foo' on sobject of type Bar",
        ),
        (
            "error_not_found_describe.json",
            "NOT_FOUND",
            "The requested resource does not exist",
        ),
        (
            "error_not_found_external_id.json",
            "NOT_FOUND",
            "Provided external ID field does not exist or is not accessible: rid",
        ),
        (
            "error_malformed_search.json",
            "MALFORMED_SEARCH",
            "No search term found. The search term must be enclosed in braces.",
        ),
        (
            "error_required_field_missing_collection_delete.json",
            "REQUIRED_FIELD_MISSING",
            "At least 1 Id is required.",
        ),
        // sObject Collections refuse a body with ONE error object, not an array.
        (
            "error_invalid_field_collection_single_object.json",
            "INVALID_FIELD",
            "Json Deserialization failed on token 'null' and has left off in the middle of parsing a row. Will go to end of row to begin parsing the next row",
        ),
    ] {
        assert_eq!(
            errors(file),
            [(code.to_string(), message.to_string())],
            "{file}"
        );
    }
}

fn failed(code: &str, message: &str, fields: &[&str]) -> RecordOutcome {
    RecordOutcome::Failed {
        errors: vec![ops::RecordError {
            status_code: code.into(),
            message: message.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }],
    }
}

fn success(id: &str) -> RecordOutcome {
    RecordOutcome::Success { id: id.into() }
}

#[test]
fn documented_collection_answers_give_each_record_its_own_outcome() {
    for (file, expected) in [
        (
            "doc_collection_create_success.json",
            vec![success("001RM000003oLnnYAE"), success("003RM0000068xV6YAI")],
        ),
        (
            "doc_collection_create_duplicates_detected.json",
            vec![
                failed("DUPLICATES_DETECTED", "Use one of these records?", &[]),
                success("003RM0000068xVCYAY"),
            ],
        ),
        (
            "doc_collection_update_malformed_id.json",
            vec![
                success("001RM000003oCprYAE"),
                failed(
                    "MALFORMED_ID",
                    "Contact ID: id value of incorrect type: 001xx000003DGb2999",
                    &["Id"],
                ),
            ],
        ),
        (
            "doc_collection_delete_malformed_id.json",
            vec![
                success("001RM000003oLrfYAE"),
                failed("MALFORMED_ID", "malformed id 001RM000003oLrB000", &[]),
            ],
        ),
        // Upsert results add `created`; the outcome is the same success.
        (
            "doc_collection_upsert_created_flags.json",
            vec![success("001xx0000004GxDAAU"), success("001xx0000004GxEAAU")],
        ),
    ] {
        assert_eq!(
            ops::decode_collection(&bytes(file), 2).unwrap(),
            expected,
            "{file}"
        );
    }
}

#[test]
fn documented_single_object_error_keeps_its_code() {
    assert_eq!(
        errors("doc_error_not_found_single_object.json"),
        [(
            "NOT_FOUND".to_string(),
            "The requested resource does not exist".to_string()
        )]
    );
}

#[test]
fn documented_relationship_records_read_as_a_query_page() {
    let page = ops::decode_query_page(&bytes("doc_query_relationship_records.json")).unwrap();
    assert_eq!((page.total_size, page.next), (2, None));
    let rows: Vec<(&str, f64)> = page
        .records
        .iter()
        .map(|r| {
            (
                r["Name"].as_str().unwrap(),
                r["Units_Sold__c"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("LineItem1", 10.0), ("LineItem2", 8.0)]);
}

#[test]
fn documented_get_deleted_reads_as_restforce_recorded_it() {
    // restforce's fixture is this documented example, reformatted: the same facts.
    let documented = ops::decode_deleted(&bytes("doc_get_deleted.json")).unwrap();
    assert_eq!(
        documented,
        ops::decode_deleted(&bytes("get_deleted.json")).unwrap()
    );
    assert_eq!(documented.records[0].0, "a00D0000008pQRAIA2");
}
