//! Round trips through a real Bolt server (ArcadeDB): every value type, label sets,
//! self-loops, parallel edges, schema; level-3 verification; the 200k/300k graph.

mod common;

use backup_core::{BackupOptions, WriterSink};
use backup_neo4j::format::{Record, Value};
use backup_neo4j::{GraphFormat, Neo4jSink, Neo4jSinkOptions, Neo4jSource};
use common::*;

async fn plaintext(
    store: &backup_core::BackupStore,
    m: &backup_core::Manifest,
    keys: &backup_core::KeyPair,
) -> Vec<u8> {
    let mut out = Vec::new();
    backup_core::restore(
        store,
        m,
        "data",
        &mut WriterSink::new(&mut out),
        &restore_options(keys),
    )
    .await
    .unwrap();
    out
}

fn contents_of(stream: &[u8]) -> backup_core::Contents {
    use backup_core::FormatReader;
    GraphFormat::default()
        .read_contents(&mut &stream[..])
        .unwrap()
}

/// Every Cypher value type survives export, the stream, and import with its exact type.
#[tokio::test]
async fn every_value_type_label_set_and_edge_shape_round_trips() {
    let src = ScratchDb::new("rt_src").await;
    small_graph(&src.graph().await).await;
    let (store, keys) = common::store();
    let manifest = backup_core::backup(
        &store,
        &mut Neo4jSource::new(src.config()),
        BackupOptions::new("graph", keys.encryption()),
    )
    .await
    .unwrap();
    let c = &manifest.contents;
    assert_eq!(c.counts["graph"]["nodes"], 3);
    assert_eq!(c.counts["graph"]["relationships"], 4);
    assert_eq!(c.counts["labels"]["Person"], 2);
    assert_eq!(c.counts["labels"]["Employee"], 1);
    assert_eq!(c.counts["label_sets"][":Employee:Person"], 1);
    assert_eq!(c.counts["label_sets"]["(unlabeled)"], 1);
    assert_eq!(c.counts["relationship_types"]["KNOWS"], 3);
    assert_eq!(c.counts["relationship_types"]["SEES"], 1);
    assert_eq!(c.facts["content_hash_scope"], "full");
    assert_eq!(manifest.source["nodes"], 3);
    assert!(!String::from_utf8(manifest.to_json())
        .unwrap()
        .contains(&env("DBSEAL_TEST_BOLT_PASSWORD")));

    // The stream holds every value exactly.
    let stream = plaintext(&store, &manifest, &keys).await;
    let ada = stream
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| Record::parse(l).unwrap())
        .find_map(|r| match r {
            Record::Node(n) if n.props.get("name") == Some(&Value::String("Ada".into())) => Some(n),
            _ => None,
        })
        .expect("Ada");
    let j = |k: &str| ada.props[k].to_json().to_string();
    assert_eq!(ada.labels, ["Employee", "Person"]);
    assert_eq!(j("big"), "9223372036854775807");
    assert_eq!(j("small"), "-9223372036854775808");
    assert_eq!(j("f"), r#"{"float":1.5}"#);
    assert_eq!(j("negzero"), r#"{"float":-0.0}"#);
    assert_eq!(j("ok"), "true");
    assert_eq!(j("floats"), r#"[{"float":0.5},{"float":2.0}]"#);
    assert_eq!(j("d"), r#"{"date":"2024-02-29"}"#);
    assert_eq!(j("t"), r#"{"time":"12:34:56.123456789+02:00"}"#);
    assert_eq!(j("lt"), r#"{"localtime":"23:59:59.999999999"}"#);
    assert_eq!(j("dto"), r#"{"datetime":"2024-03-01T10:00:00.500+02:00"}"#);
    assert_eq!(
        j("dtz"),
        r#"{"datetime":"2024-07-01T10:00:00[Europe/Paris]"}"#
    );
    assert_eq!(
        j("ldt"),
        r#"{"localdatetime":"1969-12-31T23:59:59.000000001"}"#
    );
    assert_eq!(
        j("dur"),
        r#"{"duration":{"months":14,"days":3,"seconds":5,"nanoseconds":7}}"#
    );
    assert_eq!(j("p2"), r#"{"point":{"srid":7203,"x":1.5,"y":-2.0}}"#);
    assert_eq!(
        j("p3"),
        r#"{"point":{"srid":9157,"x":1.0,"y":2.0,"z":3.0}}"#
    );
    assert_eq!(j("g2"), r#"{"point":{"srid":4326,"x":13.4,"y":52.5}}"#);
    assert_eq!(
        j("g3"),
        r#"{"point":{"srid":4979,"x":13.4,"y":52.5,"z":34.0}}"#
    );
    let text = String::from_utf8(stream.clone()).unwrap();
    assert!(text.contains(r#""nan":{"float":"NaN"}"#), "{text}");
    assert!(text.contains(r#""inf":{"float":"Infinity"}"#));
    assert!(text.contains(r#""ninf":{"float":"-Infinity"}"#));
    assert!(text.contains(r#""bytes":{"bytes":"0001feff"}"#));

    // Import, then export the result: the id-independent content hash matches.
    let dst = ScratchDb::new("rt_dst").await;
    let report = backup_core::restore(
        &store,
        &manifest,
        "data",
        &mut Neo4jSink::new(dst.config(), Neo4jSinkOptions::default()),
        &restore_options(&keys),
    )
    .await
    .unwrap();
    assert!(
        report.summary[0].contains("3 nodes, 4 relationships"),
        "{report:?}"
    );
    let (live, schema) = backup_neo4j::live_contents(&dst.config()).await.unwrap();
    // ArcadeDB work-around (see arcadedb_offset_datetime_normalization): the restored
    // offset datetime comes back as a UTC localdatetime.
    let expected = contents_of(&arcadedb_offset_datetime_normalization(&stream));
    assert_eq!(live.facts["content_hash"], expected.facts["content_hash"]);
    assert!(manifest
        .contents
        .diff_counts(
            &live,
            &["labels", "label_sets", "relationship_types", "graph"]
        )
        .is_empty());
    let names: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"person_uid") && names.contains(&"person_name"),
        "{names:?}"
    );
    // No temporary marks are left.
    let g = dst.graph().await;
    assert_eq!(
        count(
            &g,
            "MATCH (n) WHERE n.__dbseal_id IS NOT NULL RETURN count(n) AS c"
        )
        .await,
        0
    );
    assert_eq!(
        count(&g, "MATCH (n:__DbsealImport) RETURN count(n) AS c").await,
        0
    );
    assert!(
        !names.iter().any(|n| n.starts_with("__dbseal")),
        "{names:?}"
    );
    // The raw restored values, read back over Bolt, keep their types.
    let live_stream = {
        let (s2, k2) = common::store();
        let m2 = backup_core::backup(
            &s2,
            &mut Neo4jSource::new(dst.config()),
            BackupOptions::new("g", k2.encryption()),
        )
        .await
        .unwrap();
        plaintext(&s2, &m2, &k2).await
    };
    let t2 = String::from_utf8(live_stream).unwrap();
    for needle in [
        r#""t":{"time":"12:34:56.123456789+02:00"}"#,
        r#""dtz":{"datetime":"2024-07-01T10:00:00[Europe/Paris]"}"#,
        r#""dur":{"duration":{"months":14,"days":3,"seconds":5,"nanoseconds":7}}"#,
        r#""big":9223372036854775807"#,
        r#""bytes":{"bytes":"0001feff"}"#,
        r#""g3":{"point":{"srid":4979,"x":13.4,"y":52.5,"z":34.0}}"#,
    ] {
        assert!(t2.contains(needle), "{needle} missing from {t2}");
    }
}

/// Level 3: restore into a scratch database and compare counts, content hash, schema.
/// ArcadeDB work-around: the graph has no fixed-offset datetime (ArcadeDB turns one
/// sent as a parameter into a UTC localdatetime, which level 3 rightly reports).
#[tokio::test]
async fn verify_restore_level_3_passes_empties_its_scratch_and_refuses_a_non_empty_one() {
    let src = ScratchDb::new("v3_src").await;
    let g = src.graph().await;
    run(
        &g,
        neo4rs::query("CREATE CONSTRAINT v_uid FOR (n:V) REQUIRE n.uid IS UNIQUE"),
    )
    .await;
    run(&g, neo4rs::query("UNWIND range(1, 500) AS i CREATE (a:V {uid: i, at: datetime('2024-01-01T00:00:00[Asia/Tokyo]'), p: point({x: i, y: 0.5})})-[:NEXT {d: duration({days: i})}]->({n: i})")).await;
    let (store, keys) = common::store();
    let m = backup_core::backup(
        &store,
        &mut Neo4jSource::new(src.config()),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    let scratch = ScratchDb::new("v3_scratch").await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let (options, target) = (restore_options(&keys), scratch.config());
    let verify = || backup_neo4j::verify_restore(&store, &m, &options, &target, &cancel);
    let report = verify().await.unwrap();
    assert_eq!(report.level, backup_core::VerifyLevel::Restore);
    let text = report.checks.join("\n");
    assert!(text.contains("1000 nodes, 500 relationships"), "{text}");
    assert!(text.contains("content hash"), "{text}");
    assert!(
        text.contains("scratch database emptied again (1000 nodes deleted)"),
        "{text}"
    );
    // Emptied, read with the server's own client: no node, no index or constraint.
    let g = scratch.graph().await;
    assert_eq!(count(&g, "MATCH (n) RETURN count(n) AS c").await, 0);
    let mut indexes = g
        .execute(neo4rs::query("SHOW INDEXES YIELD *"))
        .await
        .unwrap();
    assert!(indexes.next().await.unwrap().is_none(), "an index is left");
    // So it verifies again; a scratch database holding something is refused and kept.
    verify()
        .await
        .expect("the emptied scratch database takes the next verification");
    run(&g, neo4rs::query("CREATE (:Precious {x: 1})")).await;
    let err = verify().await.expect_err("non-empty scratch");
    assert_eq!(err.kind(), backup_core::ErrorKind::Refused, "{err}");
    assert_eq!(
        count(&g, "MATCH (n:Precious) RETURN count(n) AS c").await,
        1
    );
}

/// The "Must hold" graph: 200,000 nodes over five label sets (multi-label and
/// unlabeled), 300,000+ relationships of four types with self-loops and parallel edges,
/// every property type, a unique constraint and indexes. After restore the
/// id-independent content hash equals the source's.
#[tokio::test]
async fn large_graph_200k_nodes_300k_relationships_round_trips() {
    let t0 = std::time::Instant::now();
    let src = ScratchDb::new("big_src").await;
    large_graph(&src.graph().await, 200_000, 300_000).await;
    let built = t0.elapsed();
    let (store, keys) = common::store();
    let t1 = std::time::Instant::now();
    let m = backup_core::backup(
        &store,
        &mut Neo4jSource::new(src.config()),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    let exported = t1.elapsed();
    let g = &m.contents.counts;
    assert_eq!(g["graph"]["nodes"], 200_001);
    assert!(g["graph"]["relationships"] >= 300_000, "{:?}", g["graph"]);
    assert_eq!(g["label_sets"]["(unlabeled)"], 40_000);
    assert_eq!(g["label_sets"][":Employee:Person"], 40_000);
    assert_eq!(g["label_sets"][":City:Place"], 40_000);
    assert_eq!(g["relationship_types"].len(), 4);
    assert_eq!(m.contents.facts["content_hash_scope"], "full");
    let stream = plaintext(&store, &m, &keys).await;
    let dst = ScratchDb::new("big_dst").await;
    let t2 = std::time::Instant::now();
    backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jSink::new(dst.config(), Neo4jSinkOptions::default()),
        &restore_options(&keys),
    )
    .await
    .unwrap();
    let imported = t2.elapsed();
    let (live, schema) = backup_neo4j::live_contents(&dst.config()).await.unwrap();
    // ArcadeDB work-around: offset datetimes come back as UTC localdatetimes.
    let expected = contents_of(&arcadedb_offset_datetime_normalization(&stream));
    assert_eq!(live.facts["content_hash"], expected.facts["content_hash"]);
    assert!(m
        .contents
        .diff_counts(
            &live,
            &["graph", "labels", "label_sets", "relationship_types"]
        )
        .is_empty());
    let names: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
    for n in ["node_uid", "company_name", "knows_since"] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    // Self-loops and parallel edges survived.
    let dg = dst.graph().await;
    let sg = src.graph().await;
    for q in [
        "MATCH (a)-[r]->(a) RETURN count(r) AS c",
        "MATCH (a)-[r:KNOWS]->(b) WHERE r.parallel = true RETURN count(r) AS c",
    ] {
        let (s, d) = (count(&sg, q).await, count(&dg, q).await);
        assert!(s > 0 && s == d, "{q}: source {s}, restored {d}");
    }
    eprintln!("large graph: built {built:?}, exported {exported:?}, imported {imported:?}");
}
