//! One module per `dbseal` subcommand.

pub mod backup;
pub mod config;
pub mod keygen;
pub mod list;
pub mod prune;
pub mod restore;
pub mod show;
pub mod status;
pub mod verify;
pub mod wal;
