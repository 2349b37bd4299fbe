#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! The dbseal graph stream: a documented, versioned, streaming format for a property
//! graph (see `backup-neo4j/FORMAT.md`, which is the normative description).
//!
//! The stream is UTF-8 JSON lines, one record per line, in this order:
//!
//! ```text
//! {"record":"header","magic":"dbseal-graph","version":1,...}
//! {"record":"schema",...}        zero or more: indexes and constraints as Cypher
//! {"record":"node",...}          zero or more
//! {"record":"relationship",...}  zero or more
//! {"record":"trailer",...}       exactly one, with the counts; nothing may follow it
//! ```
//!
//! Values carry their Cypher type: strings, booleans, integers (exact 64-bit) and lists
//! are plain JSON; every other type is a one-key object whose key names the Cypher
//! constructor (`{"float":1.5}`, `{"date":"2024-02-29"}`, `{"point":{...}}`...).
//!
//! [`GraphFormat`] is the [`FormatReader`]: it parses the whole stream in one pass,
//! checks record order and the trailer's counts, and computes the contents summary
//! (per label, label set and relationship type counts, property counts) and a content
//! hash that does not depend on the source's internal ids.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use backup_core::{Contents, Error, FormatReader, Result};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::{json, Map as JsonMap, Number, Value as Json};
use sha2::{Digest, Sha256};

mod value;
pub use value::label_set_key;
use value::{hash_props, hash_strings, props_from_json, props_json, strings_from_json};

/// The format name recorded in manifests (`data.graph.zst.age`).
pub const FORMAT_NAME: &str = "graph";
/// The magic string of the header record.
pub const MAGIC: &str = "dbseal-graph";
/// The format version this build writes; it reads versions `1..=FORMAT_VERSION`.
pub const FORMAT_VERSION: u64 = 1;
/// The label sets key used for nodes without any label.
pub const UNLABELED: &str = "(unlabeled)";
/// The longest record (line) a reader accepts, in bytes: 256 MiB. A line is read into
/// memory whole, so a stream that is not newline-delimited must not make a reader grow
/// without bound. A node or relationship with more property data than this cannot be
/// backed up: the backup's own check of the stream fails and names the limit.
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// Reads one line (with its `\n`) into `line`, at most [`MAX_LINE_BYTES`] of it;
/// returns the bytes read. A longer line is a format error naming the limit.
pub fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> Result<usize> {
    read_line_capped(input, line, MAX_LINE_BYTES)
}

fn read_line_capped(input: &mut impl BufRead, line: &mut Vec<u8>, cap: usize) -> Result<usize> {
    let n = input
        .take((cap as u64).saturating_add(1))
        .read_until(b'\n', line)
        .map_err(|e| Error::from_io(e, "reading the graph stream"))?;
    check_line_length(line, cap)?;
    Ok(n)
}

/// [`read_line`] for an asynchronous input.
pub async fn read_line_async(
    input: &mut (impl tokio::io::AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> Result<usize> {
    read_line_async_capped(input, line, MAX_LINE_BYTES).await
}

async fn read_line_async_capped(
    input: &mut (impl tokio::io::AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    cap: usize,
) -> Result<usize> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let n = input
        .take((cap as u64).saturating_add(1))
        .read_until(b'\n', line)
        .await
        .map_err(|e| Error::from_io(e, "reading the graph stream"))?;
    check_line_length(line, cap)?;
    Ok(n)
}

fn check_line_length(line: &[u8], cap: usize) -> Result<()> {
    if line.len() > cap {
        return Err(Error::Format {
            format: FORMAT_NAME.into(),
            reason: format!(
                "a record is longer than {} bytes (the graph stream's line limit): not a graph stream, or a node or relationship too large to back up",
                cap
            ),
        });
    }
    Ok(())
}

/// A Cypher value, as stored in the graph stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` (only inside lists or maps; properties are never null).
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float, NaN and infinities included.
    Float(f64),
    /// A string.
    String(String),
    /// A byte array.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A map (legal as a property value only where the server allows it).
    Map(BTreeMap<String, Value>),
    /// `date`.
    Date(NaiveDate),
    /// `time`: a local time with a UTC offset in seconds.
    Time(NaiveTime, i32),
    /// `localtime`.
    LocalTime(NaiveTime),
    /// `datetime` with a fixed UTC offset: the local date-time and the offset in seconds.
    DateTime(NaiveDateTime, i32),
    /// `datetime` with a time-zone id: the local date-time and the zone id.
    DateTimeZone(NaiveDateTime, String),
    /// `localdatetime`.
    LocalDateTime(NaiveDateTime),
    /// `duration`, in Bolt's four components.
    Duration {
        /// Months.
        months: i64,
        /// Days.
        days: i64,
        /// Seconds.
        seconds: i64,
        /// Nanoseconds.
        nanoseconds: i64,
    },
    /// A 2D point: SRID (7203 cartesian, 4326 WGS-84), x, y.
    Point2D {
        /// The coordinate reference system.
        srid: i64,
        /// x (or longitude).
        x: f64,
        /// y (or latitude).
        y: f64,
    },
    /// A 3D point: SRID (9157 cartesian, 4979 WGS-84), x, y, z.
    Point3D {
        /// The coordinate reference system.
        srid: i64,
        /// x (or longitude).
        x: f64,
        /// y (or latitude).
        y: f64,
        /// z (or height).
        z: f64,
    },
}

/// Properties of a node or relationship, sorted by key.
pub type Properties = BTreeMap<String, Value>;

/// An index or constraint, with the Cypher statement that recreates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaItem {
    /// `index` or `constraint`.
    pub kind: SchemaKind,
    /// The name on the source server.
    pub name: String,
    /// The server's type column (`RANGE`, `UNIQUENESS`, `NODE_PROPERTY_TYPE`...).
    pub schema_type: String,
    /// The Cypher statement that creates it (the server's `createStatement`).
    pub statement: String,
}

/// Index or constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchemaKind {
    /// An index (`SHOW INDEXES`).
    Index,
    /// A constraint (`SHOW CONSTRAINTS`).
    Constraint,
}

impl SchemaKind {
    /// `index` or `constraint`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaKind::Index => "index",
            SchemaKind::Constraint => "constraint",
        }
    }
}

/// A node record.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The source's internal id (used only to connect relationships).
    pub id: i64,
    /// Labels, sorted.
    pub labels: Vec<String>,
    /// Properties.
    pub props: Properties,
}

/// A relationship record.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    /// The source's internal id.
    pub id: i64,
    /// The relationship type.
    pub rel_type: String,
    /// The start node's id.
    pub start: i64,
    /// The start node's labels, sorted (lets a restore find the node through a label
    /// index without holding an id map in memory).
    pub start_labels: Vec<String>,
    /// The end node's id.
    pub end: i64,
    /// The end node's labels, sorted.
    pub end_labels: Vec<String>,
    /// Properties.
    pub props: Properties,
}

/// The header record.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The format version of the stream.
    pub version: u64,
    /// The program that wrote it (`dbseal 0.1.0`).
    pub producer: String,
    /// Facts about the source (server agent and version, database), never secrets.
    pub source: BTreeMap<String, Json>,
}

/// The trailer record: what the writer wrote, checked by every reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trailer {
    /// Schema records.
    pub schema: u64,
    /// Node records.
    pub nodes: u64,
    /// Relationship records.
    pub relationships: u64,
}

/// One record of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The first record.
    Header(Header),
    /// An index or constraint.
    Schema(SchemaItem),
    /// A node.
    Node(Node),
    /// A relationship.
    Relationship(Relationship),
    /// The last record.
    Trailer(Trailer),
}

// ---------------------------------------------------------------------------------
// Records (value encoding: see `value.rs`)

impl Record {
    /// The record as one JSON object (without the newline).
    pub fn to_json(&self) -> Json {
        match self {
            Record::Header(h) => json!({
                "record": "header",
                "magic": MAGIC,
                "version": h.version,
                "producer": h.producer,
                "source": Json::Object(h.source.clone().into_iter().collect()),
            }),
            Record::Schema(s) => json!({
                "record": "schema",
                "kind": s.kind.as_str(),
                "name": s.name,
                "type": s.schema_type,
                "statement": s.statement,
            }),
            Record::Node(n) => json!({
                "record": "node",
                "id": n.id,
                "labels": n.labels,
                "props": props_json(&n.props),
            }),
            Record::Relationship(r) => json!({
                "record": "relationship",
                "id": r.id,
                "type": r.rel_type,
                "start": r.start,
                "start_labels": r.start_labels,
                "end": r.end,
                "end_labels": r.end_labels,
                "props": props_json(&r.props),
            }),
            Record::Trailer(t) => json!({
                "record": "trailer",
                "schema": t.schema,
                "nodes": t.nodes,
                "relationships": t.relationships,
            }),
        }
    }

    /// Appends the record and a newline to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // A serde_json::Value serialises into a Vec without error.
        #[allow(clippy::expect_used)]
        serde_json::to_writer(&mut *out, &self.to_json()).expect("JSON to memory");
        out.push(b'\n');
    }

    /// Parses one line (without its newline).
    pub fn parse(line: &[u8]) -> std::result::Result<Record, String> {
        let j: Json = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
        let o = j.as_object().ok_or("a record is a JSON object")?;
        let str_field = |k: &str| {
            o.get(k)
                .and_then(Json::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("missing string field `{k}`"))
        };
        let int_field = |k: &str| {
            o.get(k)
                .and_then(Json::as_i64)
                .ok_or_else(|| format!("missing integer field `{k}`"))
        };
        let count_field = |k: &str| {
            o.get(k)
                .and_then(Json::as_u64)
                .ok_or_else(|| format!("missing count field `{k}`"))
        };
        let kind = o
            .get("record")
            .and_then(Json::as_str)
            .ok_or("missing field `record`")?;
        Ok(match kind {
            "header" => {
                if o.get("magic").and_then(Json::as_str) != Some(MAGIC) {
                    return Err(format!(
                        "not a dbseal graph stream (magic is not `{MAGIC}`)"
                    ));
                }
                let version = count_field("version")?;
                Record::Header(Header {
                    version,
                    producer: str_field("producer").unwrap_or_default(),
                    source: o
                        .get("source")
                        .and_then(Json::as_object)
                        .map(|m| m.clone().into_iter().collect())
                        .unwrap_or_default(),
                })
            }
            "schema" => Record::Schema(SchemaItem {
                kind: match str_field("kind")?.as_str() {
                    "index" => SchemaKind::Index,
                    "constraint" => SchemaKind::Constraint,
                    other => return Err(format!("unknown schema kind `{other}`")),
                },
                name: str_field("name")?,
                schema_type: str_field("type")?,
                statement: str_field("statement")?,
            }),
            "node" => {
                let mut labels = strings_from_json(o.get("labels"), "labels")?;
                labels.sort();
                Record::Node(Node {
                    id: int_field("id")?,
                    labels,
                    props: props_from_json(o.get("props"))?,
                })
            }
            "relationship" => {
                let mut start_labels = strings_from_json(o.get("start_labels"), "start_labels")?;
                let mut end_labels = strings_from_json(o.get("end_labels"), "end_labels")?;
                start_labels.sort();
                end_labels.sort();
                Record::Relationship(Relationship {
                    id: int_field("id")?,
                    rel_type: str_field("type")?,
                    start: int_field("start")?,
                    start_labels,
                    end: int_field("end")?,
                    end_labels,
                    props: props_from_json(o.get("props"))?,
                })
            }
            "trailer" => Record::Trailer(Trailer {
                schema: count_field("schema")?,
                nodes: count_field("nodes")?,
                relationships: count_field("relationships")?,
            }),
            other => return Err(format!("unknown record type `{other}`")),
        })
    }
}

// ---------------------------------------------------------------------------------
// Writing

/// Which section a stream is in; records must come in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Section {
    #[default]
    Start,
    Header,
    Schema,
    Nodes,
    Relationships,
    Done,
}

impl Section {
    fn of(r: &Record) -> Section {
        match r {
            Record::Header(_) => Section::Header,
            Record::Schema(_) => Section::Schema,
            Record::Node(_) => Section::Nodes,
            Record::Relationship(_) => Section::Relationships,
            Record::Trailer(_) => Section::Done,
        }
    }
}

/// Encodes records into a byte buffer, enforcing the record order and producing the
/// trailer. The caller drains [`GraphEncoder::buffer`] into its writer when it is large.
#[derive(Debug)]
pub struct GraphEncoder {
    buf: Vec<u8>,
    section: Section,
    counts: Trailer,
}

impl GraphEncoder {
    /// An empty encoder; the first record pushed must be the header.
    pub fn new() -> Self {
        GraphEncoder {
            buf: Vec::with_capacity(1 << 20),
            section: Section::Start,
            counts: Trailer::default(),
        }
    }

    /// Appends a schema, node or relationship record.
    pub fn push(&mut self, record: &Record) -> std::result::Result<(), String> {
        let s = Section::of(record);
        if self.section == Section::Start && s != Section::Header {
            return Err("the first record must be the header".into());
        }
        if s < self.section || (s == Section::Header && self.section != Section::Start) {
            return Err(format!("{s:?} record after {:?}", self.section));
        }
        if self.section == Section::Done {
            return Err("record after the trailer".into());
        }
        match record {
            Record::Schema(_) => self.counts.schema = self.counts.schema.saturating_add(1),
            Record::Node(_) => self.counts.nodes = self.counts.nodes.saturating_add(1),
            Record::Relationship(_) => {
                self.counts.relationships = self.counts.relationships.saturating_add(1)
            }
            Record::Trailer(_) => return Err("the trailer is written by finish()".into()),
            Record::Header(_) => {}
        }
        self.section = s;
        record.write_line(&mut self.buf);
        Ok(())
    }

    /// The bytes encoded and not yet taken.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The counts so far.
    pub fn counts(&self) -> Trailer {
        self.counts
    }

    /// Appends the trailer; returns the counts it records.
    pub fn finish(&mut self) -> Trailer {
        let t = self.counts;
        Record::Trailer(t).write_line(&mut self.buf);
        self.section = Section::Done;
        t
    }
}

impl Default for GraphEncoder {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------
// Reading

/// Reads a graph stream record by record, checking the order, the header's version
/// and, at the end, the trailer's counts and that nothing follows it.
pub struct GraphReader<R> {
    input: R,
    line: Vec<u8>,
    line_no: u64,
    section: Section,
    check: StreamCheck,
    header: Option<Header>,
}

/// Checks record order, the header's version and the trailer's counts, record by record.
#[derive(Debug, Default)]
pub struct StreamCheck {
    section: Section,
    counts: Trailer,
}

impl StreamCheck {
    /// A check at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the trailer was seen (the stream is complete).
    pub fn complete(&self) -> bool {
        self.section == Section::Done
    }

    /// Checks the next record.
    pub fn check(&mut self, record: &Record) -> std::result::Result<(), String> {
        let s = Section::of(record);
        if self.section == Section::Done {
            return Err("data after the trailer record".into());
        }
        if self.section == Section::Start && s != Section::Header {
            return Err("the stream does not start with a header record".into());
        }
        if s < self.section || (s == Section::Header && self.section != Section::Start) {
            return Err(format!(
                "{} record after {} records: records are out of order",
                section_name(s),
                section_name(self.section)
            ));
        }
        self.section = s;
        match record {
            Record::Header(h) => {
                if h.version == 0 || h.version > FORMAT_VERSION {
                    return Err(format!(
                        "graph stream version {} is not supported (this dbseal reads versions 1 to {FORMAT_VERSION}): upgrade dbseal",
                        h.version
                    ));
                }
            }
            Record::Schema(_) => self.counts.schema = self.counts.schema.saturating_add(1),
            Record::Node(_) => self.counts.nodes = self.counts.nodes.saturating_add(1),
            Record::Relationship(_) => {
                self.counts.relationships = self.counts.relationships.saturating_add(1)
            }
            Record::Trailer(t) => {
                if *t != self.counts {
                    return Err(format!(
                        "the trailer records {} schema, {} nodes, {} relationships but the stream holds {} schema, {} nodes, {} relationships",
                        t.schema, t.nodes, t.relationships,
                        self.counts.schema, self.counts.nodes, self.counts.relationships
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<R: BufRead> GraphReader<R> {
    /// A reader over a buffered input.
    pub fn new(input: R) -> Self {
        GraphReader {
            input,
            line: Vec::with_capacity(4096),
            line_no: 0,
            section: Section::Start,
            check: StreamCheck::new(),
            header: None,
        }
    }

    /// The header, once read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    fn err(&self, reason: impl std::fmt::Display) -> Error {
        Error::Format {
            format: FORMAT_NAME.into(),
            reason: format!("line {}: {reason}", self.line_no),
        }
    }

    /// The next record, `None` after a valid trailer and a clean end of input.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        if self.section == Section::Done {
            return Ok(None);
        }
        self.line.clear();
        self.line_no = self.line_no.saturating_add(1);
        let n = read_line(&mut self.input, &mut self.line).map_err(|e| match e {
            Error::Format { reason, .. } => self.err(reason),
            other => other,
        })?;
        if n == 0 {
            return Err(self.err("the stream ends before its trailer record (truncated)"));
        }
        if self.line.last() != Some(&b'\n') {
            return Err(self.err("the last line has no newline (truncated)"));
        }
        self.line.pop();
        let record = Record::parse(&self.line).map_err(|e| self.err(e))?;
        self.check.check(&record).map_err(|e| self.err(e))?;
        self.section = self.check.section;
        match &record {
            Record::Header(h) => self.header = Some(h.clone()),
            Record::Trailer(_) => {
                let mut extra = [0u8; 1];
                let more = self
                    .input
                    .read(&mut extra)
                    .map_err(|e| Error::from_io(e, "reading the graph stream"))?;
                if more != 0 {
                    return Err(self.err("data after the trailer record"));
                }
            }
            _ => {}
        }
        Ok(Some(record))
    }
}

fn section_name(s: Section) -> &'static str {
    match s {
        Section::Start => "no",
        Section::Header => "header",
        Section::Schema => "schema",
        Section::Nodes => "node",
        Section::Relationships => "relationship",
        Section::Done => "trailer",
    }
}

// ---------------------------------------------------------------------------------
// Contents summary and content hash

/// Above this many nodes the content hash no longer identifies relationship endpoints
/// by their node's content (which needs 24 bytes per node) but by their label sets.
pub const DEFAULT_STRUCTURE_LIMIT: usize = 2_000_000;

/// Accumulates the contents summary and the id-independent content hash of a graph,
/// record by record.
///
/// The content hash is a multiset hash: every node contributes SHA-256(labels,
/// properties), every relationship SHA-256(type, properties, start node hash, end node
/// hash); contributions are summed lane-wise, so order and ids do not matter but
/// multiplicities do. Relationship endpoints are identified by their node's hash
/// through an id → hash table (scope `full`); past `structure_limit` nodes the table is
/// dropped and endpoints are identified by their label sets (scope `endpoint-labels`).
#[derive(Debug)]
pub struct ContentSummary {
    contents: Contents,
    node_sum: [u64; 4],
    rel_sum: [u64; 4],
    table: Option<Vec<(i64, [u8; 16])>>,
    sorted: bool,
    structure_limit: usize,
    nodes: u64,
    rels: u64,
    node_props: u64,
    rel_props: u64,
    indexes: u64,
    constraints: u64,
    schema_names: Vec<String>,
    /// The digest of the last node or relationship added (what it adds to the hash).
    last: Option<[u8; 32]>,
}

fn add_lanes(sum: &mut [u64; 4], digest: &[u8]) {
    for (lane, bytes) in sum.iter_mut().zip(digest.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *lane = lane.wrapping_add(u64::from_le_bytes(b));
    }
}

/// The content hash of one node (labels sorted, properties sorted by key).
pub fn node_hash(labels: &[String], props: &Properties) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"node");
    hash_strings(&mut h, labels);
    hash_props(&mut h, props);
    h.finalize().into()
}

impl Default for ContentSummary {
    fn default() -> Self {
        Self::new(DEFAULT_STRUCTURE_LIMIT)
    }
}

impl ContentSummary {
    /// A summary that keeps full endpoint structure up to `structure_limit` nodes.
    pub fn new(structure_limit: usize) -> Self {
        ContentSummary {
            contents: Contents::default(),
            node_sum: [0; 4],
            rel_sum: [0; 4],
            table: Some(Vec::new()),
            sorted: false,
            structure_limit,
            nodes: 0,
            rels: 0,
            node_props: 0,
            rel_props: 0,
            indexes: 0,
            constraints: 0,
            schema_names: Vec::new(),
            last: None,
        }
    }

    /// The digest the last [`ContentSummary::add`] of a node or relationship added to
    /// the content hash (`None` after other records): what level 3 matches one by one
    /// to name what differs.
    pub fn last_digest(&self) -> Option<[u8; 32]> {
        self.last
    }

    /// Adds a record. Fails on a relationship whose endpoint is not in the stream.
    pub fn add(&mut self, record: &Record) -> std::result::Result<(), String> {
        self.last = None;
        match record {
            Record::Header(h) => {
                self.contents
                    .fact("graph_format_version", h.version.to_string());
                for (k, v) in &h.source {
                    if let Some(s) = v.as_str() {
                        self.contents.fact(&format!("source_{k}"), s);
                    }
                }
            }
            Record::Schema(s) => {
                match s.kind {
                    SchemaKind::Index => self.indexes = self.indexes.saturating_add(1),
                    SchemaKind::Constraint => self.constraints = self.constraints.saturating_add(1),
                }
                self.schema_names.push(s.name.clone());
            }
            Record::Node(n) => {
                self.nodes = self.nodes.saturating_add(1);
                self.node_props = self.node_props.saturating_add(n.props.len() as u64);
                for l in &n.labels {
                    self.contents.add("labels", l, 1);
                }
                self.contents
                    .add("label_sets", &label_set_key(&n.labels), 1);
                for k in n.props.keys() {
                    self.contents.add("node_property_keys", k, 1);
                }
                let digest = node_hash(&n.labels, &n.props);
                add_lanes(&mut self.node_sum, &digest);
                self.last = Some(digest);
                if let Some(t) = &mut self.table {
                    if t.len() >= self.structure_limit {
                        self.table = None;
                    } else {
                        let mut short = [0u8; 16];
                        short.copy_from_slice(&digest[..16]);
                        t.push((n.id, short));
                    }
                }
            }
            Record::Relationship(r) => {
                self.rels = self.rels.saturating_add(1);
                self.rel_props = self.rel_props.saturating_add(r.props.len() as u64);
                self.contents.add("relationship_types", &r.rel_type, 1);
                for k in r.props.keys() {
                    self.contents.add("relationship_property_keys", k, 1);
                }
                let mut h = Sha256::new();
                h.update(b"relationship");
                hash_strings(&mut h, std::slice::from_ref(&r.rel_type));
                hash_props(&mut h, &r.props);
                if let Some(t) = &mut self.table {
                    if !self.sorted {
                        t.sort_unstable_by_key(|e| e.0);
                        if t.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
                            return Err("two node records share one id".into());
                        }
                        t.shrink_to_fit();
                        self.sorted = true;
                    }
                    for (end, id) in [("start", r.start), ("end", r.end)] {
                        let i = t.binary_search_by_key(&id, |e| e.0).map_err(|_| {
                            format!(
                                "relationship {} has {end} node {id}, which is not in the stream \
                                 (the graph changed during the export, or the stream is damaged)",
                                r.id
                            )
                        })?;
                        if let Some(e) = t.get(i) {
                            h.update(e.1);
                        }
                    }
                } else {
                    hash_strings(&mut h, &r.start_labels);
                    hash_strings(&mut h, &r.end_labels);
                }
                let digest: [u8; 32] = h.finalize().into();
                add_lanes(&mut self.rel_sum, &digest);
                self.last = Some(digest);
            }
            Record::Trailer(_) => {}
        }
        Ok(())
    }

    /// The content hash so far (hex) and its scope (`full` or `endpoint-labels`).
    pub fn content_hash(&self) -> (String, &'static str) {
        let scope = if self.table.is_some() {
            "full"
        } else {
            "endpoint-labels"
        };
        let mut h = Sha256::new();
        h.update(b"dbseal-graph-content-v1");
        h.update(scope.as_bytes());
        h.update(self.nodes.to_le_bytes());
        h.update(self.rels.to_le_bytes());
        for lane in self.node_sum.iter().chain(self.rel_sum.iter()) {
            h.update(lane.to_le_bytes());
        }
        (hex::encode(h.finalize()), scope)
    }

    /// Names of the schema records seen.
    pub fn schema_names(&self) -> &[String] {
        &self.schema_names
    }

    /// The finished contents summary.
    pub fn finish(mut self) -> Contents {
        let (hash, scope) = self.content_hash();
        self.contents.fact("content_hash", hash);
        self.contents.fact("content_hash_scope", scope);
        let g = self.contents.counts.entry("graph".into()).or_default();
        g.insert("nodes".into(), self.nodes);
        g.insert("relationships".into(), self.rels);
        g.insert("node_properties".into(), self.node_props);
        g.insert("relationship_properties".into(), self.rel_props);
        let s = self.contents.counts.entry("schema".into()).or_default();
        s.insert("indexes".into(), self.indexes);
        s.insert("constraints".into(), self.constraints);
        self.contents
    }
}

/// The [`FormatReader`] of the dbseal graph stream.
#[derive(Debug, Clone, Copy)]
pub struct GraphFormat {
    structure_limit: usize,
}

impl Default for GraphFormat {
    fn default() -> Self {
        GraphFormat {
            structure_limit: DEFAULT_STRUCTURE_LIMIT,
        }
    }
}

impl GraphFormat {
    /// The reader with the default structure limit ([`DEFAULT_STRUCTURE_LIMIT`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how many nodes the content hash tracks endpoint identities for
    /// (24 bytes each); see [`ContentSummary`].
    pub fn with_structure_limit(mut self, nodes: usize) -> Self {
        self.structure_limit = nodes;
        self
    }
}

impl FormatReader for GraphFormat {
    fn format(&self) -> &str {
        FORMAT_NAME
    }

    fn read_contents(&self, input: &mut dyn Read) -> Result<Contents> {
        let mut reader = GraphReader::new(BufReader::with_capacity(256 * 1024, input));
        let mut summary = ContentSummary::new(self.structure_limit);
        while let Some(record) = reader.next_record()? {
            summary.add(&record).map_err(|e| reader.err(e))?;
        }
        Ok(summary.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_offsets_are_two_decimal_digits_per_field() {
        assert_eq!(value::parse_offset("+05:30"), Ok(5 * 3600 + 30 * 60));
        assert_eq!(value::parse_offset("-00:19:32"), Ok(-(19 * 60 + 32)));
        // A sign inside a field was once read as a negative number of hours.
        for bad in ["+-1:00", "+1:000", "+01:+0", "05:30", "+18:00:01", "+ 1:00"] {
            assert!(value::parse_offset(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_line_longer_than_the_limit_is_a_format_error_not_a_growing_buffer() {
        // An endless input without a newline stops at the cap.
        let mut input = BufReader::new(std::io::repeat(b'x'));
        let mut line = Vec::new();
        let e = read_line_capped(&mut input, &mut line, 1000).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{e}");
        assert!(e.to_string().contains("longer than 1000 bytes"), "{e}");
        assert_eq!(line.len(), 1001);
        // A line of exactly the limit (newline included) is accepted.
        let mut input = BufReader::new(&b"abc\nrest"[..]);
        line.clear();
        assert_eq!(read_line_capped(&mut input, &mut line, 4).unwrap(), 4);
        assert_eq!(line, b"abc\n");

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt
            .block_on(async {
                let mut input = tokio::io::BufReader::new(tokio::io::repeat(b'y'));
                let mut line = Vec::new();
                read_line_async_capped(&mut input, &mut line, 1000).await
            })
            .unwrap_err();
        assert!(e.to_string().contains("longer than 1000 bytes"), "{e}");
    }

    fn rt(v: Value) {
        let j = v.to_json();
        let back = Value::from_json(&j).unwrap_or_else(|e| panic!("{j}: {e}"));
        match (&v, &back) {
            (Value::Float(a), Value::Float(b)) if a.is_nan() => assert!(b.is_nan()),
            _ => assert_eq!(v, back, "{j}"),
        }
        // The JSON text round-trips too.
        let text = serde_json::to_string(&j).unwrap();
        let j2: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(Value::from_json(&j2).unwrap().to_json(), j);
    }

    #[test]
    fn every_value_type_round_trips() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let t = NaiveTime::from_hms_nano_opt(23, 59, 58, 123_456_789).unwrap();
        let dt = d.and_time(t);
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::Float(1.5),
            Value::Float(-0.0),
            Value::Float(1.0),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::MIN_POSITIVE),
            Value::String("é\n\"x".into()),
            Value::Bytes(vec![0, 255, 7]),
            Value::List(vec![Value::Int(1), Value::Float(2.0)]),
            Value::Map([("a".to_string(), Value::Int(1))].into()),
            Value::Date(d),
            Value::Date(NaiveDate::from_ymd_opt(-300, 1, 1).unwrap()),
            Value::Date(NaiveDate::from_ymd_opt(12345, 1, 1).unwrap()),
            Value::Time(t, 7200),
            Value::Time(t, -(5 * 3600 + 30 * 60 + 15)),
            Value::LocalTime(t),
            Value::LocalTime(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
            Value::DateTime(dt, 0),
            Value::DateTime(dt, -3600),
            Value::DateTimeZone(dt, "Europe/Paris".into()),
            Value::LocalDateTime(dt),
            Value::Duration {
                months: 14,
                days: -3,
                seconds: 5,
                nanoseconds: 999_999_999,
            },
            Value::Point2D {
                srid: 7203,
                x: 1.0,
                y: -2.5,
            },
            Value::Point3D {
                srid: 4979,
                x: 13.4,
                y: 52.5,
                z: 30.0,
            },
        ] {
            rt(v);
        }
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            r#"1.5"#,
            r#"{"float":"nan"}"#,
            r#"{"a":1,"b":2}"#,
            r#"{"date":"2024-13-01"}"#,
            r#"{"time":"12:00:00"}"#,
            r#"{"datetime":"2024-01-01T00:00:00[]"}"#,
            r#"{"bytes":"zz"}"#,
            r#"{"nope":1}"#,
            r#"18446744073709551615"#,
        ] {
            let j: Json = serde_json::from_str(bad).unwrap();
            assert!(Value::from_json(&j).is_err(), "{bad} accepted");
        }
    }
}
