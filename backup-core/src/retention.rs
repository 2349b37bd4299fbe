#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Retention: which backups of a datastore to keep and which to delete.
//!
//! The rules are restic's GFS rules ("grandfather-father-son"), so a restic user reads
//! a policy the same way:
//!
//! - Backups are taken newest first. `keep_last N` keeps the N newest.
//! - `keep_hourly/daily/weekly/monthly/yearly N` put every backup in a bucket by its
//!   time in UTC — the hour, the day, the ISO-8601 week (Monday to Sunday, ISO week
//!   year), the month, the year — and keep the *newest* backup of each of the N newest
//!   buckets that contain a backup. Buckets are counted from the newest backup, and a
//!   bucket without any backup does not count: `keep_daily 7` keeps the last seven days
//!   *that have a backup*.
//! - `keep_within D` keeps every backup made less than D before the newest backup (not
//!   before now: a datastore whose backups stopped does not lose its history).
//! - A backup is kept if any rule keeps it; every rule that keeps it is a reason.
//! - A policy without any rule (or with all counts zero) keeps everything.
//!
//! On top of them, the never-delete rules of dbseal, checked by [`plan`]:
//!
//! - the newest *verified* backup of a datastore is never deleted;
//! - while the newest backup is unverified, failed its last verification, or is
//!   incomplete (a folder newer than the newest manifest: a running or failed backup),
//!   no backup is deleted, and the plan says why;
//! - debris (folders without a manifest) is deleted once it is older than a grace
//!   period (default 24 hours) — also while backups are blocked, so a datastore whose
//!   backups keep failing does not grow without bound — and a backup that is still
//!   running (younger than the grace period) is never touched.
//!
//! [`plan`] is pure: it takes the history (ids, times, verification states) and returns
//! what to keep, with reasons, and what to delete. The CLI's `dbseal prune` gathers the
//! history from the store (`ops::prune`) and executes the plan.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::BackupId;

/// A span of time written like restic's `--keep-within`: a sequence of numbers with
/// units, `y` (years), `m` (months), `w` (weeks), `d` (days), `h` (hours), `min`
/// (minutes), `s` (seconds): `2d`, `1y6m`, `25h`, `90min`. Years and months are
/// calendar years and months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// Calendar months (a year is 12).
    pub months: u32,
    /// Seconds (days, hours, minutes, seconds).
    pub seconds: u64,
}

impl Span {
    /// A span of whole hours.
    pub fn hours(h: u64) -> Self {
        Span {
            months: 0,
            seconds: h.saturating_mul(3600),
        }
    }

    /// A span of whole days.
    pub fn days(d: u64) -> Self {
        Span::hours(d.saturating_mul(24))
    }

    /// Whether the span is zero.
    pub fn is_zero(&self) -> bool {
        self.months == 0 && self.seconds == 0
    }

    /// The instant `self` before `t` (calendar months first, then seconds).
    pub fn before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let t = t
            .checked_sub_months(Months::new(self.months))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        t.checked_sub_signed(chrono::Duration::seconds(
            i64::try_from(self.seconds).unwrap_or(i64::MAX),
        ))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0s");
        }
        let (y, m) = (self.months / 12, self.months % 12);
        let mut s = self.seconds;
        let (d, h, min) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
        s %= 60;
        for (n, unit) in [
            (y as u64, "y"),
            (m as u64, "m"),
            (d, "d"),
            (h, "h"),
            (min, "min"),
            (s, "s"),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Span {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Config(format!(
                "`{text}` is not a duration ({why}); write e.g. 25h, 7d, 2w, 6m, 1y6m, 90min"
            ))
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("empty"));
        }
        let mut span = Span::default();
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad("a number must come before each unit"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| bad("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let (months, secs) = match unit {
                "y" => (12, 0),
                "m" => (1, 0),
                "w" => (0, 7 * 86_400),
                "d" => (0, 86_400),
                "h" => (0, 3600),
                "min" => (0, 60),
                "s" => (0, 1),
                "" => return Err(bad("a unit must follow each number")),
                _ => return Err(bad(&format!("unknown unit `{unit}`"))),
            };
            span.months = n
                .checked_mul(months)
                .and_then(|v| u32::try_from(v).ok())
                .and_then(|v| span.months.checked_add(v))
                .ok_or_else(|| bad("too large"))?;
            span.seconds = n
                .checked_mul(secs)
                .and_then(|v| span.seconds.checked_add(v))
                .ok_or_else(|| bad("too large"))?;
        }
        Ok(span)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The default grace period before debris (a folder without manifest) is deleted.
pub const DEFAULT_DEBRIS_GRACE: Span = Span {
    months: 0,
    seconds: 24 * 3600,
};

/// A retention policy (restic's GFS rules, see the module docs). `None` means the rule
/// is not set; in a configuration file a per-datastore policy overrides the defaults
/// field by field ([`RetentionPolicy::overridden_by`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Keep the N newest backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the N newest hours that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest backup of each of the N newest days that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the N newest ISO weeks that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the N newest months that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the N newest years that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Keep every backup made less than this before the newest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Span>,
    /// Delete debris (folders without manifest) once older than this (default 24h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debris_grace: Option<Span>,
}

impl RetentionPolicy {
    /// Whether no keep rule is set (then everything is kept).
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0) && self.keep_within.is_none_or(|s| s.is_zero())
    }

    /// This policy with every field that `over` sets replaced by `over`'s.
    pub fn overridden_by(&self, over: &RetentionPolicy) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: over.keep_last.or(self.keep_last),
            keep_hourly: over.keep_hourly.or(self.keep_hourly),
            keep_daily: over.keep_daily.or(self.keep_daily),
            keep_weekly: over.keep_weekly.or(self.keep_weekly),
            keep_monthly: over.keep_monthly.or(self.keep_monthly),
            keep_yearly: over.keep_yearly.or(self.keep_yearly),
            keep_within: over.keep_within.or(self.keep_within),
            debris_grace: over.debris_grace.or(self.debris_grace),
        }
    }

    /// The debris grace period in force.
    pub fn grace(&self) -> Span {
        self.debris_grace.unwrap_or(DEFAULT_DEBRIS_GRACE)
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (name, v) in [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ] {
            if let Some(n) = v.filter(|n| *n > 0) {
                parts.push(format!("{name} {n}"));
            }
        }
        if let Some(w) = self.keep_within.filter(|s| !s.is_zero()) {
            parts.push(format!("within {w}"));
        }
        if parts.is_empty() {
            f.write_str("no keep rule (keep everything)")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Whether (and how) a backup was verified, from its last verification record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationState {
    /// Its last verification passed.
    Verified,
    /// Its last verification failed.
    Failed,
    /// It was never verified.
    Unverified,
}

/// One complete backup of the datastore, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The backup id.
    pub id: BackupId,
    /// When it was made (the manifest's start time).
    pub time: DateTime<Utc>,
    /// Its last verification.
    pub verification: VerificationState,
}

/// A folder without manifest (a running or failed backup), as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebrisCandidate {
    /// The folder name (a backup id).
    pub id: String,
    /// When its newest object was written.
    pub last_modified: DateTime<Utc>,
}

/// A GFS bucket rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketRule {
    /// By hour.
    Hourly,
    /// By day.
    Daily,
    /// By ISO-8601 week.
    Weekly,
    /// By month.
    Monthly,
    /// By year.
    Yearly,
}

impl BucketRule {
    /// The bucket `t` falls into, as a readable label (`2026-11-21T02`, `2026-11-21`,
    /// `2026-W47`, `2026-11`, `2026`).
    pub fn bucket(self, t: DateTime<Utc>) -> String {
        match self {
            BucketRule::Hourly => t.format("%Y-%m-%dT%H").to_string(),
            BucketRule::Daily => t.format("%Y-%m-%d").to_string(),
            BucketRule::Weekly => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            BucketRule::Monthly => t.format("%Y-%m").to_string(),
            BucketRule::Yearly => t.format("%Y").to_string(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            BucketRule::Hourly => "hourly",
            BucketRule::Daily => "daily",
            BucketRule::Weekly => "weekly",
            BucketRule::Monthly => "monthly",
            BucketRule::Yearly => "yearly",
        }
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// One of the `keep_last` newest: `rank` of `of`.
    Last {
        /// 1 for the newest.
        rank: u32,
        /// The rule's count.
        of: u32,
    },
    /// The newest backup of a bucket.
    Bucket {
        /// The rule.
        rule: BucketRule,
        /// The bucket label.
        bucket: String,
        /// 1 for the newest bucket.
        rank: u32,
        /// The rule's count.
        of: u32,
    },
    /// Made within `keep_within` of the newest backup.
    Within(Span),
    /// The newest verified backup: never deleted.
    NewestVerified,
    /// Nothing is deleted: see [`RetentionPlan::blocked`].
    Blocked,
    /// The policy has no keep rule: everything is kept.
    NoPolicy,
    /// `prune --debris`: only debris is deleted.
    DebrisOnly,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Last { rank, of } => write!(f, "last ({rank}/{of})"),
            KeepReason::Bucket {
                rule,
                bucket,
                rank,
                of,
            } => write!(f, "{} {bucket} ({rank}/{of})", rule.name()),
            KeepReason::Within(s) => write!(f, "within {s} of the newest backup"),
            KeepReason::NewestVerified => f.write_str("newest verified backup (never deleted)"),
            KeepReason::Blocked => f.write_str("prune blocked (see above)"),
            KeepReason::NoPolicy => f.write_str("no keep rule set: everything is kept"),
            KeepReason::DebrisOnly => f.write_str("prune --debris: backups are not touched"),
        }
    }
}

impl Serialize for KeepReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A backup the plan keeps, with every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The backup.
    pub id: BackupId,
    /// When it was made.
    pub time: DateTime<Utc>,
    /// Why it is kept (at least one).
    pub reasons: Vec<KeepReason>,
}

/// What to do with one datastore's backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    /// Backups kept, newest first.
    pub keep: Vec<Kept>,
    /// Backups to delete, newest first.
    pub delete: Vec<BackupId>,
    /// Debris folders to delete (older than the grace period).
    pub delete_debris: Vec<String>,
    /// Debris folders kept, with the reason.
    pub keep_debris: Vec<(String, String)>,
    /// Why nothing at all is deleted, when that is the case.
    pub blocked: Option<String>,
}

/// Plans retention for one datastore: `backups` are its complete backups (any order),
/// `debris` its folders without manifest, `now` the current time (for the debris grace
/// period). See the module docs for the rules.
pub fn plan(
    policy: &RetentionPolicy,
    backups: &[Candidate],
    debris: &[DebrisCandidate],
    now: DateTime<Utc>,
) -> RetentionPlan {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));

    let mut reasons = gfs_reasons(policy, &sorted);
    protect_newest_verified(&sorted, &mut reasons);

    let blocked = blocked_reason(&sorted, debris);
    let mut out = RetentionPlan {
        blocked: blocked.clone(),
        ..Default::default()
    };
    for (b, mut why) in sorted.iter().zip(reasons) {
        if blocked.is_some() && why.is_empty() {
            why.push(KeepReason::Blocked);
        }
        if why.is_empty() {
            out.delete.push(b.id.clone());
        } else {
            out.keep.push(Kept {
                id: b.id.clone(),
                time: b.time,
                reasons: why,
            });
        }
    }

    let cutoff = policy.grace().before(now);
    let mut debris: Vec<&DebrisCandidate> = debris.iter().collect();
    debris.sort_by(|a, b| b.id.cmp(&a.id));
    for d in debris {
        // Debris is never restorable: what is older than the grace period goes even
        // when backups are blocked (a datastore whose backups keep failing must not
        // grow without bound). Younger debris may be a backup still running.
        if d.last_modified <= cutoff {
            out.delete_debris.push(d.id.clone());
        } else {
            out.keep_debris.push((
                d.id.clone(),
                format!(
                    "written less than {} ago: it may be a backup still running",
                    policy.grace()
                ),
            ));
        }
    }
    out
}

/// The GFS reasons of each backup of `sorted` (newest first).
fn gfs_reasons(policy: &RetentionPolicy, sorted: &[&Candidate]) -> Vec<Vec<KeepReason>> {
    let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); sorted.len()];
    if policy.is_empty() {
        for r in &mut reasons {
            r.push(KeepReason::NoPolicy);
        }
        return reasons;
    }
    let rules = [
        (BucketRule::Hourly, policy.keep_hourly),
        (BucketRule::Daily, policy.keep_daily),
        (BucketRule::Weekly, policy.keep_weekly),
        (BucketRule::Monthly, policy.keep_monthly),
        (BucketRule::Yearly, policy.keep_yearly),
    ];
    let mut used = [0u32; 5];
    let mut last: [Option<String>; 5] = Default::default();
    let mut last_used = 0u32;
    let within_cutoff = match (policy.keep_within, sorted.first()) {
        (Some(span), Some(newest)) if !span.is_zero() => Some((span, span.before(newest.time))),
        _ => None,
    };
    for (b, why) in sorted.iter().zip(reasons.iter_mut()) {
        if let Some(n) = policy.keep_last {
            if last_used < n {
                last_used = last_used.saturating_add(1);
                why.push(KeepReason::Last {
                    rank: last_used,
                    of: n,
                });
            }
        }
        for ((rule, count), (used, last)) in rules.iter().zip(used.iter_mut().zip(last.iter_mut()))
        {
            let Some(n) = *count else { continue };
            if *used >= n {
                continue;
            }
            let bucket = rule.bucket(b.time);
            if last.as_deref() != Some(bucket.as_str()) {
                *used = used.saturating_add(1);
                why.push(KeepReason::Bucket {
                    rule: *rule,
                    bucket: bucket.clone(),
                    rank: *used,
                    of: n,
                });
                *last = Some(bucket);
            }
        }
        if let Some((span, cutoff)) = within_cutoff {
            if b.time > cutoff {
                why.push(KeepReason::Within(span));
            }
        }
    }
    reasons
}

/// Adds [`KeepReason::NewestVerified`] to the newest verified backup if no rule keeps it.
fn protect_newest_verified(sorted: &[&Candidate], reasons: &mut [Vec<KeepReason>]) {
    if let Some(i) = sorted
        .iter()
        .position(|b| b.verification == VerificationState::Verified)
    {
        if let Some(why) = reasons.get_mut(i).filter(|w| w.is_empty()) {
            why.push(KeepReason::NewestVerified);
        }
    }
}

/// Why nothing may be deleted: the newest backup is unverified, failed, or incomplete.
fn blocked_reason(sorted: &[&Candidate], debris: &[DebrisCandidate]) -> Option<String> {
    let newest = sorted.first();
    // Debris newer than the newest complete backup: a backup is running or failed.
    let newest_debris = debris
        .iter()
        .filter(|d| newest.is_none_or(|n| d.id.as_str() > n.id.as_str()))
        .map(|d| d.id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .next_back();
    if let Some(d) = newest_debris {
        return Some(format!(
            "the newest backup {d} is incomplete (no manifest: still running, or failed); nothing is deleted until a newer backup completes and is verified"
        ));
    }
    let n = newest?;
    match n.verification {
        VerificationState::Verified => None,
        VerificationState::Unverified => Some(format!(
            "the newest backup {} is not verified; nothing is deleted until it is (run `dbseal verify --latest`)",
            n.id
        )),
        VerificationState::Failed => Some(format!(
            "the newest backup {} failed its last verification; nothing is deleted until a newer backup is verified",
            n.id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn id_at(time: DateTime<Utc>, n: usize) -> BackupId {
        format!("{}-{n:08x}", time.format("%Y%m%dT%H%M%SZ"))
            .parse()
            .unwrap()
    }

    /// A history of `count` verified backups, every `step` from `start`.
    fn history(start: DateTime<Utc>, step: Duration, count: usize) -> Vec<Candidate> {
        (0..count)
            .map(|i| {
                let time = start + step * i as i32;
                Candidate {
                    id: id_at(time, i),
                    time,
                    verification: VerificationState::Verified,
                }
            })
            .collect()
    }

    fn kept_days(p: &RetentionPlan) -> Vec<String> {
        p.keep
            .iter()
            .map(|k| k.time.format("%Y-%m-%d").to_string())
            .collect()
    }

    #[test]
    fn spans_parse_and_print() {
        assert_eq!("25h".parse::<Span>().unwrap(), Span::hours(25));
        assert_eq!("2w".parse::<Span>().unwrap(), Span::days(14));
        assert_eq!(
            "1y6m".parse::<Span>().unwrap(),
            Span {
                months: 18,
                seconds: 0
            }
        );
        assert_eq!("90min".parse::<Span>().unwrap().seconds, 5400);
        assert_eq!("1d12h".parse::<Span>().unwrap().to_string(), "1d12h");
        for bad in ["", "h", "3", "3x", "-1d", "1.5d"] {
            let e = bad.parse::<Span>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        // Calendar months: one month before March 31 is the last day of February.
        let s: Span = "1m".parse().unwrap();
        assert_eq!(s.before(t(2025, 3, 31, 0)), t(2025, 2, 28, 0));
    }

    #[test]
    fn iso_week_buckets() {
        // 2026-01-01 is a Thursday: Monday 2025-12-29 starts ISO week 2026-W01.
        assert_eq!(BucketRule::Weekly.bucket(t(2025, 12, 29, 0)), "2026-W01");
        assert_eq!(BucketRule::Weekly.bucket(t(2025, 12, 28, 23)), "2025-W52");
        // 2021-01-03 (Sunday) still belongs to 2020-W53.
        assert_eq!(BucketRule::Weekly.bucket(t(2021, 1, 3, 12)), "2020-W53");
        assert_eq!(
            BucketRule::Hourly.bucket(t(2026, 11, 21, 2)),
            "2026-11-21T02"
        );
    }

    /// Daily backups at 02:00 for two years (730 ids, 2024-01-01 .. 2025-12-30) under a
    /// classic 7 daily / 4 weekly / 12 monthly / 3 yearly policy.
    #[test]
    fn gfs_over_two_years_of_daily_backups() {
        let backups = history(t(2024, 1, 1, 2), Duration::days(1), 730);
        assert_eq!(backups.last().unwrap().time, t(2025, 12, 30, 2));
        let policy = RetentionPolicy {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(3),
            ..Default::default()
        };
        let p = plan(&policy, &backups, &[], t(2025, 12, 30, 12));
        assert_eq!(p.blocked, None);
        // Hand-checked: daily Dec 24..30; weekly adds Sun Dec 21 and Sun Dec 14 (Dec 30
        // is in 2026-W01, Dec 28 ends 2025-W52, already daily); monthly adds the last day
        // of Nov 2025 back to Jan 2025 (Dec is Dec 30); yearly adds 2024-12-31 (2023 has
        // no backup, so only two yearly buckets exist).
        let expected = [
            "2025-12-30",
            "2025-12-29",
            "2025-12-28",
            "2025-12-27",
            "2025-12-26",
            "2025-12-25",
            "2025-12-24",
            "2025-12-21",
            "2025-12-14",
            "2025-11-30",
            "2025-10-31",
            "2025-09-30",
            "2025-08-31",
            "2025-07-31",
            "2025-06-30",
            "2025-05-31",
            "2025-04-30",
            "2025-03-31",
            "2025-02-28",
            "2025-01-31",
            "2024-12-31",
        ];
        assert_eq!(kept_days(&p), expected);
        assert_eq!(p.delete.len(), 730 - 21);
        // Every backup is either kept or deleted, exactly once.
        let all: BTreeSet<_> = p
            .keep
            .iter()
            .map(|k| k.id.clone())
            .chain(p.delete.iter().cloned())
            .collect();
        assert_eq!(all.len(), 730);
        // Reasons name each rule that keeps a backup.
        let newest = &p.keep[0];
        let reasons: Vec<String> = newest.reasons.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "daily 2025-12-30 (1/7)",
                "weekly 2026-W01 (1/4)",
                "monthly 2025-12 (1/12)",
                "yearly 2025 (1/3)"
            ]
        );
        let dec28: Vec<String> = p.keep[2].reasons.iter().map(|r| r.to_string()).collect();
        assert_eq!(dec28, ["daily 2025-12-28 (3/7)", "weekly 2025-W52 (2/4)"]);
        let y2024: Vec<String> = p.keep[20].reasons.iter().map(|r| r.to_string()).collect();
        // The twelve monthly buckets end at January 2025: 2024-12-31 is yearly only.
        assert_eq!(y2024, ["yearly 2024 (2/3)"]);
        let jan: Vec<String> = p.keep[19].reasons.iter().map(|r| r.to_string()).collect();
        assert_eq!(jan, ["monthly 2025-01 (12/12)"]);
    }

    /// Four backups a day (00, 06, 12, 18 UTC) for two years: 2920 ids.
    #[test]
    fn keep_last_hourly_and_within() {
        let backups = history(t(2024, 1, 1, 0), Duration::hours(6), 2920);
        let newest = backups.last().unwrap().time;
        assert_eq!(newest, t(2025, 12, 30, 18));
        let policy = RetentionPolicy {
            keep_last: Some(3),
            keep_within: Some("2d".parse().unwrap()),
            ..Default::default()
        };
        let p = plan(&policy, &backups, &[], newest);
        // within 2d of Dec 30 18:00 means strictly after Dec 28 18:00 (as restic): Dec 30
        // 18, 12, 06, 00 and Dec 29 18, 12, 06, 00.
        let kept: Vec<String> = p
            .keep
            .iter()
            .map(|k| k.time.format("%d %H").to_string())
            .collect();
        assert_eq!(
            kept,
            ["30 18", "30 12", "30 06", "30 00", "29 18", "29 12", "29 06", "29 00"]
        );
        assert_eq!(p.keep[0].reasons.len(), 2);
        assert_eq!(p.keep[2].reasons[0].to_string(), "last (3/3)");
        assert_eq!(
            p.keep[3].reasons,
            [KeepReason::Within("2d".parse().unwrap())]
        );
        assert_eq!(p.delete.len(), 2920 - 8);

        // Hourly buckets: each backup is its own hour, so hourly 5 = the 5 newest.
        let hourly = RetentionPolicy {
            keep_hourly: Some(5),
            ..Default::default()
        };
        let p = plan(&hourly, &backups, &[], newest);
        assert_eq!(p.keep.len(), 5);
        assert_eq!(p.keep[4].time, t(2025, 12, 29, 18));
    }

    /// Buckets without backups do not count: backups every 26 hours skip a day now and
    /// then, and keep_daily reaches further back than the number of days.
    #[test]
    fn empty_buckets_do_not_count() {
        // 674 backups every 26 h from 2024-01-01 00:00 cover about two years.
        let backups = history(t(2024, 1, 1, 0), Duration::hours(26), 674);
        let newest = backups.last().unwrap().time;
        // 673 * 26 h = 17498 h = 729 days 2 h after the start: 2025-12-30 02:00.
        assert_eq!(newest, t(2025, 12, 30, 2));
        let policy = RetentionPolicy {
            keep_daily: Some(3),
            ..Default::default()
        };
        let p = plan(&policy, &backups, &[], newest);
        // Going back 26 h each: Dec 30 02:00, Dec 29 00:00, Dec 27 22:00 (Dec 28 has no
        // backup and does not count).
        let kept: Vec<DateTime<Utc>> = p.keep.iter().map(|k| k.time).collect();
        assert_eq!(
            kept,
            [t(2025, 12, 30, 2), t(2025, 12, 29, 0), t(2025, 12, 27, 22)]
        );
        // Two backups in one day: the newest of the bucket is the one kept.
        let two = history(t(2025, 6, 1, 1), Duration::hours(1), 2);
        let p = plan(&policy, &two, &[], t(2025, 6, 2, 0));
        assert_eq!(p.keep.len(), 1);
        assert_eq!(p.keep[0].time, t(2025, 6, 1, 2));
    }

    #[test]
    fn empty_policy_keeps_everything() {
        let backups = history(t(2024, 1, 1, 0), Duration::days(3), 244);
        let p = plan(&RetentionPolicy::default(), &backups, &[], t(2026, 1, 1, 0));
        assert_eq!(p.keep.len(), 244);
        assert!(p.delete.is_empty());
        assert!(p.keep.iter().all(|k| k.reasons == [KeepReason::NoPolicy]));
        let zeros = RetentionPolicy {
            keep_last: Some(0),
            ..Default::default()
        };
        assert!(zeros.is_empty());
    }

    #[test]
    fn nothing_is_deleted_while_the_newest_is_unverified_or_failed() {
        let mut backups = history(t(2024, 1, 1, 2), Duration::days(1), 730);
        let old_debris = DebrisCandidate {
            id: id_at(t(2024, 6, 1, 2), 9999).to_string(),
            last_modified: t(2024, 6, 1, 3),
        };
        let policy = RetentionPolicy {
            keep_last: Some(2),
            ..Default::default()
        };
        for (state, words) in [
            (VerificationState::Unverified, "is not verified"),
            (VerificationState::Failed, "failed its last verification"),
        ] {
            backups.last_mut().unwrap().verification = state;
            let p = plan(
                &policy,
                &backups,
                std::slice::from_ref(&old_debris),
                t(2026, 1, 1, 0),
            );
            let why = p.blocked.as_deref().expect("blocked");
            assert!(why.contains(words), "{why}");
            assert!(why.contains(backups.last().unwrap().id.as_str()), "{why}");
            assert!(p.delete.is_empty());
            assert_eq!(p.keep.len(), 730);
            assert_eq!(p.keep[5].reasons, [KeepReason::Blocked]);
            // Debris past the grace period goes anyway: it is never restorable.
            assert_eq!(p.delete_debris, vec![old_debris.id.clone()]);
            assert!(p.keep_debris.is_empty());
        }
        // Older unverified backups do not block: only the newest counts.
        backups.last_mut().unwrap().verification = VerificationState::Verified;
        backups[100].verification = VerificationState::Failed;
        let p = plan(&policy, &backups, &[old_debris], t(2026, 1, 1, 0));
        assert_eq!(p.blocked, None);
        assert_eq!(p.keep.len(), 2);
        assert_eq!(p.delete.len(), 728);
        assert_eq!(p.delete_debris.len(), 1);
    }

    #[test]
    fn nothing_is_deleted_while_the_newest_is_incomplete() {
        let backups = history(t(2024, 1, 1, 2), Duration::days(1), 730);
        let running = DebrisCandidate {
            id: id_at(t(2025, 12, 31, 2), 1).to_string(),
            last_modified: t(2025, 12, 31, 2),
        };
        let policy = RetentionPolicy {
            keep_daily: Some(7),
            ..Default::default()
        };
        // Even 3 days later (debris older than the grace period: a failed backup).
        let p = plan(
            &policy,
            &backups,
            std::slice::from_ref(&running),
            t(2026, 1, 3, 0),
        );
        let why = p.blocked.as_deref().expect("blocked");
        assert!(
            why.contains("is incomplete") && why.contains(&running.id),
            "{why}"
        );
        assert!(p.delete.is_empty(), "no backup is deleted while blocked");
        // ...but the failed backup's debris, older than the grace period, is.
        assert_eq!(p.delete_debris, vec![running.id.clone()]);
        // Within the grace period it may be a backup still running: kept.
        let p = plan(
            &policy,
            &backups,
            std::slice::from_ref(&running),
            t(2025, 12, 31, 3),
        );
        assert!(p.blocked.is_some());
        assert!(p.delete.is_empty() && p.delete_debris.is_empty());
        assert_eq!(p.keep_debris.len(), 1);
        // No complete backup at all, only debris: blocked too.
        let p = plan(&policy, &[], &[running], t(2025, 12, 31, 3));
        assert!(p.blocked.is_some());
        assert!(p.delete_debris.is_empty());
    }

    #[test]
    fn debris_is_deleted_after_the_grace_period_only() {
        let backups = history(t(2025, 1, 1, 2), Duration::days(1), 300);
        let now = t(2025, 10, 28, 12);
        let old = DebrisCandidate {
            id: id_at(t(2025, 3, 1, 2), 7).to_string(),
            last_modified: now - Duration::hours(25),
        };
        let young = DebrisCandidate {
            id: id_at(t(2025, 3, 2, 2), 8).to_string(),
            last_modified: now - Duration::hours(23),
        };
        let policy = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        let p = plan(&policy, &backups, &[old.clone(), young.clone()], now);
        assert_eq!(p.blocked, None);
        assert_eq!(p.delete_debris, std::slice::from_ref(&old.id));
        assert_eq!(p.keep_debris.len(), 1);
        assert_eq!(p.keep_debris[0].0, young.id);
        assert!(p.keep_debris[0].1.contains("24h") || p.keep_debris[0].1.contains("1d"));
        // A longer grace keeps both.
        let patient = RetentionPolicy {
            debris_grace: Some("2d".parse().unwrap()),
            ..policy
        };
        let p = plan(&patient, &backups, &[old, young], now);
        assert!(p.delete_debris.is_empty());
        assert_eq!(p.keep_debris.len(), 2);
    }

    /// The newest verified backup survives even a rule set that keeps nothing of it.
    #[test]
    fn the_newest_verified_backup_is_never_deleted() {
        let backups = history(t(2024, 1, 1, 2), Duration::days(1), 400);
        let sorted: Vec<&Candidate> = backups.iter().rev().collect();
        // A rule outcome that would keep only older backups (as a future rule might).
        let mut reasons = vec![Vec::new(); sorted.len()];
        reasons[10].push(KeepReason::Last { rank: 1, of: 1 });
        protect_newest_verified(&sorted, &mut reasons);
        assert_eq!(reasons[0], [KeepReason::NewestVerified]);
        assert!(reasons[1].is_empty());
        // With the newest unverified (and the prune therefore blocked anyway), the
        // guard protects the newest one that is verified.
        let mut b2 = backups.clone();
        b2.last_mut().unwrap().verification = VerificationState::Unverified;
        let sorted: Vec<&Candidate> = b2.iter().rev().collect();
        let mut reasons = vec![Vec::new(); sorted.len()];
        protect_newest_verified(&sorted, &mut reasons);
        assert!(reasons[0].is_empty());
        assert_eq!(reasons[1], [KeepReason::NewestVerified]);
        // And through plan(): keep_last 1 + newest verified are the same backup here.
        let p = plan(
            &RetentionPolicy {
                keep_last: Some(1),
                ..Default::default()
            },
            &backups,
            &[],
            t(2026, 1, 1, 0),
        );
        assert_eq!(p.keep.len(), 1);
        assert_eq!(p.keep[0].id, backups.last().unwrap().id);
    }

    #[test]
    fn policies_override_field_by_field() {
        let defaults = RetentionPolicy {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            ..Default::default()
        };
        let over = RetentionPolicy {
            keep_daily: Some(30),
            keep_within: Some(Span::days(2)),
            ..Default::default()
        };
        let merged = defaults.overridden_by(&over);
        assert_eq!(merged.keep_daily, Some(30));
        assert_eq!(merged.keep_weekly, Some(4));
        assert_eq!(merged.keep_within, Some(Span::days(2)));
        assert_eq!(merged.to_string(), "daily 30, weekly 4, within 2d");
    }
}
