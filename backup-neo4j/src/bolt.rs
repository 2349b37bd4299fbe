#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Bolt plumbing shared by export and import: value conversion between the driver's
//! types and [`Value`], and one-transaction query helpers.

use std::collections::{BTreeMap, HashMap};

use backup_core::{ErrorKind, Result};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use neo4rs::{
    BoltBytes, BoltDuration, BoltFloat, BoltInteger, BoltList, BoltMap, BoltPoint2D, BoltPoint3D,
    BoltString, BoltType,
};
use serde::de::IntoDeserializer;
use serde::Deserialize;

use crate::error::Neo4jError;
use crate::format::Value;

/// Converts a property value read from the server.
pub(crate) fn from_bolt(v: &BoltType) -> std::result::Result<Value, String> {
    Ok(match v {
        BoltType::Null(_) => Value::Null,
        BoltType::Boolean(b) => Value::Bool(b.value),
        BoltType::Integer(i) => Value::Int(i.value),
        BoltType::Float(f) => Value::Float(f.value),
        BoltType::String(s) => Value::String(s.value.clone()),
        BoltType::Bytes(b) => Value::Bytes(b.value.to_vec()),
        BoltType::List(l) => Value::List(
            l.value
                .iter()
                .map(from_bolt)
                .collect::<std::result::Result<_, _>>()?,
        ),
        BoltType::Map(m) => Value::Map(
            m.value
                .iter()
                .map(|(k, v)| Ok((k.value.clone(), from_bolt(v)?)))
                .collect::<std::result::Result<BTreeMap<_, _>, String>>()?,
        ),
        BoltType::Date(d) => Value::Date(
            NaiveDate::try_from(d)
                .map_err(|_| "a date outside the supported range (±262,000 years)")?,
        ),
        BoltType::Time(t) => {
            let (time, off): (NaiveTime, FixedOffset) = t.into();
            Value::Time(time, off.local_minus_utc())
        }
        BoltType::LocalTime(t) => Value::LocalTime(NaiveTime::from(t)),
        BoltType::DateTime(dt) => {
            let d = DateTime::<FixedOffset>::try_from(dt)
                .map_err(|_| "a datetime outside the supported range")?;
            Value::DateTime(d.naive_local(), d.offset().fix().local_minus_utc())
        }
        BoltType::LocalDateTime(dt) => Value::LocalDateTime(
            NaiveDateTime::try_from(dt)
                .map_err(|_| "a localdatetime outside the supported range")?,
        ),
        BoltType::DateTimeZoneId(dz) => Value::DateTimeZone(
            NaiveDateTime::try_from(dz).map_err(|_| "a datetime outside the supported range")?,
            dz.tz_id().to_string(),
        ),
        BoltType::Duration(_) => {
            // The driver exposes Bolt's four fields through its deserializer.
            let (months, days, seconds, nanoseconds) =
                <(i64, i64, i64, i64)>::deserialize(v.into_deserializer())
                    .map_err(|e| format!("cannot read a duration: {e}"))?;
            Value::Duration {
                months,
                days,
                seconds,
                nanoseconds,
            }
        }
        BoltType::Point2D(p) => Value::Point2D {
            srid: p.sr_id.value,
            x: p.x.value,
            y: p.y.value,
        },
        BoltType::Point3D(p) => Value::Point3D {
            srid: p.sr_id.value,
            x: p.x.value,
            y: p.y.value,
            z: p.z.value,
        },
        BoltType::Node(_)
        | BoltType::Relation(_)
        | BoltType::UnboundedRelation(_)
        | BoltType::Path(_) => return Err("a graph element is not a property value".into()),
    })
}

/// Converts a value into a query parameter of exactly the same Cypher type.
pub(crate) fn to_bolt(v: &Value) -> BoltType {
    match v {
        Value::Null => BoltType::Null(neo4rs::BoltNull),
        Value::Bool(b) => BoltType::from(*b),
        Value::Int(i) => BoltType::Integer(BoltInteger::new(*i)),
        Value::Float(f) => BoltType::Float(BoltFloat::new(*f)),
        Value::String(s) => BoltType::String(BoltString::new(s)),
        Value::Bytes(b) => BoltType::Bytes(BoltBytes::new(bytes::Bytes::from(b.clone()))),
        Value::List(l) => BoltType::List(BoltList {
            value: l.iter().map(to_bolt).collect(),
        }),
        Value::Map(m) => BoltType::Map(props_to_bolt(m)),
        Value::Date(d) => BoltType::from(*d),
        Value::Time(t, off) => BoltType::from((*t, fixed(*off))),
        Value::LocalTime(t) => BoltType::from(*t),
        Value::DateTime(dt, off) => {
            // A fixed offset maps every local time to exactly one instant (`single`
            // is `None` only for named zones' gaps and overlaps).
            #[allow(clippy::expect_used)]
            let d = fixed(*off)
                .from_local_datetime(dt)
                .single()
                .expect("a fixed offset maps every local time");
            BoltType::from(d)
        }
        Value::DateTimeZone(dt, zone) => BoltType::from((*dt, zone.as_str())),
        Value::LocalDateTime(dt) => BoltType::from(*dt),
        Value::Duration {
            months,
            days,
            seconds,
            nanoseconds,
        } => BoltType::Duration(BoltDuration::new(
            BoltInteger::new(*months),
            BoltInteger::new(*days),
            BoltInteger::new(*seconds),
            BoltInteger::new(*nanoseconds),
        )),
        Value::Point2D { srid, x, y } => BoltType::Point2D(BoltPoint2D {
            sr_id: BoltInteger::new(*srid),
            x: BoltFloat::new(*x),
            y: BoltFloat::new(*y),
        }),
        Value::Point3D { srid, x, y, z } => BoltType::Point3D(BoltPoint3D {
            sr_id: BoltInteger::new(*srid),
            x: BoltFloat::new(*x),
            y: BoltFloat::new(*y),
            z: BoltFloat::new(*z),
        }),
    }
}

fn fixed(off: i32) -> FixedOffset {
    FixedOffset::east_opt(off).unwrap_or(chrono::Utc.fix())
}

/// A property map as a Bolt map parameter.
pub(crate) fn props_to_bolt(props: &BTreeMap<String, Value>) -> BoltMap {
    let mut value = HashMap::with_capacity(props.len());
    for (k, v) in props {
        value.insert(BoltString::new(k), to_bolt(v));
    }
    BoltMap { value }
}

/// Backtick-quotes a label, type, property or schema name for Cypher.
pub(crate) fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A connected database plus the text that names it in errors.
#[derive(Clone)]
pub(crate) struct Db {
    pub graph: neo4rs::Graph,
    pub target: String,
    /// The server's `host:port`, and the sockets already given `TCP_NODELAY`.
    pub sockets: std::sync::Arc<std::sync::Mutex<Sockets>>,
}

/// The driver's sockets to one server (see [`crate::nodelay`]).
#[derive(Default)]
pub(crate) struct Sockets {
    host: String,
    peers: Option<Vec<std::net::SocketAddr>>,
    done: std::collections::BTreeSet<u64>,
}

impl Sockets {
    pub fn new(host: String) -> std::sync::Arc<std::sync::Mutex<Sockets>> {
        std::sync::Arc::new(std::sync::Mutex::new(Sockets {
            host,
            ..Default::default()
        }))
    }
}

impl Db {
    /// Gives the driver's new connections to the server `TCP_NODELAY`.
    async fn tune_sockets(&self) {
        let host = {
            let s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
            if s.peers.is_some() {
                None
            } else {
                Some(s.host.clone())
            }
        };
        if let Some(host) = host {
            let peers = tokio::net::lookup_host(host.as_str())
                .await
                .map(|a| a.collect())
                .unwrap_or_default();
            self.sockets.lock().unwrap_or_else(|e| e.into_inner()).peers = Some(peers);
        }
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        let Sockets { peers, done, .. } = &mut *s;
        if let Some(peers) = peers.as_deref() {
            crate::nodelay::apply(peers, done);
        }
    }

    pub fn err(&self, op: impl Into<String>, e: &neo4rs::Error) -> backup_core::Error {
        Neo4jError::from_driver(&self.target, op, e).into()
    }

    pub fn fail(
        &self,
        op: impl Into<String>,
        kind: ErrorKind,
        detail: impl Into<String>,
    ) -> backup_core::Error {
        Neo4jError::new(&self.target, op, kind, detail).into()
    }

    /// Runs one query in its own transaction and returns all its rows.
    pub async fn rows(&self, op: &str, q: neo4rs::Query) -> Result<Vec<neo4rs::Row>> {
        self.try_rows(q).await.map_err(|e| self.err(op, &e))
    }

    async fn try_rows(&self, q: neo4rs::Query) -> neo4rs::Result<Vec<neo4rs::Row>> {
        let mut txn = self.graph.start_txn().await?;
        self.tune_sockets().await;
        let mut rows = Vec::new();
        {
            let mut stream = txn.execute(q).await?;
            while let Some(row) = stream.next(txn.handle()).await? {
                rows.push(row);
            }
        }
        txn.commit().await?;
        Ok(rows)
    }

    /// Like [`Db::count`], retrying a transaction the server failed with a transient
    /// error (`Neo.TransientError.*`, e.g. a deadlock or a concurrent change to the
    /// same record between two sessions): the server rolled it back whole, so running
    /// it again is safe. `make` builds the query for each attempt.
    pub async fn count_retrying(
        &self,
        op: &str,
        mut make: impl FnMut() -> Result<neo4rs::Query>,
    ) -> Result<i64> {
        const ATTEMPTS: u32 = 6;
        let mut attempt = 1;
        loop {
            match self.try_rows(make()?).await {
                Ok(rows) => {
                    return Ok(rows
                        .first()
                        .and_then(|r| r.get::<i64>("c").ok())
                        .unwrap_or(0))
                }
                Err(neo4rs::Error::Neo4j(e))
                    if e.kind() == neo4rs::Neo4jErrorKind::Transient && attempt < ATTEMPTS =>
                {
                    tracing::debug!(target = %self.target, op, attempt, code = e.code(), "transient error, retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(20u64 << attempt.min(10)))
                        .await;
                    attempt = attempt.saturating_add(1);
                }
                Err(e) => return Err(self.err(op, &e)),
            }
        }
    }

    /// Runs a query that returns one integer column `c` in its own transaction.
    pub async fn count(&self, op: &str, q: neo4rs::Query) -> Result<i64> {
        let rows = self.rows(op, q).await?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<i64>("c").ok())
            .unwrap_or(0))
    }

    /// Runs a statement in its own transaction, discarding rows.
    pub async fn run(&self, op: &str, q: neo4rs::Query) -> Result<()> {
        self.rows(op, q).await.map(|_| ())
    }
}
