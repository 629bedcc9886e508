//! Consul's query-parameter conventions: flags without values (`?recurse`), Go durations
//! (`?wait=10s`), and the blocking-query parameters.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ApiError;
use crate::structs::Consistency;

/// Default `?wait` for blocking queries: 5 minutes (Consul).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
/// Maximum `?wait`: 10 minutes (Consul).
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// Parsed query parameters. A flag present without a value maps to `""`.
#[derive(Debug, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    /// Builds from axum's decoded pairs; the last occurrence of a name wins.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }
    /// Whether a flag is present (`?recurse`, `?recurse=true`); `=false` counts as absent.
    pub fn flag(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v != "false" && v != "0")
    }
    /// Raw value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    /// An unsigned integer parameter. Errors: present but not a u64 (400).
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("Invalid {name} value: {v:?} is not an unsigned integer"))),
        }
    }
    /// The consistency mode. Errors: `?stale` with `?consistent` (400, as Consul).
    pub fn consistency(&self) -> Result<Consistency, ApiError> {
        match (self.flag("stale"), self.flag("consistent")) {
            (true, true) => Err(ApiError::bad_request("Cannot specify ?stale with ?consistent, conflicting semantics.")),
            (true, false) => Ok(Consistency::Stale),
            (false, true) => Ok(Consistency::Consistent),
            (false, false) => Ok(Consistency::Default),
        }
    }
    /// `?wait=`, clamped to [`MAX_WAIT`], default [`DEFAULT_WAIT`]. Errors: unparseable (400).
    pub fn wait(&self) -> Result<Duration, ApiError> {
        match self.0.get("wait") {
            None => Ok(DEFAULT_WAIT),
            Some(v) => parse_go_duration(v)
                .map(|d| d.min(MAX_WAIT))
                .ok_or_else(|| ApiError::bad_request(format!("Invalid wait time: {v:?}"))),
        }
    }
}

pub use crate::structs::duration::parse_go_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_consul() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_go_duration("10x"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn stale_with_consistent_is_rejected() {
        let p = Params::from_pairs(vec![("stale".into(), "".into()), ("consistent".into(), "".into())]);
        assert!(p.consistency().is_err());
    }

    #[test]
    fn wait_is_clamped_to_ten_minutes() {
        let p = Params::from_pairs(vec![("wait".into(), "1h".into())]);
        assert_eq!(p.wait().unwrap(), MAX_WAIT);
    }
}
