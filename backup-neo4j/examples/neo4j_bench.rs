//! Benchmark driver for `bench/neo4j/run.sh` (not a test): one phase per invocation so
//! each phase's peak RSS can be measured alone with `/usr/bin/time -v`.
//!
//! ```text
//! neo4j_bench build DB NODES RELS        build the test graph (tests/common) in DB
//! neo4j_bench export DB STORE_DIR        back up DB into a file store; prints the manifest id
//! neo4j_bench import STORE_DIR ID DB     restore the backup into DB (must be empty)
//! neo4j_bench naive STORE_DIR ID DB N [R] one statement (one transaction) per node (first N nodes), then
//!                                         a naive full-import sample: N nodes with ids, R relationships
//! neo4j_bench bulk DB NODES [RELS]       server-side generation: UNWIND range() CREATE (the server's fastest path)
//! ```
//! Reads the DBSEAL_TEST_BOLT_* variables (source the services' env.sh).

#[path = "../tests/common/mod.rs"]
#[allow(missing_docs)]
mod common;

use std::time::Instant;

use backup_core::{BackupOptions, BackupStore, Decryption, Encryption, KeyPair};
use backup_neo4j::format::Record;
use backup_neo4j::{Neo4jSink, Neo4jSinkOptions, Neo4jSource};

fn encryption(dir: &str) -> Encryption {
    let d = std::path::Path::new(dir);
    std::fs::create_dir_all(d).unwrap();
    if !d.join("bench.key").exists() {
        let k = KeyPair::generate();
        k.write_identity_file(&d.join("bench.key")).unwrap();
        std::fs::write(d.join("bench.pub"), k.recipient()).unwrap();
    }
    // The signing key (bench/neo4j/run.sh sets DBSEAL_SIGNING_KEY to it).
    let (secret, public) = backup_core::keys::signing_key_paths(&d.join("bench.key"));
    if !secret.exists() {
        let key = backup_core::SigningKey::generate().unwrap();
        key.write_files(&secret, &public).unwrap();
    }
    let r = std::fs::read_to_string(d.join("bench.pub")).unwrap();
    Encryption::parse_recipients(&[r.trim()]).unwrap()
}

/// Signs with (and trusts) the bench's own signing key in `dir`.
fn trust(dir: &str) -> backup_core::Trust {
    encryption(dir);
    let (secret, _) =
        backup_core::keys::signing_key_paths(&std::path::Path::new(dir).join("bench.key"));
    backup_core::Trust::default().with_signer(backup_core::SigningKey::from_file(&secret).unwrap())
}

fn decryption(dir: &str) -> Decryption {
    Decryption::from_identity_file(&std::path::Path::new(dir).join("bench.key")).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = Instant::now();
    match args[0].as_str() {
        "build" => {
            let g = common::graph(&args[1]);
            common::large_graph(&g, args[2].parse().unwrap(), args[3].parse().unwrap()).await;
            println!("build_seconds {:.1}", t.elapsed().as_secs_f64());
        }
        "export" => {
            let store = BackupStore::open(&args[2], &Default::default())
                .unwrap()
                .with_trust(trust(&args[2]));
            let m = backup_core::backup(
                &store,
                &mut Neo4jSource::new(common::config(&args[1])),
                BackupOptions::new("bench", encryption(&args[2])),
            )
            .await
            .unwrap();
            let s = t.elapsed().as_secs_f64();
            let g = &m.contents.counts["graph"];
            let items = g["nodes"] + g["relationships"];
            println!("id {}", m.backup_id);
            println!(
                "export_seconds {s:.2} items {items} items_per_second {:.0} plaintext_bytes {} stored_bytes {}",
                items as f64 / s,
                m.artifact.plaintext_size,
                m.artifact.stored_size
            );
        }
        "import" | "naive" => {
            let store = BackupStore::open(&args[1], &Default::default())
                .unwrap()
                .with_trust(trust(&args[1]));
            let m = store.manifest(&args[2].parse().unwrap()).await.unwrap();
            let ro = backup_core::RestoreOptions {
                decryption: Some(decryption(&args[1]).into()),
                ..Default::default()
            };
            if args[0] == "import" {
                let timing = std::env::var("SCHEMA_TIMING").unwrap_or_default();
                let opts = Neo4jSinkOptions {
                    schema_timing: if timing == "before" {
                        backup_neo4j::SchemaTiming::BeforeData
                    } else {
                        backup_neo4j::SchemaTiming::AfterData
                    },
                    ..Default::default()
                };
                let opts = match std::env::var("BATCH").ok().and_then(|b| b.parse().ok()) {
                    Some(b) => Neo4jSinkOptions {
                        node_batch: b,
                        relationship_batch: b,
                        ..opts
                    },
                    None => opts,
                };
                let opts = match std::env::var("SESSIONS").ok().and_then(|b| b.parse().ok()) {
                    Some(sessions) => Neo4jSinkOptions { sessions, ..opts },
                    None => opts,
                };
                let report = backup_core::restore(
                    &store,
                    &m,
                    "data",
                    &mut Neo4jSink::new(common::config(&args[3]), opts),
                    &ro,
                )
                .await
                .unwrap();
                for line in &report.summary {
                    println!("import_summary_seconds {line}");
                }
                let s = t.elapsed().as_secs_f64();
                let g = &m.contents.counts["graph"];
                let items = g["nodes"] + g["relationships"];
                println!(
                    "import_seconds {s:.2} items {items} items_per_second {:.0}",
                    items as f64 / s
                );
            } else {
                naive(
                    &store,
                    &m,
                    &ro,
                    &args[3],
                    args[4].parse().unwrap(),
                    args.get(5).map(|a| a.parse().unwrap()).unwrap_or(0),
                )
                .await;
            }
        }
        "bulk" => {
            // The server's own floor: the same amounts of nodes and relationships
            // generated by the server (no data sent), relationships found through an
            // index like the import's.
            let g = common::graph(&args[1]);
            let n: i64 = args[2].parse().unwrap();
            let r: i64 = args.get(3).map(|a| a.parse().unwrap()).unwrap_or(0);
            let step = 10_000i64;
            common::run(
                &g,
                neo4rs::query("CREATE INDEX bulk_uid FOR (n:Bulk) ON (n.uid)"),
            )
            .await;
            let mut a = 0;
            while a < n {
                common::run(&g, neo4rs::query("UNWIND range($a, $b) AS i CREATE (:Bulk {uid: i, name: 'n' + toString(i), score: toFloat(i) / 7.0, flag: i % 2 = 0})").param("a", a).param("b", (a + step).min(n) - 1)).await;
                a += step;
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "bulk_seconds {s:.2} nodes {n} nodes_per_second {:.0}",
                n as f64 / s
            );
            let t = Instant::now();
            let mut a = 0;
            while a < r {
                common::run(&g, neo4rs::query("UNWIND range($a, $b) AS r MATCH (x:Bulk {uid: (r * 7919) % $n}) MATCH (y:Bulk {uid: (r * 104729 + 13) % $n}) CREATE (x)-[:R {w: toFloat(r % 100) / 10.0, since: 1990 + r % 30}]->(y)").param("a", a).param("b", (a + step).min(r) - 1).param("n", n)).await;
                a += step;
            }
            if r > 0 {
                let rs = t.elapsed().as_secs_f64();
                println!(
                    "bulk_rels_seconds {rs:.2} relationships {r} relationships_per_second {:.0} bulk_total_items_per_second {:.0}",
                    r as f64 / rs,
                    (n + r) as f64 / (s + rs)
                );
            }
        }
        other => panic!("unknown phase {other}"),
    }
}

/// The naive way: one statement and transaction per node, then per relationship.
/// 1. `n` nodes as `CREATE (n:Labels) SET n = $p` (the issue's baseline: nothing else);
/// 2. a naive *full* import sample, into the same database: `n` nodes that also get
///    their source id (indexed per key label, created first, as a naive importer
///    must to connect relationships), then `r` relationships, each
///    `MATCH (a:K {id}) MATCH (b:K {id}) CREATE (a)-[:T]->(b) SET r = $p` with the
///    stream's type and properties and endpoints among those nodes.
async fn naive(
    store: &BackupStore,
    m: &backup_core::Manifest,
    ro: &backup_core::RestoreOptions,
    db: &str,
    n: usize,
    r: usize,
) {
    let mut plain = Vec::new();
    backup_core::restore(
        store,
        m,
        "data",
        &mut backup_core::WriterSink::new(&mut plain),
        ro,
    )
    .await
    .unwrap();
    let g = common::graph(db);
    let key = |labels: &[String]| {
        labels
            .first()
            .cloned()
            .unwrap_or_else(|| "Unlabeled".into())
    };
    let label_expr = |labels: &[String]| -> String {
        if labels.is_empty() {
            ":`Unlabeled`".into()
        } else {
            labels.iter().map(|l| format!(":`{l}`")).collect()
        }
    };
    let mut nodes = Vec::new();
    let mut rels = Vec::new();
    for line in plain.split(|b| *b == b'\n') {
        match Record::parse(line) {
            Ok(Record::Node(node)) if nodes.len() < n => nodes.push(node),
            Ok(Record::Relationship(rel)) if rels.len() < r => rels.push(rel),
            _ => {}
        }
    }
    drop(plain);
    let t = Instant::now();
    for node in &nodes {
        let q = neo4rs::query(&format!(
            "CREATE (n{}) SET n = $p",
            label_expr(&node.labels)
        ))
        .param("p", neo4rs::BoltType::Map(naive_props(node.props.clone())));
        common::run(&g, q).await;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "naive_seconds {s:.2} nodes {} nodes_per_second {:.0}",
        nodes.len(),
        nodes.len() as f64 / s
    );
    if r == 0 {
        return;
    }
    let keys: std::collections::BTreeSet<String> = nodes.iter().map(|x| key(&x.labels)).collect();
    for k in &keys {
        common::run(
            &g,
            neo4rs::query(&format!(
                "CREATE INDEX `naive_{k}` FOR (n:`{k}`) ON (n.__naive_id)"
            )),
        )
        .await;
    }
    let t = Instant::now();
    for node in &nodes {
        let q = neo4rs::query(&format!(
            "CREATE (n{}) SET n = $p, n.__naive_id = $i",
            label_expr(&node.labels)
        ))
        .param("p", neo4rs::BoltType::Map(naive_props(node.props.clone())))
        .param("i", node.id);
        common::run(&g, q).await;
    }
    let s_ids = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (k, rel) in rels.iter().enumerate() {
        let a = &nodes[k % nodes.len()];
        let b = &nodes[(k * 7 + 3) % nodes.len()];
        let q = neo4rs::query(&format!(
            "MATCH (a:`{}` {{__naive_id: $s}}) MATCH (b:`{}` {{__naive_id: $e}}) CREATE (a)-[r:`{}`]->(b) SET r = $p",
            key(&a.labels),
            key(&b.labels),
            rel.rel_type
        ))
        .param("s", a.id)
        .param("e", b.id)
        .param("p", neo4rs::BoltType::Map(naive_props(rel.props.clone())));
        common::run(&g, q).await;
    }
    let s_rels = t.elapsed().as_secs_f64();
    let g_nodes = m.contents.counts["graph"]["nodes"] as f64;
    let g_rels = m.contents.counts["graph"]["relationships"] as f64;
    let full = g_nodes * s_ids / nodes.len() as f64 + g_rels * s_rels / rels.len() as f64;
    println!(
        "naive_full nodes_with_id_per_second {:.0} relationships {} relationships_per_second {:.0} extrapolated_full_import_seconds {full:.1} items_per_second {:.0}",
        nodes.len() as f64 / s_ids,
        rels.len(),
        rels.len() as f64 / s_rels,
        (g_nodes + g_rels) / full
    );
}

fn naive_props(
    props: std::collections::BTreeMap<String, backup_neo4j::format::Value>,
) -> neo4rs::BoltMap {
    // Same typed conversion as the sink, through the public JSON round trip.
    let mut m = neo4rs::BoltMap::new();
    for (k, v) in props {
        let b = match v {
            backup_neo4j::format::Value::Int(i) => neo4rs::BoltType::from(i),
            backup_neo4j::format::Value::Float(f) => neo4rs::BoltType::from(f),
            backup_neo4j::format::Value::String(s) => neo4rs::BoltType::from(s),
            backup_neo4j::format::Value::Bool(b) => neo4rs::BoltType::from(b),
            backup_neo4j::format::Value::Date(d) => neo4rs::BoltType::from(d),
            other => neo4rs::BoltType::from(other.to_json().to_string()),
        };
        m.put(k.as_str().into(), b);
    }
    m
}
