//! Timeline paths: which segments recovery reads, gaps, and recovery plans.

use std::collections::{BTreeMap, BTreeSet};

use backup_core::{ErrorKind, Result};
use futures::StreamExt;
use serde::Serialize;

use super::{
    segment_name, BackupCoverage, BaseBackupWal, HistoryEntry, Lsn, TimelineRange, WalArchive,
    WalProblem, WalProblemKind,
};

// ---------------------------------------------------------------------------------
// Timeline paths
// ---------------------------------------------------------------------------------

/// The timeline path recovery follows from `(timeline, start)` to `target` (the
/// newest timeline when `None`, as `recovery_target_timeline = 'latest'`), as ranges of
/// segment numbers per timeline; `to_segno` of the last timeline is left `None` (the
/// caller bounds it). Fails if `target` does not descend from the start point.
pub fn timeline_path(
    timeline: u32,
    start: Lsn,
    target: u32,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    seg_size: u64,
) -> std::result::Result<Vec<TimelineRange>, String> {
    let start_seg = start.segno(seg_size);
    if target == timeline {
        return Ok(vec![TimelineRange {
            timeline,
            from_segno: start_seg,
            to_segno: None,
        }]);
    }
    let history = histories
        .get(&target)
        .ok_or_else(|| format!("the history file of timeline {target} is not archived"))?;
    let pos = history
        .iter()
        .position(|e| e.timeline == timeline)
        .ok_or_else(|| format!("timeline {target} does not descend from timeline {timeline}"))?;
    if history[pos].switchpoint <= start {
        return Err(format!(
            "timeline {target} branched off timeline {timeline} at {}, before {start}",
            history[pos].switchpoint
        ));
    }
    let mut ranges = Vec::new();
    let mut from = start_seg;
    for e in &history[pos..] {
        let next_begin = e.switchpoint.segno(seg_size);
        if next_begin > from {
            ranges.push(TimelineRange {
                timeline: e.timeline,
                from_segno: from,
                to_segno: Some(next_begin - 1),
            });
        }
        from = from.max(next_begin);
    }
    ranges.push(TimelineRange {
        timeline: target,
        from_segno: from,
        to_segno: None,
    });
    Ok(ranges)
}

/// The timeline PostgreSQL picks for `recovery_target_timeline = 'latest'`: starting
/// from `timeline`, the highest of the consecutive timelines whose history file exists.
pub fn latest_timeline(timeline: u32, history_timelines: &BTreeSet<u32>) -> u32 {
    let mut t = timeline;
    while history_timelines.contains(&(t + 1)) {
        t += 1;
    }
    t
}

/// The newest timeline that descends from `(timeline, start)`.
pub(super) fn newest_descendant(
    timeline: u32,
    start: Lsn,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    seg_size: u64,
) -> u32 {
    histories
        .keys()
        .rev()
        .copied()
        .find(|t| *t > timeline && timeline_path(timeline, start, *t, histories, seg_size).is_ok())
        .unwrap_or(timeline)
}

/// Checks the segments a recovery along `path` reads: the last range ends at
/// `end_segno` when given, else at the newest segment of its timeline. Returns the
/// missing segments and the newest segment reachable without a gap.
pub fn missing_segments(
    path: &mut [TimelineRange],
    segments: &BTreeMap<u32, BTreeSet<u64>>,
    end_segno: Option<u64>,
    seg_size: u64,
) -> (Vec<String>, Option<String>) {
    let empty = BTreeSet::new();
    if let Some(last) = path.last_mut() {
        let segs = segments.get(&last.timeline).unwrap_or(&empty);
        last.to_segno = match end_segno {
            Some(e) => Some(e),
            None => segs
                .iter()
                .next_back()
                .copied()
                .filter(|s| *s >= last.from_segno),
        };
    }
    let mut missing = Vec::new();
    let mut reachable = None;
    let mut blocked = false;
    for r in path.iter() {
        let Some(to) = r.to_segno else { continue };
        if let Some(end) = end_segno {
            if r.from_segno > end {
                break;
            }
        }
        let to = end_segno.map_or(to, |e| to.min(e));
        let segs = segments.get(&r.timeline).unwrap_or(&empty);
        for s in r.from_segno..=to {
            if segs.contains(&s) {
                if !blocked {
                    reachable = Some(segment_name(r.timeline, s, seg_size));
                }
            } else {
                blocked = true;
                missing.push(segment_name(r.timeline, s, seg_size));
            }
        }
    }
    (missing, reachable)
}

pub(super) fn backup_coverage(
    b: &BaseBackupWal,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    segments: &BTreeMap<u32, BTreeSet<u64>>,
    seg_size: u64,
    target: Option<u32>,
) -> (BackupCoverage, Vec<WalProblem>) {
    let mut problems = Vec::new();
    let start_segment = segment_name(b.timeline, b.start_lsn.segno(seg_size), seg_size);
    let stop_segment = b.stop_lsn.map(|l| {
        segment_name(
            b.stop_timeline.unwrap_or(b.timeline),
            l.segno(seg_size),
            seg_size,
        )
    });
    let target =
        target.unwrap_or_else(|| newest_descendant(b.timeline, b.start_lsn, histories, seg_size));
    let mut path = match timeline_path(b.timeline, b.start_lsn, target, histories, seg_size) {
        Ok(p) => p,
        Err(e) => {
            problems.push(WalProblem {
                kind: WalProblemKind::Timeline,
                file: None,
                message: format!("base backup {}: {e}", b.backup_id),
            });
            return (
                BackupCoverage {
                    backup_id: b.backup_id.clone(),
                    start_segment,
                    stop_segment,
                    path: Vec::new(),
                    reachable: None,
                    complete: false,
                },
                problems,
            );
        }
    };
    // The stop segment is needed even when no later segment exists.
    let stop_segno = b.stop_lsn.map(|l| l.segno(seg_size));
    let (mut missing, reachable) = missing_segments(&mut path, segments, None, seg_size);
    if let (Some(stop), Some(stop_name)) = (stop_segno, &stop_segment) {
        let tl = b.stop_timeline.unwrap_or(b.timeline);
        let have = segments.get(&tl).is_some_and(|s| s.contains(&stop));
        if !have && !missing.contains(stop_name) {
            missing.push(stop_name.clone());
        }
        let start = b.start_lsn.segno(seg_size);
        for s in start..stop {
            let name = segment_name(b.timeline, s, seg_size);
            if !segments.get(&b.timeline).is_some_and(|x| x.contains(&s))
                && !missing.contains(&name)
            {
                missing.push(name);
            }
        }
    }
    missing.sort();
    for m in &missing {
        let consistency = stop_segment.as_ref().is_some_and(|s| m <= s);
        problems.push(WalProblem {
            kind: WalProblemKind::Gap,
            file: Some(m.clone()),
            message: if consistency {
                format!(
                    "{m} is missing: base backup {} needs it to become consistent (start {start_segment}, stop {})",
                    b.backup_id,
                    stop_segment.as_deref().unwrap_or("?")
                )
            } else {
                format!(
                    "{m} is missing: recovery of base backup {} to the newest WAL would stop there (reachable: {})",
                    b.backup_id,
                    reachable.as_deref().unwrap_or("nothing")
                )
            },
        });
    }
    (
        BackupCoverage {
            backup_id: b.backup_id.clone(),
            start_segment,
            stop_segment,
            path,
            reachable,
            complete: missing.is_empty(),
        },
        problems,
    )
}

/// Cross-checks timeline histories and segments.
pub(super) fn check_timelines(
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    segments: &BTreeMap<u32, BTreeSet<u64>>,
    seg_size: u64,
) -> Vec<WalProblem> {
    let mut problems = Vec::new();
    for (tl, segs) in segments {
        if *tl == 1 {
            continue;
        }
        let Some(history) = histories.get(tl) else {
            problems.push(WalProblem {
                kind: WalProblemKind::Timeline,
                file: Some(format!("{tl:08X}.history")),
                message: format!(
                    "timeline {tl} has segments but its history file {tl:08X}.history is not archived: recovery cannot follow it"
                ),
            });
            continue;
        };
        if let Some(last) = history.last() {
            let begin = last.switchpoint.segno(seg_size);
            if let Some(first) = segs.iter().next() {
                if *first < begin {
                    problems.push(WalProblem {
                        kind: WalProblemKind::Timeline,
                        file: Some(segment_name(*tl, *first, seg_size)),
                        message: format!(
                            "{} lies before timeline {tl} began ({} on timeline {}, per {tl:08X}.history)",
                            segment_name(*tl, *first, seg_size),
                            last.switchpoint,
                            last.timeline
                        ),
                    });
                }
            }
        }
    }
    for (tl, history) in histories {
        // Each parent's own history must agree with the prefix of this one.
        for (i, e) in history.iter().enumerate() {
            if let Some(parent) = histories.get(&e.timeline) {
                if parent.as_slice() != &history[..i] {
                    problems.push(WalProblem {
                        kind: WalProblemKind::Timeline,
                        file: Some(format!("{tl:08X}.history")),
                        message: format!(
                            "{tl:08X}.history and {:08X}.history disagree about the history of timeline {}",
                            e.timeline, e.timeline
                        ),
                    });
                }
            }
        }
    }
    problems
}

/// What a restore of `backup` along `target_timeline` (newest when `None`) needs
/// from the archive up to `end` (the newest WAL when `None`): the missing segments, and
/// the coverage. Used by the physical restore's pre-checks.
pub async fn plan_recovery(
    archive: &WalArchive,
    backup: &BaseBackupWal,
    target_timeline: Option<u32>,
    end: Option<Lsn>,
) -> Result<RecoveryPlan> {
    let record = archive.record().await?.ok_or_else(|| {
        archive.err(
            ErrorKind::NotFound,
            format!(
                "no WAL archive in {} (no {}): the base backup needs the WAL archived by `dbseal wal-push --datastore {}`",
                archive.store.url(),
                archive.record_key(),
                archive.datastore
            ),
        )
    })?;
    let sysid = record.system_id()?;
    if sysid != backup.system_identifier {
        return Err(archive.err(
            ErrorKind::Refused,
            format!(
                "base backup {} is of database system {}, but the WAL archive holds database system {sysid}",
                backup.backup_id, backup.system_identifier
            ),
        ));
    }
    let seg_size = record.wal_segment_size;
    if seg_size != backup.wal_segment_size {
        return Err(archive.err(
            ErrorKind::Refused,
            format!(
                "base backup {} has {}-byte WAL segments, the archive {seg_size}-byte ones",
                backup.backup_id, backup.wal_segment_size
            ),
        ));
    }
    let listing = archive.listing().await?;
    let histories = archive.histories(&listing).await?;
    let segments = listing.segments(seg_size);
    let target = target_timeline
        .unwrap_or_else(|| latest_timeline(backup.timeline, &listing.history_timelines()));
    let mut path = timeline_path(backup.timeline, backup.start_lsn, target, &histories, seg_size)
        .map_err(|e| {
            archive.err(
                ErrorKind::Refused,
                format!(
                    "base backup {} cannot be recovered along timeline {target}: {e} (choose another --target-timeline)",
                    backup.backup_id
                ),
            )
        })?;
    let end_segno = end.map(|l| l.segno(seg_size));
    let (missing, reachable) = missing_segments(&mut path, &segments, end_segno, seg_size);
    let stop = backup.stop_lsn.unwrap_or(backup.start_lsn);
    let stop_segno = stop.segno(seg_size);
    let (consistency_missing, _) = {
        let mut p = timeline_path(
            backup.timeline,
            backup.start_lsn,
            target,
            &histories,
            seg_size,
        )
        .unwrap_or_default();
        missing_segments(&mut p, &segments, Some(stop_segno), seg_size)
    };
    // The archived segments on the path: their manifests must name this system and
    // their stored objects must be there (content is checked by wal-fetch itself).
    let mut needed = Vec::new();
    for r in &path {
        let Some(to) = r.to_segno else { continue };
        let to = end_segno.map_or(to, |e| to.min(e));
        for s in r.from_segno..=to {
            let name = segment_name(r.timeline, s, seg_size);
            if let Some(f) = listing.files.get(&name) {
                if f.manifest_key.is_some() {
                    needed.push((s, f.clone()));
                }
            }
        }
    }
    let checks = futures::stream::iter(needed.into_iter().map(|(segno, f)| async move {
        let problem = match archive.file_manifest(&f.file).await {
            Ok(Some(m)) => match archive.check_file_manifest(&f.file, &m, Some(sysid)) {
                Err(p) => Some(p),
                Ok(()) => match f.objects.iter().find(|(k, _)| *k == m.artifact.key) {
                    Some((_, size)) if *size == m.artifact.stored_size => None,
                    Some((key, size)) => Some(WalProblem {
                        kind: WalProblemKind::Corrupt,
                        file: Some(f.file.name.clone()),
                        message: format!(
                            "{}: {key} is {size} bytes, its manifest records {} (truncated or replaced)",
                            f.file.name, m.artifact.stored_size
                        ),
                    }),
                    None => Some(WalProblem {
                        kind: WalProblemKind::Corrupt,
                        file: Some(f.file.name.clone()),
                        message: format!("{}: its stored object {} is missing", f.file.name, m.artifact.key),
                    }),
                },
            },
            Ok(None) => None,
            Err(e) => Some(WalProblem {
                kind: WalProblemKind::Invalid,
                file: Some(f.file.name.clone()),
                message: format!("{}: {e}", f.file.name),
            }),
        };
        problem.map(|p| (segno, p))
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let mut damaged = Vec::new();
    let mut damaged_consistency = Vec::new();
    for (segno, p) in checks.into_iter().flatten() {
        if segno <= stop_segno {
            damaged_consistency.push(p);
        } else {
            damaged.push(p);
        }
    }
    damaged.sort_by(|a, b| a.file.cmp(&b.file));
    damaged_consistency.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(RecoveryPlan {
        system_identifier: sysid,
        segment_size: seg_size,
        target_timeline: target,
        path,
        missing,
        consistency_missing,
        reachable,
        damaged,
        damaged_consistency,
    })
}

/// What [`plan_recovery`] found.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryPlan {
    /// The archive's system identifier.
    pub system_identifier: u64,
    /// The WAL segment size.
    pub segment_size: u64,
    /// The timeline recovery ends on.
    pub target_timeline: u32,
    /// The timeline ranges read.
    pub path: Vec<TimelineRange>,
    /// Segments missing up to the end asked for.
    pub missing: Vec<String>,
    /// Segments missing before the backup is consistent (fatal for any target).
    pub consistency_missing: Vec<String>,
    /// The newest segment reachable without a gap.
    pub reachable: Option<String>,
    /// Archived segments on the path, after the consistency point, whose manifest names
    /// another database system or whose stored object is missing or has the wrong size.
    pub damaged: Vec<WalProblem>,
    /// The same, up to the consistency point (fatal for any target).
    pub damaged_consistency: Vec<WalProblem>,
}
