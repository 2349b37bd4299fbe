//! backup-postgres (see its issue).
