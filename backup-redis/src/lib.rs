//! backup-redis (see its issue).
