//! The benchmark driver of `bench/redis/run.sh` (a release build of the library, used
//! while the CLI is not wired into every environment):
//!
//! ```text
//! redis_bench keygen IDENTITY                      # writes IDENTITY and IDENTITY.pub
//! redis_bench backup URL STORE IDENTITY [scan]     # prints the backup id
//! redis_bench restore URL STORE IDENTITY ID        # restores every database
//! redis_bench restore-commands RDB                 # RESTORE commands (RESP) on stdout
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use backup_core::{BackupOptions, BackupStore, Decryption, Encryption, KeyPair, RestoreOptions};
use backup_redis::format::{parse_rdb, KeyEntry, RdbVisitor};
use backup_redis::{BackupMode, RedisConfig, RedisRestoreOptions, RedisSink, RedisSource};

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("redis_bench: {msg}");
    std::process::exit(1)
}

/// Writes `RESTORE key ttl payload [ABSTTL]` for every key, as DUMP payloads.
struct RestoreCommands<W: Write> {
    out: W,
    version: u32,
    payload: Vec<u8>,
    db: Option<u64>,
}

impl<W: Write> RdbVisitor for RestoreCommands<W> {
    fn header(&mut self, version: u32) -> backup_core::Result<()> {
        self.version = version;
        Ok(())
    }
    fn want_value(&mut self, _db: u64, _key: &[u8], _t: u8) -> bool {
        true
    }
    fn key(&mut self, e: &KeyEntry<'_>) -> backup_core::Result<()> {
        let io = |e: std::io::Error| backup_core::Error::io("writing commands", e);
        if self.db != Some(e.db) {
            let db = e.db.to_string();
            write!(self.out, "*2\r\n$6\r\nSELECT\r\n${}\r\n{db}\r\n", db.len()).map_err(io)?;
            self.db = Some(e.db);
        }
        self.payload.clear();
        backup_redis::format::dump_payload(
            e.type_byte,
            e.value.unwrap(),
            self.version,
            &mut self.payload,
        );
        let ttl = e.expire_ms.unwrap_or(0).to_string();
        let n = if e.expire_ms.is_some() { 5 } else { 4 };
        write!(self.out, "*{n}\r\n$7\r\nRESTORE\r\n${}\r\n", e.key.len()).map_err(io)?;
        self.out.write_all(e.key).map_err(io)?;
        write!(
            self.out,
            "\r\n${}\r\n{ttl}\r\n${}\r\n",
            ttl.len(),
            self.payload.len()
        )
        .map_err(io)?;
        self.out.write_all(&self.payload).map_err(io)?;
        self.out.write_all(b"\r\n").map_err(io)?;
        if e.expire_ms.is_some() {
            self.out.write_all(b"$6\r\nABSTTL\r\n").map_err(io)?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| die("missing argument (see the source for usage)"))
    };
    match arg(1).as_str() {
        "keygen" => {
            let keys = KeyPair::generate();
            keys.write_identity_file(Path::new(&arg(2)))
                .unwrap_or_else(|e| die(e));
            std::fs::write(format!("{}.pub", arg(2)), keys.recipient()).unwrap_or_else(|e| die(e));
            // The signing key backups are signed with (DBSEAL_SIGNING_KEY=IDENTITY.minisign.key).
            let (secret, public) = backup_core::keys::signing_key_paths(Path::new(&arg(2)));
            backup_core::SigningKey::generate()
                .and_then(|k| k.write_files(&secret, &public))
                .unwrap_or_else(|e| die(e));
        }
        "backup" => {
            let cfg = RedisConfig::from_url(&arg(2)).unwrap_or_else(|e| die(e));
            let store = BackupStore::open(&arg(3), &Default::default())
                .unwrap_or_else(|e| die(e))
                .with_trust(backup_core::ops::TrustOptions::from_env().trust().unwrap());
            let recipient =
                std::fs::read_to_string(format!("{}.pub", arg(4))).unwrap_or_else(|e| die(e));
            let enc = Encryption::parse_recipients(&[recipient.trim()]).unwrap_or_else(|e| die(e));
            let mode = if args.get(5).map(String::as_str) == Some("scan") {
                BackupMode::Scan
            } else {
                BackupMode::Replication
            };
            let mut source = RedisSource::new(cfg, mode).unwrap_or_else(|e| die(e));
            let started = Instant::now();
            let mut opts = BackupOptions::new("bench", enc);
            // Bench knobs: DBSEAL_BENCH_ZSTD_WORKERS (0 = single-threaded), DBSEAL_BENCH_ZSTD_LEVEL.
            if let Ok(w) = std::env::var("DBSEAL_BENCH_ZSTD_WORKERS") {
                opts.zstd_workers = Some(w.parse().unwrap_or_else(|e| die(e)));
            }
            if let Ok(l) = std::env::var("DBSEAL_BENCH_ZSTD_LEVEL") {
                opts.zstd_level = l.parse().unwrap_or_else(|e| die(e));
            }
            let m = backup_core::backup(&store, &mut source, opts)
                .await
                .unwrap_or_else(|e| die(e));
            eprintln!(
                "backup {} in {:.2}s: {} plaintext bytes, {} stored bytes, {} keys",
                m.backup_id,
                started.elapsed().as_secs_f64(),
                m.artifact.plaintext_size,
                m.artifact.stored_size,
                m.contents
                    .counts
                    .get("keys")
                    .map(|k| k.values().sum::<u64>())
                    .unwrap_or(0)
            );
            println!("{}", m.backup_id);
        }
        "restore" => {
            let cfg = RedisConfig::from_url(&arg(2)).unwrap_or_else(|e| die(e));
            let store = BackupStore::open(&arg(3), &Default::default())
                .unwrap_or_else(|e| die(e))
                .with_trust(backup_core::ops::TrustOptions::from_env().trust().unwrap());
            let dec = Decryption::from_identity_file(Path::new(&arg(4))).unwrap_or_else(|e| die(e));
            let id = arg(5).parse().unwrap_or_else(|e| die(e));
            let m = store.manifest(&id).await.unwrap_or_else(|e| die(e));
            let mut sink =
                RedisSink::new(cfg, RedisRestoreOptions::default()).unwrap_or_else(|e| die(e));
            let opts = RestoreOptions {
                decryption: Some(Arc::new(dec)),
                ..Default::default()
            };
            let started = Instant::now();
            let r = backup_core::restore(&store, &m, "data", &mut sink, &opts)
                .await
                .unwrap_or_else(|e| die(e));
            eprintln!(
                "restore in {:.2}s: {}",
                started.elapsed().as_secs_f64(),
                r.summary.join("; ")
            );
        }
        "restore-commands" => {
            let mut file =
                std::io::BufReader::new(std::fs::File::open(arg(2)).unwrap_or_else(|e| die(e)));
            let stdout = std::io::stdout();
            let mut v = RestoreCommands {
                out: std::io::BufWriter::with_capacity(1 << 20, stdout.lock()),
                version: 0,
                payload: Vec::new(),
                db: None,
            };
            parse_rdb(&mut file, &mut v).unwrap_or_else(|e| die(e));
            v.out.flush().unwrap_or_else(|e| die(e));
        }
        other => die(format!("unknown command `{other}`")),
    }
}
