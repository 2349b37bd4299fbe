//! backup-neo4j (see its issue).
