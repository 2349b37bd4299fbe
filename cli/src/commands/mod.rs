//! One module per `dbseal` subcommand (or pair of small ones): flags in, a
//! `backup_core::ops` call, output out.

pub mod backup;
pub mod catalog;
pub mod config;
pub mod keygen;
pub mod prune;
pub mod restore;
pub mod status;
pub mod verify;
pub mod wal;
