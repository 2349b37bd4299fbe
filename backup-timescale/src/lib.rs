//! backup-timescale (see its issue).
