//! Embedding dbseal in a Tokio program: back up a byte stream and restore it with the
//! library alone (no CLI).
//!
//! ```text
//! cargo run -p backup-core --example embed                # into a temporary directory
//! cargo run -p backup-core --example embed -- ./backups   # or any store URL
//! ```
//!
//! A real service would load its identity from a file (`Decryption::from_identity_file`)
//! and encrypt to recipients from its configuration (`Encryption::parse_recipients`),
//! and sign with its signing key (`SigningKey::from_file`, trusting other hosts' public
//! keys with `Trust::trust_signer`); here both keys are generated on the spot.

use backup_core::{
    BackupOptions, BackupStore, FormatRegistry, KeyPair, ReaderSource, RestoreOptions, SigningKey,
    Trust, WriterSink,
};

/// Backs up `data` into the store at `url`, lists it, verifies it at levels 1 and 2 and
/// restores it. Returns the restored bytes.
pub async fn run(url: &str, data: Vec<u8>) -> backup_core::Result<Vec<u8>> {
    // Manifests are signed; only what a trusted key signed is listed or restored.
    let signer = SigningKey::generate()?;
    let store = BackupStore::open(url, &Default::default())?
        .with_trust(Trust::default().with_signer(signer));
    let keys = KeyPair::generate();

    // Any tokio AsyncRead is a source: a file, a socket, a child process's stdout.
    let mut source = ReaderSource::new(std::io::Cursor::new(data), "stream");
    let mut options = BackupOptions::new("example", keys.encryption());
    options.labels.insert("app".into(), "embed-example".into());
    let manifest = backup_core::backup(&store, &mut source, options).await?;
    println!(
        "backup {} committed: {} bytes -> {} bytes stored at {}",
        manifest.backup_id,
        manifest.artifact.plaintext_size,
        manifest.artifact.stored_size,
        manifest.artifact.key
    );

    // Only backups with a committed manifest are listed.
    for m in store.list(Some("example")).await? {
        println!("listed {} ({})", m.backup_id, m.finished_at);
    }

    // Level 1 needs no key; level 2 decrypts, decompresses and re-hashes.
    let restore_options = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    backup_core::verify_stored(&store, &manifest).await?;
    let report =
        backup_core::verify_content(&store, &manifest, &FormatRegistry::new(), &restore_options)
            .await?;
    println!("verified at level {}", report.level.number());

    // Any tokio AsyncWrite is a sink; it sees the end of the stream only if every digest
    // and authentication check passed.
    let mut restored = Vec::new();
    backup_core::restore(
        &store,
        &manifest,
        "data",
        &mut WriterSink::new(&mut restored),
        &restore_options,
    )
    .await?;
    println!("restored {} bytes", restored.len());
    Ok(restored)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir;
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            dir = tempfile::tempdir()?;
            dir.path().display().to_string()
        }
    };
    let data = b"a database's own backup stream, e.g. pg_dump output\n".repeat(10_000);
    let restored = run(&url, data.clone()).await?;
    assert_eq!(restored, data, "restored bytes differ");
    println!("round trip ok");
    Ok(())
}
