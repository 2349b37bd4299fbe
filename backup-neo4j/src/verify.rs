//! Verification level 3 for Neo4j: restore into a scratch database and compare.
//!
//! [`verify_restore`] restores a backup into a scratch database the caller names (it
//! must exist and be empty; with Neo4j Enterprise [`create_database`] makes one with
//! `CREATE DATABASE`, Community Edition has a single user database, so give it a
//! scratch *server*), re-exports the restored graph without writing a stream, and
//! compares with the manifest: node counts per label and per label set, relationship
//! counts per type, property counts, the id-independent content hash, and that every
//! backed-up index and constraint exists by name.

use std::collections::HashMap;

use backup_core::{
    BackupStore, Error, Manifest, RestoreOptions, Result, VerifyLevel, VerifyReport,
};
use neo4rs::query;

use crate::bolt::quote;
use crate::config::Neo4jConfig;
use crate::format::{ContentSummary, Properties, Record, FORMAT_NAME};
use crate::sink::{Neo4jSink, Neo4jSinkOptions};
use crate::source::{connect, export_records, live_contents, RecordSink};

/// The count groups level 3 compares (the schema is compared by name).
pub const COMPARED_GROUPS: [&str; 6] = [
    "graph",
    "labels",
    "label_sets",
    "relationship_types",
    "node_property_keys",
    "relationship_property_keys",
];

/// Restores `manifest`'s backup into the scratch database `scratch` (which must be
/// empty: a non-empty one is refused and left as it is) and compares the live graph
/// with the manifest; then empties the scratch database again, whatever the comparison
/// found. `cancel` stops the restore, which then removes what it imported.
pub async fn verify_restore(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    scratch: &Neo4jConfig,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<VerifyReport> {
    let fail = |what: String| manifest.verification_error(what);
    if manifest.artifact.format != FORMAT_NAME {
        return Err(fail(format!(
            "level-3 verification restores dbseal graph streams; this backup is `{}`",
            manifest.artifact.format
        )));
    }
    let mut sink = Neo4jSink::new(scratch.clone(), Neo4jSinkOptions::default());
    let mut cancellable = backup_core::CancellableSink::new(&mut sink, cancel.clone());
    let clock = std::time::Instant::now();
    backup_core::restore(store, manifest, "data", &mut cancellable, options).await?;
    let load_seconds = Some(clock.elapsed().as_secs_f64());
    let mut checks = vec![format!(
        "restored into scratch database {}",
        scratch.database.as_deref().unwrap_or("(default)")
    )];
    let compared = compare_live_content(store, manifest, options, scratch).await;
    let emptied = Neo4jSink::empty_scratch(scratch).await;
    checks.extend(compared?);
    checks.push(format!(
        "scratch database emptied again ({} nodes deleted)",
        emptied?
    ));
    Ok(VerifyReport {
        backup_id: manifest.backup_id.to_string(),
        level: VerifyLevel::Restore,
        checks,
        load_seconds,
    })
}

/// Compares the live graph of `target` (where `manifest`'s backup was restored) with the
/// manifest: counts per label, label set, relationship type and property key, the
/// id-independent content hash — on a difference, the nodes and relationships that
/// differ are named — and that every backed-up index and constraint exists. Returns
/// what was checked.
pub async fn compare_live_content(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    target: &Neo4jConfig,
) -> Result<Vec<String>> {
    let fail = |what: String| manifest.verification_error(what);
    let scratch = target;
    let (live, schema) = live_contents(scratch).await?;
    let mut checks = Vec::new();
    let diffs = manifest.contents.diff_counts(&live, &COMPARED_GROUPS);
    if !diffs.is_empty() {
        return Err(fail(format!(
            "the restored graph differs from the manifest: {}",
            diffs.join("; ")
        )));
    }
    checks.push(format!(
        "counts per label, label set, relationship type and property key match ({} nodes, {} relationships)",
        live.counts.get("graph").and_then(|g| g.get("nodes")).unwrap_or(&0),
        live.counts.get("graph").and_then(|g| g.get("relationships")).unwrap_or(&0),
    ));
    for fact in ["content_hash_scope", "content_hash"] {
        let expected = manifest.contents.facts.get(fact);
        let found = live.facts.get(fact);
        if expected.is_none() || expected != found {
            let named = if fact == "content_hash" && expected.is_some() {
                name_differences(store, manifest, options, scratch)
                    .await
                    .unwrap_or_else(|e| format!(" (what differs could not be listed: {e})"))
            } else {
                String::new()
            };
            return Err(fail(format!(
                "{fact} of the restored graph is {}, the manifest records {}{named}",
                found.map_or("absent", String::as_str),
                expected.map_or("absent", String::as_str)
            )));
        }
    }
    checks.push(format!(
        "content hash {} matches",
        live.facts.get("content_hash").map_or("", String::as_str)
    ));
    // The backed-up schema, by name, read back from the stream's schema count is not
    // enough: check each item exists.
    let expected_schema = manifest
        .contents
        .counts
        .get("schema")
        .map(|s| s.values().sum::<u64>())
        .unwrap_or(0);
    let live_names: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
    let missing = backed_up_schema_names(store, manifest, options).await?;
    let missing: Vec<String> = missing
        .into_iter()
        .filter(|n| !live_names.contains(&n.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(fail(format!(
            "indexes/constraints missing after restore: {}",
            missing.join(", ")
        )));
    }
    checks.push(format!("all {expected_schema} indexes/constraints exist"));
    Ok(checks)
}

/// Reads the schema names from the artifact itself (they are not in the manifest).
async fn backed_up_schema_names(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut in_schema = true;
    each_line(store, manifest, options, |line| {
        if in_schema {
            match Record::parse(line) {
                Ok(Record::Schema(s)) => names.push(s.name),
                Ok(Record::Header(_)) => {}
                _ => in_schema = false,
            }
        }
        Ok(())
    })
    .await?;
    Ok(names)
}

/// Streams the backup's graph stream again, passing each line (without its newline)
/// to `f`.
async fn each_line<F>(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    f: F,
) -> Result<()>
where
    F: FnMut(&[u8]) -> Result<()> + Send,
{
    struct Lines<F>(F);
    #[async_trait::async_trait]
    impl<F: FnMut(&[u8]) -> Result<()> + Send> backup_core::Sink for Lines<F> {
        async fn restore(
            &mut self,
            _m: &Manifest,
            input: backup_core::sink::StreamReader<'_>,
        ) -> Result<backup_core::SinkReport> {
            let mut r = tokio::io::BufReader::new(input);
            let mut line = Vec::new();
            loop {
                line.clear();
                if crate::format::read_line_async(&mut r, &mut line).await? == 0 {
                    break;
                }
                (self.0)(line.trim_ascii_end())?;
            }
            Ok(backup_core::SinkReport::default())
        }
    }
    backup_core::restore(store, manifest, "data", &mut Lines(f), options).await?;
    Ok(())
}

/// Creates a database with Cypher `CREATE DATABASE name IF NOT EXISTS WAIT` on the
/// `system` database (Neo4j Enterprise; Community Edition and ArcadeDB do not support
/// it: create the scratch database with their own tools).
pub async fn create_database(server: &Neo4jConfig, name: &str) -> Result<()> {
    let system = server.clone().database("system");
    let db = connect(&system)?;
    db.run(
        &format!("creating database {name}"),
        query(&format!(
            "CREATE DATABASE {} IF NOT EXISTS WAIT",
            quote(name)
        )),
    )
    .await
}

/// Drops a database with `DROP DATABASE name IF EXISTS WAIT` (Neo4j Enterprise).
pub async fn drop_database(server: &Neo4jConfig, name: &str) -> Result<()> {
    let system = server.clone().database("system");
    let db = connect(&system)?;
    db.run(
        &format!("dropping database {name}"),
        query(&format!("DROP DATABASE {} IF EXISTS WAIT", quote(name))),
    )
    .await
}

/// The most distinct nodes and relationships of the restored graph held to name what
/// differs (16 bytes and a short description each); past it only the hash is reported.
const NAME_LIMIT: usize = 2_000_000;
/// How many differences an error names.
const NAMED: usize = 10;

/// One line describing a node or relationship: labels, type and properties, shortened.
fn describe(r: &Record) -> String {
    let props = |p: &Properties| {
        p.iter()
            .map(|(k, v)| format!("{k}: {}", v.to_json()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let labels = |l: &[String]| l.iter().map(|l| format!(":{l}")).collect::<String>();
    let s = match r {
        Record::Node(n) => format!("node ({} {{{}}})", labels(&n.labels), props(&n.props)),
        Record::Relationship(x) => format!(
            "relationship ({})-[:{} {{{}}}]->({})",
            labels(&x.start_labels),
            x.rel_type,
            props(&x.props),
            labels(&x.end_labels)
        ),
        _ => String::new(),
    };
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

/// Matches nodes and relationships one by one, by the digest each adds to the content
/// hash: first those of the restored graph, then the backup's.
struct Tally {
    summary: ContentSummary,
    /// Digest → (restored count not yet matched, description).
    live: HashMap<[u8; 16], (u64, String)>,
    over: bool,
    /// The backup's nodes and relationships with no match.
    unmatched: Vec<String>,
    unmatched_total: u64,
}

impl Tally {
    fn digest(&self) -> Option<[u8; 16]> {
        let d = self.summary.last_digest()?;
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        Some(k)
    }

    fn add_live(&mut self, r: &Record) -> std::result::Result<(), String> {
        self.summary.add(r)?;
        if let (Some(k), false) = (self.digest(), self.over) {
            let e = self.live.entry(k).or_insert_with(|| (0, describe(r)));
            e.0 = e.0.saturating_add(1);
            if self.live.len() > NAME_LIMIT {
                self.over = true;
                self.live = HashMap::new();
            }
        }
        Ok(())
    }

    fn add_backup(&mut self, r: &Record) -> std::result::Result<(), String> {
        self.summary.add(r)?;
        if let Some(k) = self.digest() {
            match self.live.get_mut(&k) {
                Some(e) if e.0 > 0 => e.0 -= 1,
                _ => {
                    self.unmatched_total += 1;
                    if self.unmatched.len() < NAMED {
                        self.unmatched.push(describe(r));
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl RecordSink for Tally {
    async fn record(&mut self, r: Record) -> Result<()> {
        self.add_live(&r).map_err(|e| Error::Format {
            format: FORMAT_NAME.into(),
            reason: e,
        })
    }
}

/// Names the nodes and relationships that differ between the backup and the restored
/// graph `scratch`: reads the restored graph, then the backup once more. Returns text
/// to append to the error.
async fn name_differences(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    scratch: &Neo4jConfig,
) -> Result<String> {
    let mut tally = Tally {
        summary: ContentSummary::default(),
        live: HashMap::new(),
        over: false,
        unmatched: Vec::new(),
        unmatched_total: 0,
    };
    export_records(scratch, &mut tally).await?;
    if tally.over {
        return Ok(String::new());
    }
    let format_error = |e: String| Error::Format {
        format: FORMAT_NAME.into(),
        reason: e,
    };
    tally.summary = ContentSummary::default();
    each_line(store, manifest, options, |line| {
        let record = Record::parse(line).map_err(format_error)?;
        tally.add_backup(&record).map_err(format_error)
    })
    .await?;
    let t = tally;
    let mut lines: Vec<String> = t
        .unmatched
        .iter()
        .map(|d| format!("the backup's {d} is not in the restored graph (changed or missing)"))
        .collect();
    let mut extra_total = 0u64;
    for (n, d) in t.live.values() {
        if *n > 0 {
            extra_total += n;
            if lines.len() < 2 * NAMED {
                lines.push(format!("the restored {d} is not in the backup"));
            }
        }
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "; {} of the backup's and {extra_total} of the restored nodes/relationships have no match: {}",
        t.unmatched_total,
        lines.join("; ")
    ))
}
