#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Value encoding: every Cypher value as JSON (floats, temporals with offsets and zones,
//! points, durations, bytes), property maps, and their hashing for the content hash.

use super::*;

pub(super) fn float_json(f: f64) -> Json {
    // JSON numbers hold every finite double; the others are named.
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

pub(super) fn float_from_json(j: &Json) -> std::result::Result<f64, String> {
    match j {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("bad float {n}")),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(format!("bad float {s:?}")),
        },
        other => Err(format!("bad float {other}")),
    }
}

/// `+HH:MM`, or `+HH:MM:SS` when the offset has seconds.
pub(super) fn offset_string(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, (a / 60) % 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

pub(super) fn parse_offset(s: &str) -> std::result::Result<i32, String> {
    let bad = || format!("bad UTC offset {s:?}");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let n: Vec<i32> = parts
        .iter()
        .map(|p| p.parse::<i32>().map_err(|_| bad()))
        .collect::<std::result::Result<_, _>>()?;
    // Two decimal digits each (checked above): no overflow, saturating all the same.
    let [h, m, rest @ ..] = n.as_slice() else {
        return Err(bad());
    };
    let secs = h
        .saturating_mul(3600)
        .saturating_add(m.saturating_mul(60))
        .saturating_add(rest.first().copied().unwrap_or(0));
    if secs > 18 * 3600 {
        return Err(bad());
    }
    Ok(secs.saturating_mul(sign))
}

pub(super) const TIME_FMT: &str = "%H:%M:%S%.f";
pub(super) const DATE_FMT: &str = "%Y-%m-%d";
pub(super) const DATETIME_FMT: &str = "%Y-%m-%dT%H:%M:%S%.f";

pub(super) fn parse_time(s: &str) -> std::result::Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, TIME_FMT).map_err(|e| format!("bad time {s:?}: {e}"))
}

pub(super) fn parse_datetime(s: &str) -> std::result::Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(s, DATETIME_FMT).map_err(|e| format!("bad date-time {s:?}: {e}"))
}

/// Splits `local+HH:MM` at the offset sign that follows the time part.
pub(super) fn split_offset(s: &str) -> std::result::Result<(&str, i32), String> {
    let start = s.find(':').ok_or_else(|| format!("no time in {s:?}"))?;
    let pos = s[start..]
        .find(['+', '-'])
        .map(|p| p.saturating_add(start))
        .ok_or_else(|| format!("no UTC offset in {s:?}"))?;
    Ok((&s[..pos], parse_offset(&s[pos..])?))
}

impl Value {
    /// The value in the stream's JSON encoding.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::Number((*i).into()),
            Value::Float(f) => json!({ "float": float_json(*f) }),
            Value::String(s) => Json::String(s.clone()),
            Value::Bytes(b) => json!({ "bytes": hex::encode(b) }),
            Value::List(l) => Json::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                let inner: JsonMap<String, Json> =
                    m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
                json!({ "map": inner })
            }
            Value::Date(d) => json!({ "date": d.format(DATE_FMT).to_string() }),
            Value::Time(t, off) => {
                json!({ "time": format!("{}{}", t.format(TIME_FMT), offset_string(*off)) })
            }
            Value::LocalTime(t) => json!({ "localtime": t.format(TIME_FMT).to_string() }),
            Value::DateTime(dt, off) => json!({
                "datetime": format!("{}{}", dt.format(DATETIME_FMT), offset_string(*off))
            }),
            Value::DateTimeZone(dt, zone) => json!({
                "datetime": format!("{}[{zone}]", dt.format(DATETIME_FMT))
            }),
            Value::LocalDateTime(dt) => {
                json!({ "localdatetime": dt.format(DATETIME_FMT).to_string() })
            }
            Value::Duration {
                months,
                days,
                seconds,
                nanoseconds,
            } => json!({ "duration": {
                "months": months, "days": days, "seconds": seconds, "nanoseconds": nanoseconds
            }}),
            Value::Point2D { srid, x, y } => {
                json!({ "point": { "srid": srid, "x": float_json(*x), "y": float_json(*y) } })
            }
            Value::Point3D { srid, x, y, z } => json!({ "point": {
                "srid": srid, "x": float_json(*x), "y": float_json(*y), "z": float_json(*z)
            }}),
        }
    }

    /// Decodes a value from the stream's JSON encoding.
    pub fn from_json(j: &Json) -> std::result::Result<Value, String> {
        Ok(match j {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => {
                    return Err(format!(
                        "bare number {n} is not a 64-bit integer (floats are written as {{\"float\":...}})"
                    ))
                }
            },
            Json::String(s) => Value::String(s.clone()),
            Json::Array(a) => Value::List(a.iter().map(Value::from_json).collect::<std::result::Result<_, _>>()?),
            Json::Object(o) => {
                if o.len() != 1 {
                    return Err(format!(
                        "a tagged value has exactly one key, found {}",
                        o.len()
                    ));
                }
                let Some((tag, v)) = o.iter().next() else {
                    return Err("a tagged value has no key".into());
                };
                let s = || {
                    v.as_str()
                        .ok_or_else(|| format!("`{tag}` needs a string, found {v}"))
                };
                let obj = || {
                    v.as_object()
                        .ok_or_else(|| format!("`{tag}` needs an object, found {v}"))
                };
                match tag.as_str() {
                    "float" => Value::Float(float_from_json(v)?),
                    "bytes" => Value::Bytes(
                        hex::decode(s()?).map_err(|e| format!("bad bytes: {e}"))?,
                    ),
                    "map" => Value::Map(
                        obj()?
                            .iter()
                            .map(|(k, v)| Ok((k.clone(), Value::from_json(v)?)))
                            .collect::<std::result::Result<_, String>>()?,
                    ),
                    "date" => {
                        let s = s()?;
                        Value::Date(
                            NaiveDate::parse_from_str(s, DATE_FMT)
                                .map_err(|e| format!("bad date {s:?}: {e}"))?,
                        )
                    }
                    "localtime" => Value::LocalTime(parse_time(s()?)?),
                    "time" => {
                        let (t, off) = split_offset(s()?)?;
                        Value::Time(parse_time(t)?, off)
                    }
                    "localdatetime" => Value::LocalDateTime(parse_datetime(s()?)?),
                    "datetime" => {
                        let s = s()?;
                        if let Some(open) = s.find('[') {
                            let zone = s[open.saturating_add(1)..]
                                .strip_suffix(']')
                                .ok_or_else(|| format!("bad zone in {s:?}"))?;
                            if zone.is_empty() {
                                return Err(format!("empty zone id in {s:?}"));
                            }
                            Value::DateTimeZone(parse_datetime(&s[..open])?, zone.to_string())
                        } else {
                            let tpos = s.find('T').ok_or_else(|| format!("bad datetime {s:?}"))?;
                            let (local, off) = split_offset(&s[tpos..])?;
                            Value::DateTime(parse_datetime(&s[..tpos.saturating_add(local.len())])?, off)
                        }
                    }
                    "duration" => {
                        let o = obj()?;
                        let get = |k: &str| {
                            o.get(k)
                                .and_then(Json::as_i64)
                                .ok_or_else(|| format!("duration needs integer `{k}`"))
                        };
                        if o.len() != 4 {
                            return Err("duration has exactly months, days, seconds, nanoseconds".into());
                        }
                        Value::Duration {
                            months: get("months")?,
                            days: get("days")?,
                            seconds: get("seconds")?,
                            nanoseconds: get("nanoseconds")?,
                        }
                    }
                    "point" => {
                        let o = obj()?;
                        let srid = o
                            .get("srid")
                            .and_then(Json::as_i64)
                            .ok_or("point needs integer `srid`")?;
                        let coord = |k: &str| {
                            o.get(k)
                                .ok_or_else(|| format!("point needs `{k}`"))
                                .and_then(float_from_json)
                        };
                        match o.len() {
                            3 => Value::Point2D {
                                srid,
                                x: coord("x")?,
                                y: coord("y")?,
                            },
                            4 => Value::Point3D {
                                srid,
                                x: coord("x")?,
                                y: coord("y")?,
                                z: coord("z")?,
                            },
                            _ => return Err("point has srid, x, y and optionally z".into()),
                        }
                    }
                    other => return Err(format!("unknown value type `{other}`")),
                }
            }
        })
    }

    /// Feeds the value's canonical binary encoding into `h` (for the content hash):
    /// a type tag, then fixed-width little-endian fields or length-prefixed bytes.
    /// All NaNs hash alike; `-0.0` and `0.0` differ.
    pub fn hash_into(&self, h: &mut Sha256) {
        fn bytes(h: &mut Sha256, b: &[u8]) {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        fn float(h: &mut Sha256, f: f64) {
            let f = if f.is_nan() { f64::NAN } else { f };
            h.update(f.to_bits().to_le_bytes());
        }
        fn dt(h: &mut Sha256, d: &NaiveDateTime) {
            h.update(d.and_utc().timestamp().to_le_bytes());
            h.update(d.nanosecond().to_le_bytes());
        }
        fn nanos(t: &NaiveTime) -> i64 {
            i64::from(t.num_seconds_from_midnight())
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.nanosecond()))
        }
        match self {
            Value::Null => h.update([0]),
            Value::Bool(b) => h.update([1, *b as u8]),
            Value::Int(i) => {
                h.update([2]);
                h.update(i.to_le_bytes());
            }
            Value::Float(f) => {
                h.update([3]);
                float(h, *f);
            }
            Value::String(s) => {
                h.update([4]);
                bytes(h, s.as_bytes());
            }
            Value::Bytes(b) => {
                h.update([5]);
                bytes(h, b);
            }
            Value::List(l) => {
                h.update([6]);
                h.update((l.len() as u64).to_le_bytes());
                for v in l {
                    v.hash_into(h);
                }
            }
            Value::Map(m) => {
                h.update([7]);
                hash_props(h, m);
            }
            Value::Date(d) => {
                h.update([8]);
                h.update((d.num_days_from_ce() as i64).to_le_bytes());
            }
            Value::Time(t, off) => {
                h.update([9]);
                h.update(nanos(t).to_le_bytes());
                h.update(off.to_le_bytes());
            }
            Value::LocalTime(t) => {
                h.update([10]);
                h.update(nanos(t).to_le_bytes());
            }
            Value::DateTime(d, off) => {
                h.update([11]);
                dt(h, d);
                h.update(off.to_le_bytes());
            }
            Value::DateTimeZone(d, zone) => {
                h.update([12]);
                dt(h, d);
                bytes(h, zone.as_bytes());
            }
            Value::LocalDateTime(d) => {
                h.update([13]);
                dt(h, d);
            }
            Value::Duration {
                months,
                days,
                seconds,
                nanoseconds,
            } => {
                h.update([14]);
                for v in [months, days, seconds, nanoseconds] {
                    h.update(v.to_le_bytes());
                }
            }
            Value::Point2D { srid, x, y } => {
                h.update([15]);
                h.update(srid.to_le_bytes());
                float(h, *x);
                float(h, *y);
            }
            Value::Point3D { srid, x, y, z } => {
                h.update([16]);
                h.update(srid.to_le_bytes());
                float(h, *x);
                float(h, *y);
                float(h, *z);
            }
        }
    }
}

/// Feeds a sorted property map into `h`.
pub(super) fn hash_props(h: &mut Sha256, props: &Properties) {
    h.update((props.len() as u64).to_le_bytes());
    for (k, v) in props {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        v.hash_into(h);
    }
}

pub(super) fn hash_strings(h: &mut Sha256, items: &[String]) {
    h.update((items.len() as u64).to_le_bytes());
    for s in items {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
}

pub(super) fn props_json(props: &Properties) -> Json {
    Json::Object(
        props
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    )
}

pub(super) fn props_from_json(j: Option<&Json>) -> std::result::Result<Properties, String> {
    match j {
        None => Ok(Properties::new()),
        Some(Json::Object(o)) => o
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    Value::from_json(v).map_err(|e| format!("property `{k}`: {e}"))?,
                ))
            })
            .collect(),
        Some(other) => Err(format!("`props` must be an object, found {other}")),
    }
}

pub(super) fn strings_from_json(
    j: Option<&Json>,
    field: &str,
) -> std::result::Result<Vec<String>, String> {
    match j {
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{field}` must hold strings"))
            })
            .collect(),
        _ => Err(format!("`{field}` must be a list of strings")),
    }
}

/// The label set key used in `counts["label_sets"]`: `:A:B`, or `(unlabeled)`.
pub fn label_set_key(labels: &[String]) -> String {
    if labels.is_empty() {
        UNLABELED.to_string()
    } else {
        labels.iter().map(|l| format!(":{l}")).collect()
    }
}
