//! The operations' results as text for people: what the CLI prints without `--json`
//! (and what a notification or a log line can carry). Each renders only what its
//! document holds, which never includes a secret.

use super::backup::human_bytes;
use super::prune::PruneReport;
use super::restore::{RestorePlan, RestoreReport, SetRestorePlan, SetRestoreReport};
use super::set::SetManifest;
use super::status::{age_text, StatusReport};
use super::verify::{LatestVerifications, VerifyResult};
use crate::manifest::Manifest;
use crate::store::BackupStore;
use std::fmt::Write;

/// Appends one formatted line to a `String` (writing into a `String` cannot fail). Not
/// named `line!`, which would shadow the built-in macro.
macro_rules! push_line {
    ($s:expr, $($arg:tt)*) => {{
        let _ = writeln!($s, $($arg)*);
    }};
}

impl Manifest {
    /// One committed backup, as `dbseal backup` reports it.
    pub fn committed_text(&self) -> String {
        let a = &self.artifact;
        let secs = (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0;
        format!(
            "backup {} of {} ({}) committed in {secs:.1}s: {} stored ({} plaintext)\nmanifest: {}",
            self.backup_id,
            self.datastore.name,
            self.datastore.kind,
            human_bytes(a.stored_size),
            human_bytes(a.plaintext_size),
            BackupStore::manifest_key(&self.datastore.name, &self.backup_id),
        )
    }

    /// The whole manifest, one fact per line (`dbseal show`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        push_line!(s, "backup     {}", self.backup_id);
        push_line!(
            s,
            "datastore  {} ({})",
            self.datastore.name,
            self.datastore.kind
        );
        push_line!(
            s,
            "started    {}\nfinished   {}",
            self.started_at,
            self.finished_at
        );
        push_line!(s, "tool       {} {}", self.tool.name, self.tool.version);
        for a in self.artifacts() {
            push_line!(
                s,
                "artifact   {} ({}): {} stored, sha256 {}; {} plaintext, sha256 {}",
                a.key,
                a.format,
                human_bytes(a.stored_size),
                a.stored_sha256,
                human_bytes(a.plaintext_size),
                a.plaintext_sha256
            );
        }
        for t in &self.transforms {
            push_line!(
                s,
                "transform  {}",
                serde_json::to_string(t).unwrap_or_default()
            );
        }
        for (k, v) in &self.source {
            push_line!(s, "source     {k} = {v}");
        }
        for (k, v) in &self.contents.facts {
            push_line!(s, "fact       {k} = {v}");
        }
        for (group, counts) in &self.contents.counts {
            for (name, n) in counts {
                push_line!(s, "contents   {group} {name}: {n}");
            }
        }
        for (k, v) in &self.labels {
            push_line!(s, "label      {k} = {v}");
        }
        s
    }
}

/// A table of backups, one per line (`dbseal list`).
pub fn list_text(backups: &[Manifest]) -> String {
    let mut s = String::new();
    let row = |s: &mut String, cols: [&str; 6]| {
        push_line!(
            s,
            "{:<27} {:<20} {:<10} {:>10} {:>10}  {}",
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            cols[4],
            cols[5]
        )
    };
    row(
        &mut s,
        [
            "BACKUP ID",
            "DATASTORE",
            "KIND",
            "STORED",
            "PLAINTEXT",
            "FINISHED",
        ],
    );
    for m in backups {
        let finished = m.finished_at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        let (stored, plain) = (
            human_bytes(m.artifact.stored_size),
            human_bytes(m.artifact.plaintext_size),
        );
        row(
            &mut s,
            [
                m.backup_id.as_str(),
                &m.datastore.name,
                &m.datastore.kind,
                &stored,
                &plain,
                &finished,
            ],
        );
    }
    if backups.is_empty() {
        s.push_str("(no backups)\n");
    }
    s
}

impl SetManifest {
    /// A backup set and each member's outcome (`dbseal backup --all`).
    pub fn to_text(&self) -> String {
        let state = if self.ok { "committed" } else { "FAILED" };
        let mut s = format!("backup set {} {state}: {}\n", self.set_id, self.key());
        for m in &self.members {
            match (&m.backup_id, &m.error) {
                (Some(id), _) => {
                    let size = human_bytes(m.stored_size.unwrap_or(0));
                    push_line!(s, "  ok      {:<20} {id} ({size})", m.datastore)
                }
                (None, e) => push_line!(
                    s,
                    "  FAILED  {:<20} {}",
                    m.datastore,
                    e.as_deref().unwrap_or("")
                ),
            }
        }
        s
    }
}

impl RestorePlan {
    /// What a restore would do (`dbseal restore --dry-run`).
    pub fn to_text(&self) -> String {
        let p = self;
        let mut s = format!(
            "dry run: would restore backup {} ({} `{}`)\n",
            p.backup_id, p.datastore.kind, p.datastore.name
        );
        for a in &p.read {
            push_line!(s, "  read     {} ({})", a.key, human_bytes(a.stored_size));
        }
        if let (true, Some(name)) = (p.production, &p.target_datastore) {
            match p.needs_confirmation {
                true => push_line!(s, "  confirm  production datastore `{name}`: would be refused without --confirm-production {name}"),
                false => push_line!(s, "  confirm  production datastore `{name}`: confirmed"),
            }
        }
        if p.safety_skipped {
            s.push_str("  safety   no safety backup (--no-safety-backup)\n");
        } else if let Some(into) = &p.safety_backup_into {
            push_line!(
                s,
                "  safety   back up the target into datastore `{into}` first"
            );
        }
        push_line!(s, "  write    {}", p.target);
        if p.replace {
            s.push_str("  replace  the target's current contents would be dropped\n");
        }
        if p.create_db {
            s.push_str("  create   the target database would be created\n");
        }
        s
    }
}

impl RestoreReport {
    /// What a restore did (`dbseal restore`).
    pub fn to_text(&self) -> String {
        let mut s = format!("restored backup {} into {}\n", self.backup_id, self.target);
        for l in &self.summary {
            push_line!(s, "  {l}");
        }
        if let (Some(id), Some(ds)) = (&self.safety_backup, &self.safety_datastore) {
            push_line!(
                s,
                "  safety backup of the previous contents: {id} (datastore `{ds}`)"
            );
        }
        s
    }
}

impl SetRestorePlan {
    /// What restoring a backup set would do.
    pub fn to_text(&self) -> String {
        let n = self.members.len();
        let mut s = format!(
            "dry run: would restore backup set {} ({n} members)\n",
            self.set_id
        );
        self.members.iter().for_each(|p| s.push_str(&p.to_text()));
        s + "nothing was changed"
    }
}

impl SetRestoreReport {
    /// What restoring a backup set did.
    pub fn to_text(&self) -> String {
        let mut s = format!("restored backup set {}\n", self.set_id);
        for r in &self.restored {
            let safety = r
                .safety_backup
                .as_ref()
                .map(|x| format!(" (safety backup {x})"));
            let ds = r.datastore.as_deref().unwrap_or("");
            push_line!(s, "  {ds} <- {}{}", r.backup_id, safety.unwrap_or_default());
        }
        s
    }
}

impl VerifyResult {
    /// Each level's checks (`dbseal verify`).
    pub fn to_text(&self) -> String {
        let level = self.level.map_or(1, |l| l.number());
        let mut s = format!("backup {} verified at level {level}\n", self.backup_id);
        for r in &self.reports {
            for c in &r.checks {
                push_line!(s, "  ok [{:?}] {c}", r.level);
            }
        }
        s
    }
}

impl LatestVerifications {
    /// One line per datastore (`dbseal verify --latest`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for r in &self.0 {
            push_line!(
                s,
                "{:<6} {:<20} {:<27} {:<8} {}",
                if r.ok { "ok" } else { "FAILED" },
                r.datastore,
                r.backup_id.as_deref().unwrap_or("-"),
                r.level,
                r.message
            );
        }
        s
    }
}

impl StatusReport {
    /// The status table (`dbseal status`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let row = |s: &mut String, c: [&str; 7]| {
            push_line!(
                s,
                "{:<20} {:<10} {:<27} {:>9} {:>10} {:<28} {}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                c[6]
            )
        };
        row(
            &mut s,
            [
                "DATASTORE",
                "KIND",
                "NEWEST BACKUP",
                "AGE",
                "STORED",
                "LAST VERIFICATION",
                "STATUS",
            ],
        );
        for st in &self.datastores {
            let (id, age, size) = match &st.newest {
                Some(n) => (
                    n.backup_id.to_string(),
                    age_text(n.age_seconds),
                    human_bytes(n.stored_bytes),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let verification = match &st.last_verification {
                Some(v) => {
                    let ago = age_text((self.now - v.verified_at).num_seconds());
                    format!(
                        "{} {} {ago} ago",
                        if v.ok { "ok" } else { "FAILED" },
                        v.level
                    )
                }
                None => "never".into(),
            };
            let state = match st.healthy {
                true => "ok".to_string(),
                false => format!("UNHEALTHY: {}", st.problems.join("; ")),
            };
            let kind = st.kind.as_deref().unwrap_or("-");
            row(
                &mut s,
                [&st.datastore, kind, &id, &age, &size, &verification, &state],
            );
            let k = &st.kpis;
            if k.backups_succeeded
                + k.backups_failed
                + k.verifications_passed
                + k.verifications_failed
                > 0
            {
                let pct =
                    |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.1} %", r * 100.0));
                push_line!(
                    s,
                    "{:<20} last {}: backups {} ok / {} failed ({}), verifications {} ok / {} failed ({})",
                    "",
                    k.window,
                    k.backups_succeeded,
                    k.backups_failed,
                    pct(k.backup_success_rate),
                    k.verifications_passed,
                    k.verifications_failed,
                    pct(k.verification_success_rate)
                );
            }
            if k.notifications_failed > 0 {
                push_line!(
                    s,
                    "{:<20} last {}: {} notification(s) could not be delivered",
                    "",
                    k.window,
                    k.notifications_failed
                );
            }
            if let Some(d) = &k.last_drill {
                let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}s"));
                push_line!(
                    s,
                    "{:<20} drills: {} passed / {} failed; last {}: RTO {} (objective {}), RPO {} (objective {})",
                    "",
                    k.drills_passed,
                    k.drills_failed,
                    if d.passed { "passed" } else { "FAILED" },
                    secs(Some(d.rto_seconds)),
                    secs(d.rto_objective_seconds),
                    secs(d.rpo_seconds),
                    secs(d.rpo_objective_seconds)
                );
            }
            if let Some(w) = &st.wal {
                push_line!(
                    s,
                    "{:<20} WAL archive: {} segments, newest {} archived {} ago (the recovery point)",
                    "",
                    w.segments,
                    w.newest_segment.as_deref().unwrap_or("-"),
                    w.newest_age_seconds.map_or("-".to_string(), age_text)
                );
            }
        }
        let h = &self.store;
        if let Some(u) = &h.storage {
            push_line!(
                s,
                "store {}: {} used of {} ({}), {:.1} % (alert above {} %)",
                h.url,
                human_bytes(u.used_bytes),
                human_bytes(u.capacity_bytes),
                u.measured_against,
                u.used_percent,
                u.alert_percent
            );
        }
        for k in &h.keys {
            push_line!(
                s,
                "key {} {}: expires {} ({} days)",
                k.key.role,
                k.key.short_key(),
                k.key.expires,
                k.days_left
            );
        }
        for p in &h.problems {
            push_line!(s, "ALERT: {p}");
        }
        s
    }
}

impl PruneReport {
    /// What prune kept and deleted, and why (`dbseal prune`).
    pub fn to_text(&self) -> String {
        let r = self;
        let verb = if r.dry_run { "would delete" } else { "deleted" };
        let mut s = String::new();
        if r.dry_run {
            s.push_str("dry run: nothing is deleted\n");
        }
        for d in &r.datastores {
            push_line!(
                s,
                "datastore {} — policy: {}",
                d.datastore,
                d.policy_summary
            );
            if let Some(why) = &d.plan.blocked {
                push_line!(s, "  BLOCKED: {why}");
            }
            for k in &d.plan.keep {
                let reasons: Vec<String> = k.reasons.iter().map(|x| x.to_string()).collect();
                push_line!(s, "  keep    {}  {}", k.id, reasons.join(", "));
            }
            for id in &d.plan.delete {
                let size = human_bytes(r.sizes.get(id).copied().unwrap_or(0));
                push_line!(s, "  {verb} {id} ({size})");
            }
            for id in &d.plan.delete_debris {
                push_line!(s, "  {verb} debris {id} (no manifest)");
            }
            for (id, why) in &d.plan.keep_debris {
                push_line!(s, "  keep    debris {id}: {why}");
            }
            if r.dry_run && !d.deleted_keys.is_empty() {
                s.push_str("  objects that would be deleted:\n");
                d.deleted_keys.iter().for_each(|k| push_line!(s, "    {k}"));
            }
            push_line!(
                s,
                "  {} kept, {} {verb}, {} debris {verb} ({})",
                d.plan.keep.len(),
                d.plan.delete.len(),
                d.plan.delete_debris.len(),
                human_bytes(d.debris_bytes)
            );
        }
        for k in &r.set_manifests_deleted {
            push_line!(s, "{verb} set manifest {k} (none of its members is left)");
        }
        if r.records_deleted > 0 {
            push_line!(
                s,
                "{verb} {} outcome records older than 13 months",
                r.records_deleted
            );
        }
        s
    }
}
