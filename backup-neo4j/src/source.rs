//! Backup: the graph exported over Bolt ([`Neo4jSource`]) or the offline physical dump
//! of `neo4j-admin` ([`Neo4jAdminSource`]).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::source::StreamWriter;
use backup_core::{
    CommandSource, Contents, Error, ErrorKind, FormatReader, Result, Source, SourceFacts,
};
use neo4rs::{query, BoltType, Row};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::bolt::{from_bolt, quote, Db};
use crate::config::Neo4jConfig;
use crate::format::{
    ContentSummary, GraphEncoder, GraphFormat, Header, Node, Properties, Record, Relationship,
    SchemaItem, SchemaKind,
};

/// How consistent an online export is; recorded in the manifest.
pub const CONSISTENCY: &str = "one Bolt transaction (read committed: Neo4j has no snapshot reads; \
stop writes or use the offline neo4j-admin dump for a point-in-time copy)";

/// Exports a live graph over Bolt into the dbseal graph stream.
///
/// In one transaction it reads the schema (`SHOW INDEXES` / `SHOW CONSTRAINTS`, with the
/// server's exact `createStatement`; token LOOKUP indexes and indexes owned by a
/// constraint are skipped because the server creates them itself), then streams every
/// node and then every relationship, writing each record as it arrives: memory does
/// not grow with the graph.
///
/// Consistency: Neo4j transactions are read-committed, so a graph written to during
/// the export may yield a relationship whose endpoint was created after the nodes were
/// read. The format reader checks every endpoint and fails the backup (no manifest)
/// when that happens; for a point-in-time copy of a busy database, pause writes or use
/// [`Neo4jAdminSource`] on a stopped database.
pub struct Neo4jSource {
    config: Neo4jConfig,
    format: GraphFormat,
}

impl std::fmt::Debug for Neo4jSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jSource")
            .field("config", &self.config)
            .finish()
    }
}

impl Neo4jSource {
    /// A source for the database `config` names.
    pub fn new(config: Neo4jConfig) -> Self {
        Neo4jSource {
            config,
            format: GraphFormat::default(),
        }
    }

    /// Sets the format reader (e.g. another content-hash structure limit).
    pub fn with_format(mut self, format: GraphFormat) -> Self {
        self.format = format;
        self
    }
}

/// Receives the records of an export.
#[async_trait]
pub(crate) trait RecordSink: Send {
    async fn record(&mut self, r: Record) -> Result<()>;
}

struct StreamRecords<'a, 'b> {
    out: &'a mut StreamWriter<'b>,
    encoder: GraphEncoder,
}

impl StreamRecords<'_, '_> {
    async fn flush(&mut self) -> Result<()> {
        let buf = self.encoder.buffer();
        if !buf.is_empty() {
            self.out
                .write_all(buf)
                .await
                .map_err(|e| Error::from_io(e, "writing the graph stream"))?;
            buf.clear();
        }
        Ok(())
    }
}

#[async_trait]
impl RecordSink for StreamRecords<'_, '_> {
    async fn record(&mut self, r: Record) -> Result<()> {
        self.encoder.push(&r).map_err(|e| Error::Format {
            format: crate::format::FORMAT_NAME.into(),
            reason: format!("export produced an invalid stream: {e}"),
        })?;
        if self.encoder.buffer().len() >= 512 * 1024 {
            self.flush().await?;
        }
        Ok(())
    }
}

/// Computes the contents summary of a live database without writing a stream.
pub(crate) struct SummaryRecords {
    pub summary: ContentSummary,
    pub schema: Vec<SchemaItem>,
}

#[async_trait]
impl RecordSink for SummaryRecords {
    async fn record(&mut self, r: Record) -> Result<()> {
        if let Record::Schema(s) = &r {
            self.schema.push(s.clone());
        }
        self.summary.add(&r).map_err(|e| Error::Format {
            format: crate::format::FORMAT_NAME.into(),
            reason: e,
        })
    }
}

/// What the server says about itself.
pub(crate) struct ServerInfo {
    pub name: String,
    pub version: String,
    pub edition: String,
}

pub(crate) async fn server_info(db: &Db) -> Result<ServerInfo> {
    let rows = db
        .rows(
            "reading the server version",
            query("CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition"),
        )
        .await?;
    let row = rows.first().ok_or_else(|| {
        db.fail(
            "reading the server version",
            ErrorKind::Other,
            "dbms.components() returned nothing",
        )
    })?;
    Ok(ServerInfo {
        name: row.get::<String>("name").unwrap_or_default(),
        version: row
            .get::<Vec<String>>("versions")
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default(),
        edition: row.get::<String>("edition").unwrap_or_default(),
    })
}

fn opt_str(row: &Row, k: &str) -> Option<String> {
    row.get::<Option<String>>(k).ok().flatten()
}

fn str_list(row: &Row, k: &str) -> Vec<String> {
    row.get::<Option<Vec<String>>>(k)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Builds a CREATE statement from `SHOW` columns, for servers that give no
/// `createStatement` (Neo4j before 4.2).
fn build_statement(kind: SchemaKind, row: &Row) -> Option<String> {
    let name = opt_str(row, "name")?;
    let ty = opt_str(row, "type")?;
    let entity = opt_str(row, "entityType")?;
    let labels = str_list(row, "labelsOrTypes");
    let props = str_list(row, "properties");
    let label = labels.first()?;
    let (pattern, var) = if entity == "RELATIONSHIP" {
        (format!("()-[e:{}]-()", quote(label)), "e")
    } else {
        (format!("(e:{})", quote(label)), "e")
    };
    let list = |props: &[String]| {
        props
            .iter()
            .map(|p| format!("{var}.{}", quote(p)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(match kind {
        SchemaKind::Index => {
            let prefix = match ty.as_str() {
                "RANGE" | "BTREE" => "",
                "TEXT" => "TEXT ",
                "POINT" => "POINT ",
                _ => return None,
            };
            format!(
                "CREATE {prefix}INDEX {} FOR {pattern} ON ({})",
                quote(&name),
                list(&props)
            )
        }
        SchemaKind::Constraint => {
            let req = match ty.as_str() {
                "UNIQUENESS" | "RELATIONSHIP_UNIQUENESS" => "IS UNIQUE",
                "NODE_KEY" | "RELATIONSHIP_KEY" => {
                    if ty == "NODE_KEY" {
                        "IS NODE KEY"
                    } else {
                        "IS RELATIONSHIP KEY"
                    }
                }
                "NODE_PROPERTY_EXISTENCE" | "RELATIONSHIP_PROPERTY_EXISTENCE" => "IS NOT NULL",
                _ => return None,
            };
            format!(
                "CREATE CONSTRAINT {} FOR {pattern} REQUIRE ({}) {req}",
                quote(&name),
                list(&props)
            )
        }
    })
}

/// Reads the schema: indexes (without LOOKUP and constraint-owned ones), constraints.
pub(crate) async fn read_schema(db: &Db, txn: Option<&mut neo4rs::Txn>) -> Result<Vec<SchemaItem>> {
    let mut out = Vec::new();
    let mut txn = txn;
    for kind in [SchemaKind::Constraint, SchemaKind::Index] {
        let (q, op) = match kind {
            SchemaKind::Index => ("SHOW INDEXES YIELD *", "reading indexes (SHOW INDEXES)"),
            SchemaKind::Constraint => (
                "SHOW CONSTRAINTS YIELD *",
                "reading constraints (SHOW CONSTRAINTS)",
            ),
        };
        let rows = match txn.as_deref_mut() {
            Some(t) => {
                let mut rows = Vec::new();
                let mut stream = t.execute(query(q)).await.map_err(|e| db.err(op, &e))?;
                while let Some(r) = stream.next(t.handle()).await.map_err(|e| db.err(op, &e))? {
                    rows.push(r);
                }
                rows
            }
            None => db.rows(op, query(q)).await?,
        };
        for row in rows {
            let name = opt_str(&row, "name").unwrap_or_default();
            let ty = opt_str(&row, "type").unwrap_or_default();
            if kind == SchemaKind::Index
                && (ty == "LOOKUP" || opt_str(&row, "owningConstraint").is_some())
            {
                continue;
            }
            let statement = match opt_str(&row, "createStatement") {
                Some(s) if !s.is_empty() => s,
                _ => build_statement(kind, &row).ok_or_else(|| {
                    db.fail(
                        op,
                        ErrorKind::Other,
                        format!(
                            "the server gives no createStatement for {} `{name}` of type {ty}, and dbseal cannot write one",
                            kind.as_str()
                        ),
                    )
                })?,
            };
            out.push(SchemaItem {
                kind,
                name,
                schema_type: ty,
                statement,
            });
        }
    }
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(out)
}

fn props_of(row: &Row, col: &str) -> std::result::Result<Properties, String> {
    match row
        .get::<BoltType>(col)
        .map_err(|e| format!("cannot read {col}: {e}"))?
    {
        BoltType::Map(m) => m
            .value
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.value.clone(),
                    from_bolt(v).map_err(|e| format!("property `{}`: {e}", k.value))?,
                ))
            })
            .collect(),
        BoltType::Null(_) => Ok(Properties::new()),
        other => Err(format!("{col} is not a map: {other:?}")),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Streams the whole graph of `db` into `sink` inside one transaction.
pub(crate) async fn export(db: &Db, header: Header, sink: &mut dyn RecordSink) -> Result<()> {
    let mut txn = db
        .graph
        .start_txn()
        .await
        .map_err(|e| db.err("opening the export transaction", &e))?;
    sink.record(Record::Header(header)).await?;
    for item in read_schema(db, Some(&mut txn)).await? {
        sink.record(Record::Schema(item)).await?;
    }
    let op = "exporting nodes";
    {
        let mut stream = txn
            .execute(query(
                "MATCH (n) RETURN id(n) AS id, labels(n) AS labels, properties(n) AS props",
            ))
            .await
            .map_err(|e| db.err(op, &e))?;
        while let Some(row) = stream
            .next(txn.handle())
            .await
            .map_err(|e| db.err(op, &e))?
        {
            let id: i64 = row
                .get("id")
                .map_err(|e| db.fail(op, ErrorKind::Other, format!("bad node id: {e}")))?;
            let node = Node {
                id,
                labels: sorted(str_list(&row, "labels")),
                props: props_of(&row, "props")
                    .map_err(|e| db.fail(op, ErrorKind::Other, format!("node {id}: {e}")))?,
            };
            sink.record(Record::Node(node)).await?;
        }
    }
    let op = "exporting relationships";
    {
        let mut stream = txn
            .execute(query(
                "MATCH (a)-[r]->(b) RETURN id(r) AS id, type(r) AS type, id(a) AS start, \
                 labels(a) AS start_labels, id(b) AS end, labels(b) AS end_labels, \
                 properties(r) AS props",
            ))
            .await
            .map_err(|e| db.err(op, &e))?;
        while let Some(row) = stream
            .next(txn.handle())
            .await
            .map_err(|e| db.err(op, &e))?
        {
            let get = |k: &str| {
                row.get::<i64>(k)
                    .map_err(|e| db.fail(op, ErrorKind::Other, format!("bad {k}: {e}")))
            };
            let id = get("id")?;
            let rel = Relationship {
                id,
                rel_type: row
                    .get::<String>("type")
                    .map_err(|e| db.fail(op, ErrorKind::Other, format!("bad type: {e}")))?,
                start: get("start")?,
                start_labels: sorted(str_list(&row, "start_labels")),
                end: get("end")?,
                end_labels: sorted(str_list(&row, "end_labels")),
                props: props_of(&row, "props").map_err(|e| {
                    db.fail(op, ErrorKind::Other, format!("relationship {id}: {e}"))
                })?,
            };
            sink.record(Record::Relationship(rel)).await?;
        }
    }
    // Read-only: rolling back releases the transaction without a commit round.
    txn.rollback()
        .await
        .map_err(|e| db.err("closing the export transaction", &e))?;
    Ok(())
}

pub(crate) fn connect(config: &Neo4jConfig) -> Result<Db> {
    let endpoint = config.endpoint()?;
    let graph = endpoint.graph(config.fetch_size)?;
    Ok(Db {
        graph,
        target: endpoint.target,
        sockets: crate::bolt::Sockets::new(endpoint.host),
    })
}

/// Computes the contents summary of the live database (level-3 verification) by
/// exporting it without writing a stream. Returns the summary and the schema items.
pub async fn live_contents(config: &Neo4jConfig) -> Result<(Contents, Vec<SchemaItem>)> {
    let mut sink = SummaryRecords {
        summary: ContentSummary::default(),
        schema: Vec::new(),
    };
    export_records(config, &mut sink).await?;
    Ok((sink.summary.finish(), sink.schema))
}

/// Exports the live database `config` names record by record into `sink`, without
/// writing a stream.
pub(crate) async fn export_records(config: &Neo4jConfig, sink: &mut dyn RecordSink) -> Result<()> {
    let db = connect(config)?;
    let header = Header {
        version: crate::format::FORMAT_VERSION,
        producer: producer(),
        source: Default::default(),
    };
    export(&db, header, sink).await
}

pub(crate) fn producer() -> String {
    format!("dbseal {}", env!("CARGO_PKG_VERSION"))
}

#[async_trait]
impl Source for Neo4jSource {
    fn kind(&self) -> &str {
        "neo4j"
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(self.format)
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        let endpoint = self.config.endpoint()?;
        let db = connect(&self.config)?;
        let info = server_info(&db).await?;
        let database = self
            .config
            .database
            .clone()
            .unwrap_or_else(|| "(default)".into());
        let mut facts = SourceFacts::new();
        facts.insert("server".into(), json!(info.name));
        facts.insert("server_version".into(), json!(info.version));
        facts.insert("edition".into(), json!(info.edition));
        facts.insert("database".into(), json!(database));
        facts.insert("host".into(), json!(endpoint.host));
        facts.insert("url".into(), json!(self.config.redacted_url()));
        facts.insert("method".into(), json!("bolt export"));
        facts.insert("consistency".into(), json!(CONSISTENCY));
        let header = Header {
            version: crate::format::FORMAT_VERSION,
            producer: producer(),
            source: [
                ("server".to_string(), json!(info.name)),
                ("server_version".to_string(), json!(info.version)),
                ("database".to_string(), json!(database)),
            ]
            .into(),
        };
        let mut out = out;
        let mut records = StreamRecords {
            out: &mut out,
            encoder: GraphEncoder::new(),
        };
        export(&db, header, &mut records).await?;
        let counts = records.encoder.finish();
        records.flush().await?;
        facts.insert("nodes".into(), json!(counts.nodes));
        facts.insert("relationships".into(), json!(counts.relationships));
        facts.insert("schema_items".into(), json!(counts.schema));
        Ok(facts)
    }
}

/// The format name of `neo4j-admin` dump archives.
pub const ADMIN_DUMP_FORMAT: &str = "neo4j-dump";

/// The reader of `neo4j-admin` dump archives: they are Neo4j's own compressed format,
/// opaque to dbseal, so it only checks that the stream is not empty and records its
/// size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neo4jDumpFormat;

impl FormatReader for Neo4jDumpFormat {
    fn format(&self) -> &str {
        ADMIN_DUMP_FORMAT
    }

    fn read_contents(&self, input: &mut dyn std::io::Read) -> Result<Contents> {
        let n = std::io::copy(input, &mut std::io::sink())
            .map_err(|e| Error::from_io(e, "reading the neo4j-admin dump"))?;
        if n == 0 {
            return Err(Error::Format {
                format: ADMIN_DUMP_FORMAT.into(),
                reason: "the dump is empty".into(),
            });
        }
        let mut c = Contents::default();
        c.fact("dump_bytes", n.to_string());
        Ok(c)
    }
}

/// The offline physical backup of Neo4j Community Edition: streams
/// `neo4j-admin database dump --to-stdout DB`.
///
/// Community Edition cannot dump a running database: stop the database (or the
/// server) first. The binary runs on the database host; its output is sealed like any
/// other stream. Restore with [`crate::Neo4jAdminSink`].
#[derive(Debug, Clone)]
pub struct Neo4jAdminSource {
    binary: PathBuf,
    database: String,
}

impl Neo4jAdminSource {
    /// A source running `binary` (the `neo4j-admin` executable) for `database`.
    pub fn new(binary: impl Into<PathBuf>, database: impl Into<String>) -> Self {
        Neo4jAdminSource {
            binary: binary.into(),
            database: database.into(),
        }
    }

    /// The command line (for dry runs and messages; holds no secret).
    pub fn argv(&self) -> Vec<String> {
        vec![
            self.binary.display().to_string(),
            "database".into(),
            "dump".into(),
            "--to-stdout".into(),
            self.database.clone(),
        ]
    }
}

#[async_trait]
impl Source for Neo4jAdminSource {
    fn kind(&self) -> &str {
        "neo4j"
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(Neo4jDumpFormat)
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        if self.database.is_empty() {
            return Err(Error::Config(
                "neo4j-admin dump: no database name given".into(),
            ));
        }
        let mut cmd = CommandSource::new(self.argv())?
            .with_kind("neo4j")
            .with_format(Arc::new(Neo4jDumpFormat));
        let binary = self.binary.display().to_string();
        cmd.dump(out).await.map_err(|e| match e {
            Error::Datastore { message, kind, .. } => {
                let hint = if kind == ErrorKind::Config {
                    format!(" (neo4j-admin binary: {binary})")
                } else {
                    " (Community Edition dumps only a stopped database: stop it first)".into()
                };
                Error::datastore(
                    format!("neo4j-admin database dump {}", self.database),
                    kind,
                    format!("{message}{hint}"),
                )
            }
            other => other,
        })?;
        let mut facts = SourceFacts::new();
        facts.insert("database".into(), json!(self.database));
        facts.insert(
            "method".into(),
            json!("neo4j-admin database dump (offline)"),
        );
        facts.insert(
            "consistency".into(),
            json!("offline: the database was stopped"),
        );
        facts.insert(
            "neo4j_admin".into(),
            json!(self.binary.display().to_string()),
        );
        Ok(facts)
    }
}
