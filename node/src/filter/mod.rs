//! Consul's `?filter=` expressions (source: Consul HTTP API, Filtering —
//! <https://developer.hashicorp.com/consul/api-docs/features/filtering>; language: hashicorp/go-bexpr).
//!
//! Owns parsing a filter expression into a [`Filter`] and deciding which items of a list endpoint's answer it
//! keeps. Items are judged as their JSON serialization (`serde_json::Value`), so selectors name the wire
//! (PascalCase) field names: `ServiceMeta.env == production`, `"primary" in ServiceTags`,
//! `Checks.Status == passing`. It never touches HTTP: the HTTP layer turns a [`FilterError`] into `400` with
//! the body [`FilterError::consul_message`]. Parsing is bounded ([`EXPRESSION_BYTES_MAX`], nesting 64) and
//! neither parsing nor matching panics on any input.
//!
//! Semantics beyond what the docs pin (details in `eval.rs`): a selector through a list of objects matches if
//! *any* element matches (go-bexpr v0.1.2, which Consul uses); a path that does not exist is "no match" for
//! `==`, `in`/`contains`, `matches`, `is not empty` and a match for `!=`, `not in`/`not contains`,
//! `not matches`, `is empty` (go-bexpr rejects unknown struct fields when the filter is created; we have no
//! schema, so a misspelt field filters everything out instead of failing).

mod eval;
mod lexer;
mod parser;

use std::collections::BTreeMap;

use serde::Serialize;

/// The longest expression accepted, in bytes. Not in Consul; our bound on parser work per request.
pub const EXPRESSION_BYTES_MAX: usize = 4096;

/// The prefix of a filter error in Consul's `400 Bad Request` body: go-bexpr v0.1.2's `CreateFilter`
/// wraps every parse error with it and Consul returns the error text as the body (Consul HTTP API, Filtering).
pub const CONSUL_ERROR_PREFIX: &str = "Failed to create boolean expression evaluator";

/// Why a filter expression was rejected. Columns are 1-based and count characters from the start of the
/// expression. Every variant but [`FilterError::Serialize`] is the client's fault (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The expression is longer than [`EXPRESSION_BYTES_MAX`].
    #[error("filter: expression is {len_bytes} bytes, longer than the limit of {max_bytes} bytes")]
    TooLong { len_bytes: usize, max_bytes: usize },
    /// Parentheses and `not`s nest deeper than `max_depth`; `column` is the token that went too deep.
    #[error("filter: expression nested deeper than {max_depth} levels at column {column}")]
    TooDeep { column: usize, max_depth: usize },
    /// A selector path with more than `max_segments` segments.
    #[error("filter: selector has more than {max_segments} segments at column {column}")]
    SelectorTooLong { column: usize, max_segments: usize },
    /// A token that does not fit the grammar where it stands.
    #[error("filter: unexpected token {found:?} at column {column}, expected {expected}")]
    UnexpectedToken { found: String, column: usize, expected: &'static str },
    /// The expression ended where more was needed.
    #[error("filter: unexpected end of expression at column {column}, expected {expected}")]
    UnexpectedEnd { column: usize, expected: &'static str },
    /// A character that starts no token.
    #[error("filter: unexpected character {found:?} at column {column}")]
    UnexpectedChar { found: char, column: usize },
    /// A string literal without its closing quote.
    #[error("filter: unterminated string literal starting at column {column}")]
    UnterminatedString { column: usize },
    /// A backslash escape Go's `strconv.Unquote` would reject.
    #[error("filter: invalid escape {escape:?} in string at column {column}")]
    InvalidEscape { escape: String, column: usize },
    /// A number not of the form `-?(0|[1-9][0-9]*)(.[0-9]+)?` followed by whitespace, `)` or the end.
    #[error("filter: invalid number literal {text:?} at column {column}")]
    InvalidNumber { text: String, column: usize },
    /// The value of `matches`/`not matches` is not a valid regular expression.
    #[error("filter: invalid regular expression {pattern:?} at column {column}: {reason}")]
    InvalidRegex { pattern: String, column: usize, reason: String },
    /// An item could not be serialized to JSON: a server-side fault (HTTP 500), not a bad filter.
    #[error("filter: cannot serialize an item to JSON: {reason}")]
    Serialize { reason: String },
}

impl FilterError {
    /// The body Consul answers a bad filter with: `Failed to create boolean expression evaluator: <message>`.
    pub fn consul_message(&self) -> String {
        format!("{CONSUL_ERROR_PREFIX}: {self}")
    }

    /// Whether the client's expression is at fault (HTTP 400); false only for [`FilterError::Serialize`].
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, FilterError::Serialize { .. })
    }
}

/// A parsed filter expression (Consul HTTP API, Filtering), ready to match many items.
///
/// Shape: `<Selector> ==|!= <Value>`, `<Value> [not] in <Selector>`, `<Selector> [not] contains <Value>`,
/// `<Selector> [not] matches <regex>`, `<Selector> is [not] empty`, joined by `and`, `or`, `not` and
/// parentheses (precedence `not` > `and` > `or`).
#[derive(Debug, Clone)]
pub struct Filter {
    expr: parser::Expr,
}

impl Filter {
    /// Parses `expr`, e.g. `ServiceMeta.env == production and "primary" in ServiceTags`.
    /// Fails with a message naming the offending token and its column.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        if expr.len() > EXPRESSION_BYTES_MAX {
            return Err(FilterError::TooLong { len_bytes: expr.len(), max_bytes: EXPRESSION_BYTES_MAX });
        }
        Ok(Filter { expr: parser::parse(expr)? })
    }

    /// Whether `item` (a JSON object whose keys are Consul's PascalCase field names) matches.
    pub fn matches(&self, item: &serde_json::Value) -> bool {
        eval::eval(&self.expr, item)
    }
}

/// Parses `expr` unless it is absent or empty (Consul filters only when `filter` is non-empty).
fn parse_optional(expr: Option<&str>) -> Result<Option<Filter>, FilterError> {
    match expr {
        None | Some("") => Ok(None),
        Some(expr) => Filter::parse(expr).map(Some),
    }
}

fn matches_serialized<T: Serialize>(filter: &Filter, item: &T) -> Result<bool, FilterError> {
    let value = serde_json::to_value(item).map_err(|e| FilterError::Serialize { reason: e.to_string() })?;
    Ok(filter.matches(&value))
}

/// Keeps the items of `items` that `expr` matches (each serialized with serde_json), in order; `None` or an
/// empty expression keeps all. For Consul's list endpoints (Consul HTTP API, Filtering), e.g.
/// `/v1/catalog/service/:service` (a list of catalog services) or `/v1/health/service/:service` (a list of
/// `{Node, Service, Checks}` entries).
pub fn apply<T: Serialize>(expr: Option<&str>, items: Vec<T>) -> Result<Vec<T>, FilterError> {
    let Some(filter) = parse_optional(expr)? else {
        return Ok(items);
    };
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if matches_serialized(&filter, &item)? {
            kept.push(item);
        }
    }
    Ok(kept)
}

/// Keeps the entries of `items` whose *values* `expr` matches; `None` or an empty expression keeps all.
/// For Consul's map-shaped answers (Consul HTTP API, Filtering), e.g. `/v1/agent/services`, a map from
/// service ID to service that filters on the services.
pub fn apply_map<K: Ord, T: Serialize>(
    expr: Option<&str>,
    items: BTreeMap<K, T>,
) -> Result<BTreeMap<K, T>, FilterError> {
    let Some(filter) = parse_optional(expr)? else {
        return Ok(items);
    };
    let mut kept = BTreeMap::new();
    for (key, item) in items {
        if matches_serialized(&filter, &item)? {
            kept.insert(key, item);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests;
