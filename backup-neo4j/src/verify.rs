//! Verification level 3 for Neo4j: restore into a scratch database and compare.
//!
//! [`verify_restore`] restores a backup into a scratch database the caller names (it
//! must exist and be empty; with Neo4j Enterprise [`create_database`] makes one with
//! `CREATE DATABASE`, Community Edition has a single user database, so give it a
//! scratch *server*), re-exports the restored graph without writing a stream, and
//! compares with the manifest: node counts per label and per label set, relationship
//! counts per type, property counts, the id-independent content hash, and that every
//! backed-up index and constraint exists by name.

use backup_core::{
    BackupStore, Error, Manifest, RestoreOptions, Result, VerifyLevel, VerifyReport,
};
use neo4rs::query;

use crate::bolt::quote;
use crate::config::Neo4jConfig;
use crate::format::FORMAT_NAME;
use crate::sink::{Neo4jSink, Neo4jSinkOptions};
use crate::source::{connect, live_contents};

/// The count groups level 3 compares (the schema is compared by name).
pub const COMPARED_GROUPS: [&str; 6] = [
    "graph",
    "labels",
    "label_sets",
    "relationship_types",
    "node_property_keys",
    "relationship_property_keys",
];

/// Restores `manifest`'s backup into the scratch database `scratch` and compares the
/// live graph with the manifest. The scratch database keeps the restored graph (drop
/// it afterwards with [`drop_database`] or your own tooling).
pub async fn verify_restore(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    scratch: &Neo4jConfig,
) -> Result<VerifyReport> {
    let fail = |what: String| Error::Verification {
        id: manifest.backup_id.to_string(),
        key: manifest.artifact.key.clone(),
        what,
    };
    if manifest.artifact.format != FORMAT_NAME {
        return Err(fail(format!(
            "level-3 verification restores dbseal graph streams; this backup is `{}`",
            manifest.artifact.format
        )));
    }
    let mut sink = Neo4jSink::new(scratch.clone(), Neo4jSinkOptions::default());
    backup_core::restore(store, manifest, "data", &mut sink, options).await?;
    let (live, schema) = live_contents(scratch).await?;
    let mut checks = vec![format!(
        "restored into scratch database {}",
        scratch.database.as_deref().unwrap_or("(default)")
    )];
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
            return Err(fail(format!(
                "{fact} of the restored graph is {}, the manifest records {}",
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
    Ok(VerifyReport {
        backup_id: manifest.backup_id.to_string(),
        level: VerifyLevel::Restore,
        checks,
    })
}

/// Reads the schema names from the artifact itself (they are not in the manifest).
async fn backed_up_schema_names(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
) -> Result<Vec<String>> {
    struct SchemaNames(Vec<String>);
    #[async_trait::async_trait]
    impl backup_core::Sink for SchemaNames {
        async fn restore(
            &mut self,
            _m: &Manifest,
            input: backup_core::sink::StreamReader<'_>,
        ) -> Result<backup_core::SinkReport> {
            let mut r = tokio::io::BufReader::new(input);
            let mut line = Vec::new();
            let mut in_schema = true;
            loop {
                line.clear();
                let n = crate::format::read_line_async(&mut r, &mut line).await?;
                if n == 0 {
                    break;
                }
                if in_schema {
                    match crate::format::Record::parse(line.trim_ascii_end()) {
                        Ok(crate::format::Record::Schema(s)) => self.0.push(s.name),
                        Ok(crate::format::Record::Header(_)) => {}
                        _ => in_schema = false,
                    }
                }
            }
            Ok(backup_core::SinkReport::default())
        }
    }
    let mut sink = SchemaNames(Vec::new());
    backup_core::restore(store, manifest, "data", &mut sink, options).await?;
    Ok(sink.0)
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
