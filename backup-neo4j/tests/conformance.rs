//! The driver conformance suite (`backup_core::conformance::driver`) on [`Neo4jDriver`],
//! against the Bolt server `scripts/services.sh` starts (ArcadeDB with its Bolt plugin:
//! DBSEAL_TEST_BOLT_URL / _USER / _PASSWORD, DBSEAL_TEST_ARCADE_HTTP). Graphs are
//! filled and fingerprinted with the official Python driver (`neo4j` package), not
//! with dbseal's Bolt client.
//!
//! ArcadeDB work-arounds are marked `ArcadeDB work-around`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use backup_core::conformance::driver::{self, DriverFixture, Seeded};
use backup_core::{DriverOptions, RestoreTarget, SecretString};
use backup_neo4j::Neo4jDriver;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the test servers with `scripts/test.sh` \
             (or `scripts/services.sh start DIR bolt` and `source DIR/env.sh`)"
        )
    })
}

/// The helper run with python3: `create DB`, `drop DB` (ArcadeDB's HTTP API), `seed DB
/// VARIANT`, `fingerprint DB` (the neo4j driver over Bolt). The password comes from
/// the environment, never argv.
const HELPER: &str = r#"
import base64, hashlib, json, os, sys, urllib.request
import neo4j

user, password = os.environ["DBSEAL_TEST_BOLT_USER"], os.environ["DBSEAL_TEST_BOLT_PASSWORD"]
command, db = sys.argv[1], sys.argv[2]

def server(cmd):
    # ArcadeDB work-around: Cypher CREATE/DROP DATABASE is not supported; databases are
    # made and dropped through ArcadeDB's HTTP server API.
    req = urllib.request.Request(
        os.environ["DBSEAL_TEST_ARCADE_HTTP"] + "/api/v1/server",
        data=json.dumps({"command": cmd}).encode(),
        headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()},
    )
    urllib.request.urlopen(req).read()

def session():
    driver = neo4j.GraphDatabase.driver(os.environ["DBSEAL_TEST_BOLT_URL"], auth=(user, password))
    return driver, driver.session(database=db)

if command == "create":
    server(f"create database {db}")
elif command == "drop":
    server(f"drop database {db}")
elif command == "seed":
    variant = int(sys.argv[3])
    h = lambda *parts: hashlib.sha256(":".join(map(str, (variant,) + parts)).encode()).hexdigest()
    driver, s = session()
    people = [{"uid": i, "name": f"person {i} of set {variant}", "note": h("p", i) + h("q", i),
               "score": i * 0.25 + variant, "tags": [h("t", i)[:8], str(i % 7)], "active": i % 3 == 0}
              for i in range(4000)]
    companies = [{"uid": 100000 + i, "name": f"company {i}", "motto": h("c", i)} for i in range(200)]
    for i in range(0, len(people), 1000):
        s.run("UNWIND $rows AS r CREATE (n:Person) SET n = r", rows=people[i:i + 1000]).consume()
    s.run("UNWIND $rows AS r CREATE (n:Company) SET n = r", rows=companies).consume()
    # Indexes for the relationship lookups below (part of the backed-up schema too).
    s.run("CREATE INDEX person_uid FOR (n:Person) ON (n.uid)").consume()
    s.run("CREATE INDEX company_uid FOR (n:Company) ON (n.uid)").consume()
    knows = [{"a": i, "b": (i * 7 + 1 + variant) % 4000, "since": 1990 + i % 30} for i in range(4000)]
    for i in range(0, len(knows), 1000):
        s.run("UNWIND $rows AS r MATCH (a:Person {uid: r.a}), (b:Person {uid: r.b}) "
              "CREATE (a)-[:KNOWS {since: r.since}]->(b)", rows=knows[i:i + 1000]).consume()
    works = [{"a": i, "c": 100000 + i % 200, "role": h("r", i)[:12]} for i in range(0, 4000, 4)]
    s.run("UNWIND $rows AS r MATCH (a:Person {uid: r.a}), (c:Company {uid: r.c}) "
          "CREATE (a)-[:WORKS_AT {role: r.role}]->(c)", rows=works).consume()
    s.close(); driver.close()
elif command == "fingerprint":
    driver, s = session()
    canon = lambda v: json.dumps(v, sort_keys=True, default=str)
    nodes = sorted(canon([sorted(r["l"]), r["p"]])
                   for r in s.run("MATCH (n) RETURN labels(n) AS l, properties(n) AS p"))
    rels = sorted(canon([r["a"], r["t"], r["p"], r["b"]])
                  for r in s.run("MATCH (a)-[r]->(b) RETURN a.uid AS a, type(r) AS t, "
                                 "properties(r) AS p, b.uid AS b"))
    digest = hashlib.sha256("\n".join(nodes + ["--"] + rels).encode()).hexdigest()
    print(f"nodes {len(nodes)} relationships {len(rels)} sha256 {digest}")
    s.close(); driver.close()
"#;

fn helper(args: &[&str]) -> String {
    let mut child = Command::new("python3")
        .args(["-", args[0]])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(HELPER.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python neo4j helper {args:?} failed (pip install neo4j): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Databases on the test server, made for one case and dropped after it.
struct Neo4jFixture {
    created: Mutex<Vec<String>>,
}

impl Neo4jFixture {
    fn new() -> Self {
        Neo4jFixture {
            created: Mutex::new(Vec::new()),
        }
    }

    /// An empty database with a unique name.
    fn create_database(&self) -> String {
        let name = format!(
            "conf_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_micros()
        );
        helper(&["create", &name]);
        self.created.lock().unwrap().push(name.clone());
        name
    }

    fn target(database: &str) -> RestoreTarget {
        RestoreTarget {
            url: Some(env("DBSEAL_TEST_BOLT_URL")),
            database: Some(database.to_string()),
            user: Some(env("DBSEAL_TEST_BOLT_USER")),
            password: Some(SecretString::new(env("DBSEAL_TEST_BOLT_PASSWORD"))),
            ..Default::default()
        }
    }

    /// The server URL with the credentials in it (the driver's backup options take the
    /// password from NEO4J_PASSWORD or the URL; setting the environment of a test
    /// process that runs cases on several threads would race).
    fn url_with_credentials(database: Option<&str>) -> String {
        let url = env("DBSEAL_TEST_BOLT_URL");
        let (scheme, server) = url.split_once("://").expect("DBSEAL_TEST_BOLT_URL");
        format!(
            "{scheme}://{}:{}@{server}/{}",
            env("DBSEAL_TEST_BOLT_USER"),
            env("DBSEAL_TEST_BOLT_PASSWORD"),
            database.unwrap_or_default()
        )
    }
}

#[async_trait::async_trait]
impl DriverFixture for Neo4jFixture {
    async fn seed(&self, variant: u32) -> Seeded {
        let db = self.create_database();
        helper(&["seed", &db, &variant.to_string()]);
        let mut options = DriverOptions::new();
        options.set("url", Self::url_with_credentials(None));
        options.set("user", env("DBSEAL_TEST_BOLT_USER"));
        options.set("database", db.clone());
        Seeded {
            options,
            target: Self::target(&db),
        }
    }

    async fn fresh_target(&self) -> RestoreTarget {
        Self::target(&self.create_database())
    }

    async fn fingerprint(&self, target: &RestoreTarget) -> String {
        helper(&[
            "fingerprint",
            target.database.as_deref().expect("a target database"),
        ])
    }

    /// ArcadeDB work-around: the server has no Cypher CREATE DATABASE, so the driver
    /// cannot make its own scratch database; the fixture makes an empty one per
    /// verification and names it in the URL's path.
    async fn verify_url(&self) -> Option<String> {
        let scratch = self.create_database();
        Some(Self::url_with_credentials(Some(&scratch)))
    }

    async fn cleanup(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.created.lock().unwrap());
        for name in names {
            helper(&["drop", &name]);
        }
    }
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            driver::$case(&Neo4jDriver, &Neo4jFixture::new()).await;
        }
    )*};
}

cases!(
    round_trip,
    non_empty_target_is_refused,
    corrupted_artifact,
    truncated_artifact,
    wrong_key,
    cancelled_restore,
    cancelled_backup,
    verify_restore,
);
