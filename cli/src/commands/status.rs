//! `dbseal status`: the newest backup, age, size and last verification of every
//! datastore; exit 9 when any is unhealthy (`backup_core::ops::status`).

use backup_core::ops::status::{self, age_text, StatusOptions};
use backup_core::ops::OpContext;

use crate::common::human_bytes;
use crate::exit::CliResult;
use crate::output::Output;

/// Runs `dbseal status`.
pub async fn run(args: &StatusOptions, ctx: &OpContext, out: Output) -> CliResult<()> {
    let report = status::status(ctx, args).await?;
    let now = report.now;
    crate::result_emitted();
    out.emit(&report, || {
        let mut s = format!(
            "{:<20} {:<10} {:<27} {:>9} {:>10} {:<28} {}\n",
            "DATASTORE", "KIND", "NEWEST BACKUP", "AGE", "STORED", "LAST VERIFICATION", "STATUS"
        );
        for st in &report.datastores {
            let (id, age, size) = match &st.newest {
                Some(n) => (
                    n.backup_id.to_string(),
                    age_text(n.age_seconds),
                    human_bytes(n.stored_bytes),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let verification = match &st.last_verification {
                Some(v) => format!(
                    "{} {} {} ago",
                    if v.ok { "ok" } else { "FAILED" },
                    v.level,
                    age_text((now - v.verified_at).num_seconds())
                ),
                None => "never".into(),
            };
            s.push_str(&format!(
                "{:<20} {:<10} {:<27} {:>9} {:>10} {:<28} {}\n",
                st.datastore,
                st.kind.as_deref().unwrap_or("-"),
                id,
                age,
                size,
                verification,
                if st.healthy {
                    "ok".to_string()
                } else {
                    format!("UNHEALTHY: {}", st.problems.join("; "))
                }
            ));
            if let Some(w) = &st.wal {
                s.push_str(&format!(
                    "{:<20} WAL archive: {} segments, newest {} archived {} ago (the recovery point)\n",
                    "",
                    w.segments,
                    w.newest_segment.as_deref().unwrap_or("-"),
                    w.newest_age_seconds.map_or("-".to_string(), age_text)
                ));
            }
        }
        s
    });
    match report.failure() {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}
