//! Tests of the public API: the examples of Consul's filtering docs (Consul HTTP API, Filtering) against
//! the JSON shapes Consul answers with, `apply`/`apply_map`, the input bounds, and "never panics" properties.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

/// One `/v1/health/service/:service` entry, Consul's wire shape.
fn health_entry(node: &str, tags: &[&str], env: &str, statuses: &[&str]) -> Value {
    let checks: Vec<Value> = statuses
        .iter()
        .enumerate()
        .map(|(i, status)| json!({"Node": node, "CheckID": format!("check-{i}"), "Status": status}))
        .collect();
    json!({
        "Node": {"Node": node, "Address": "10.0.0.1", "Meta": {"rack": "r1"}},
        "Service": {"ID": "web", "Service": "web", "Tags": tags, "Port": 8080, "Meta": {"env": env}},
        "Checks": checks,
    })
}

fn keep(expr: &str, items: &[Value]) -> Vec<String> {
    apply(Some(expr), items.to_vec())
        .expect("valid filter")
        .iter()
        .map(|v| v["Node"]["Node"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn consul_docs_examples_filter_health_entries() {
    let entries = [
        health_entry("n1", &["primary", "v1"], "production", &["passing", "passing"]),
        health_entry("n2", &["secondary"], "staging", &["passing", "critical"]),
        health_entry("n3", &[], "production", &[]),
    ];
    assert_eq!(keep("Service.Meta.env == production", &entries), ["n1", "n3"]);
    assert_eq!(keep("Service.Meta[\"env\"] == `production`", &entries), ["n1", "n3"]);
    assert_eq!(keep("\"primary\" in Service.Tags", &entries), ["n1"]);
    assert_eq!(keep("Service.Tags is empty", &entries), ["n3"]);
    assert_eq!(keep("Checks.Status == passing", &entries), ["n1", "n2"]);
    assert_eq!(keep("Checks.Status == critical", &entries), ["n2"]);
    assert_eq!(keep("not Checks.Status == critical", &entries), ["n1", "n3"]);
    assert_eq!(
        keep("Service.Meta.env == production and not Service.Tags contains primary or Node.Node == n2", &entries),
        ["n2", "n3"]
    );
    assert_eq!(keep("Node.Meta.rack matches \"^r[0-9]$\" and Service.Port == 8080", &entries), ["n1", "n2", "n3"]);
    assert_eq!(keep("Service.Meta.missing is empty", &entries), ["n1", "n2", "n3"]);
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentService {
    #[serde(rename = "ID")]
    id: String,
    service: String,
    tags: Vec<String>,
    port: u16,
    meta: BTreeMap<String, String>,
    enable_tag_override: bool,
}

fn agent_service(id: &str, port: u16, tags: &[&str], override_tags: bool) -> AgentService {
    AgentService {
        id: id.to_string(),
        service: id.trim_end_matches(char::is_numeric).to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        port,
        meta: BTreeMap::from([("version".to_string(), "2".to_string())]),
        enable_tag_override: override_tags,
    }
}

#[test]
fn apply_keeps_matching_structs_in_order() {
    let services = vec![
        agent_service("web1", 8080, &["v1"], false),
        agent_service("db1", 5432, &[], true),
        agent_service("web2", 8081, &["v2"], true),
    ];
    let ids = |kept: Vec<AgentService>| kept.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(apply(Some("Service == web"), services.clone()).expect("valid")), ["web1", "web2"]);
    assert_eq!(ids(apply(Some("Port == 5432"), services.clone()).expect("valid")), ["db1"]);
    assert_eq!(ids(apply(Some("EnableTagOverride == true"), services.clone()).expect("valid")), ["db1", "web2"]);
    assert_eq!(ids(apply(Some("Meta.version == 2"), services.clone()).expect("valid")), ["web1", "db1", "web2"]);
    assert_eq!(apply(None, services.clone()).expect("no filter"), services);
    assert_eq!(apply(Some(""), services.clone()).expect("empty filter"), services);
}

#[test]
fn apply_map_filters_values_and_keeps_keys() {
    let services = BTreeMap::from([
        ("web1".to_string(), agent_service("web1", 8080, &["primary"], false)),
        ("web2".to_string(), agent_service("web2", 8081, &[], false)),
    ]);
    let kept = apply_map(Some("primary in Tags"), services.clone()).expect("valid");
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["web1"]);
    assert_eq!(apply_map(None, services.clone()).expect("no filter"), services);
    assert_eq!(
        apply_map(Some("Tags =="), services).expect_err("invalid").to_string(),
        "filter: unexpected end of expression at column 8, expected a value"
    );
}

#[test]
fn errors_carry_consul_prefix_and_are_bad_requests() {
    let err = Filter::parse("Service.Meta and == x").expect_err("invalid");
    assert_eq!(
        err.consul_message(),
        "Failed to create boolean expression evaluator: filter: unexpected token \"and\" at column 14, \
         expected a match operator (==, !=, contains, matches, in, is empty, or a \"not\" form)"
    );
    assert!(err.is_bad_request());
    let whitespace = apply(Some("  "), vec![json!({})]).expect_err("whitespace is not an expression");
    assert_eq!(whitespace.to_string(), "filter: unexpected end of expression at column 3, expected a selector");
}

#[test]
fn unserializable_items_are_a_server_fault() {
    let items = vec![BTreeMap::from([((1, 2), "tuple keys are not JSON object keys")])];
    let err = apply(Some("A is empty"), items).expect_err("cannot serialize");
    assert!(!err.is_bad_request());
    assert!(err.to_string().starts_with("filter: cannot serialize an item to JSON: "), "{err}");
}

#[test]
fn expression_length_is_bounded() {
    let padded = format!("A == {}", "x".repeat(EXPRESSION_BYTES_MAX - 5));
    assert_eq!(padded.len(), EXPRESSION_BYTES_MAX);
    assert!(Filter::parse(&padded).is_ok());
    let long = format!("{padded}y");
    assert_eq!(
        Filter::parse(&long).expect_err("too long").to_string(),
        "filter: expression is 4097 bytes, longer than the limit of 4096 bytes"
    );
}

#[test]
fn deep_nesting_within_the_length_bound_is_an_error_not_a_stack_overflow() {
    for depth in [65, 1000, EXPRESSION_BYTES_MAX] {
        let expr = "(".repeat(depth);
        assert_eq!(
            Filter::parse(&expr).expect_err("too deep").to_string(),
            "filter: expression nested deeper than 64 levels at column 65"
        );
    }
}

/// Fragments that make random inputs reach deep into the grammar, not just fail in the lexer.
const FRAGMENTS: &[&str] = &[
    "A", "B.c", "Meta[\"k\"]", "L.0", " ", "(", ")", "==", "!=", "and", "or", "not", "in", "contains", "matches",
    "is", "empty", "\"s\"", "`r`", "1", "-2.5", "true", "\"", "`", "[", "]", ".", "\\", "é", "\"(\"",
];

fn sample() -> Value {
    json!({"A": "x", "B": {"c": [1, "x", true]}, "Meta": {"k": ""}, "L": [{"A": "y"}, null], "N": 3})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary text never panics the parser; if it parses, matching never panics either.
    #[test]
    fn arbitrary_strings_never_panic(expr in any::<String>()) {
        if let Ok(filter) = Filter::parse(&expr) {
            filter.matches(&sample());
        }
    }

    /// Token-shaped inputs never panic, and every error names a column inside the input (or just past it).
    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..40)) {
        let expr = parts.join(" ");
        match Filter::parse(&expr) {
            Ok(filter) => { filter.matches(&sample()); }
            Err(err) => {
                let message = err.to_string();
                prop_assert!(message.starts_with("filter: "), "{}", message);
                if let Some(at) = message.find("at column ") {
                    let column: usize = message[at + 10..]
                        .chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0);
                    prop_assert!(column >= 1 && column <= expr.chars().count() + 1, "{} in {:?}", message, expr);
                }
            }
        }
    }

    /// `not X` always disagrees with `X`, whatever the operator and whether the field exists.
    #[test]
    fn not_negates(
        selector in proptest::sample::select(&["A", "B.c", "Meta.k", "L.A", "N", "Missing", "L.1"][..]),
        op in proptest::sample::select(&["== x", "!= x", "contains x", "not contains x", "matches x",
                                         "not matches x", "is empty", "is not empty", "== 3"][..]),
    ) {
        let expr = format!("{selector} {op}");
        let positive = Filter::parse(&expr).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let negated = Filter::parse(&format!("not ({expr})")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_ne!(positive.matches(&sample()), negated.matches(&sample()));
    }
}
