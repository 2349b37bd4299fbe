//! Restore: the graph stream imported over Bolt ([`Neo4jSink`]) or a `neo4j-admin`
//! dump loaded offline ([`Neo4jAdminSink`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;

use async_trait::async_trait;
use backup_core::sink::StreamReader;
use backup_core::{Error, ErrorKind, Manifest, Result, Sink, SinkReport};
use neo4rs::{query, BoltInteger, BoltList, BoltMap, BoltString, BoltType};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::bolt::{props_to_bolt, quote, Db};
use crate::config::Neo4jConfig;
use crate::format::{Record, SchemaItem, SchemaKind, StreamCheck, FORMAT_NAME};
use crate::source::{connect, read_schema};

mod undo;
use undo::{delete_imported, drain, drop_import_indexes, rollback};

mod admin;
pub use admin::Neo4jAdminSink;

/// The label every imported node without labels carries until the import finishes.
pub const IMPORT_LABEL: &str = "__DbsealImport";
/// The property holding a node's source id until the import finishes.
pub const IMPORT_ID: &str = "__dbseal_id";
/// Prefix of the temporary id indexes the import creates and drops.
pub const IMPORT_INDEX_PREFIX: &str = "__dbseal_import_";

/// When the backed-up indexes and constraints are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaTiming {
    /// Before the data: every write maintains the indexes and checks the constraints.
    BeforeData,
    /// After the data (default): indexes are built once over the loaded graph; a
    /// constraint the data violates fails the restore, which is then rolled back.
    #[default]
    AfterData,
}

/// How to restore.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neo4jSinkOptions {
    /// Replace a non-empty target. Its old contents are deleted only after the whole
    /// artifact was read and verified and the new graph is in place; until then a
    /// failure restores the target's old schema and removes what was imported.
    #[serde(default)]
    pub replace: bool,
    /// Nodes per `UNWIND` batch (one transaction each; default 2,000). Rows wait for
    /// their batch as compact stream lines (at most 8 MiB, whatever the graph's size
    /// and number of label sets); the batch being sent is held as Bolt values, so
    /// client memory grows with this size (peak RSS measured at 32-37 MiB with
    /// 2,000, 45 MiB with 5,000 and 62 MiB with 10,000 rows, see
    /// `bench/neo4j/RESULTS.md`); larger batches were not faster there.
    #[serde(default = "default_batch")]
    pub node_batch: usize,
    /// Relationships per `UNWIND` batch (default 2,000).
    #[serde(default = "default_batch")]
    pub relationship_batch: usize,
    /// When to create the backed-up schema (default: after the data).
    #[serde(default)]
    pub schema_timing: SchemaTiming,
    /// Relationship batches in flight at once, each in its own session (default 1).
    /// A batch the server fails with a transient error (another session changed the
    /// same node: Neo4j's deadlock detection, ArcadeDB's concurrent-modification
    /// check) was rolled back whole by the server and is retried, up to 6 attempts.
    /// Each batch in flight holds its rows as Bolt values. More than 1 is for servers
    /// that lock per record; on ArcadeDB (optimistic, per page) 2 sessions conflicted
    /// on nearly every batch and the restore failed after the retries (see
    /// `bench/neo4j/RESULTS.md`). Not measured on Neo4j, where the common advice is
    /// one writer for relationships too (lock contention and deadlocks on shared
    /// nodes).
    #[serde(default = "default_sessions")]
    pub sessions: usize,
}

fn default_sessions() -> usize {
    1
}

fn default_batch() -> usize {
    2_000
}

impl Default for Neo4jSinkOptions {
    fn default() -> Self {
        Neo4jSinkOptions {
            replace: false,
            node_batch: default_batch(),
            relationship_batch: default_batch(),
            schema_timing: SchemaTiming::default(),
            sessions: default_sessions(),
        }
    }
}

/// Rebuilds a graph from the dbseal graph stream over Bolt.
///
/// - Refuses a non-empty target (nodes, indexes or constraints) unless
///   [`Neo4jSinkOptions::replace`].
/// - Nodes are created in large `UNWIND $rows` batches grouped by label set; each gets
///   its source id in the temporary property `__dbseal_id`, indexed per *key label*
///   (the node's first label in sorted order; unlabeled nodes get the temporary label
///   `__DbsealImport`) once every node is in. The stream records the label sets of
///   every relationship's endpoints, so relationships are created in batches grouped
///   by (type, start key label, end key label), sorted by start id, with index
///   lookups and no id map in memory. Rows wait for their batch as compact stream
///   lines under one memory budget, so every group fills full batches.
/// - The driver's Bolt sockets get `TCP_NODELAY` (Linux; neo4rs leaves Nagle's
///   algorithm on, which delays every statement larger than 8 KiB by about 40 ms).
/// - Every value goes as a typed Bolt parameter: types are kept exactly.
/// - After a clean end of stream (the artifact passed every check), it creates the
///   schema (by default after the data), deletes the old contents when replacing,
///   removes the temporary property, label and indexes.
/// - On any failure before that it removes every imported node (they are the ones
///   carrying `__dbseal_id`) with their relationships, drops the schema it created,
///   restores the schema it dropped, and says so in the error.
pub struct Neo4jSink {
    config: Neo4jConfig,
    options: Neo4jSinkOptions,
    altered: Option<backup_core::TargetAltered>,
}

impl std::fmt::Debug for Neo4jSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jSink")
            .field("config", &self.config)
            .field("options", &self.options)
            .finish()
    }
}

/// What the import changed, so a failure can undo it.
#[derive(Default)]
struct ImportState {
    /// Key labels used by imported nodes (each has a temporary id index).
    key_labels: BTreeSet<String>,
    /// Temporary indexes created, by key label.
    import_indexes: BTreeMap<String, String>,
    /// Schema items of the backup already created.
    created_schema: Vec<SchemaItem>,
    /// The target's own schema, dropped before the import (replace).
    dropped_schema: Vec<SchemaItem>,
    /// Whether the old contents were deleted (replace): past this point a rollback
    /// cannot bring them back.
    old_contents_deleted: bool,
    nodes: u64,
    relationships: u64,
    schema: Vec<SchemaItem>,
    /// When the first node, first relationship and the end of stream were handled.
    started: Option<std::time::Instant>,
    first_relationship: Option<std::time::Instant>,
    stream_done: Option<std::time::Instant>,
    /// When the old contents were deleted and the schema created (clean-up begins).
    schema_done: Option<std::time::Instant>,
}

/// A unit of work for the writer.
enum Batch {
    Schema(SchemaItem),
    Nodes {
        labels: Vec<String>,
        group: Group,
    },
    Relationships {
        rel_type: String,
        start_key: String,
        end_key: String,
        group: Group,
    },
    /// The stream was complete and valid.
    End,
}

fn key_label(labels: &[String]) -> String {
    labels
        .first()
        .cloned()
        .unwrap_or_else(|| IMPORT_LABEL.to_string())
}

impl Neo4jSink {
    /// A sink into the database `config` names.
    pub fn new(config: Neo4jConfig, options: Neo4jSinkOptions) -> Self {
        Neo4jSink {
            config,
            options,
            altered: None,
        }
    }

    /// Raises `flag` when a restore fails after the target's old contents were deleted
    /// (`replace`): the caller then puts them back from its safety backup.
    pub fn report_alteration(mut self, flag: backup_core::TargetAltered) -> Self {
        self.altered = Some(flag);
        self
    }

    /// Removes what an interrupted import left behind (nodes carrying `__dbseal_id`
    /// or the label `__DbsealImport`, and the temporary indexes), e.g. after the server
    /// went away during a restore. Returns the number of nodes deleted.
    pub async fn remove_interrupted_import(config: &Neo4jConfig) -> Result<u64> {
        let db = connect(config)?;
        let mut state = ImportState::default();
        // Every label may hold imported nodes: find them through the labels in use.
        let rows = db
            .rows(
                "listing labels",
                query("CALL db.labels() YIELD label RETURN label"),
            )
            .await?;
        for r in rows {
            if let Ok(l) = r.get::<String>("label") {
                state.key_labels.insert(l);
            }
        }
        state.key_labels.insert(IMPORT_LABEL.into());
        for item in read_schema(&db, None).await? {
            if item.name.starts_with(IMPORT_INDEX_PREFIX) {
                state.import_indexes.insert(item.name.clone(), item.name);
            }
        }
        let mut deleted = delete_imported(&db, &state, 10_000).await?;
        // Whatever still carries the property (it is the marker that counts).
        let stmt = format!(
            "MATCH (n) WHERE n.{} IS NOT NULL WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS c",
            quote(IMPORT_ID)
        );
        deleted += drain(&db, "removing imported nodes", &stmt, u64::MAX / 2, 10_000).await?;
        drop_import_indexes(&db, &state).await?;
        Ok(deleted)
    }

    /// Empties the scratch database a level-3 verification restored into (one named in
    /// the URL, on a server that cannot make and drop one): its indexes and
    /// constraints, nodes and relationships. Returns the number of nodes deleted.
    pub async fn empty_scratch(config: &Neo4jConfig) -> Result<u64> {
        let db = connect(config)?;
        let schema = read_schema(&db, None).await?;
        undo::drop_schema_items(&db, constraints_first(&schema)).await?;
        let op = "emptying the scratch database";
        let nodes = db
            .count(op, query("MATCH (n) RETURN count(n) AS c"))
            .await?;
        let stmt = "MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS c";
        drain(&db, op, stmt, nodes.max(0) as u64, 10_000).await
    }
}

/// `schema` in the order it is dropped: constraints first (on Neo4j dropping one also
/// drops the index it owns), then indexes.
fn constraints_first(schema: &[SchemaItem]) -> Vec<&SchemaItem> {
    schema
        .iter()
        .filter(|s| s.kind == SchemaKind::Constraint)
        .chain(schema.iter().filter(|s| s.kind == SchemaKind::Index))
        .collect()
}

fn rows_param(rows: Vec<BoltType>) -> BoltType {
    BoltType::List(BoltList { value: rows })
}

/// A node row: its properties plus the temporary id, one flat map (`SET n = row`:
/// one map per row to encode and for the server to apply).
fn node_row(id: i64, props: &crate::format::Properties) -> BoltType {
    let mut m = props_to_bolt(props);
    m.put(
        BoltString::new(IMPORT_ID),
        BoltType::Integer(BoltInteger::new(id)),
    );
    BoltType::Map(m)
}

fn rel_row(start: i64, end: i64, props: &crate::format::Properties) -> BoltType {
    let mut m = BoltMap::new();
    m.put(
        BoltString::new("s"),
        BoltType::Integer(BoltInteger::new(start)),
    );
    m.put(
        BoltString::new("e"),
        BoltType::Integer(BoltInteger::new(end)),
    );
    m.put(BoltString::new("p"), BoltType::Map(props_to_bolt(props)));
    BoltType::Map(m)
}

/// Raw stream lines (all rows of one batch group) waiting to be sent.
///
/// Rows wait as the stream's own JSON lines — about 200 bytes a row here, against
/// about ten times that as Bolt values — and become Bolt values only when their batch
/// is sent, so many groups can fill up to full batches in little memory.
#[derive(Default)]
struct Group {
    /// The records' lines, each ending in `\n` (already checked by [`StreamCheck`]).
    lines: Vec<u8>,
    rows: usize,
}

impl Group {
    /// The Bolt rows of the batch: nodes as their properties plus `__dbseal_id`, relationships as `{s, e, p}`
    /// sorted by start id (neighbouring lookups in the id index).
    fn to_bolt(&self) -> std::result::Result<Vec<BoltType>, String> {
        let mut rels = Vec::new();
        let mut rows = Vec::with_capacity(self.rows);
        for line in self.lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match Record::parse(line)? {
                Record::Node(n) => rows.push(node_row(n.id, &n.props)),
                Record::Relationship(r) => rels.push((r.start, r.end, r.props)),
                _ => return Err("a batch holds a record that is not a node or relationship".into()),
            }
        }
        rels.sort_by_key(|r| (r.0, r.1));
        rows.extend(rels.iter().map(|(s, e, p)| rel_row(*s, *e, p)));
        Ok(rows)
    }
}

/// Pending groups (per label set, or per relationship type and endpoint key labels)
/// under one memory budget.
struct Pending<K> {
    groups: BTreeMap<K, Group>,
    bytes: usize,
}

impl<K: Ord + Clone> Pending<K> {
    fn new() -> Self {
        Pending {
            groups: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// Adds a line to `key`'s group; returns the group if it is now a full batch.
    fn push(&mut self, key: &K, line: &[u8], batch_rows: usize) -> Option<(K, Group)> {
        let g = match self.groups.get_mut(key) {
            Some(g) => g,
            None => self.groups.entry(key.clone()).or_default(),
        };
        g.lines.extend_from_slice(line);
        g.lines.push(b'\n');
        g.rows += 1;
        self.bytes += line.len() + 1;
        if g.rows >= batch_rows || g.lines.len() >= MAX_BATCH_BYTES {
            return self.take(key);
        }
        None
    }

    fn take(&mut self, key: &K) -> Option<(K, Group)> {
        let (k, g) = self.groups.remove_entry(key)?;
        self.bytes -= g.lines.len();
        Some((k, g))
    }

    /// The largest group while the budget is exceeded.
    fn over_budget(&mut self) -> Option<(K, Group)> {
        if self.bytes <= PENDING_BUDGET {
            return None;
        }
        let key = self
            .groups
            .iter()
            .max_by_key(|(_, g)| g.lines.len())
            .map(|(k, _)| k.clone())?;
        self.take(&key)
    }

    fn drain(&mut self) -> Vec<(K, Group)> {
        self.bytes = 0;
        std::mem::take(&mut self.groups).into_iter().collect()
    }
}

/// Nodes per clean-up statement (removing the temporary marks).
const CLEANUP_BATCH: usize = 10_000;

/// Raw bytes of pending rows, all groups together.
const PENDING_BUDGET: usize = 8 << 20;
/// Raw bytes of one batch (bounds a batch of rows with large properties).
const MAX_BATCH_BYTES: usize = 2 << 20;

/// Reads and checks the stream, groups records into batches and hands them to the
/// writer. Memory: the pending groups' raw lines (at most [`PENDING_BUDGET`] bytes),
/// whatever the size of the graph and the number of groups.
async fn produce(
    input: StreamReader<'_>,
    tx: mpsc::Sender<Batch>,
    options: &Neo4jSinkOptions,
) -> Result<u64> {
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut line = Vec::with_capacity(4096);
    let mut check = StreamCheck::new();
    let mut line_no = 0u64;
    let mut bytes = 0u64;
    let mut nodes: Pending<Vec<String>> = Pending::new();
    let mut rels: Pending<(String, String, String)> = Pending::new();
    let closed = || Error::Interrupted("the graph writer stopped".into());
    let bad = |line_no: u64, e: String| Error::Format {
        format: FORMAT_NAME.into(),
        reason: format!("line {line_no}: {e}"),
    };
    let node_batch = |(labels, group): (Vec<String>, Group)| Batch::Nodes { labels, group };
    let rel_batch = |((rel_type, start_key, end_key), group): ((String, String, String), Group)| {
        Batch::Relationships {
            rel_type,
            start_key,
            end_key,
            group,
        }
    };
    loop {
        line.clear();
        line_no += 1;
        let n = crate::format::read_line_async(&mut reader, &mut line)
            .await
            .map_err(|e| match e {
                Error::Format { reason, .. } => bad(line_no, reason),
                other => other,
            })?;
        bytes += n as u64;
        if n == 0 {
            if !check.complete() {
                return Err(bad(
                    line_no,
                    "the stream ends before its trailer record (truncated)".into(),
                ));
            }
            break;
        }
        if check.complete() {
            return Err(bad(line_no, "data after the trailer record".into()));
        }
        if line.last() != Some(&b'\n') {
            return Err(bad(
                line_no,
                "the last line has no newline (truncated)".into(),
            ));
        }
        line.pop();
        let record = Record::parse(&line).map_err(|e| bad(line_no, e))?;
        check.check(&record).map_err(|e| bad(line_no, e))?;
        match record {
            Record::Header(_) => {}
            Record::Schema(s) => tx.send(Batch::Schema(s)).await.map_err(|_| closed())?,
            Record::Node(n) => {
                if let Some(full) = nodes.push(&n.labels, &line, options.node_batch) {
                    tx.send(node_batch(full)).await.map_err(|_| closed())?;
                }
                while let Some(g) = nodes.over_budget() {
                    tx.send(node_batch(g)).await.map_err(|_| closed())?;
                }
            }
            Record::Relationship(r) => {
                // Every node is sent before the first relationship.
                for g in nodes.drain() {
                    tx.send(node_batch(g)).await.map_err(|_| closed())?;
                }
                let key = (
                    r.rel_type,
                    key_label(&r.start_labels),
                    key_label(&r.end_labels),
                );
                if let Some(full) = rels.push(&key, &line, options.relationship_batch) {
                    tx.send(rel_batch(full)).await.map_err(|_| closed())?;
                }
                while let Some(g) = rels.over_budget() {
                    tx.send(rel_batch(g)).await.map_err(|_| closed())?;
                }
            }
            Record::Trailer(_) => {
                for g in nodes.drain() {
                    tx.send(node_batch(g)).await.map_err(|_| closed())?;
                }
                for g in rels.drain() {
                    tx.send(rel_batch(g)).await.map_err(|_| closed())?;
                }
            }
        }
    }
    // A clean end of stream: the restore pipeline has checked every digest.
    tx.send(Batch::End).await.map_err(|_| closed())?;
    Ok(bytes)
}

/// Creates the temporary id index of every key label that has none yet and waits
/// until they are online. Called once every node is in (before the first
/// relationship, or before the clean-up): one index build over the loaded nodes is
/// cheaper than maintaining the index during the node batches (the usual advice for
/// Neo4j bulk loads; on ArcadeDB it saved about 1 s of 5.5 s in the node phase).
async fn create_import_indexes(db: &Db, state: &mut ImportState) -> Result<()> {
    for key in state.key_labels.clone() {
        if state.import_indexes.contains_key(&key) {
            continue;
        }
        let name = format!("{IMPORT_INDEX_PREFIX}{}", state.import_indexes.len());
        db.run(
            &format!("creating the temporary id index on :{key}"),
            query(&format!(
                "CREATE INDEX {} IF NOT EXISTS FOR (n:{}) ON (n.{})",
                quote(&name),
                quote(&key),
                quote(IMPORT_ID)
            )),
        )
        .await?;
        state.import_indexes.insert(key, name);
    }
    await_import_indexes(db, state).await
}

/// Waits until every temporary index is online (population is asynchronous in Neo4j).
async fn await_import_indexes(db: &Db, state: &ImportState) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let rows = db
            .rows(
                "waiting for the import indexes",
                query("SHOW INDEXES YIELD *"),
            )
            .await?;
        let pending: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                let name = r.get::<String>("name").ok()?;
                let state_ = r.get::<Option<String>>("state").ok().flatten();
                (state.import_indexes.values().any(|n| *n == name)
                    && state_.as_deref().is_some_and(|s| s != "ONLINE"))
                .then_some(name)
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(db.fail(
                "waiting for the import indexes",
                ErrorKind::Other,
                format!("indexes {pending:?} did not come online within 10 minutes"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn create_schema_item(db: &Db, item: &SchemaItem) -> Result<()> {
    db.run(
        &format!("creating {} `{}`", item.kind.as_str(), item.name),
        query(&item.statement),
    )
    .await
}

async fn drop_schema_item(db: &Db, item: &SchemaItem) -> Result<()> {
    let stmt = match item.kind {
        SchemaKind::Index => format!("DROP INDEX {} IF EXISTS", quote(&item.name)),
        SchemaKind::Constraint => format!("DROP CONSTRAINT {} IF EXISTS", quote(&item.name)),
    };
    let dropped = db
        .run(
            &format!("dropping {} `{}`", item.kind.as_str(), item.name),
            query(&stmt),
        )
        .await;
    match dropped {
        Ok(()) => Ok(()),
        // `IF EXISTS` means an item that is already gone is no failure. Not every Bolt
        // server honours it (ArcadeDB refuses to drop the property-type constraint its
        // index owned once that index is gone), so a refused drop counts as done when
        // the schema no longer lists the item; otherwise the refusal stands.
        Err(e) => {
            let still_there = read_schema(db, None)
                .await?
                .iter()
                .any(|s| s.kind == item.kind && s.name == item.name);
            if still_there {
                Err(e)
            } else {
                Ok(())
            }
        }
    }
}

/// A batch's Bolt rows, keeping its lines (for a retry).
fn bolt_rows(group: &Group) -> Result<Vec<BoltType>> {
    group.to_bolt().map_err(|e| Error::Format {
        format: FORMAT_NAME.into(),
        reason: format!("a batch of the graph stream: {e}"),
    })
}

/// Applies the batches as they come.
async fn consume(
    db: &Db,
    mut rx: mpsc::Receiver<Batch>,
    options: &Neo4jSinkOptions,
    state: &mut ImportState,
) -> Result<bool> {
    let mut indexes_ready = false;
    // Relationship batches in flight with `sessions` > 1 (dropping the set cancels
    // them: their transactions are never committed).
    let mut inflight: tokio::task::JoinSet<Result<u64>> = tokio::task::JoinSet::new();
    while let Some(batch) = rx.recv().await {
        match batch {
            Batch::Schema(item) => {
                if options.schema_timing == SchemaTiming::BeforeData {
                    create_schema_item(db, &item).await?;
                    state.created_schema.push(item.clone());
                }
                state.schema.push(item);
            }
            Batch::Nodes { labels, group } => {
                state.started.get_or_insert_with(std::time::Instant::now);
                let key = key_label(&labels);
                state.key_labels.insert(key.clone());
                let label_expr: String = if labels.is_empty() {
                    format!(":{}", quote(IMPORT_LABEL))
                } else {
                    labels.iter().map(|l| format!(":{}", quote(l))).collect()
                };
                // One node batch at a time: a second session did not make the node
                // phase faster on ArcadeDB (3.0 s with one, 2.9-3.2 s with two).
                state.nodes += node_batch(db.clone(), label_expr, group).await?;
            }
            Batch::Relationships {
                rel_type,
                start_key,
                end_key,
                group,
            } => {
                state
                    .first_relationship
                    .get_or_insert_with(std::time::Instant::now);
                if !indexes_ready {
                    create_import_indexes(db, state).await?;
                    indexes_ready = true;
                }
                let batch = relationship_batch(db.clone(), rel_type, start_key, end_key, group);
                if options.sessions <= 1 {
                    // In this task: no second thread (and allocator arena) involved.
                    state.relationships += batch.await?;
                } else {
                    // Up to `sessions` batches at once, each on its own session.
                    while inflight.len() >= options.sessions {
                        state.relationships += join_next(&mut inflight).await?;
                    }
                    inflight.spawn(batch);
                }
            }
            Batch::End => {
                while !inflight.is_empty() {
                    state.relationships += join_next(&mut inflight).await?;
                }
                state.stream_done = Some(std::time::Instant::now());
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Creates one batch of nodes in its own transaction (retried on transient errors).
/// Returns how many it created.
async fn node_batch(db: Db, label_expr: String, group: Group) -> Result<u64> {
    let stmt =
        format!("UNWIND $rows AS row CREATE (n{label_expr}) SET n = row RETURN count(*) AS c");
    let n = group.rows as i64;
    let op = format!("creating nodes{label_expr}");
    let created = db
        .count_retrying(&op, || {
            Ok(query(&stmt).param("rows", rows_param(bolt_rows(&group)?)))
        })
        .await?;
    if created != n {
        return Err(db.fail(
            op,
            ErrorKind::Other,
            format!("the server created {created} of {n} nodes"),
        ));
    }
    Ok(n as u64)
}

/// Creates one batch of relationships in its own transaction (retried on transient
/// errors such as two sessions changing the same node). Returns how many it created.
async fn relationship_batch(
    db: Db,
    rel_type: String,
    start_key: String,
    end_key: String,
    group: Group,
) -> Result<u64> {
    let stmt = format!(
        "UNWIND $rows AS row \
         MATCH (a:{} {{{id}: row.s}}) MATCH (b:{} {{{id}: row.e}}) \
         CREATE (a)-[r:{}]->(b) SET r = row.p RETURN count(*) AS c",
        quote(&start_key),
        quote(&end_key),
        quote(&rel_type),
        id = quote(IMPORT_ID),
    );
    let n = group.rows as i64;
    let op = format!("creating relationships of type {rel_type}");
    let created = db
        .count_retrying(&op, || {
            Ok(query(&stmt).param("rows", rows_param(bolt_rows(&group)?)))
        })
        .await?;
    if created != n {
        return Err(db.fail(
            op,
            ErrorKind::Other,
            format!(
                "only {created} of {n} relationships found both endpoints among the imported nodes"
            ),
        ));
    }
    Ok(n as u64)
}

/// The result of the next relationship batch to finish.
async fn join_next(set: &mut tokio::task::JoinSet<Result<u64>>) -> Result<u64> {
    match set.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(Error::Interrupted(format!(
            "a relationship batch stopped: {e}"
        ))),
        None => Ok(0),
    }
}

/// Checks the target is empty; with `replace`, drops its schema (remembered for a
/// rollback). Returns whether it held data.
async fn prepare_target(
    db: &Db,
    options: &Neo4jSinkOptions,
    state: &mut ImportState,
) -> Result<bool> {
    let nodes = db
        .count(
            "checking whether the target is empty",
            query("MATCH (n) RETURN count(n) AS c"),
        )
        .await?;
    let schema = read_schema(db, None).await?;
    if nodes == 0 && schema.is_empty() {
        return Ok(false);
    }
    if !options.replace {
        return Err(db.fail(
            "restoring",
            ErrorKind::Refused,
            format!(
                "the target database is not empty ({nodes} nodes, {} indexes/constraints); \
                 restore into an empty database or ask to replace its contents",
                schema.len()
            ),
        ));
    }
    // Constraints first: on Neo4j dropping one also drops the index it owns (the
    // retries of `drop_schema_items` serve servers that want the other order).
    let ordered = constraints_first(&schema);
    let dropped = undo::drop_schema_items(db, ordered.clone()).await;
    // What is gone is remembered for the rollback (constraints first, as dropped),
    // also when a drop failed midway.
    let left = match &dropped {
        Ok(()) => Vec::new(),
        Err(_) => read_schema(db, None).await?,
    };
    state.dropped_schema.extend(
        ordered
            .into_iter()
            .filter(|s| !left.iter().any(|l| l.kind == s.kind && l.name == s.name))
            .cloned(),
    );
    dropped?;
    Ok(nodes > 0)
}

/// Everything after a clean end of stream.
async fn finish(
    db: &Db,
    options: &Neo4jSinkOptions,
    state: &mut ImportState,
    had_data: bool,
) -> Result<()> {
    if had_data {
        let batch = options.node_batch;
        state.old_contents_deleted = true;
        let stmt = format!(
            "MATCH (n) WHERE n.{} IS NULL WITH n LIMIT {batch} DETACH DELETE n RETURN count(*) AS c",
            quote(IMPORT_ID)
        );
        drain(
            db,
            "deleting the target's old contents",
            &stmt,
            u64::MAX / 2,
            batch,
        )
        .await?;
    }
    if options.schema_timing == SchemaTiming::AfterData {
        for item in state.schema.clone() {
            create_schema_item(db, &item).await?;
            state.created_schema.push(item);
        }
    }
    state.schema_done = Some(std::time::Instant::now());
    // The clean-up finds the marked nodes through the id indexes (also when the
    // stream had no relationship and they were never needed).
    create_import_indexes(db, state).await?;
    // Remove the temporary marks. Past this point imported nodes are no longer
    // recognisable, so nothing below may fail the restore's contents. The statements
    // carry no data, so their batch does not depend on the client's memory.
    let batch = CLEANUP_BATCH;
    for key in state.key_labels.clone() {
        // `SET p = null` is Cypher's property removal (REMOVE after `WITH .. LIMIT`
        // is ignored by some Bolt servers; SET null is understood by all).
        let stmt = if key == IMPORT_LABEL {
            format!(
                "MATCH (n:{l}) WITH n LIMIT {batch} REMOVE n:{l} SET n.{p} = null RETURN count(*) AS c",
                l = quote(IMPORT_LABEL),
                p = quote(IMPORT_ID)
            )
        } else {
            format!(
                "MATCH (n:{}) WHERE n.{p} IS NOT NULL WITH n LIMIT {batch} SET n.{p} = null RETURN count(*) AS c",
                quote(&key),
                p = quote(IMPORT_ID)
            )
        };
        drain(
            db,
            "removing the temporary import marks",
            &stmt,
            state.nodes,
            batch,
        )
        .await?;
    }
    drop_import_indexes(db, state).await?;
    Ok(())
}

#[async_trait]
impl Sink for Neo4jSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        if self.options.node_batch == 0 || self.options.relationship_batch == 0 {
            return Err(Error::Config(
                "neo4j restore batch sizes must be at least 1".into(),
            ));
        }
        if self.options.sessions == 0 {
            return Err(Error::Config(
                "neo4j restore sessions must be at least 1".into(),
            ));
        }
        let db = connect(&self.config)?;
        let mut state = ImportState::default();
        let had_data = match prepare_target(&db, &self.options, &mut state).await {
            Ok(h) => h,
            Err(e) => {
                // Put back whatever schema was already dropped (replace).
                for item in &state.dropped_schema {
                    if let Err(u) = create_schema_item(&db, item).await {
                        return Err(with_note(
                            e,
                            &format!(
                                "and recreating the dropped {} `{}` failed: {u}",
                                item.kind.as_str(),
                                item.name
                            ),
                        ));
                    }
                }
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::channel::<Batch>(1);
        let options = self.options.clone();
        let producer = async {
            let r = produce(input, tx, &options).await;
            r
        };
        let consumer = consume(&db, rx, &options, &mut state);
        let (produced, consumed) = tokio::join!(producer, consumer);
        // The consumer's error is the cause when the producer only saw it stop.
        let result: Result<u64> = match (produced, consumed) {
            (Ok(bytes), Ok(true)) => Ok(bytes),
            (Ok(_), Ok(false)) => Err(Error::Interrupted("the graph stream ended early".into())),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
        };
        let result = match result {
            Ok(bytes) => finish(&db, &self.options, &mut state, had_data)
                .await
                .map(|()| bytes),
            Err(e) => Err(e),
        };
        match result {
            Ok(bytes) => {
                let now = std::time::Instant::now();
                let secs =
                    |a: Option<std::time::Instant>, b: Option<std::time::Instant>| match (a, b) {
                        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
                        _ => 0.0,
                    };
                let rel_start = state.first_relationship.or(state.stream_done);
                Ok(SinkReport {
                    bytes,
                    summary: vec![
                        format!(
                            "restored {} nodes, {} relationships, {} indexes/constraints into {}",
                            state.nodes,
                            state.relationships,
                            state.schema.len(),
                            db.target
                        ),
                        format!(
                            "nodes {:.1} s, relationships {:.1} s, schema {:.1} s, clean-up {:.1} s",
                            secs(state.started, rel_start),
                            secs(rel_start, state.stream_done),
                            secs(state.stream_done, state.schema_done),
                            secs(state.schema_done, Some(now)),
                        ),
                    ],
                })
            }
            Err(e) => {
                // Past the deletion of the old contents the new graph is removed too
                // (the target is left empty, its own schema back), and the caller is
                // told, so that it can put the old contents back from a safety backup.
                let undo = rollback(&db, &state, self.options.node_batch).await;
                if state.old_contents_deleted {
                    if let Some(flag) = &self.altered {
                        flag.mark();
                    }
                }
                let note = match &undo {
                    Ok(what) if state.old_contents_deleted => format!(
                        "the target's old contents were already deleted (replace) and the partly restored graph was removed again ({what}): the target is empty"
                    ),
                    Ok(what) => format!("the target was left as it was: {what}"),
                    Err(u) => format!(
                        "the target could NOT be rolled back ({u}); imported nodes carry the \
                         property {IMPORT_ID} (unlabeled ones the label {IMPORT_LABEL}): remove them \
                         with Neo4jSink::remove_interrupted_import (`MATCH (n) WHERE n.{IMPORT_ID} IS NOT NULL DETACH DELETE n`)"
                    ),
                };
                // The pipeline may report another stage's error as the cause (a bad
                // artifact): the log always says what happened to the target.
                if undo.is_ok() {
                    tracing::warn!(target = %db.target, error = %e, "neo4j restore failed; {note}");
                } else {
                    tracing::error!(target = %db.target, error = %e, "neo4j restore failed; {note}");
                }
                Err(with_note(e, &note))
            }
        }
    }
}

/// Appends `note` to an error's message, keeping its kind.
fn with_note(e: Error, note: &str) -> Error {
    let kind = e.kind();
    match e {
        Error::Datastore {
            datastore,
            message,
            kind,
        } => Error::datastore(datastore, kind, format!("{message}; {note}")),
        Error::Verification { id, key, what } => Error::Verification {
            id,
            key,
            what: format!("{what}; {note}"),
        },
        Error::Format { format, reason } => Error::Format {
            format,
            reason: format!("{reason}; {note}"),
        },
        other => Error::datastore("neo4j restore", kind, format!("{other}; {note}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pending rows stay under the budget whatever the number of groups: past it the
    /// largest group leaves as a (partial) batch; a group that fills leaves at once.
    #[test]
    fn pending_groups_stay_under_their_budget() {
        let mut p: Pending<u32> = Pending::new();
        let line = vec![b'x'; 999];
        let mut sent = Vec::new();
        for i in 0..40_000u32 {
            if let Some((k, g)) = p.push(&(i % 100), &line, 2_000) {
                sent.push((k, g.rows));
            }
            while let Some((k, g)) = p.over_budget() {
                sent.push((k, g.rows));
            }
            assert!(p.bytes <= PENDING_BUDGET, "{} bytes pending", p.bytes);
        }
        assert!(!sent.is_empty());
        // 100 groups of 1 KB rows under 8 MiB: batches of about 80 rows or more.
        assert!(sent.iter().all(|(_, rows)| *rows >= 50), "{sent:?}");
        let left: usize = p.drain().iter().map(|(_, g)| g.rows).sum();
        assert_eq!(sent.iter().map(|(_, r)| r).sum::<usize>() + left, 40_000);
        assert_eq!(p.bytes, 0);
        // One group fills a whole batch.
        let mut q: Pending<u32> = Pending::new();
        let full = (0..2_000).find_map(|_| q.push(&7, b"{}", 2_000));
        assert_eq!(full.map(|(k, g)| (k, g.rows)), Some((7, 2_000)));
    }
}
