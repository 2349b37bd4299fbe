//! The store-wide half of `status`: storage usage and key expiry.
//!
//! - **Storage**: the bytes of every object under the store's URL (backups, WAL,
//!   records) against `[store] store_quota`; without a quota, a local (`file://` or
//!   path) store's filesystem as `df` sees it (used / (used + available)). Above
//!   `storage_alert_percent` (default 80) is an alert. A cloud store without a quota is
//!   not measured (listing every object only to report a number nobody asked for).
//!   The quota applies to `[store] url`'s store only, not to one `--store` names instead.
//! - **Keys**: every key written with `key_expires` ([`KeyExpiry`]): past its date, or
//!   within `[encryption] key_expiry_warning` (default 90d) of it, is an alert.
//!
//! An alert makes `status` fail with exit 9, as an unhealthy datastore does.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::config::{KeyExpiry, DEFAULT_KEY_EXPIRY_WARNING, DEFAULT_STORAGE_ALERT_PERCENT};
use super::OpContext;
use crate::error::Result;

/// The store's usage and keys.
#[derive(Debug, Clone, Serialize)]
pub struct StoreHealth {
    /// The store (password redacted).
    pub url: String,
    /// Its usage, when measured.
    pub storage: Option<StorageUsage>,
    /// The dated keys.
    pub keys: Vec<KeyStatus>,
    /// Alerts (empty when all is well).
    pub problems: Vec<String>,
}

/// How full the store is.
#[derive(Debug, Clone, Serialize)]
pub struct StorageUsage {
    /// Bytes used: the store's objects (against a quota) or the filesystem's.
    pub used_bytes: u64,
    /// The quota, or the filesystem's size (used + available).
    pub capacity_bytes: u64,
    /// `quota` or `filesystem`.
    pub measured_against: &'static str,
    /// `used_bytes` in percent of `capacity_bytes`.
    pub used_percent: f64,
    /// The alert threshold in percent.
    pub alert_percent: f64,
}

/// A dated key and the days it has left.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// The key, its role and date.
    #[serde(flatten)]
    pub key: KeyExpiry,
    /// Days until it expires (negative: expired that many days ago).
    pub days_left: i64,
}

/// Measures the store and the keys of `ctx`'s configuration at `now`.
pub async fn store_health(ctx: &OpContext, now: DateTime<Utc>) -> Result<StoreHealth> {
    let store = &ctx.store;
    // `[store]`'s quota is that store's: not one `--store` named instead.
    let section = ctx
        .config
        .as_deref()
        .and_then(|c| c.store.as_ref())
        .filter(|s| crate::secret::redact_url(&s.url) == store.url());
    let alert_percent = section.map_or(DEFAULT_STORAGE_ALERT_PERCENT, |s| s.alert_percent());
    let mut problems = Vec::new();
    let storage = match (
        section.map(|s| s.quota_bytes()).transpose()?.flatten(),
        store.local_root(),
    ) {
        (Some(quota), _) => {
            let used = store
                .list_keys("")
                .await?
                .iter()
                .map(|(_, m)| m.size)
                .fold(0u64, u64::saturating_add);
            Some(usage(used, quota, "quota", alert_percent))
        }
        (None, Some(root)) => match filesystem(root) {
            Ok((used, capacity)) => Some(usage(used, capacity, "filesystem", alert_percent)),
            Err(e) => {
                problems.push(format!(
                    "cannot measure the filesystem of {}: {e}",
                    root.display()
                ));
                None
            }
        },
        (None, None) => None,
    };
    if let Some(u) = storage
        .as_ref()
        .filter(|u| u.used_percent > u.alert_percent)
    {
        problems.push(format!(
            "store {} is {:.1} % full ({} of {} {}; alert above {} %)",
            store.url(),
            u.used_percent,
            super::backup::human_bytes(u.used_bytes),
            super::backup::human_bytes(u.capacity_bytes),
            if u.measured_against == "quota" {
                "quota"
            } else {
                "filesystem"
            },
            u.alert_percent
        ));
    }
    let (keys, key_problems) = key_statuses(ctx, now.date_naive());
    problems.extend(key_problems);
    Ok(StoreHealth {
        url: store.url().to_string(),
        storage,
        keys,
        problems,
    })
}

/// The dated keys of the configuration on `today`, and the alerts about them.
pub fn key_statuses(ctx: &OpContext, today: NaiveDate) -> (Vec<KeyStatus>, Vec<String>) {
    let Some(config) = ctx.config.as_deref() else {
        return (Vec::new(), Vec::new());
    };
    let warning = config
        .encryption
        .key_expiry_warning
        .unwrap_or(DEFAULT_KEY_EXPIRY_WARNING);
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for k in &config.key_expiries {
        let days_left = (k.expires - today).num_days();
        if days_left <= 0 {
            problems.push(format!(
                "{} {} expired on {}",
                k.role,
                k.short_key(),
                k.expires
            ));
        } else if warning.before(midnight(k.expires)).date_naive() <= today {
            problems.push(format!(
                "{} {} expires on {} (in {days_left} days; warning from {warning} before)",
                k.role,
                k.short_key(),
                k.expires
            ));
        }
        keys.push(KeyStatus {
            key: k.clone(),
            days_left,
        });
    }
    (keys, problems)
}

fn usage(used: u64, capacity: u64, against: &'static str, alert_percent: f64) -> StorageUsage {
    StorageUsage {
        used_bytes: used,
        capacity_bytes: capacity,
        measured_against: against,
        used_percent: if capacity == 0 {
            100.0
        } else {
            used as f64 * 100.0 / capacity as f64
        },
        alert_percent,
    }
}

/// Used and total bytes of the filesystem holding `path`, as `df` counts them (the
/// blocks reserved for root are neither).
fn filesystem(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(path)?;
    let used = s
        .f_blocks
        .saturating_sub(s.f_bfree)
        .saturating_mul(s.f_frsize);
    let available = s.f_bavail.saturating_mul(s.f_frsize);
    Ok((used, used.saturating_add(available)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_filesystem_is_measured_as_df_does() {
        let dir = tempfile::tempdir().unwrap();
        let (used, capacity) = filesystem(dir.path()).unwrap();
        assert!(used > 0 && used <= capacity, "{used} of {capacity}");
        let u = usage(used, capacity, "filesystem", 80.0);
        assert!(u.used_percent > 0.0 && u.used_percent <= 100.0);
        assert!(filesystem(&dir.path().join("missing")).is_err());
    }

    fn context(store: &crate::store::BackupStore, toml: &str) -> OpContext {
        let config = super::super::config::Config::parse(
            toml,
            std::path::Path::new("dbseal.toml"),
            &|_| None,
            &crate::driver::Registry::new(),
        )
        .unwrap();
        OpContext::new(crate::driver::Registry::new(), store.clone())
            .with_config(Some(std::sync::Arc::new(config)))
    }

    #[tokio::test]
    async fn a_store_over_its_quota_alerts_and_one_under_it_does_not() {
        let store = crate::store::BackupStore::open("memory://", &Default::default()).unwrap();
        store.put_bytes("app/x/data", vec![0; 900]).await.unwrap();
        store.put_bytes("wal/app/seg", vec![0; 100]).await.unwrap();
        let quota = |q: &str, pct: u32| {
            format!("[store]\nurl = \"memory://\"\nstore_quota = \"{q}\"\nstorage_alert_percent = {pct}\n")
        };
        // 1000 bytes of objects (artifacts and WAL alike) against 1 KiB.
        let h = store_health(&context(&store, &quota("1KiB", 98)), Utc::now())
            .await
            .unwrap();
        let u = h.storage.as_ref().unwrap();
        assert_eq!((u.used_bytes, u.capacity_bytes), (1000, 1024));
        assert!(h.problems.is_empty(), "{:?}", h.problems);
        let h = store_health(&context(&store, &quota("1KiB", 80)), Utc::now())
            .await
            .unwrap();
        assert_eq!(h.problems.len(), 1, "{:?}", h.problems);
        assert!(
            h.problems[0].contains("is 97.7 % full") && h.problems[0].contains("alert above 80 %"),
            "{:?}",
            h.problems
        );
        // Without a quota, a store that is not local is not measured.
        let h = store_health(
            &context(&store, "[store]\nurl = \"memory://\"\n"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert!(h.storage.is_none() && h.problems.is_empty());
    }

    #[test]
    fn keys_alert_within_their_warning_and_after_their_date() {
        let store = crate::store::BackupStore::open("memory://", &Default::default()).unwrap();
        let ctx = context(
            &store,
            r#"
[encryption]
recipients = [
  { recipient = "age1expired0000000000000000", key_expires = "2027-01-10" },
  { recipient = "age1soon", key_expires = "2027-03-01" },
  { recipient = "age1later", key_expires = "2027-06-01" },
]
key_expiry_warning = "60d"
"#,
        );
        let today = NaiveDate::from_ymd_opt(2027, 1, 10).unwrap();
        let (keys, problems) = key_statuses(&ctx, today);
        let days: Vec<i64> = keys.iter().map(|k| k.days_left).collect();
        assert_eq!(days, [0, 50, 142]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0],
            "recipient age1expired00000… expired on 2027-01-10"
        );
        assert!(
            problems[1].starts_with("recipient age1soon expires on 2027-03-01 (in 50 days"),
            "{problems:?}"
        );
        // The day the window opens (60 days before) is inside it; the day before is not.
        let (_, p) = key_statuses(&ctx, NaiveDate::from_ymd_opt(2027, 4, 2).unwrap());
        assert!(p.iter().any(|p| p.contains("age1later")), "{p:?}");
        let (_, p) = key_statuses(&ctx, NaiveDate::from_ymd_opt(2027, 4, 1).unwrap());
        assert!(!p.iter().any(|p| p.contains("age1later")), "{p:?}");
    }
}
