#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! What a backup holds: the contents summary, and the format readers that compute it.
//!
//! A [`FormatReader`] parses a native backup stream (pg_dump custom archive, RDB file,
//! dbseal graph stream) with plain blocking reads and returns its [`Contents`]. The
//! pipeline runs it on a blocking thread beside the backup, fed a copy of the plaintext
//! chunks, so the summary costs no second query to the server; level-2 verification runs
//! the same reader over the decrypted artifact and compares.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A summary of a backup's contents: facts about the stream and named groups of counts.
///
/// Conventions used by the database crates: `counts["tables"]["schema.table"]` = rows,
/// `counts["labels"]["Person"]` = nodes, `counts["relationship_types"]["KNOWS"]`,
/// `counts["keys"]["db0.string"]` = keys. Two summaries are compared group by group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    /// Facts read from the stream itself (archive version, server version...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
    /// Named groups of counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Contents {
    /// Adds `n` to `counts[group][name]`.
    pub fn add(&mut self, group: &str, name: &str, n: u64) {
        let c = self
            .counts
            .entry(group.to_string())
            .or_default()
            .entry(name.to_string())
            .or_default();
        *c = c.saturating_add(n);
    }

    /// Sets a fact.
    pub fn fact(&mut self, name: &str, value: impl Into<String>) {
        self.facts.insert(name.to_string(), value.into());
    }

    /// The differences between `self` (expected) and `actual` in the given groups
    /// (all groups if `groups` is empty), one line each, for error messages.
    pub fn diff_counts(&self, actual: &Contents, groups: &[&str]) -> Vec<String> {
        let mut names: Vec<&String> = self.counts.keys().chain(actual.counts.keys()).collect();
        names.sort();
        names.dedup();
        let empty = BTreeMap::new();
        let mut out = Vec::new();
        for group in names {
            if !groups.is_empty() && !groups.contains(&group.as_str()) {
                continue;
            }
            let e = self.counts.get(group).unwrap_or(&empty);
            let a = actual.counts.get(group).unwrap_or(&empty);
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (ev, av) = (e.get(k), a.get(k));
                if ev != av {
                    let show = |v: Option<&u64>| v.map_or("absent".to_string(), |n| n.to_string());
                    out.push(format!(
                        "{group} {k}: expected {}, found {}",
                        show(ev),
                        show(av)
                    ));
                }
            }
        }
        out
    }
}

/// Parses a native backup stream and summarises it. Implementations read with plain
/// blocking reads, MUST consume the whole stream (so trailing checksums are checked),
/// and must work in constant memory.
pub trait FormatReader: Send + Sync {
    /// The format name recorded in the manifest ("pgdump", "rdb", "graph", "raw").
    fn format(&self) -> &str;
    /// Whether the summary depends on the bytes. `false` (the raw format) lets the
    /// pipeline skip feeding the reader a copy of the stream: `read_contents` of an
    /// empty stream then gives the summary.
    fn reads_stream(&self) -> bool {
        true
    }
    /// Reads the whole stream and returns its summary; fails on a malformed stream.
    fn read_contents(&self, input: &mut dyn Read) -> Result<Contents>;
}

/// The reader for opaque byte streams: counts nothing, checks nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawFormat;

impl FormatReader for RawFormat {
    fn format(&self) -> &str {
        "raw"
    }
    fn reads_stream(&self) -> bool {
        false
    }
    fn read_contents(&self, input: &mut dyn Read) -> Result<Contents> {
        std::io::copy(input, &mut std::io::sink())
            .map_err(|e| crate::Error::io("reading raw stream", e))?;
        Ok(Contents::default())
    }
}

/// Format readers by format name, so verification can find the reader a manifest needs.
#[derive(Clone, Default)]
pub struct FormatRegistry {
    readers: BTreeMap<String, Arc<dyn FormatReader>>,
}

impl std::fmt::Debug for FormatRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.readers.keys()).finish()
    }
}

impl FormatRegistry {
    /// A registry that knows only `raw`.
    pub fn new() -> Self {
        let mut r = FormatRegistry::default();
        r.register(Arc::new(RawFormat));
        r
    }

    /// Adds (or replaces) a reader under its format name.
    pub fn register(&mut self, reader: Arc<dyn FormatReader>) {
        self.readers.insert(reader.format().to_string(), reader);
    }

    /// The reader for `format`, if known.
    pub fn get(&self, format: &str) -> Option<Arc<dyn FormatReader>> {
        self.readers.get(format).cloned()
    }
}
