//! The evaluator of the filter language: decides whether a parsed [`Expr`] matches one JSON value.
//!
//! Owns the match semantics, after go-bexpr v0.1.2 (the release Consul's `?filter=` was built on; see
//! hashicorp/go-bexpr `evaluate.go`):
//! - A selector walks object keys; a numeric segment indexes a list. Any other segment applied to a list is
//!   applied to *every element*, and the match holds if it holds for *any* element, the operator (negated
//!   ones included) evaluated per element: `Checks.Status != passing` means "some check is not passing"; an
//!   empty list matches nothing.
//! - A missing path (absent key, JSON `null`, out-of-range index, a scalar with segments left) is "no
//!   match" for `==`, `in`/`contains`, `matches` and `is not empty`, and a match for their negations and for
//!   `is empty` (go-bexpr rejects unknown struct fields at parse time; we have no schema).
//! - The value's text is coerced to the selected field's JSON type: a string compares as text, a bool with
//!   Go's `strconv.ParseBool` spellings, an integer with Go's `ParseInt` base prefixes, a float as a float.
//!   Where go-bexpr would fail (a value that does not parse as the field's type, `matches` on a non-string,
//!   `==` on a list or object), the positive operator is false and its negation true.
//!
//! It never fails and never panics: evaluation depth is bounded by the parser's limits.

use serde_json::Value;

use super::parser::{Expr, Match, MatchOp};

/// Whether `expr` holds for `item`.
pub(crate) fn eval(expr: &Expr, item: &Value) -> bool {
    match expr {
        Expr::Or(operands) => operands.iter().any(|e| eval(e, item)),
        Expr::And(operands) => operands.iter().all(|e| eval(e, item)),
        Expr::Not(operand) => !eval(operand, item),
        Expr::Match(m) => eval_match(m, item, 0),
    }
}

/// Walks `m.selector` from segment `depth` into `value`, fanning out over lists (any element).
fn eval_match(m: &Match, value: &Value, depth: usize) -> bool {
    let Some(segment) = m.selector.get(depth) else {
        return apply(m, Some(value));
    };
    match value {
        Value::Object(fields) => match fields.get(segment.as_str()) {
            Some(child) => eval_match(m, child, depth + 1),
            None => apply(m, None),
        },
        Value::Array(items) => match segment.parse::<usize>() {
            Ok(index) => match items.get(index) {
                Some(child) => eval_match(m, child, depth + 1),
                None => apply(m, None),
            },
            // The same segment again, on each element.
            Err(_) => items.iter().any(|item| eval_match(m, item, depth)),
        },
        _ => apply(m, None),
    }
}

/// Applies the operator to the selected value (`None` or `null` when the path is missing).
fn apply(m: &Match, selected: Option<&Value>) -> bool {
    let selected = selected.filter(|v| !v.is_null());
    let raw = m.value.as_ref().map(|v| v.raw.as_str()).unwrap_or_default();
    let positive = match m.op {
        MatchOp::Equal | MatchOp::NotEqual => selected.is_some_and(|v| equals(raw, v)),
        MatchOp::In | MatchOp::NotIn => selected.is_some_and(|v| contains(raw, v)),
        MatchOp::Matches | MatchOp::NotMatches => {
            let regex = m.value.as_ref().and_then(|v| v.regex.as_ref());
            debug_assert!(regex.is_some(), "the parser compiles every matches pattern");
            match (selected, regex) {
                (Some(Value::String(s)), Some(regex)) => regex.is_match(s),
                _ => false,
            }
        }
        MatchOp::IsEmpty | MatchOp::IsNotEmpty => is_empty(selected),
    };
    match m.op {
        MatchOp::Equal | MatchOp::In | MatchOp::Matches | MatchOp::IsEmpty => positive,
        MatchOp::NotEqual | MatchOp::NotIn | MatchOp::NotMatches | MatchOp::IsNotEmpty => !positive,
    }
}

/// `raw`, coerced to the type of `value`, equals `value`. Lists and objects equal nothing.
fn equals(raw: &str, value: &Value) -> bool {
    match value {
        Value::String(s) => s == raw,
        Value::Bool(b) => parse_go_bool(raw) == Some(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                parse_go_int(raw).map_or_else(|| float_equals(raw, n.as_f64()), |r| r == i128::from(i))
            } else if let Some(u) = n.as_u64() {
                parse_go_int(raw).map_or_else(|| float_equals(raw, n.as_f64()), |r| r == i128::from(u))
            } else {
                float_equals(raw, n.as_f64())
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

fn float_equals(raw: &str, value: Option<f64>) -> bool {
    matches!((raw.parse::<f64>(), value), (Ok(r), Some(v)) if r == v)
}

/// `in`/`contains`: a key of an object, an element of a list (each coerced on its own type), a substring
/// of a string. Numbers and bools contain nothing.
fn contains(raw: &str, value: &Value) -> bool {
    match value {
        Value::Object(fields) => fields.contains_key(raw),
        Value::Array(items) => items.iter().any(|item| equals(raw, item)),
        Value::String(s) => s.contains(raw),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Missing, or a string, list or object of length zero. A number or bool is never empty.
fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(fields)) => fields.is_empty(),
        Some(Value::Bool(_) | Value::Number(_)) => false,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(raw, 0, 64)` without `_` separators: an optional sign, then decimal, `0x` hex,
/// `0o`/`0` octal or `0b` binary. Widened to i128 so unsigned 64-bit fields compare exactly.
fn parse_go_int(raw: &str) -> Option<i128> {
    let (negative, unsigned) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;
    use serde_json::json;

    fn holds(expr: &str, item: &Value) -> bool {
        eval(&parse(expr).expect("parses"), item)
    }

    fn service() -> Value {
        json!({
            "ServiceName": "web",
            "ServicePort": 8080,
            "ServiceWeight": 1.5,
            "ServiceEnableTagOverride": true,
            "ServiceTags": ["primary", "v1"],
            "ServiceMeta": {"env": "production", "some key": "x"},
            "ServiceAddress": "",
            "Empty": {},
            "Nothing": null,
            "Big": u64::MAX,
            "Mixed": [1, "two", true],
        })
    }

    #[test]
    fn equality_follows_the_field_type() {
        let s = service();
        assert!(holds("ServiceName == web", &s));
        assert!(holds("ServiceName != api", &s));
        assert!(holds("ServicePort == 8080", &s));
        assert!(holds("ServicePort == \"8080\"", &s), "a quoted number still coerces to the int field");
        assert!(holds("ServicePort == `0x1F90`", &s), "Go ParseInt base prefixes");
        assert!(!holds("ServicePort == 8081", &s));
        assert!(!holds("ServicePort == web", &s), "an unparseable value equals nothing");
        assert!(holds("ServicePort != web", &s));
        assert!(holds("ServiceWeight == 1.5", &s));
        assert!(holds("ServiceEnableTagOverride == true", &s));
        assert!(holds("ServiceEnableTagOverride == T", &s), "Go ParseBool spellings");
        assert!(holds("ServiceEnableTagOverride != false", &s));
        assert!(holds("Big == 18446744073709551615", &s));
        assert!(!holds("ServiceTags == primary", &s), "a list equals no scalar");
    }

    #[test]
    fn in_and_contains_cover_lists_maps_and_substrings() {
        let s = service();
        assert!(holds("\"primary\" in ServiceTags", &s));
        assert!(holds("ServiceTags contains v1", &s));
        assert!(holds("v2 not in ServiceTags", &s));
        assert!(holds("ServiceTags not contains v2", &s));
        assert!(holds("env in ServiceMeta", &s), "map: key presence");
        assert!(holds("\"some key\" in ServiceMeta", &s));
        assert!(!holds("production in ServiceMeta", &s), "map membership is by key, not value");
        assert!(holds("ServiceName contains we", &s), "string: substring");
        assert!(holds("eb in ServiceName", &s));
        assert!(holds("1 in Mixed", &s) && holds("two in Mixed", &s) && holds("true in Mixed", &s));
        assert!(!holds("3 in Mixed", &s));
        assert!(!holds("ServicePort contains 80", &s), "numbers contain nothing");
    }

    #[test]
    fn matches_uses_regular_expressions_on_strings() {
        let s = service();
        assert!(holds("ServiceName matches \"^w.b$\"", &s));
        assert!(holds("ServiceName not matches `^api`", &s));
        assert!(holds("ServiceMeta.env matches prod", &s), "unanchored, like Go's regexp.Match");
        assert!(!holds("ServicePort matches \"80\"", &s), "matches applies to strings only");
        assert!(holds("ServicePort not matches \"80\"", &s));
    }

    #[test]
    fn emptiness_of_strings_lists_maps_and_missing() {
        let s = service();
        assert!(holds("ServiceAddress is empty", &s));
        assert!(holds("Empty is empty", &s));
        assert!(holds("Nothing is empty", &s));
        assert!(holds("Absent is empty", &s));
        assert!(holds("ServiceTags is not empty", &s));
        assert!(holds("ServiceMeta is not empty", &s));
        assert!(!holds("ServicePort is empty", &s), "a number is never empty");
    }

    #[test]
    fn selectors_reach_into_maps_and_list_indexes() {
        let s = service();
        assert!(holds("ServiceMeta.env == production", &s));
        assert!(holds("ServiceMeta[\"some key\"] == x", &s));
        assert!(holds("ServiceMeta[`env`] == production", &s));
        assert!(holds("ServiceTags.1 == v1", &s));
        assert!(!holds("ServiceTags.5 == v1", &s));
    }

    #[test]
    fn missing_paths_match_only_negative_operators() {
        let s = service();
        for positive in ["Absent == x", "x in Absent", "Absent contains x", "Absent matches x", "Absent is not empty"]
        {
            assert!(!holds(positive, &s), "{positive}");
        }
        for negative in ["Absent != x", "x not in Absent", "Absent not contains x", "Absent not matches x"] {
            assert!(holds(negative, &s), "{negative}");
        }
        assert!(holds("ServiceMeta.nope != x", &s));
        assert!(holds("ServiceName.deeper != x", &s), "a scalar with segments left is missing");
        assert!(!holds("Nothing == x", &s), "null is missing");
    }

    #[test]
    fn selectors_through_a_list_of_objects_match_any_element() {
        let entry = json!({
            "Checks": [
                {"CheckID": "serfHealth", "Status": "passing", "ServiceTags": []},
                {"CheckID": "web", "Status": "critical", "ServiceTags": ["a"]},
            ],
            "NoChecks": [],
        });
        assert!(holds("Checks.Status == passing", &entry));
        assert!(holds("Checks.Status == critical", &entry));
        assert!(!holds("Checks.Status == warning", &entry));
        assert!(holds("Checks.Status != passing", &entry), "per element: some check is not passing");
        assert!(!holds("not Checks.Status == critical", &entry), "no check is critical: false");
        assert!(holds("a in Checks.ServiceTags", &entry));
        assert!(holds("Checks.ServiceTags is empty", &entry));
        assert!(holds("Checks.CheckID matches \"^serf\"", &entry));
        assert!(holds("Checks.0.Status == passing", &entry) && !holds("Checks.1.Status == passing", &entry));
        assert!(!holds("NoChecks.Status == passing", &entry), "an empty list matches nothing");
        assert!(!holds("NoChecks.Status != passing", &entry));
    }

    #[test]
    fn boolean_connectives_evaluate_with_precedence() {
        let s = service();
        assert!(holds("ServiceName == api and ServicePort == 1 or ServiceName == web", &s));
        assert!(!holds("ServiceName == api and (ServicePort == 1 or ServiceName == web)", &s));
        assert!(holds("not ServiceName == api and ServicePort == 8080", &s));
        assert!(!holds("not (ServiceName == web and ServicePort == 8080)", &s));
        assert!(holds("not not ServiceName == web", &s));
    }

    #[test]
    fn go_integer_and_bool_spellings() {
        assert_eq!(parse_go_int("42"), Some(42));
        assert_eq!(parse_go_int("-0x2a"), Some(-42));
        assert_eq!(parse_go_int("0o52"), Some(42));
        assert_eq!(parse_go_int("052"), Some(42));
        assert_eq!(parse_go_int("0b101010"), Some(42));
        assert_eq!(parse_go_int("0"), Some(0));
        assert_eq!(parse_go_int("0x"), None);
        assert_eq!(parse_go_int("1.5"), None);
        assert_eq!(parse_go_int("09"), None);
        assert_eq!(parse_go_bool("True"), Some(true));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
