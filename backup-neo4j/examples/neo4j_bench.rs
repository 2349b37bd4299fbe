//! Benchmark driver for `bench/neo4j/run.sh` (not a test): one phase per invocation so
//! each phase's peak RSS can be measured alone with `/usr/bin/time -v`.
//!
//! ```text
//! neo4j_bench build DB NODES RELS        build the test graph (tests/common) in DB
//! neo4j_bench export DB STORE_DIR        back up DB into a file store; prints the manifest id
//! neo4j_bench import STORE_DIR ID DB     restore the backup into DB (must be empty)
//! neo4j_bench naive STORE_DIR ID DB N    one CREATE statement (one transaction) per node, first N nodes
//! neo4j_bench bulk DB NODES              server-side generation: UNWIND range() CREATE (the server's fastest path)
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
    let r = std::fs::read_to_string(d.join("bench.pub")).unwrap();
    Encryption::parse_recipients(&[r.trim()]).unwrap()
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
            let store = BackupStore::open(&args[2], &Default::default()).unwrap();
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
            let store = BackupStore::open(&args[1], &Default::default()).unwrap();
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
                // The naive way: one statement (and transaction) per node.
                let n: usize = args[4].parse().unwrap();
                let mut plain = Vec::new();
                backup_core::restore(
                    &store,
                    &m,
                    "data",
                    &mut backup_core::WriterSink::new(&mut plain),
                    &ro,
                )
                .await
                .unwrap();
                let g = common::graph(&args[3]);
                let t = Instant::now();
                let mut done = 0;
                for line in plain.split(|b| *b == b'\n') {
                    if done == n {
                        break;
                    }
                    if let Ok(Record::Node(node)) = Record::parse(line) {
                        let labels: String =
                            node.labels.iter().map(|l| format!(":`{l}`")).collect();
                        let props = node
                            .props
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        let q = neo4rs::query(&format!("CREATE (n{labels}) SET n = $p"))
                            .param("p", neo4rs::BoltType::Map(naive_props(props)));
                        common::run(&g, q).await;
                        done += 1;
                    }
                }
                let s = t.elapsed().as_secs_f64();
                println!(
                    "naive_seconds {s:.2} nodes {done} nodes_per_second {:.0}",
                    done as f64 / s
                );
            }
        }
        "bulk" => {
            let g = common::graph(&args[1]);
            let n: i64 = args[2].parse().unwrap();
            common::run(&g, neo4rs::query("UNWIND range(1, $n) AS i CREATE (:Bulk {uid: i, name: 'n' + toString(i), score: toFloat(i) / 7.0, flag: i % 2 = 0})").param("n", n)).await;
            let s = t.elapsed().as_secs_f64();
            println!(
                "bulk_seconds {s:.2} nodes {n} nodes_per_second {:.0}",
                n as f64 / s
            );
        }
        other => panic!("unknown phase {other}"),
    }
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
