//! The one place the drivers this build knows are composed.

use backup_core::Registry;

/// Every database kind of this build.
pub fn registry() -> Registry {
    Registry::new()
        .with(backup_postgres::PostgresDriver)
        .with(backup_timescale::TimescaleDriver)
        .with(backup_redis::RedisDriver)
        .with(backup_neo4j::Neo4jDriver)
}
