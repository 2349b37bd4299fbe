//! Progress reporting, injected by the caller (a terminal bar in the CLI, nothing in
//! the library's default).

/// Receives progress of a running backup, restore or verification.
pub trait Progress: Send + Sync {
    /// Announces the total number of bytes, when known.
    fn set_total(&self, _total: Option<u64>) {}
    /// Reports `bytes` more bytes processed.
    fn advance(&self, bytes: u64);
    /// The operation ended.
    fn finish(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}
