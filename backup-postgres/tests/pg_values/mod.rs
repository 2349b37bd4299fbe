//! Generated values of every built-in PostgreSQL type, for the bit-exact round-trip tests
//! of backup-postgres (`tests/exact.rs`) and backup-timescale (which includes this file
//! with `#[path]`, as it does `pg_fixture`): each type's edge values, then random ones
//! from a seeded generator, as SQL literals; and the comparison of a table on two
//! databases through psql's binary COPY (the server's send functions).
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::Rng;

use super::pg_fixture;

/// One SQL literal (or constant expression) per call.
pub type Gen = fn(&mut StdRng) -> String;

pub struct Type {
    pub table: &'static str,
    pub sql_type: &'static str,
    /// Edge values, as SQL, tried before the random ones.
    pub edges: &'static [&'static str],
    pub random: Gen,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn float8(r: &mut StdRng) -> String {
    let f = match r.gen_range(0..3) {
        0 => f64::from_bits(r.gen()),
        1 => f64::from(r.gen::<i32>()) / f64::from(r.gen_range(1..1000)),
        _ => r.gen_range(-1e6..1e6),
    };
    if f.is_nan() {
        "'NaN'".into()
    } else {
        quote(&format!("{f:e}"))
    }
}

fn float4(r: &mut StdRng) -> String {
    let f = match r.gen_range(0..2) {
        0 => f32::from_bits(r.gen()),
        _ => r.gen::<i16>() as f32 / r.gen_range(1..1000) as f32,
    };
    if f.is_nan() {
        "'NaN'".into()
    } else {
        quote(&format!("{f:e}"))
    }
}

fn digits(r: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + r.gen_range(0..10)))
        .collect()
}

fn numeric(r: &mut StdRng) -> String {
    let (int, frac) = if r.gen_ratio(1, 20) {
        (r.gen_range(0..1000), r.gen_range(0..1000))
    } else {
        (r.gen_range(0..30), r.gen_range(0..30))
    };
    let sign = if r.gen() { "-" } else { "" };
    let mut s = format!("{sign}{}", digits(r, int.max(1)));
    if frac > 0 {
        s.push('.');
        s.push_str(&digits(r, frac));
    }
    if r.gen_ratio(1, 10) {
        s.push_str(&format!("e{}", r.gen_range(-300..300)));
    }
    quote(&s)
}

fn int2(r: &mut StdRng) -> String {
    r.gen::<i16>().to_string()
}
fn int4(r: &mut StdRng) -> String {
    r.gen::<i32>().to_string()
}
fn int8(r: &mut StdRng) -> String {
    r.gen::<i64>().to_string()
}
fn boolean(r: &mut StdRng) -> String {
    r.gen::<bool>().to_string()
}

/// A character of text: ASCII, control characters, quotes and backslashes, Latin-1,
/// CJK, combining marks, 4-byte emoji (no NUL: PostgreSQL text cannot hold it).
fn text_char(r: &mut StdRng) -> char {
    let ranges: &[(u32, u32)] = &[
        (0x20, 0x7e),
        (0x01, 0x1f),
        (0x5c, 0x5c),
        (0x27, 0x27),
        (0x22, 0x22),
        (0xa0, 0xff),
        (0x300, 0x36f),
        (0x4e00, 0x9fff),
        (0x1f300, 0x1f6ff),
        (0xfeff, 0xfeff),
    ];
    let (lo, hi) = ranges[r.gen_range(0..ranges.len())];
    char::from_u32(r.gen_range(lo..=hi)).unwrap()
}

fn text(r: &mut StdRng) -> String {
    let n = if r.gen_ratio(1, 30) {
        r.gen_range(0..20_000)
    } else {
        r.gen_range(0..60)
    };
    let mut s: String = (0..n).map(|_| text_char(r)).collect();
    if r.gen() {
        s.push_str(&" ".repeat(r.gen_range(1..4)));
    }
    quote(&s)
}

fn bpchar(r: &mut StdRng) -> String {
    let n = r.gen_range(0..=12);
    let s: String = (0..n).map(|_| text_char(r)).collect();
    quote(&s)
}

fn bytea(r: &mut StdRng) -> String {
    let n = if r.gen_ratio(1, 30) {
        r.gen_range(0..100_000)
    } else {
        r.gen_range(0..64)
    };
    let bytes: Vec<u8> = (0..n).map(|_| r.gen()).collect();
    format!("'\\x{}'", hex::encode(bytes))
}

fn uuid(r: &mut StdRng) -> String {
    let b: [u8; 16] = r.gen();
    quote(&hex::encode(b))
}

fn date(r: &mut StdRng) -> String {
    // Days from 2000-01-01 within PostgreSQL's range (4714-11-24 BC .. 5874897-12-31).
    format!(
        "(DATE '2000-01-01' + {})",
        r.gen_range(-2_451_545..2_145_031_948)
    )
}

fn clock(r: &mut StdRng) -> String {
    let us: u64 = r.gen_range(0..86_400_000_000);
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        us / 3_600_000_000,
        us / 60_000_000 % 60,
        us / 1_000_000 % 60,
        us % 1_000_000
    )
}

fn day(r: &mut StdRng) -> String {
    let (year, bc) = if r.gen_ratio(1, 10) {
        (r.gen_range(1..=4713), " BC")
    } else if r.gen_ratio(1, 10) {
        (r.gen_range(10_000..294_276), "")
    } else {
        (r.gen_range(1..10_000), "")
    };
    format!(
        "{year:04}-{:02}-{:02}{bc}",
        r.gen_range(1..=12),
        r.gen_range(1..=28)
    )
}

fn timestamp(r: &mut StdRng) -> String {
    let d = day(r);
    let c = clock(r);
    match d.strip_suffix(" BC") {
        Some(d) => quote(&format!("{d} {c} BC")),
        None => quote(&format!("{d} {c}")),
    }
}

fn offset(r: &mut StdRng) -> String {
    let sign = if r.gen() { '+' } else { '-' };
    format!(
        "{sign}{:02}:{:02}",
        r.gen_range(0..15),
        [0, 15, 30, 45, 59][r.gen_range(0..5)]
    )
}

fn timestamptz(r: &mut StdRng) -> String {
    let d = day(r);
    let c = clock(r);
    let zone = if r.gen_ratio(1, 3) {
        [
            " America/New_York",
            " Asia/Kolkata",
            " Australia/Lord_Howe",
            " Europe/Dublin",
        ][r.gen_range(0..4)]
        .to_string()
    } else {
        offset(r)
    };
    match d.strip_suffix(" BC") {
        Some(d) => quote(&format!("{d} {c}{zone} BC")),
        None => quote(&format!("{d} {c}{zone}")),
    }
}

fn time(r: &mut StdRng) -> String {
    quote(&clock(r))
}

fn timetz(r: &mut StdRng) -> String {
    quote(&format!("{}{}", clock(r), offset(r)))
}

fn interval(r: &mut StdRng) -> String {
    let us: i64 = r.gen_range(-7_000_000_000_000_000..7_000_000_000_000_000);
    let (sign, a) = (if us < 0 { "-" } else { "" }, us.unsigned_abs());
    quote(&format!(
        "{} mons {} days {sign}{}:{:02}:{:02}.{:06}",
        r.gen_range(-100_000..100_000),
        r.gen_range(-100_000..100_000),
        a / 3_600_000_000,
        a / 60_000_000 % 60,
        a / 1_000_000 % 60,
        a % 1_000_000
    ))
}

/// A JSON document as text: whitespace, duplicate keys, escapes and number spellings
/// that `json` keeps verbatim and `jsonb` normalises.
fn json_value(r: &mut StdRng, depth: u32) -> String {
    let ws = |r: &mut StdRng| [" ", "", "\n", "\t "][r.gen_range(0..4)];
    match r.gen_range(0..if depth > 3 { 5 } else { 7 }) {
        0 => "null".into(),
        1 => ["true", "false"][r.gen_range(0..2)].into(),
        2 => [
            "0",
            "-0",
            "1.0e+10",
            "1E-7",
            "123456789012345678901234567890.5",
            "3.141592653589793238462643383279",
            "-2.5e-320",
        ][r.gen_range(0..7)]
        .into(),
        3 => r.gen::<i64>().to_string(),
        4 => {
            let s: String = (0..r.gen_range(0..12))
                .map(|_| match text_char(r) {
                    '"' => "\\\"".to_string(),
                    '\\' => "\\\\".to_string(),
                    c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
                    c => c.to_string(),
                })
                .collect();
            format!("\"{s}\"")
        }
        5 => {
            let items: Vec<String> = (0..r.gen_range(0..4))
                .map(|_| json_value(r, depth + 1))
                .collect();
            format!("[{}{}]", ws(r), items.join(","))
        }
        _ => {
            let keys = ["a", "b", "a", "é", "\\u00e9", "longer key"];
            let items: Vec<String> = (0..r.gen_range(0..4))
                .map(|_| {
                    let k = keys[r.gen_range(0..keys.len())];
                    format!("\"{k}\"{}:{}", ws(r), json_value(r, depth + 1))
                })
                .collect();
            format!("{{{}{}}}", ws(r), items.join(", "))
        }
    }
}

fn json(r: &mut StdRng) -> String {
    quote(&json_value(r, 0))
}

fn int4_array(r: &mut StdRng) -> String {
    let (rows, cols) = (r.gen_range(1..4), r.gen_range(0..5));
    let row = |r: &mut StdRng| {
        let v: Vec<String> = (0..cols)
            .map(|_| {
                if r.gen_ratio(1, 8) {
                    "NULL".into()
                } else {
                    r.gen::<i32>().to_string()
                }
            })
            .collect();
        format!("{{{}}}", v.join(","))
    };
    if rows == 1 || cols == 0 {
        return quote(&row(r));
    }
    let all: Vec<String> = (0..rows).map(|_| row(r)).collect();
    quote(&format!("{{{}}}", all.join(",")))
}

fn text_array(r: &mut StdRng) -> String {
    let v: Vec<String> = (0..r.gen_range(0..5))
        .map(|_| {
            if r.gen_ratio(1, 8) {
                return "NULL".into();
            }
            let s: String = (0..r.gen_range(0..8)).map(|_| text_char(r)).collect();
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    quote(&format!("{{{}}}", v.join(",")))
}

fn float8_array(r: &mut StdRng) -> String {
    let v: Vec<String> = (0..r.gen_range(0..5))
        .map(|_| {
            let f = f64::from_bits(r.gen());
            if f.is_nan() {
                "NaN".into()
            } else {
                format!("{f:e}")
            }
        })
        .collect();
    quote(&format!("{{{}}}", v.join(",")))
}

fn bounds(r: &mut StdRng) -> (char, char) {
    (['[', '('][r.gen_range(0..2)], [']', ')'][r.gen_range(0..2)])
}

fn int4range(r: &mut StdRng) -> String {
    let (a, b) = (r.gen::<i32>() / 2, r.gen::<i32>() / 2);
    let (lo, hi) = (a.min(b), a.max(b));
    let (l, u) = bounds(r);
    let lo = if r.gen_ratio(1, 6) {
        String::new()
    } else {
        lo.to_string()
    };
    quote(&format!("{l}{lo},{hi}{u}"))
}

fn numrange(r: &mut StdRng) -> String {
    let (a, b) = (r.gen_range(-1e9..1e9_f64), r.gen_range(-1e9..1e9_f64));
    let (l, u) = bounds(r);
    let hi = if r.gen_ratio(1, 6) {
        String::new()
    } else {
        format!("{:.9}", a.max(b))
    };
    quote(&format!("{l}{:.9},{hi}{u}", a.min(b)))
}

fn tstzrange(r: &mut StdRng) -> String {
    let a: i64 = r.gen_range(-200_000_000_000..200_000_000_000);
    let b: i64 = r.gen_range(-200_000_000_000..200_000_000_000);
    let (l, u) = bounds(r);
    format!(
        "tstzrange(to_timestamp({}) + interval '{} microseconds', to_timestamp({}), '{l}{u}')",
        a.min(b),
        r.gen_range(0..1_000_000),
        a.max(b) + 1
    )
}

fn inet(r: &mut StdRng) -> String {
    if r.gen() {
        let b: [u8; 4] = r.gen();
        quote(&format!(
            "{}.{}.{}.{}/{}",
            b[0],
            b[1],
            b[2],
            b[3],
            r.gen_range(0..=32)
        ))
    } else {
        let w: [u16; 8] = r.gen();
        let parts: Vec<String> = w.iter().map(|x| format!("{x:x}")).collect();
        quote(&format!("{}/{}", parts.join(":"), r.gen_range(0..=128)))
    }
}

fn cidr(r: &mut StdRng) -> String {
    format!("network({}::inet)::cidr", inet(r))
}

fn macaddr(r: &mut StdRng) -> String {
    let b: [u8; 6] = r.gen();
    quote(&hex::encode(b))
}

fn point(r: &mut StdRng) -> String {
    let f = |r: &mut StdRng| {
        let f = f64::from_bits(r.gen());
        if f.is_nan() {
            "NaN".to_string()
        } else {
            format!("{f:e}")
        }
    };
    quote(&format!("({},{})", f(r), f(r)))
}

fn varbit(r: &mut StdRng) -> String {
    let s: String = (0..r.gen_range(0..80))
        .map(|_| if r.gen() { '1' } else { '0' })
        .collect();
    format!("B'{s}'")
}

fn tsvector(r: &mut StdRng) -> String {
    let words: Vec<String> = (0..r.gen_range(0..6))
        .map(|_| {
            let w: String = (0..r.gen_range(1..8))
                .map(|_| match text_char(r) {
                    '\'' => 'q',
                    '\\' => 'b',
                    c if c.is_control() || c == ' ' => 'x',
                    c => c,
                })
                .collect();
            format!("'{}':{}", w.replace('\'', "''"), r.gen_range(1..100))
        })
        .collect();
    quote(&words.join(" "))
}

pub const TYPES: &[Type] = &[
    Type {
        table: "float8",
        sql_type: "double precision",
        edges: &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'-0'",
            "'0'",
            "'4.9406564584124654e-324'",
            "'2.2250738585072009e-308'",
            "'2.2250738585072014e-308'",
            "'1.7976931348623157e308'",
            "'-1.7976931348623157e308'",
            "'90.33333333333333'",
            "'0.30000000000000004'",
        ],
        random: float8,
    },
    Type {
        table: "float4",
        sql_type: "real",
        edges: &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'-0'",
            "'1.4e-45'",
            "'1.1754942e-38'",
            "'3.4028235e38'",
            "'0.1'",
        ],
        random: float4,
    },
    Type {
        table: "numeric",
        sql_type: "numeric",
        edges: &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'0'",
            "'0.000000'",
            "'-0.0'",
            "'1.500'",
            "'1e-16383'",
        ],
        random: numeric,
    },
    Type {
        table: "int2",
        sql_type: "smallint",
        edges: &["-32768", "32767", "0"],
        random: int2,
    },
    Type {
        table: "int4",
        sql_type: "integer",
        edges: &["-2147483648", "2147483647"],
        random: int4,
    },
    Type {
        table: "int8",
        sql_type: "bigint",
        edges: &["-9223372036854775808", "9223372036854775807"],
        random: int8,
    },
    Type {
        table: "bool",
        sql_type: "boolean",
        edges: &["true", "false"],
        random: boolean,
    },
    Type {
        table: "text",
        sql_type: "text",
        edges: &[
            "''",
            "' '",
            "'trailing  '",
            "E'\\\\N'",
            "'\\.'",
            "E'line\\nbreak\\r\\n'",
            "E'tab\\there'",
            "'\"quoted\"'",
        ],
        random: text,
    },
    Type {
        table: "bpchar",
        sql_type: "char(12)",
        edges: &["''", "'a'", "'  x  '"],
        random: bpchar,
    },
    Type {
        table: "varchar",
        sql_type: "varchar(60)",
        edges: &["''", "'ends in spaces   '"],
        random: bpchar,
    },
    Type {
        table: "bytea",
        sql_type: "bytea",
        edges: &["''", "'\\x00'", "'\\x5c2e0a'"],
        random: bytea,
    },
    Type {
        table: "uuid",
        sql_type: "uuid",
        edges: &[
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        ],
        random: uuid,
    },
    Type {
        table: "date",
        sql_type: "date",
        edges: &[
            "'infinity'",
            "'-infinity'",
            "'4714-11-24 BC'",
            "'5874897-12-31'",
            "'0001-01-01'",
            "'0001-12-31 BC'",
        ],
        random: date,
    },
    Type {
        table: "timestamp",
        sql_type: "timestamp",
        edges: &[
            "'infinity'",
            "'-infinity'",
            "'4714-11-24 00:00:00 BC'",
            "'294276-12-31 23:59:59.999999'",
            "'2000-01-01 00:00:00'",
            "'1999-12-31 23:59:59.999999'",
        ],
        random: timestamp,
    },
    Type {
        table: "timestamptz",
        sql_type: "timestamptz",
        edges: &[
            "'infinity'",
            "'-infinity'",
            "'4714-11-24 00:00:00+00 BC'",
            "'294276-12-31 23:59:59.999999+00'",
            "'2021-03-28 01:30:00 Europe/Dublin'",
        ],
        random: timestamptz,
    },
    Type {
        table: "time",
        sql_type: "time",
        edges: &["'00:00:00'", "'23:59:59.999999'", "'24:00:00'"],
        random: time,
    },
    Type {
        table: "timetz",
        sql_type: "timetz",
        edges: &[
            "'00:00:00+15:59'",
            "'24:00:00-15:59'",
            "'12:00:00+05:45'",
            "'12:00:00-00:30'",
        ],
        random: timetz,
    },
    Type {
        table: "interval",
        sql_type: "interval",
        edges: &[
            "'0'",
            "'-1 microsecond'",
            "'178000000 years'",
            "'-178000000 years'",
            "'1 mon -30 days'",
        ],
        random: interval,
    },
    Type {
        table: "json",
        sql_type: "json",
        edges: &[
            "'{}'",
            "'{\"a\":1,\"a\":2}'",
            "'  [1, 2.50, -0, 1e400]  '",
            "'\"\\u0000\"'",
        ],
        random: json,
    },
    Type {
        table: "jsonb",
        sql_type: "jsonb",
        edges: &[
            "'{}'",
            "'{\"a\":1,\"a\":2}'",
            "'[1.000, 2.50e3, -0]'",
            "'123456789012345678901234567890.123456789'",
        ],
        random: json,
    },
    Type {
        table: "int4_array",
        sql_type: "integer[]",
        edges: &["'{}'", "'{NULL}'", "'[0:1]={1,2}'", "'{{1,2},{3,4}}'"],
        random: int4_array,
    },
    Type {
        table: "text_array",
        sql_type: "text[]",
        edges: &[
            "'{}'",
            "'{\"\",\"NULL\",NULL}'",
            "'{\" a \",\"b,c\",\"{}\"}'",
        ],
        random: text_array,
    },
    Type {
        table: "float8_array",
        sql_type: "double precision[]",
        edges: &["'{NaN,-0,Infinity,-Infinity,4.9406564584124654e-324}'"],
        random: float8_array,
    },
    Type {
        table: "int4range",
        sql_type: "int4range",
        edges: &["'empty'", "'(,)'", "'[1,1]'", "'(1,2)'"],
        random: int4range,
    },
    Type {
        table: "numrange",
        sql_type: "numrange",
        edges: &["'empty'", "'[-Infinity,Infinity]'", "'[1.50,2.500)'"],
        random: numrange,
    },
    Type {
        table: "tstzrange",
        sql_type: "tstzrange",
        edges: &["'empty'", "'[-infinity,infinity)'", "'(,)'"],
        random: tstzrange,
    },
    Type {
        table: "inet",
        sql_type: "inet",
        edges: &["'0.0.0.0/0'", "'::/0'", "'::ffff:1.2.3.4/128'"],
        random: inet,
    },
    Type {
        table: "cidr",
        sql_type: "cidr",
        edges: &["'10.0.0.0/8'", "'2001:db8::/32'"],
        random: cidr,
    },
    Type {
        table: "macaddr",
        sql_type: "macaddr",
        edges: &["'00:00:00:00:00:00'", "'ff:ff:ff:ff:ff:ff'"],
        random: macaddr,
    },
    Type {
        table: "point",
        sql_type: "point",
        edges: &[
            "'(NaN,-0)'",
            "'(Infinity,-Infinity)'",
            "'(4.9406564584124654e-324,0.1)'",
        ],
        random: point,
    },
    Type {
        table: "varbit",
        sql_type: "bit varying",
        edges: &["B''", "B'1'", "B'0000000000000000000000001'"],
        random: varbit,
    },
    Type {
        table: "tsvector",
        sql_type: "tsvector",
        edges: &["''", "'a:1A b:2B,3C'"],
        random: tsvector,
    },
];

/// The values of one table, as SQL: edges, then `cases` random ones, then NULL.
pub fn values(ty: &Type, rng: &mut StdRng, cases: u64) -> Vec<String> {
    let mut v: Vec<String> = ty.edges.iter().map(|e| e.to_string()).collect();
    v.extend((0..cases).map(|_| (ty.random)(rng)));
    v.push("NULL".into());
    v
}

/// The table as psql reads it through the server's send functions (a binary COPY,
/// in case order).
pub fn binary_copy(database: &str, table: &str) -> Vec<u8> {
    pg_fixture::psql_raw(
        database,
        &format!("COPY (SELECT id, v FROM \"{table}\" ORDER BY id) TO STDOUT (FORMAT binary)"),
    )
}

/// Each row's send-function bytes, hex (to name the cases that differ).
pub fn rows_hex(database: &str, table: &str, sql_type: &str) -> Vec<String> {
    let send = match sql_type {
        "double precision" => "float8send(v)",
        "real" => "float4send(v)",
        _ => "convert_to(v::text, 'UTF8')",
    };
    pg_fixture::psql(
        database,
        &format!("SELECT id || ' ' || coalesce(encode({send}, 'hex'), 'NULL') FROM \"{table}\" ORDER BY id"),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Asserts that every type's table (`cases_of[i]` holds the values of `TYPES[i]`) reads
/// the same on `src` and `dst`; the failure lists each [`difference`], headed by `run`
/// (the seed and the number of cases, to repeat the run).
pub fn assert_every_type_equal(src: &str, dst: &str, cases_of: &[Vec<String>], run: &str) {
    let failures: Vec<String> = TYPES
        .iter()
        .zip(cases_of)
        .filter_map(|(ty, values)| difference(src, dst, ty, values))
        .collect();
    assert!(
        failures.is_empty(),
        "{run}: {} type(s) changed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// How `table` (one type's cases, `values`) differs between `src` and `dst`, read by
/// psql: `None` when the binary COPYs are equal, else the type and up to three cases
/// with their literals.
pub fn difference(src: &str, dst: &str, ty: &Type, values: &[String]) -> Option<String> {
    let (before, after) = (binary_copy(src, ty.table), binary_copy(dst, ty.table));
    assert!(before.len() > 19, "{}: the source table is empty", ty.table);
    if before == after {
        return None;
    }
    let (a, b) = (
        rows_hex(src, ty.table, ty.sql_type),
        rows_hex(dst, ty.table, ty.sql_type),
    );
    let differing: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .take(3)
        .map(|(x, y)| {
            let id: usize = x.split(' ').next().unwrap().parse().unwrap();
            let literal: String = values[id].chars().take(120).collect();
            format!("case {id} {literal}: {x} restored as {y}")
        })
        .collect();
    Some(format!(
        "{} ({} rows before, {} after): {}",
        ty.sql_type,
        a.len(),
        b.len(),
        if differing.is_empty() {
            "the binary COPY differs but no row's text does".to_string()
        } else {
            differing.join("; ")
        }
    ))
}
