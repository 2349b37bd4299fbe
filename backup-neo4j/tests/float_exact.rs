//! Floats survive the graph stream bit for bit (issue 17: 228 of 12,000 `Float`
//! properties came back one ULP off, e.g. 271/3 = 90.33333333333333 restored as
//! 90.33333333333331, because the stream's JSON was parsed without exact float
//! round-tripping).

use backup_neo4j::format::Value;

/// Encodes a float as the stream does (a text line), parses it back as the import does.
fn through_the_stream(f: f64) -> f64 {
    let line = serde_json::to_string(&Value::Float(f).to_json()).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    match Value::from_json(&parsed).unwrap() {
        Value::Float(g) => g,
        other => panic!("{f:e} came back as {other:?}"),
    }
}

fn assert_exact(f: f64) {
    let g = through_the_stream(f);
    let same = f.to_bits() == g.to_bits() || (f.is_nan() && g.is_nan());
    assert!(
        same,
        "{f:e} ({:#x}) came back as {g:e} ({:#x})",
        f.to_bits(),
        g.to_bits()
    );
}

#[test]
fn the_reported_value_is_exact() {
    assert_exact(271.0 / 3.0);
}

#[test]
fn edge_values_are_exact() {
    for f in [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        5e-324, // the smallest subnormal
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1.0 / 3.0,
        0.1 + 0.2,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ] {
        assert_exact(f);
    }
}

#[test]
fn twelve_thousand_quotients_and_random_bit_patterns_are_exact() {
    // The reported data set: n/3, n/7... as an application computes them.
    for n in 0..12_000u32 {
        assert_exact(f64::from(n) / f64::from(3 + n % 11));
    }
    // Every exponent range, from a fixed-seed generator (xorshift64*).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..100_000 {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        assert_exact(f64::from_bits(bits));
    }
}
