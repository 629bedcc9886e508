//! Case-insensitive JSON field names, as Go's `encoding/json` matches them.
//!
//! Consul decodes request bodies with Go's `encoding/json`, which matches an object key to a
//! struct field ignoring case, and clients rely on it: py-consul's `catalog.register` sends
//! `{"node": …, "address": …}` and `catalog.deregister` sends `"serviceid"`. serde matches
//! exactly, so request bodies are rewritten to the canonical spelling first. Keys of user maps
//! (`Meta`, `NodeMeta`, `TaggedAddresses`, `Header`) are data, not field names, and keep their case.

use serde_json::Value;

/// Fields whose values are user maps: their keys are never rewritten.
const MAP_FIELDS: [&str; 4] = ["Meta", "NodeMeta", "TaggedAddresses", "Header"];

/// Rewrites, recursively, every object key that equals one of `canonical` ignoring ASCII case
/// (and `_`, so snake_case `enable_tag_override` matches `EnableTagOverride`) to that spelling.
pub fn canonicalize(value: &mut Value, canonical: &[&str]) {
    match value {
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                let key = canonical.iter().find(|c| same_name(c, &k)).map(|c| c.to_string()).unwrap_or(k);
                if !MAP_FIELDS.contains(&key.as_str()) {
                    canonicalize(&mut v, canonical);
                }
                // An exact-case key wins over a differently cased duplicate, as in Go.
                if !map.contains_key(&key) || canonical.contains(&key.as_str()) {
                    map.insert(key, v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| canonicalize(v, canonical)),
        _ => {}
    }
}

fn same_name(canonical: &str, key: &str) -> bool {
    let mut k = key.chars().filter(|c| *c != '_');
    let mut c = canonical.chars();
    loop {
        match (c.next(), k.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_match_ignoring_case_and_underscores_but_user_maps_keep_theirs() {
        let mut v = json!({"node": "n1", "service": {"enable_tag_override": true, "meta": {"Env": "x", "node": "y"}}, "serviceid": "s"});
        canonicalize(&mut v, &["Node", "Service", "EnableTagOverride", "Meta", "ServiceID"]);
        assert_eq!(v, json!({"Node": "n1", "Service": {"EnableTagOverride": true, "Meta": {"Env": "x", "node": "y"}}, "ServiceID": "s"}));
    }
}
