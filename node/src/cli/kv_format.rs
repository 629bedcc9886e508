//! Rendering KV entries as `concord kv get` prints them: the raw value, `key:value` lines, or
//! Consul's `-detailed` table. Pure functions of the `/v1/kv` JSON; no I/O.

use base64::Engine;
use serde::Deserialize;

/// One entry as `/v1/kv` returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KvPair {
    pub key: String,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub lock_index: u64,
    #[serde(default)]
    pub flags: u64,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
}

impl KvPair {
    /// The decoded value (empty when null). Errors: the agent sent invalid base64.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        match &self.value {
            None => Ok(Vec::new()),
            Some(v) => base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|e| format!("key {}: value is not valid base64: {e}", self.key)),
        }
    }
}

/// Consul's `-detailed` table (Go tabwriter, padding 6: labels padded to the longest plus 6).
pub fn detailed(pair: &KvPair, base64_value: bool) -> Result<String, String> {
    const LABEL_WIDTH: usize = "CreateIndex".len() + 6;
    let value = render_value(pair, base64_value)?;
    let session = pair.session.as_deref().filter(|s| !s.is_empty()).unwrap_or("-");
    let rows: [(&str, String); 7] = [
        ("CreateIndex", pair.create_index.to_string()),
        ("Flags", pair.flags.to_string()),
        ("Key", pair.key.clone()),
        ("LockIndex", pair.lock_index.to_string()),
        ("ModifyIndex", pair.modify_index.to_string()),
        ("Session", session.to_string()),
        ("Value", value),
    ];
    Ok(rows.iter().map(|(label, v)| format!("{label:<LABEL_WIDTH$}{v}\n")).collect())
}

/// The value as printed: raw bytes as (lossy) UTF-8, or base64 with `-base64`.
pub fn render_value(pair: &KvPair, base64_value: bool) -> Result<String, String> {
    let value = pair.bytes()?;
    Ok(if base64_value {
        base64::engine::general_purpose::STANDARD.encode(&value)
    } else {
        String::from_utf8_lossy(&value).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_output_matches_consul_layout() {
        let pair = KvPair {
            key: "foo".into(),
            create_index: 5,
            modify_index: 7,
            lock_index: 0,
            flags: 42,
            value: Some("YmFy".into()),
            session: None,
        };
        let expected = "CreateIndex      5\nFlags            42\nKey              foo\nLockIndex        0\n\
                        ModifyIndex      7\nSession          -\nValue            bar\n";
        assert_eq!(detailed(&pair, false).unwrap(), expected);
        assert!(detailed(&pair, true).unwrap().ends_with("Value            YmFy\n"));
    }

    #[test]
    fn null_values_decode_to_empty() {
        let pair: KvPair = serde_json::from_str(r#"{"Key":"k","Value":null,"CreateIndex":1}"#).unwrap();
        assert_eq!(pair.bytes().unwrap(), Vec::<u8>::new());
    }
}
