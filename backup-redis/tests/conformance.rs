//! The driver conformance suite (`backup_core::conformance::driver`) on [`RedisDriver`],
//! against the real Redis 7 `scripts/services.sh` starts (DBSEAL_TEST_REDIS_URL), filled
//! with `redis-cli --pipe` and fingerprinted with `redis-cli` (a Lua script on the
//! server), Redis's own client.
//!
//! A Redis backup holds the whole server; the fixture keeps its data sets in databases
//! 1 (the source, variant 0), 2 (variant 1, the occupied target) and 3 (the fresh
//! target), and restores select database 1 with `--db 1:DEST`.

use std::io::Write;
use std::process::{Command, Stdio};

use backup_core::conformance::driver::{self, DriverFixture, Seeded};
use backup_core::{DriverOptions, RestoreTarget};
use backup_redis::RedisDriver;

/// The cases share the server's 16 databases (the sink's staging picks free ones): one
/// at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SOURCE_DB: u32 = 1;
const FRESH_DB: u32 = 3;

fn server_url() -> String {
    std::env::var("DBSEAL_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("DBSEAL_TEST_REDIS_URL is not set: run scripts/test.sh (or `scripts/services.sh start DIR redis` and source DIR/env.sh)")
    })
}

/// redis-cli on database `db` of the test server with `args`, `input` on stdin.
fn redis_cli(db: u32, args: &[&str], input: &[u8]) -> String {
    let url = server_url();
    let mut child = Command::new("redis-cli")
        .args(["-u", &url, "-n", &db.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli must be installed (redis-tools)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let piped_ok = !args.contains(&"--pipe") || stdout.contains("errors: 0,");
    assert!(
        out.status.success() && piped_ok && !stdout.starts_with("ERR"),
        "redis-cli {args:?} on db {db} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One command in the Redis protocol.
fn resp(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A deterministic pseudo-random hex string for `(variant, n)` (does not compress much).
fn hex_value(variant: u32, n: u64, len: usize) -> String {
    let mut state = (variant as u64) << 40 ^ n ^ 0x9e37_79b9_7f4a_7c15;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        state = state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (state as u128).wrapping_mul((state ^ 0xe703_7ed1_a0b4_28db) as u128);
        s.push_str(&format!("{:016x}", ((t >> 64) ^ t) as u64));
    }
    s.truncate(len);
    s
}

/// Strings (some with a TTL), hashes, lists, sets and sorted sets: about 1 MB of RDB.
fn data_set(variant: u32) -> Vec<u8> {
    let mut out = Vec::new();
    resp(&mut out, &[b"FLUSHDB"]);
    for i in 0..8000u64 {
        let key = format!("str:{i}");
        let value = hex_value(variant, i, 96);
        if i % 10 == 0 {
            resp(
                &mut out,
                &[b"SET", key.as_bytes(), value.as_bytes(), b"EX", b"86400"],
            );
        } else {
            resp(&mut out, &[b"SET", key.as_bytes(), value.as_bytes()]);
        }
    }
    for i in 0..300u64 {
        let base = 100_000 + i * 100;
        for j in 0..12u64 {
            let (field, value) = (format!("f{j}"), hex_value(variant, base + j, 24));
            resp(
                &mut out,
                &[
                    b"HSET",
                    format!("hash:{i}").as_bytes(),
                    field.as_bytes(),
                    value.as_bytes(),
                ],
            );
            let member = hex_value(variant, base + 50 + j, 16);
            resp(
                &mut out,
                &[b"RPUSH", format!("list:{i}").as_bytes(), member.as_bytes()],
            );
            resp(
                &mut out,
                &[b"SADD", format!("set:{i}").as_bytes(), member.as_bytes()],
            );
            let score = (j * 3 + variant as u64).to_string();
            resp(
                &mut out,
                &[
                    b"ZADD",
                    format!("zset:{i}").as_bytes(),
                    score.as_bytes(),
                    member.as_bytes(),
                ],
            );
        }
    }
    out
}

/// Every key of the database, sorted, with its type, whether it has a TTL and a digest
/// of its value (members sorted where Redis does not keep an order).
const FINGERPRINT_LUA: &str = r#"
local keys = redis.call('KEYS', '*')
table.sort(keys)
local lines = {}
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  local v = '?'
  if t == 'string' then
    v = redis.call('GET', k)
  elseif t == 'list' then
    v = table.concat(redis.call('LRANGE', k, 0, -1), '\0')
  elseif t == 'set' then
    local m = redis.call('SMEMBERS', k); table.sort(m); v = table.concat(m, '\0')
  elseif t == 'zset' then
    v = table.concat(redis.call('ZRANGE', k, 0, -1, 'WITHSCORES'), '\0')
  elseif t == 'hash' then
    local h = redis.call('HGETALL', k); local p = {}
    for i = 1, #h, 2 do p[#p + 1] = h[i] .. '=' .. h[i + 1] end
    table.sort(p); v = table.concat(p, '\0')
  end
  local ttl = redis.call('PTTL', k)
  if ttl > 0 then ttl = 'ttl' end
  lines[#lines + 1] = k .. ' ' .. t .. ' ' .. tostring(ttl) .. ' ' .. redis.sha1hex(v)
end
return {#keys, redis.sha1hex(table.concat(lines, '\n'))}
"#;

/// The database a target's first `--db SRC[:DEST]` entry writes to.
fn dest_db(target: &RestoreTarget) -> u32 {
    let entry = target.db.first().expect("a --db entry");
    let dest = entry.rsplit(':').next().unwrap();
    dest.parse().expect("a database index")
}

fn target(db: u32) -> RestoreTarget {
    RestoreTarget {
        url: Some(server_url()),
        db: vec![if db == SOURCE_DB {
            SOURCE_DB.to_string()
        } else {
            format!("{SOURCE_DB}:{db}")
        }],
        ..Default::default()
    }
}

struct RedisFixture;

#[async_trait::async_trait]
impl DriverFixture for RedisFixture {
    async fn seed(&self, variant: u32) -> Seeded {
        let db = SOURCE_DB + variant;
        redis_cli(db, &["--pipe"], &data_set(variant));
        let mut options = DriverOptions::new();
        options.set("url", server_url());
        Seeded {
            options,
            target: target(db),
        }
    }

    async fn fresh_target(&self) -> RestoreTarget {
        redis_cli(FRESH_DB, &["FLUSHDB"], b"");
        target(FRESH_DB)
    }

    async fn fingerprint(&self, target: &RestoreTarget) -> String {
        redis_cli(dest_db(target), &["EVAL", FINGERPRINT_LUA, "0"], b"")
    }

    async fn verify_url(&self) -> Option<String> {
        Some(server_url())
    }

    async fn cleanup(&self) {
        for db in [SOURCE_DB, SOURCE_DB + 1, FRESH_DB] {
            redis_cli(db, &["FLUSHDB"], b"");
        }
    }
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let _one_at_a_time = SERIAL.lock().await;
            driver::$case(&RedisDriver, &RedisFixture).await;
        }
    )*};
}

cases!(
    round_trip,
    non_empty_target_is_refused,
    corrupted_artifact,
    truncated_artifact,
    wrong_key,
    cancelled_restore,
    cancelled_backup,
    verify_restore,
);
