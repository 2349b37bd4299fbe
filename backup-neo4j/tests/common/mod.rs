//! Shared helpers of the backup-neo4j integration tests: the test server's settings,
//! ArcadeDB's HTTP API for scratch databases, graph builders and a private server.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use backup_core::{BackupStore, KeyPair};
use backup_neo4j::Neo4jConfig;
use neo4rs::{query, BoltType};

#[path = "../arcade_server/mod.rs"]
mod arcade_server;

/// A required environment variable, or a failure that says how to get it.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the test servers with `scripts/test.sh` \
             (or `scripts/services.sh start DIR bolt` and `source DIR/env.sh`)"
        )
    })
}

pub fn bolt_url() -> String {
    env("DBSEAL_TEST_BOLT_URL")
}

pub fn config(database: &str) -> Neo4jConfig {
    Neo4jConfig::new(bolt_url())
        .user(env("DBSEAL_TEST_BOLT_USER"))
        .password(env("DBSEAL_TEST_BOLT_PASSWORD"))
        .database(database)
}

/// ArcadeDB work-around: Cypher `CREATE DATABASE` is not supported, so scratch
/// databases are created and dropped through ArcadeDB's HTTP server API.
pub async fn arcade_command(command: &str) -> Result<(), String> {
    arcade_command_at(&env("DBSEAL_TEST_ARCADE_HTTP"), command).await
}

pub async fn arcade_command_at(http: &str, command: &str) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{http}/api/v1/server"))
        .basic_auth(
            env("DBSEAL_TEST_BOLT_USER"),
            Some(env("DBSEAL_TEST_BOLT_PASSWORD")),
        )
        .body(format!(r#"{{"command":"{command}"}}"#))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "{command}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        ))
    }
}

/// A fresh, empty database with a unique name, dropped when the guard goes.
pub struct ScratchDb {
    pub name: String,
}

impl ScratchDb {
    pub async fn new(prefix: &str) -> ScratchDb {
        let name = format!("{prefix}_{}_{}", std::process::id(), rand_suffix());
        arcade_command(&format!("create database {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating scratch database {name}: {e}"));
        ScratchDb { name }
    }

    pub fn config(&self) -> Neo4jConfig {
        config(&self.name)
    }

    pub async fn graph(&self) -> neo4rs::Graph {
        graph(&self.name)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let http = env("DBSEAL_TEST_ARCADE_HTTP");
        // Best effort, on a separate thread: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = rt.block_on(arcade_command_at(&http, &format!("drop database {name}")));
        })
        .join();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{}", t % 100_000, N.fetch_add(1, Ordering::Relaxed))
}

pub fn graph(database: &str) -> neo4rs::Graph {
    let c = neo4rs::ConfigBuilder::default()
        .uri(bolt_url())
        .user(env("DBSEAL_TEST_BOLT_USER"))
        .password(env("DBSEAL_TEST_BOLT_PASSWORD"))
        .db(database)
        .fetch_size(10_000)
        .build()
        .unwrap();
    neo4rs::Graph::connect(c).unwrap()
}

/// Runs one statement in its own transaction.
pub async fn run(g: &neo4rs::Graph, q: neo4rs::Query) {
    let mut txn = g.start_txn().await.expect("start transaction");
    txn.run(q).await.expect("statement");
    txn.commit().await.expect("commit");
}

/// Runs a query and returns the integer column `c` of its first row.
pub async fn count(g: &neo4rs::Graph, q: &str) -> i64 {
    let mut txn = g.start_txn().await.unwrap();
    let mut s = txn.execute(query(q)).await.unwrap();
    let row = s.next(txn.handle()).await.unwrap().expect("one row");
    drop(s);
    txn.commit().await.unwrap();
    row.get::<i64>("c").unwrap()
}

pub fn store() -> (BackupStore, KeyPair) {
    (
        BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
        KeyPair::generate(),
    )
}

pub fn restore_options(keys: &KeyPair) -> backup_core::RestoreOptions {
    backup_core::RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    }
}

/// A small graph with every property type, multi-label and unlabeled nodes, a
/// self-loop, parallel edges, an index and a unique constraint.
pub async fn small_graph(g: &neo4rs::Graph) {
    run(
        g,
        query("CREATE CONSTRAINT person_uid FOR (n:Person) REQUIRE n.uid IS UNIQUE"),
    )
    .await;
    run(
        g,
        query("CREATE INDEX person_name FOR (n:Person) ON (n.name)"),
    )
    .await;
    run(
        g,
        query(
            "CREATE (a:Person:Employee {uid: 1, name: 'Ada', big: 9223372036854775807, small: -9223372036854775808, \
               f: 1.5, negzero: -0.0, ok: true, tags: ['x', 'y'], nums: [1, 2, 3], floats: [0.5, 2.0], \
               d: date('2024-02-29'), t: time('12:34:56.123456789+02:00'), lt: localtime('23:59:59.999999999'), \
               dto: datetime('2024-03-01T10:00:00.5+02:00'), dtz: datetime('2024-07-01T10:00:00[Europe/Paris]'), \
               ldt: localdatetime('1969-12-31T23:59:59.000000001'), dur: duration({months: 14, days: 3, seconds: 5, nanoseconds: 7}), \
               p2: point({x: 1.5, y: -2.0}), p3: point({x: 1.0, y: 2.0, z: 3.0}), \
               g2: point({longitude: 13.4, latitude: 52.5}), g3: point({longitude: 13.4, latitude: 52.5, height: 34.0})}) \
             CREATE (b:Person {uid: 2, name: 'Bob'}) \
             CREATE (c {note: 'unlabeled', nan: $nan, inf: $inf, ninf: $ninf, bytes: $bytes}) \
             CREATE (a)-[:KNOWS {since: 2001}]->(b) \
             CREATE (a)-[:KNOWS {since: 2002}]->(b) \
             CREATE (b)-[:KNOWS]->(b) \
             CREATE (c)-[:SEES {w: 0.25}]->(a)",
        )
        .param("nan", f64::NAN)
        .param("inf", f64::INFINITY)
        .param("ninf", f64::NEG_INFINITY)
        .param("bytes", BoltType::Bytes(neo4rs::BoltBytes::new(vec![0u8, 1, 254, 255].into()))),
    )
    .await;
}

/// The large graph of the "Must hold" list: `nodes` nodes over five label sets
/// (multi-label and unlabeled included) and `rels` relationships of four types with
/// self-loops and parallel edges, every property type on a sample, a unique
/// constraint and two indexes. Built with batched UNWIND.
pub async fn large_graph(g: &neo4rs::Graph, nodes: i64, rels: i64) {
    run(
        g,
        query("CREATE CONSTRAINT node_uid FOR (n:Person) REQUIRE n.uid IS UNIQUE"),
    )
    .await;
    run(
        g,
        query("CREATE INDEX company_name FOR (n:Company) ON (n.name)"),
    )
    .await;
    run(
        g,
        query("CREATE INDEX knows_since FOR ()-[r:KNOWS]-() ON (r.since)"),
    )
    .await;
    // Label sets by uid % 5: Person, Person:Employee, Company, City:Place, unlabeled.
    // Every node gets `uid` so the builder can find it; Person's uid is unique.
    let sets = ["Person", "Person:Employee", "Company", "City:Place", ""];
    let batch = 20_000i64;
    for (k, set) in sets.iter().enumerate() {
        let label = if set.is_empty() {
            ":Tmp".to_string()
        } else {
            format!(":{set}")
        };
        let mut start = 0i64;
        while start < nodes {
            let end = (start + batch).min(nodes);
            let q = format!(
                "UNWIND range($a, $b) AS i WITH i WHERE i % 5 = {k} \
                 CREATE (n{label} {{uid: i, name: 'n' + toString(i), score: toFloat(i) / 7.0, \
                   flag: i % 2 = 0, born: date('2000-01-01') + duration({{days: i % 9000}}), \
                   tags: ['t' + toString(i % 10)]}})"
            );
            run(g, query(&q).param("a", start).param("b", end - 1)).await;
            start = end;
        }
    }
    // Relationships: the builder finds nodes through uid (indexed on every label set
    // it uses as Tmp for unlabeled ones).
    for l in ["Company", "City", "Tmp"] {
        run(
            g,
            query(&format!("CREATE INDEX builder_{l} FOR (n:{l}) ON (n.uid)")),
        )
        .await;
    }
    let label_of = |i: i64| ["Person", "Person", "Company", "City", "Tmp"][(i % 5) as usize];
    let types = ["KNOWS", "WORKS_AT", "LOCATED_IN", "LINK"];
    let mut groups: std::collections::BTreeMap<(usize, &str, &str), Vec<BoltType>> =
        Default::default();
    let mut flush = Vec::new();
    for r in 0..rels {
        let t = (r % 4) as usize;
        let s = (r * 7919) % nodes;
        // Self-loops every 1000th, parallel edges: r and r+1 (same t only every 4th) —
        // endpoints repeat through the modulus, giving parallel edges of one type.
        let e = if r % 1000 == 0 {
            s
        } else {
            (r * 104_729 + 13) % nodes
        };
        let mut m = neo4rs::BoltMap::new();
        m.put("s".into(), s.into());
        m.put("e".into(), e.into());
        m.put("w".into(), BoltType::from((r % 100) as f64 / 10.0));
        m.put("since".into(), (1990 + r % 30).into());
        let key = (t, label_of(s), label_of(e));
        let v = groups.entry(key).or_default();
        v.push(BoltType::Map(m));
        if v.len() >= 20_000 {
            flush.push((key, std::mem::take(v)));
        }
        for (key, rows) in flush.drain(..) {
            rel_batch(g, types[key.0], key.1, key.2, rows).await;
        }
    }
    for (key, rows) in groups {
        if !rows.is_empty() {
            rel_batch(g, types[key.0], key.1, key.2, rows).await;
        }
    }
    // Parallel edges for sure: duplicate the first 500 KNOWS between Persons.
    run(g, query("MATCH (a:Person)-[r:KNOWS]->(b:Person) WITH a, b, r LIMIT 500 CREATE (a)-[:KNOWS {since: r.since, parallel: true}]->(b)")).await;
    // Unlabeled nodes: drop the builder's temporary label (and its index).
    run(g, query("DROP INDEX builder_Tmp")).await;
    for l in ["Company", "City"] {
        run(g, query(&format!("DROP INDEX builder_{l}"))).await;
    }
    loop {
        let n = count(
            g,
            "MATCH (n:Tmp) WITH n LIMIT 10000 REMOVE n:Tmp RETURN count(*) AS c",
        )
        .await;
        if n == 0 {
            break;
        }
    }
    // One node with every property type.
    small_graph_props(g).await;
}

async fn rel_batch(g: &neo4rs::Graph, t: &str, a: &str, b: &str, rows: Vec<BoltType>) {
    let q = format!(
        "UNWIND $rows AS r MATCH (a:{a} {{uid: r.s}}) MATCH (b:{b} {{uid: r.e}}) \
         CREATE (a)-[x:{t}]->(b) SET x.w = r.w, x.since = r.since"
    );
    run(
        g,
        query(&q).param("rows", BoltType::List(neo4rs::BoltList { value: rows })),
    )
    .await;
}

async fn small_graph_props(g: &neo4rs::Graph) {
    run(
        g,
        query(
            "CREATE (a:Special:Person {uid: -1, big: 9223372036854775807, f: 1.5, negzero: -0.0, ok: true, \
               tags: ['x', 'y'], nums: [1, 2, 3], d: date('2024-02-29'), t: time('12:34:56.123456789+02:00'), \
               lt: localtime('23:59:59.999999999'), dto: datetime('2024-03-01T10:00:00.5+02:00'), \
               dtz: datetime('2024-07-01T10:00:00[Europe/Paris]'), ldt: localdatetime('1969-12-31T23:59:59.000000001'), \
               dur: duration({months: 14, days: 3, seconds: 5, nanoseconds: 7}), p2: point({x: 1.5, y: -2.0}), \
               p3: point({x: 1.0, y: 2.0, z: 3.0}), g2: point({longitude: 13.4, latitude: 52.5}), \
               g3: point({longitude: 13.4, latitude: 52.5, height: 34.0}), nan: $nan, inf: $inf, bytes: $bytes}) \
             CREATE (a)-[:KNOWS {since: 1}]->(a)",
        )
        .param("nan", f64::NAN)
        .param("inf", f64::INFINITY)
        .param("bytes", BoltType::Bytes(neo4rs::BoltBytes::new(vec![0u8, 1, 254, 255].into()))),
    )
    .await;
}

/// ArcadeDB deviation: a DateTime with a fixed offset sent as a *parameter* is stored
/// as a UTC local datetime (Neo4j keeps the offset). dbseal's import sends every value
/// as a typed parameter, so on ArcadeDB such values come back as `localdatetime` in
/// UTC. This rewrites a graph stream the same way, so the test can compare content
/// hashes: `{"datetime":"2024-03-01T10:00:00.5+02:00"}` → `{"localdatetime":"2024-03-01T08:00:00.5"}`.
pub fn arcadedb_offset_datetime_normalization(stream: &[u8]) -> Vec<u8> {
    use backup_neo4j::format::{Record, Value};
    fn fix(v: &mut Value) {
        match v {
            Value::DateTime(dt, off) => {
                *v = Value::LocalDateTime(*dt - chrono::Duration::seconds(*off as i64))
            }
            Value::List(l) => l.iter_mut().for_each(fix),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(stream.len());
    for line in stream.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut r = Record::parse(line).unwrap();
        match &mut r {
            Record::Node(n) => n.props.values_mut().for_each(fix),
            Record::Relationship(x) => x.props.values_mut().for_each(fix),
            _ => {}
        }
        r.write_line(&mut out);
    }
    out
}

/// A private ArcadeDB server on its own ports (for tests that stop it midway);
/// killed when dropped, even when the test fails.
pub struct PrivateServer {
    child: Option<Child>,
    pub dir: PathBuf,
    pub bolt_port: u16,
    pub http_port: u16,
}

impl PrivateServer {
    pub fn start(dir: &Path, bolt_port: u16, http_port: u16) -> PrivateServer {
        let child =
            arcade_server::spawn(dir, bolt_port, http_port, &env("DBSEAL_TEST_BOLT_PASSWORD"));
        let s = PrivateServer {
            child: Some(child),
            dir: dir.to_path_buf(),
            bolt_port,
            http_port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", bolt_port)).is_err() {
            assert!(Instant::now() < deadline, "private ArcadeDB did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// Waits until the `neo4j` database answers (it opens a little after the port).
    pub async fn ready(self) -> Self {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let g = self.graph();
            if let Ok(mut t) = g.start_txn().await {
                if t.run(query("RETURN 1")).await.is_ok() {
                    let _ = t.commit().await;
                    return self;
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!("private ArcadeDB database did not open; server log:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn config(&self) -> Neo4jConfig {
        Neo4jConfig::new(format!("bolt://127.0.0.1:{}", self.bolt_port))
            .user(env("DBSEAL_TEST_BOLT_USER"))
            .password(env("DBSEAL_TEST_BOLT_PASSWORD"))
            .database("neo4j")
    }

    pub fn graph(&self) -> neo4rs::Graph {
        let c = neo4rs::ConfigBuilder::default()
            .uri(format!("bolt://127.0.0.1:{}", self.bolt_port))
            .user(env("DBSEAL_TEST_BOLT_USER"))
            .password(env("DBSEAL_TEST_BOLT_PASSWORD"))
            .db("neo4j")
            .build()
            .unwrap();
        neo4rs::Graph::connect(c).unwrap()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}
