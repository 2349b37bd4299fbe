//! Backup ids that sort by time.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng;

/// A backup id: `20261121T020000Z-<8 random hex>`. Ids sort by their creation time
/// (to the second), the random part keeps concurrent backups apart.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

impl BackupId {
    /// A new id for a backup starting at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        // From the OS, not a user-space generator: a process forked from one that made
        // an id (Python's multiprocessing) would otherwise repeat the parent's next ids,
        // and two backups sharing an id share artifact keys.
        let random: u32 = rand::rngs::OsRng.gen();
        BackupId(format!("{}-{random:08x}", at.format(TIME_FORMAT)))
    }

    /// A new id for a backup starting now.
    pub fn now() -> Self {
        Self::new(Utc::now())
    }

    /// The time encoded in the id.
    pub fn timestamp(&self) -> DateTime<Utc> {
        let ts = &self.0[..16];
        NaiveDateTime::parse_from_str(ts, TIME_FORMAT)
            .expect("validated on construction")
            .and_utc()
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a backup id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a backup id (expected YYYYMMDDTHHMMSSZ-xxxxxxxx)")]
pub struct InvalidBackupId(String);

impl FromStr for BackupId {
    type Err = InvalidBackupId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() > 17
            && s.as_bytes()[16] == b'-'
            && NaiveDateTime::parse_from_str(&s[..16], TIME_FORMAT).is_ok()
            && s[17..].chars().all(|c| c.is_ascii_alphanumeric());
        if ok {
            Ok(BackupId(s.to_string()))
        } else {
            Err(InvalidBackupId(s.to_string()))
        }
    }
}

impl TryFrom<String> for BackupId {
    type Error = InvalidBackupId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let a = BackupId::new(Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap());
        let b = BackupId::new(Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 1).unwrap());
        assert!(a < b);
        assert!(a.as_str().starts_with("20261121T020000Z-"));
        assert_eq!(a.as_str().parse::<BackupId>().unwrap(), a);
        assert_eq!(
            b.timestamp(),
            Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 1).unwrap()
        );
        assert!("nope".parse::<BackupId>().is_err());
        assert!("20261121T020000Z-../x".parse::<BackupId>().is_err());
    }
}
