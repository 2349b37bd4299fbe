#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! What a configuration shows: URLs without passwords, secret options as
//! `**REDACTED**`, and no secret value it has seen anywhere.

use super::{Config, DatastoreConfig, StoreSection};
use crate::secret::{is_secret_name, redact_url, REDACTED};

/// `[store]` with its URL's password and its secret options redacted.
pub(super) fn store(mut s: StoreSection) -> StoreSection {
    s.url = redact_url(&s.url);
    for (k, v) in s.options.iter_mut() {
        if is_secret_name(k) {
            *v = REDACTED.into();
        }
    }
    s
}

/// A datastore with its URLs' passwords and its secret options redacted.
pub(super) fn datastore(ds: &DatastoreConfig) -> DatastoreConfig {
    let mut d = ds.clone();
    d.url = d.url.as_deref().map(redact_url);
    d.scratch_url = d.scratch_url.as_deref().map(redact_url);
    for (k, v) in d.options.0.iter_mut() {
        if is_secret_name(k) {
            *v = serde_json::Value::String(REDACTED.into());
        } else if let Some(s) = v.as_str() {
            *v = serde_json::Value::String(redact_url(s));
        }
    }
    d
}

/// The resolved configuration as JSON, redacted: each datastore's retention is the
/// policy in force (defaults overridden by its own).
// Plain structs of strings, numbers and maps: serialising them to a JSON value cannot fail.
#[allow(clippy::expect_used)]
pub(super) fn config(c: &Config) -> serde_json::Value {
    let store = c
        .store
        .clone()
        .map(|s| serde_json::to_value(store(s)).expect("serializes"))
        .unwrap_or(serde_json::Value::Null);
    let datastores: serde_json::Map<String, serde_json::Value> = c
        .datastores
        .iter()
        .map(|(name, ds)| {
            let mut v = serde_json::to_value(datastore(ds)).expect("serializes");
            if let Some(obj) = v.as_object_mut() {
                let policy = c.retention_for(name);
                obj.insert(
                    "retention_summary".into(),
                    serde_json::Value::String(policy.to_string()),
                );
                obj.insert(
                    "retention".into(),
                    serde_json::to_value(policy).expect("serializes"),
                );
            }
            (name.clone(), v)
        })
        .collect();
    let value = serde_json::json!({
        "path": c.path,
        "zstd_level": c.zstd_level,
        "store": store,
        "encryption": c.encryption,
        "signing": c.signing,
        "key_expiries": c.key_expiries,
        "retention": c.retention,
        "datastores": datastores,
        "notify": c.notify.iter().map(|t| serde_json::json!({
            "url": t.url.as_ref().map(|_| super::REDACTED),
            "slack_webhook": t.slack_webhook.as_ref().map(|_| super::REDACTED),
            "on": t.on,
            "timeout_seconds": t.timeout_seconds,
        })).collect::<Vec<_>>(),
    });
    // Belt and braces: no known secret survives anywhere in the document.
    let text = c.scrub(&value.to_string());
    serde_json::from_str(&text).unwrap_or(value)
}

/// Removes null fields (TOML has no null).
pub(super) fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
