//! Undoing an import: deleting the imported nodes and relationships in batches and
//! dropping the temporary import indexes, so a failed restore leaves the target as it
//! was.

use super::*;

/// Runs a `... LIMIT batch ... RETURN count(*) AS c` statement until it affects nothing.
/// `expected` bounds the number of rounds, so a server that reports work it did not do
/// fails the restore instead of looping forever.
pub(super) async fn drain(
    db: &Db,
    op: &str,
    stmt: &str,
    expected: u64,
    batch: usize,
) -> Result<u64> {
    let max_rounds = expected / batch as u64 + 3;
    let mut total = 0u64;
    for _ in 0..max_rounds {
        let n = db.count(op, query(stmt)).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
    Err(db.fail(
        op,
        ErrorKind::Other,
        format!("the server still reports matches after {max_rounds} rounds of {batch}: it did not apply the change"),
    ))
}

/// Deletes every imported node (with its relationships).
pub(super) async fn delete_imported(db: &Db, state: &ImportState, batch: usize) -> Result<u64> {
    let mut deleted = 0u64;
    for key in &state.key_labels {
        let stmt = format!(
            "MATCH (n:{}) WHERE n.{} IS NOT NULL WITH n LIMIT {batch} DETACH DELETE n RETURN count(*) AS c",
            quote(key),
            quote(IMPORT_ID)
        );
        deleted += drain(db, "removing imported nodes", &stmt, u64::MAX / 2, batch).await?;
    }
    Ok(deleted)
}

pub(super) async fn drop_import_indexes(db: &Db, state: &ImportState) -> Result<()> {
    for name in state.import_indexes.values() {
        db.run(
            "dropping the temporary id index",
            query(&format!("DROP INDEX {} IF EXISTS", quote(name))),
        )
        .await?;
    }
    Ok(())
}

/// Undoes an import; returns what it did, for the error message.
pub(super) async fn rollback(db: &Db, state: &ImportState, batch: usize) -> Result<String> {
    let deleted = delete_imported(db, state, batch).await?;
    drop_import_indexes(db, state).await?;
    drop_schema_items(db, state.created_schema.iter().rev().collect()).await?;
    for item in &state.dropped_schema {
        create_schema_item(db, item).await?;
    }
    let mut what = format!("removed the {deleted} imported nodes with their relationships");
    if !state.created_schema.is_empty() {
        what.push_str(&format!(
            ", dropped the {} indexes/constraints it created",
            state.created_schema.len()
        ));
    }
    if !state.dropped_schema.is_empty() {
        what.push_str(&format!(
            ", recreated the target's {} indexes/constraints",
            state.dropped_schema.len()
        ));
    }
    Ok(what)
}

/// Drops `items`, in order, retrying those the server refused until no further one can
/// be dropped. Servers differ in which of an index and a constraint tied to it must go
/// first (Neo4j: the constraint, which takes its index along; ArcadeDB: the index, which
/// takes its hidden property-type constraint along), so one order cannot serve both.
pub(super) async fn drop_schema_items(db: &Db, mut pending: Vec<&SchemaItem>) -> Result<()> {
    while !pending.is_empty() {
        let before = pending.len();
        let mut refused = Vec::new();
        let mut last_error = None;
        for item in pending {
            if let Err(e) = drop_schema_item(db, item).await {
                refused.push(item);
                last_error = Some(e);
            }
        }
        if refused.len() == before {
            if let Some(e) = last_error {
                return Err(e);
            }
        }
        pending = refused;
    }
    Ok(())
}
