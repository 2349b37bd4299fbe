//! The dbseal graph stream: pinned by snapshots, checked by its reader.
//! (No server needed.)

use backup_core::FormatReader;
use backup_neo4j::format::{
    GraphEncoder, Header, Node, Properties, Record, Relationship, SchemaItem, SchemaKind, Value,
};
use backup_neo4j::GraphFormat;
use chrono::{NaiveDate, NaiveTime};

fn props(items: &[(&str, Value)]) -> Properties {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn every_value() -> Properties {
    let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let t = NaiveTime::from_hms_nano_opt(12, 34, 56, 123_456_789).unwrap();
    props(&[
        ("int", Value::Int(i64::MIN)),
        ("float", Value::Float(0.1)),
        ("nan", Value::Float(f64::NAN)),
        ("inf", Value::Float(f64::INFINITY)),
        ("ninf", Value::Float(f64::NEG_INFINITY)),
        ("negzero", Value::Float(-0.0)),
        ("string", Value::String("Zoë \"q\"\n".into())),
        ("bool", Value::Bool(false)),
        ("bytes", Value::Bytes(vec![0, 1, 0xfe, 0xff])),
        ("list", Value::List(vec![Value::Int(1), Value::Int(2)])),
        ("map", Value::Map(props(&[("k", Value::Int(1))]))),
        ("date", Value::Date(d)),
        ("time", Value::Time(t, 5 * 3600 + 30 * 60)),
        ("localtime", Value::LocalTime(t)),
        ("datetime_offset", Value::DateTime(d.and_time(t), -7 * 3600)),
        (
            "datetime_zone",
            Value::DateTimeZone(d.and_time(t), "America/New_York".into()),
        ),
        ("localdatetime", Value::LocalDateTime(d.and_time(t))),
        (
            "duration",
            Value::Duration {
                months: 14,
                days: -3,
                seconds: 59,
                nanoseconds: 1,
            },
        ),
        (
            "point2d",
            Value::Point2D {
                srid: 7203,
                x: 1.0,
                y: 2.5,
            },
        ),
        (
            "point3d",
            Value::Point3D {
                srid: 9157,
                x: 1.0,
                y: 2.5,
                z: -3.0,
            },
        ),
        (
            "wgs2d",
            Value::Point2D {
                srid: 4326,
                x: 13.4,
                y: 52.52,
            },
        ),
        (
            "wgs3d",
            Value::Point3D {
                srid: 4979,
                x: 13.4,
                y: 52.52,
                z: 34.0,
            },
        ),
    ])
}

fn node(id: i64, labels: &[&str], p: Properties) -> Record {
    Record::Node(Node {
        id,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        props: p,
    })
}

fn rel(id: i64, t: &str, s: (i64, &[&str]), e: (i64, &[&str]), p: Properties) -> Record {
    Record::Relationship(Relationship {
        id,
        rel_type: t.into(),
        start: s.0,
        start_labels: s.1.iter().map(|x| x.to_string()).collect(),
        end: e.0,
        end_labels: e.1.iter().map(|x| x.to_string()).collect(),
        props: p,
    })
}

fn header() -> Record {
    Record::Header(Header {
        version: 1,
        producer: "dbseal 0.1.0".into(),
        source: [("database".to_string(), serde_json::json!("neo4j"))].into(),
    })
}

fn sample(ids: [i64; 3]) -> Vec<Record> {
    vec![
        header(),
        Record::Schema(SchemaItem {
            kind: SchemaKind::Constraint,
            name: "person_uid".into(),
            schema_type: "UNIQUENESS".into(),
            statement: "CREATE CONSTRAINT `person_uid` FOR (n:`Person`) REQUIRE n.`uid` IS UNIQUE"
                .into(),
        }),
        node(ids[0], &["Employee", "Person"], every_value()),
        node(ids[1], &["Person"], props(&[("uid", Value::Int(2))])),
        node(ids[2], &[], props(&[])),
        rel(
            7,
            "KNOWS",
            (ids[0], &["Employee", "Person"]),
            (ids[1], &["Person"]),
            props(&[("since", Value::Int(2001))]),
        ),
        rel(
            8,
            "KNOWS",
            (ids[0], &["Employee", "Person"]),
            (ids[1], &["Person"]),
            props(&[("since", Value::Int(2001))]),
        ),
        rel(9, "SELF", (ids[2], &[]), (ids[2], &[]), props(&[])),
    ]
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut e = GraphEncoder::new();
    for r in records {
        e.push(r).unwrap();
    }
    e.finish();
    std::mem::take(e.buffer())
}

fn read(stream: &[u8]) -> backup_core::Result<backup_core::Contents> {
    GraphFormat::default().read_contents(&mut &stream[..])
}

#[test]
fn stream_encoding_is_pinned() {
    let text = String::from_utf8(encode(&sample([1, 2, 3]))).unwrap();
    insta::assert_snapshot!("graph_stream_v1", text);
}

#[test]
fn contents_summary_is_pinned() {
    let c = read(&encode(&sample([1, 2, 3]))).unwrap();
    insta::assert_json_snapshot!("graph_contents_v1", c);
}

#[test]
fn every_record_parses_back_to_itself() {
    let records = sample([1, 2, 3]);
    let stream = encode(&records);
    let lines: Vec<&[u8]> = stream
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), records.len() + 1);
    for (line, r) in lines.iter().zip(&records) {
        let back = Record::parse(line).unwrap();
        // NaN != NaN: compare the re-encoded text instead.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        back.write_line(&mut a);
        r.write_line(&mut b);
        assert_eq!(a, b);
    }
}

#[test]
fn content_hash_ignores_ids_and_order_but_not_content_or_structure() {
    let base = read(&encode(&sample([1, 2, 3]))).unwrap();
    let hash = |c: &backup_core::Contents| c.facts["content_hash"].clone();
    // Other ids, nodes in another order.
    let mut other = sample([900, 5, 77]);
    other.swap(2, 4);
    let moved = read(&encode(&other)).unwrap();
    assert_eq!(hash(&base), hash(&moved));
    // One property changed.
    let mut changed = sample([1, 2, 3]);
    if let Record::Node(n) = &mut changed[3] {
        n.props.insert("uid".into(), Value::Float(2.0));
    }
    assert_ne!(hash(&base), hash(&read(&encode(&changed)).unwrap()));
    // Same counts, one relationship rewired to another node.
    let mut rewired = sample([1, 2, 3]);
    rewired[7] = rel(9, "SELF", (2, &[]), (2, &[]), props(&[]));
    let r = read(&encode(&rewired)).unwrap();
    assert_eq!(r.counts, base.counts);
    assert_ne!(hash(&base), hash(&r));
    // Past the structure limit the scope says so.
    let limited = GraphFormat::default()
        .with_structure_limit(1)
        .read_contents(&mut &encode(&sample([1, 2, 3]))[..])
        .unwrap();
    assert_eq!(limited.facts["content_hash_scope"], "endpoint-labels");
    assert_ne!(hash(&limited), hash(&base));
}

#[test]
fn damaged_streams_are_rejected_with_a_clear_reason() {
    let good = encode(&sample([1, 2, 3]));
    let text = String::from_utf8(good.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let join = |ls: &[&str]| {
        ls.iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("cut mid-line", good[..good.len() / 2].to_vec()),
        ("no trailer", join(&lines[..lines.len() - 1])),
        ("no final newline", good[..good.len() - 1].to_vec()),
        (
            "data after trailer",
            [good.clone(), b"{}\n".to_vec()].concat(),
        ),
        ("node missing", join(&[&lines[..3], &lines[4..]].concat())),
        (
            "out of order",
            join(&[
                lines[0], lines[2], lines[1], lines[3], lines[4], lines[5], lines[6], lines[7],
                lines[8],
            ]),
        ),
        ("no header", join(&lines[1..])),
        (
            "newer version",
            join(
                &[
                    &[lines[0].replace("\"version\":1", "\"version\":2").as_str()][..],
                    &lines[1..],
                ]
                .concat(),
            ),
        ),
        (
            "bad magic",
            join(
                &[
                    &[lines[0].replace("dbseal-graph", "other").as_str()][..],
                    &lines[1..],
                ]
                .concat(),
            ),
        ),
        ("corrupted byte", {
            let mut g = good.clone();
            let i = text.find("\"since\":2001").unwrap() + 8;
            g[i] = b'x';
            g
        }),
    ];
    // A relationship to a node that is not in the stream (trailer adjusted).
    let mut dangling = sample([1, 2, 3]);
    dangling.push(rel(
        10,
        "KNOWS",
        (1, &["Employee", "Person"]),
        (42, &["Person"]),
        props(&[]),
    ));
    cases.push(("dangling endpoint", encode(&dangling)));
    let mut dup = sample([1, 2, 3]);
    dup[4] = node(2, &[], props(&[]));
    cases.push(("duplicate node id", encode(&dup)));
    let mut report = String::new();
    for (name, stream) in cases {
        let err = read(&stream).expect_err(name);
        assert_eq!(
            err.kind(),
            backup_core::ErrorKind::Verification,
            "{name}: {err}"
        );
        report.push_str(&format!("{name}: {err}\n"));
    }
    insta::assert_snapshot!("graph_stream_errors", report);
}

#[test]
fn encoder_refuses_records_out_of_order() {
    let mut e = GraphEncoder::new();
    assert!(
        e.push(&node(1, &[], props(&[]))).is_err(),
        "node before header"
    );
    e.push(&header()).unwrap();
    e.push(&node(1, &[], props(&[]))).unwrap();
    assert!(e
        .push(&Record::Schema(SchemaItem {
            kind: SchemaKind::Index,
            name: "i".into(),
            schema_type: "RANGE".into(),
            statement: "CREATE INDEX i FOR (n:A) ON (n.x)".into(),
        }))
        .is_err());
}
