//! Backup sets of PostgreSQL + Redis round trip; a production restore without
//! confirmation is refused with the how-to; the safety backup exists and restores.
//! Real servers: DBSEAL_TEST_PG_URL/PASSWORD/BIN and DBSEAL_TEST_REDIS_URL (from
//! `scripts/services.sh start DIR postgres redis`, as scripts/test.sh does).

mod ops_common;

use std::process::Command;

use ops_common::*;

/// The test Redis server, one database index of it.
struct Redis {
    host: String,
    port: u16,
    db: u32,
}

impl Redis {
    fn from_env(db: u32) -> Redis {
        let url = url::Url::parse(&need("DBSEAL_TEST_REDIS_URL"))
            .expect("DBSEAL_TEST_REDIS_URL is a URL");
        Redis {
            host: url.host_str().unwrap().to_string(),
            port: url.port().unwrap_or(6379),
            db,
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-n",
                &self.db.to_string(),
            ])
            .args(args)
            .output()
            .expect("run redis-cli (apt-get install redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn url(&self) -> String {
        format!("redis://{}:{}/{}", self.host, self.port, self.db)
    }

    /// How many databases the server has (`CONFIG GET databases`).
    fn databases(&self) -> u32 {
        self.cli(&["CONFIG", "GET", "databases"])
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A fingerprint of the database: every key with its type and value.
    fn snapshot(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.cli(&["--scan"]).lines().map(str::to_string).collect();
        keys.sort();
        keys.iter()
            .map(|k| {
                let t = self.cli(&["TYPE", k]);
                let v = match t.as_str() {
                    "string" => self.cli(&["GET", k]),
                    "hash" => {
                        let mut f: Vec<String> = self
                            .cli(&["HGETALL", k])
                            .lines()
                            .map(str::to_string)
                            .collect();
                        f.sort();
                        f.join(",")
                    }
                    "list" => self.cli(&["LRANGE", k, "0", "-1"]).replace('\n', ","),
                    _ => String::new(),
                };
                let ttl = self.cli(&["TTL", k]);
                format!("{k} {t} {v} ttl>0:{}", ttl.parse::<i64>().unwrap_or(-1) > 0)
            })
            .collect()
    }
}

fn fill_pg(pg: &Pg, db: &str, tag: &str, rows: u32) {
    pg.sql(
        db,
        &format!(
            "DROP TABLE IF EXISTS items; CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL); \
             INSERT INTO items SELECT g, '{tag}-' || g FROM generate_series(1, {rows}) g;"
        ),
    );
}

fn pg_fingerprint(pg: &Pg, db: &str) -> String {
    pg.sql(
        db,
        "SELECT count(*) || ':' || coalesce(md5(string_agg(id || '=' || v, ',' ORDER BY id)), '') FROM items",
    )
}

fn fill_redis(r: &Redis, tag: &str) {
    r.cli(&["FLUSHDB"]);
    for i in 0..20 {
        r.cli(&["SET", &format!("{tag}:k{i}"), &format!("value-{tag}-{i}")]);
    }
    r.cli(&["HSET", &format!("{tag}:h"), "a", "1", "b", "2"]);
    r.cli(&["RPUSH", &format!("{tag}:l"), "x", "y", "z"]);
    r.cli(&["SET", &format!("{tag}:ttl"), "expiring", "EX", "3600"]);
}

#[test]
fn backup_set_of_postgres_and_redis_round_trips() {
    let pg = Pg::from_env();
    let redis = Redis::from_env(13);
    let db = pg.database("ops_set");
    let w = Work::new();
    fill_pg(&pg, &db.name, "orig", 1000);
    fill_redis(&redis, "orig");
    let (pg_before, redis_before) = (pg_fingerprint(&pg, &db.name), redis.snapshot());
    w.write(
        "dbseal.toml",
        &format!(
            r#"
[store]
url = "{store}"
[encryption]
recipients = ["{r}"]
identity = "identity.txt"
[datastores.pg]
kind = "postgres"
url = "{pg_url}"
environment = "production"
labels = {{ team = "ops" }}
[datastores.cache]
kind = "redis"
url = "{redis_url}"
environment = "staging"
"#,
            store = w.store().display(),
            r = w.recipient,
            pg_url = pg.config_url(&db.name),
            redis_url = redis.url(),
        ),
    );
    let env = [("PG_PASSWORD", pg.password.as_str())];

    // One backup set of both.
    let out = w.run_env(&["--json", "backup", "--all"], &env);
    let set = json(&out);
    assert!(out.status.success(), "{set}\n{}", stderr(&out));
    assert_eq!(set["ok"], true);
    let set_id = set["set_id"].as_str().unwrap().to_string();
    let members = set["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let names: Vec<&str> = members
        .iter()
        .map(|m| m["datastore"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cache", "pg"]);
    assert!(members
        .iter()
        .all(|m| m["ok"] == true && m["backup_id"].is_string()));
    let on_disk: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.store().join("_sets").join(&set_id).join("set.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["members"], set["members"]);
    // The members are ordinary backups with the set's label (the set folder is not a datastore).
    let list = json(&w.run_env(&["--json", "list"], &env));
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    for m in list.as_array().unwrap() {
        assert_eq!(m["labels"]["dbseal.set"], set_id.as_str());
    }
    let pg_manifest = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["datastore"]["name"] == "pg")
        .unwrap();
    assert_eq!(pg_manifest["datastore"]["kind"], "postgres");
    assert_eq!(pg_manifest["labels"]["environment"], "production");
    assert_eq!(pg_manifest["labels"]["team"], "ops");
    assert_eq!(
        pg_manifest["contents"]["counts"]["tables"]["public.items"],
        1000
    );
    assert!(
        !serde_json::to_string(&list).unwrap().contains(&pg.password),
        "no password in manifests"
    );

    // Both change.
    fill_pg(&pg, &db.name, "changed", 10);
    fill_redis(&redis, "changed");

    // Restoring the set touches production: refused without confirmation, nothing done.
    let err = fails_with(
        &w.run_env(
            &["restore", "--set", &set_id, "--replace", "--db", "13"],
            &env,
        ),
        8,
    );
    assert!(err.contains("--confirm-production pg"), "{err}");
    assert_eq!(pg_fingerprint(&pg, &db.name).split(':').next(), Some("10"));
    assert!(redis.cli(&["GET", "changed:k1"]).contains("changed"));
    assert_eq!(
        json(&w.run_env(&["--json", "list"], &env))
            .as_array()
            .unwrap()
            .len(),
        2,
        "no safety backup either"
    );

    // A dry run plans, and changes nothing.
    let plan = ok(&w.run_env(
        &[
            "restore",
            "--set",
            &set_id,
            "--replace",
            "--db",
            "13",
            "--confirm-production",
            "pg",
            "--dry-run",
        ],
        &env,
    ));
    assert!(
        plan.contains("would restore backup set")
            && plan.contains("safety")
            && plan.contains("nothing was changed"),
        "{plan}"
    );
    assert!(!plan.contains(&pg.password), "{plan}");
    assert_eq!(pg_fingerprint(&pg, &db.name).split(':').next(), Some("10"));

    // Confirmed: every member back to its backed-up state, each after a safety backup.
    let out = w.run_env(
        &[
            "--json",
            "restore",
            "--set",
            &set_id,
            "--replace",
            "--db",
            "13",
            "--confirm-production",
            "pg",
        ],
        &env,
    );
    let restored = json(&out);
    assert!(out.status.success(), "{restored}\n{}", stderr(&out));
    assert_eq!(pg_fingerprint(&pg, &db.name), pg_before);
    assert_eq!(redis.snapshot(), redis_before);
    let safety: Vec<&str> = restored["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["safety_backup"]
                .as_str()
                .expect("a safety backup per member")
        })
        .collect();
    assert_eq!(safety.len(), 2);
    let list = json(&w.run_env(&["--json", "list"], &env));
    assert_eq!(list.as_array().unwrap().len(), 4);
    for id in &safety {
        let m = list
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["backup_id"] == *id)
            .expect("safety backup listed");
        assert!(
            m["labels"]["dbseal.safety-backup-before-restore-of"].is_string(),
            "{m}"
        );
    }
    assert!(!stdout(&out).contains(&pg.password) && !stderr(&out).contains(&pg.password));
    redis.cli(&["FLUSHDB"]);
}

#[test]
fn production_restore_needs_confirmation_and_the_safety_backup_restores() {
    let pg = Pg::from_env();
    let db = pg.database("ops_prod");
    let w = Work::new();
    fill_pg(&pg, &db.name, "a", 100);
    let state_a = pg_fingerprint(&pg, &db.name);
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n[encryption]\nrecipients = [\"{}\"]\nidentity = \"identity.txt\"\n[datastores.prod]\nkind = \"postgres\"\nurl = \"{}\"\nenvironment = \"production\"\n",
            w.store().display(),
            w.recipient,
            pg.config_url(&db.name)
        ),
    );
    let env = [
        ("PG_PASSWORD", pg.password.as_str()),
        ("PGPASSWORD", pg.password.as_str()),
    ];
    let backup = json(&w.run_env(&["--json", "backup", "--datastore", "prod"], &env));
    let id_a = backup["backup_id"].as_str().unwrap().to_string();

    // State B: other rows and an extra table.
    fill_pg(&pg, &db.name, "b", 7);
    pg.sql(
        &db.name,
        "CREATE TABLE extra (x int); INSERT INTO extra VALUES (42);",
    );
    let state_b = pg_fingerprint(&pg, &db.name);
    assert_ne!(state_a, state_b);

    // Refused without confirmation, with the how-to, whether named or by URL.
    let err = fails_with(
        &w.run_env(
            &["restore", &id_a, "--datastore", "prod", "--replace"],
            &env,
        ),
        8,
    );
    assert!(
        err.contains("production") && err.contains("--confirm-production prod"),
        "{err}"
    );
    let same_server = format!("postgresql://postgres@localhost:{}/{}", pg.port, db.name);
    let err = fails_with(
        &w.run_env(
            &["restore", &id_a, "--url", &same_server, "--replace"],
            &env,
        ),
        8,
    );
    assert!(err.contains("--confirm-production prod"), "{err}");
    let err = fails_with(
        &w.run_env(
            &[
                "restore",
                &id_a,
                "--datastore",
                "prod",
                "--replace",
                "--confirm-production",
                "staging",
            ],
            &env,
        ),
        8,
    );
    assert!(err.contains("names staging instead"), "{err}");
    assert_eq!(
        pg_fingerprint(&pg, &db.name),
        state_b,
        "nothing was touched"
    );
    assert_eq!(
        json(&w.run_env(&["--json", "list"], &env))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Confirmed: a safety backup of state B first, then state A.
    let out = w.run_env(
        &[
            "--json",
            "restore",
            &id_a,
            "--datastore",
            "prod",
            "--replace",
            "--confirm-production",
            "prod",
        ],
        &env,
    );
    let r = json(&out);
    assert!(out.status.success(), "{r}\n{}", stderr(&out));
    assert_eq!(pg_fingerprint(&pg, &db.name), state_a);
    let safety = r["safety_backup"]
        .as_str()
        .expect("safety backup id")
        .to_string();
    assert!(
        stderr(&out).contains(&format!("safety backup {safety}")),
        "{}",
        stderr(&out)
    );
    let m = json(&w.run_env(&["--json", "show", &safety], &env));
    assert_eq!(m["datastore"]["name"], "prod");
    assert_eq!(
        m["labels"]["dbseal.safety-backup-before-restore-of"],
        id_a.as_str()
    );
    assert_eq!(m["contents"]["counts"]["tables"]["public.extra"], 1);
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.store().join("prod").join(&safety).join("verified.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["ok"], true);

    // The safety backup restores: state B again (the extra table included).
    ok(&w.run_env(
        &[
            "restore",
            &safety,
            "--datastore",
            "prod",
            "--replace",
            "--confirm-production",
            "prod",
            "--no-safety-backup",
        ],
        &env,
    ));
    assert_eq!(pg_fingerprint(&pg, &db.name), state_b);
    assert_eq!(pg.sql(&db.name, "SELECT x FROM extra"), "42");
    assert_eq!(
        json(&w.run_env(&["--json", "list"], &env))
            .as_array()
            .unwrap()
            .len(),
        2,
        "--no-safety-backup took none"
    );
}

#[test]
fn a_failed_member_fails_the_set_and_the_others_remain_backups() {
    let pg = Pg::from_env();
    let db = pg.database("ops_fail");
    let w = Work::new();
    fill_pg(&pg, &db.name, "x", 5);
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n[encryption]\nrecipients = [\"{}\"]\n[datastores.pg]\nkind = \"postgres\"\nurl = \"{}\"\n[datastores.down]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n",
            w.store().display(),
            w.recipient,
            pg.config_url(&db.name)
        ),
    );
    let env = [("PG_PASSWORD", pg.password.as_str())];
    let out = w.run_env(&["--json", "backup", "--all"], &env);
    fails_with(&out, 10);
    let set = json(&out);
    assert_eq!(set["ok"], false);
    let down = set["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["datastore"] == "down")
        .unwrap();
    assert_eq!(down["ok"], false);
    assert!(
        down["error"].as_str().unwrap().contains("127.0.0.1:1"),
        "{down}"
    );
    let good = set["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["datastore"] == "pg")
        .unwrap();
    let id = good["backup_id"]
        .as_str()
        .expect("the good member committed");
    // The set manifest is there, saying it failed; the good member is an ordinary backup.
    let set_id = set["set_id"].as_str().unwrap();
    assert!(w
        .store()
        .join("_sets")
        .join(set_id)
        .join("set.json")
        .is_file());
    ok(&w.run_env(&["verify", id], &env));
    assert!(
        stderr(&out).contains("1 of 2 members failed"),
        "{}",
        stderr(&out)
    );
    // A failed set is not restored as a whole.
    let err = fails_with(
        &w.run_env(&["restore", "--set", set_id, "--replace"], &env),
        8,
    );
    assert!(err.contains("incomplete") && err.contains("down"), "{err}");
}

/// The Bolt test server (ArcadeDB) and one database on it, dropped on drop.
struct Graph {
    http: String,
    password: String,
    bolt: String,
    name: String,
}

impl Graph {
    fn new(prefix: &str) -> Graph {
        let g = Graph {
            http: need("DBSEAL_TEST_ARCADE_HTTP"),
            password: need("DBSEAL_TEST_BOLT_PASSWORD"),
            bolt: need("DBSEAL_TEST_BOLT_URL"),
            name: format!("{prefix}{}x{}", std::process::id(), rand_suffix()),
        };
        g.server(&format!("create database {}", g.name));
        g
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-u",
                &format!("root:{}", self.password),
                "-X",
                "POST",
            ])
            .arg(format!("{}{path}", self.http))
            .args(["-d", &body.to_string()])
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    fn server(&self, command: &str) {
        self.post("/api/v1/server", &serde_json::json!({ "command": command }));
    }

    fn cypher(&self, command: &str) -> serde_json::Value {
        self.post(
            &format!("/api/v1/command/{}", self.name),
            &serde_json::json!({ "language": "cypher", "command": command }),
        )["result"]
            .clone()
    }

    /// Labels and counts of nodes, and relationship count.
    fn fingerprint(&self) -> String {
        let nodes = self.cypher("MATCH (n) RETURN labels(n) AS l, count(n) AS c ORDER BY c");
        let rels = self.cypher("MATCH ()-[r]->() RETURN type(r) AS t, count(r) AS c");
        format!("{nodes} {rels}")
    }

    fn config_url(&self) -> String {
        let u = url::Url::parse(&self.bolt).unwrap();
        format!(
            "bolt://root:${{BOLT_PASSWORD}}@{}:{}/{}",
            u.host_str().unwrap(),
            u.port().unwrap_or(7687),
            self.name
        )
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args([
                "-sS",
                "-u",
                &format!("root:{}", self.password),
                "-X",
                "POST",
            ])
            .arg(format!("{}/api/v1/server", self.http))
            .args([
                "-d",
                &serde_json::json!({ "command": format!("drop database {}", self.name) })
                    .to_string(),
            ])
            .output();
    }
}

#[test]
fn backup_set_with_neo4j_postgres_and_redis_round_trips() {
    let pg = Pg::from_env();
    let redis = Redis::from_env(14);
    let graph = Graph::new("opsset");
    let db = pg.database("ops_set3");
    let w = Work::new();
    fill_pg(&pg, &db.name, "orig", 200);
    fill_redis(&redis, "orig");
    graph.cypher("CREATE (a:Person {name: 'ada'})-[:KNOWS {since: 1843}]->(b:Person {name: 'charles'}), (:City {name: 'london'})");
    let before = (
        pg_fingerprint(&pg, &db.name),
        redis.snapshot(),
        graph.fingerprint(),
    );
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n[encryption]\nrecipients = [\"{}\"]\nidentity = \"identity.txt\"\n\
             [datastores.pg]\nkind = \"postgres\"\nurl = \"{}\"\n\
             [datastores.cache]\nkind = \"redis\"\nurl = \"{}\"\n\
             [datastores.graph]\nkind = \"neo4j\"\nurl = \"{}\"\n",
            w.store().display(),
            w.recipient,
            pg.config_url(&db.name),
            redis.url(),
            graph.config_url()
        ),
    );
    let env = [
        ("PG_PASSWORD", pg.password.as_str()),
        ("BOLT_PASSWORD", graph.password.as_str()),
    ];
    let out = w.run_env(&["--json", "backup", "--all", "--jobs", "3"], &env);
    let set = json(&out);
    assert!(out.status.success(), "{set}\n{}", stderr(&out));
    let set_id = set["set_id"].as_str().unwrap().to_string();
    let kinds: Vec<&str> = set["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["redis", "neo4j", "postgres"]);
    // Every member verifies at content level (the configured identity).
    ok(&w.run_env(&["verify", "--latest"], &env));

    fill_pg(&pg, &db.name, "changed", 3);
    fill_redis(&redis, "changed");
    graph.cypher("MATCH (n) DETACH DELETE n");
    graph.cypher("CREATE (:Junk {x: 1})");
    assert_ne!(graph.fingerprint(), before.2);

    let out = w.run_env(
        &["restore", "--set", &set_id, "--replace", "--db", "14"],
        &env,
    );
    ok(&out);
    assert_eq!(pg_fingerprint(&pg, &db.name), before.0);
    assert_eq!(redis.snapshot(), before.1);
    assert_eq!(graph.fingerprint(), before.2);
    redis.cli(&["FLUSHDB"]);
}

/// `dbseal drill`: the newest backup restored into the scratch server and verified at
/// level 3 (scratch database dropped after), RTO and RPO measured and compared with
/// the datastore's objectives; a signed drill record, metrics and an HTML report; a
/// missed objective is exit 9, a datastore without a scratch target exit 2.
#[test]
fn drill_restores_verifies_and_measures_rto_and_rpo() {
    let pg = Pg::from_env();
    let db = pg.database("ops_drill");
    let w = Work::new();
    fill_pg(&pg, &db.name, "drill", 2000);
    let config = |rto: &str, rpo: &str| {
        format!(
            "{}{}rto = \"{rto}\"\nrpo = \"{rpo}\"\n",
            keyed_store(&w),
            scratch_datastore(
                "pg",
                "postgres",
                &pg.config_url(&db.name),
                &pg.config_url("postgres")
            ),
        )
    };
    w.write("dbseal.toml", &config("1h", "1h"));
    let env = [("PG_PASSWORD", pg.password.as_str())];
    let backup = json(&w.run_env(&["--json", "backup", "--datastore", "pg"], &env));
    let id = backup["backup_id"].as_str().unwrap().to_string();
    let scratch_dbs = || {
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbseal_verify_%'",
        )
    };
    let before = scratch_dbs();

    let (metrics, report) = (w.path("drill.prom"), w.path("drill.html"));
    let out = w.run_env(
        &[
            "--json",
            "drill",
            "--metrics-file",
            metrics.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &env,
    );
    let doc = json(&out);
    assert!(out.status.success(), "{doc}\n{}", stderr(&out));
    let d = &doc[0];
    assert_eq!(
        (d["datastore"].as_str(), d["backup_id"].as_str()),
        (Some("pg"), Some(id.as_str()))
    );
    assert_eq!(
        (d["verified"].as_bool(), d["passed"].as_bool()),
        (Some(true), Some(true)),
        "{d}"
    );
    assert_eq!(phase_names(d), ["stored", "content", "load", "verify"]);
    // The restore itself (load) took time of its own, apart from the comparison.
    assert!(d["phases"][2][1].as_f64().unwrap() > 0.0, "{d}");
    let phase_sum: f64 = d["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .sum();
    let rto = d["rto_seconds"].as_f64().unwrap();
    assert!(
        rto > 0.0 && rto >= phase_sum,
        "RTO {rto} covers its levels {phase_sum}"
    );
    let rpo = d["rpo_seconds"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&rpo), "RPO {rpo}");
    assert_eq!(d["rto_objective_seconds"], 3600.0);
    // The scratch database is gone again; the level-3 verification was recorded.
    assert_eq!(scratch_dbs(), before);
    let st = json(&w.run_env(&["--json", "status"], &env));
    assert_eq!(
        st["datastores"][0]["last_verification"]["level"], "restore",
        "{st}"
    );
    assert_eq!(
        st["datastores"][0]["last_verification"]["backup_id"],
        id.as_str()
    );
    let records = files(&w.store().join("_records/pg/drills"));
    assert_eq!(records.len(), 2, "a record and its signature: {records:?}");
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("dbseal_drill_passed{datastore=\"pg\"} 1.000"),
        "{prom}"
    );
    assert!(
        prom.contains("dbseal_drill_rto_objective_seconds{datastore=\"pg\"} 3600.000"),
        "{prom}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains(&id) && html.contains("<svg"),
        "{html}"
    );
    assert!(html.contains("pg: 1 drills over the past year"), "{html}");
    assert!(
        !html.contains("src=\"http") && !html.contains("<script"),
        "self-contained"
    );
    // Opened in a real browser: the drill table as Chromium parsed it (its DOM has the
    // <tbody> the parser inserts), with this drill's row and the charts.
    let dom = browser_dom(&report);
    assert!(dom.contains("<tbody><tr><th>Datastore</th>"), "{dom}");
    assert!(
        dom.contains(&format!("<tr><td>pg</td><td><code>{id}</code></td>"))
            && dom.contains("<td class=\"passed\">passed</td></tr>"),
        "{dom}"
    );
    assert!(dom.contains("<svg"), "{dom}");

    // A missed RPO objective: exit 9 naming it; the drill record says so.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    w.write("dbseal.toml", &config("1h", "1s"));
    let out = w.run_env(
        &["--json", "drill", "--report", report.to_str().unwrap()],
        &env,
    );
    let err = fails_with(&out, 9);
    assert!(
        err.contains("`pg`: RPO") && err.contains("over its objective 1s"),
        "{err}"
    );
    assert_eq!(json(&out)[0]["verified"], true);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("pg: 2 drills over the past year") && html.contains("FAILED: RPO"),
        "{html}"
    );
    assert_eq!(files(&w.store().join("_records/pg/drills")).len(), 4);
    // status's KPIs count both drills and show the last one against its objectives.
    let out = w.run_env(&["--json", "status"], &env);
    let k = &json(&out)["datastores"][0]["kpis"];
    assert_eq!(
        (k["drills_passed"].as_u64(), k["drills_failed"].as_u64()),
        (Some(1), Some(1)),
        "{k}"
    );
    assert_eq!(
        (
            &k["last_drill"]["passed"],
            &k["last_drill"]["rpo_objective_seconds"]
        ),
        (&serde_json::json!(false), &serde_json::json!(1.0))
    );
    let text = stdout(&w.run_env(&["status"], &env));
    assert!(
        text.contains("drills: 1 passed / 1 failed; last FAILED"),
        "{text}"
    );

    // Without a scratch target there is nothing to restore into: a config error.
    w.write(
        "dbseal.toml",
        &config("1h", "1h").replace("scratch_url", "# scratch_url"),
    );
    let err = fails_with(&w.run_env(&["drill"], &env), 2);
    assert!(
        err.contains("no scratch target") && err.contains("[datastores.pg]"),
        "{err}"
    );
}

/// `dbseal drill` of Redis, Neo4j (ArcadeDB) and TimescaleDB datastores: each newest
/// backup restored into its scratch target and verified at level 3, RTO and RPO
/// measured, a signed record per drill; `rto = "0s"` fails each with exit 9; the
/// scratch targets hold nothing afterwards, either way. TimescaleDB joins only where
/// the server has the extension (else the part is skipped with a message).
#[test]
fn drills_of_redis_neo4j_and_timescale_measure_record_and_leave_no_scratch_data() {
    let pg = Pg::from_env();
    let redis = Redis::from_env(11);
    fill_redis(&redis, "drill");
    let graph = Graph::new("drillsrc");
    graph.cypher("CREATE (a:Person {name: 'ada', score: 0.1})-[:KNOWS {since: 1843}]->(b:Person {name: 'charles'})");
    // ArcadeDB work-around: no CREATE DATABASE over Bolt, so the scratch database is
    // made beforehand and named in scratch_url (Neo4j Enterprise: dbseal makes one).
    let scratch_graph = Graph::new("drillscratch");
    let ts_db = pg.database("ops_drill_ts");
    let timescale = pg.sql(
        "postgres",
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'",
    ) == "1"
        && pg
            .sql("postgres", "SHOW shared_preload_libraries")
            .contains("timescaledb");
    if timescale {
        pg.sql(
            &ts_db.name,
            "CREATE EXTENSION IF NOT EXISTS timescaledb; \
             CREATE TABLE m (t timestamptz NOT NULL, v float8); \
             SELECT create_hypertable('m', 't'); \
             INSERT INTO m SELECT now() - g * interval '1 minute', g FROM generate_series(1, 500) g",
        );
    } else {
        eprintln!("SKIPPED (TimescaleDB part): TimescaleDB is not installed on this machine (no package registry ships it; build it from source and scripts/services.sh preloads it)");
    }
    let w = Work::new();
    let config = |rto: &str| {
        let objectives = format!("rto = \"{rto}\"\nrpo = \"1h\"\n");
        let redis_scratch = format!("redis://{}:{}/0", redis.host, redis.port);
        let mut text = format!(
            "{}{}{objectives}{}{objectives}",
            keyed_store(&w),
            scratch_datastore("cache", "redis", &redis.url(), &redis_scratch),
            scratch_datastore(
                "graph",
                "neo4j",
                &graph.config_url(),
                &scratch_graph.config_url()
            ),
        );
        if timescale {
            text.push_str(&format!(
                "[datastores.ts]\nkind = \"timescale\"\nurl = \"{}\"\nscratch_url = \"{}\"\nrto = \"{rto}\"\nrpo = \"1h\"\n",
                pg.config_url(&ts_db.name),
                pg.config_url("postgres"),
            ));
        }
        text
    };
    let names: &[&str] = if timescale {
        &["cache", "graph", "ts"]
    } else {
        &["cache", "graph"]
    };
    let env = [
        ("PG_PASSWORD", pg.password.as_str()),
        ("BOLT_PASSWORD", graph.password.as_str()),
    ];
    w.write("dbseal.toml", &config("1h"));
    for name in names {
        ok(&w.run_env(&["backup", "--datastore", name], &env));
    }
    let databases = redis.databases();
    let redis_sizes = || -> Vec<String> {
        (0..databases)
            // Databases 11–14 belong to this file's tests, which run concurrently; the
            // drill's scratch is the highest empty database, above them.
            .filter(|db| *db > 14)
            .map(|db| {
                Redis {
                    host: redis.host.clone(),
                    port: redis.port,
                    db,
                }
                .cli(&["DBSIZE"])
            })
            .collect()
    };
    let scratch_before = (redis_sizes(), scratch_graph.fingerprint());

    let out = w.run_env(&["--json", "drill"], &env);
    let doc = json(&out);
    assert!(out.status.success(), "{doc}\n{}", stderr(&out));
    for name in names {
        let d = doc
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["datastore"] == *name)
            .unwrap_or_else(|| panic!("no drill of {name}: {doc}"));
        assert_eq!(
            (d["verified"].as_bool(), d["passed"].as_bool()),
            (Some(true), Some(true)),
            "{d}"
        );
        assert_eq!(
            phase_names(d),
            ["stored", "content", "load", "verify"],
            "{d}"
        );
        assert!(d["rto_seconds"].as_f64().unwrap() > 0.0, "{d}");
        let rpo = d["rpo_seconds"].as_f64().unwrap();
        assert!((0.0..600.0).contains(&rpo), "{d}");
        assert_eq!(d["rto_objective_seconds"], 3600.0, "{d}");
        let records = files(&w.store().join(format!("_records/{name}/drills")));
        assert_eq!(records.len(), 2, "a record and its signature: {records:?}");
    }
    assert_eq!(
        (redis_sizes(), scratch_graph.fingerprint()),
        scratch_before,
        "the scratch targets are empty again"
    );

    // An objective no drill meets (`--all`: every datastore, as naming none does):
    // exit 9 naming each datastore; recorded; clean.
    w.write("dbseal.toml", &config("0s"));
    let out = w.run_env(&["--json", "drill", "--all"], &env);
    let err = fails_with(&out, 9);
    for name in names {
        assert!(
            err.contains(&format!("`{name}`: RTO")) && err.contains("over its objective 0s"),
            "{err}"
        );
        let records = files(&w.store().join(format!("_records/{name}/drills")));
        assert_eq!(records.len(), 4, "{records:?}");
    }
    assert!(json(&out)
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["verified"] == true && d["passed"] == false));
    assert_eq!(
        (redis_sizes(), scratch_graph.fingerprint()),
        scratch_before,
        "the scratch targets are empty again"
    );
    redis.cli(&["FLUSHDB"]);
}

/// SIGINT in the middle of a drill's restore: the scratch database is rolled back
/// (dropped), no drill record is written, exit 130.
#[test]
fn an_interrupted_drill_leaves_no_scratch_database_and_no_record() {
    let pg = Pg::from_env();
    let db = pg.database("ops_drill_int");
    let w = Work::new();
    fill_pg(&pg, &db.name, "interrupted", 1_500_000);
    w.write(
        "dbseal.toml",
        &(keyed_store(&w)
            + &scratch_datastore(
                "pg",
                "postgres",
                &pg.config_url(&db.name),
                &pg.config_url("postgres"),
            )),
    );
    let env = [("PG_PASSWORD", pg.password.as_str())];
    ok(&w.run_env(&["backup", "--datastore", "pg"], &env));
    let scratch = || {
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbseal_verify_%'",
        )
        .parse::<u32>()
        .unwrap()
    };
    let before = scratch();
    // Interrupted once the scratch database exists: the restore is under way.
    let out = drill_interrupted_when(&w, &env, || scratch() != before);
    assert!(
        stderr(&out).contains("interrupted by SIGINT"),
        "{}",
        stderr(&out)
    );
    assert_eq!(scratch(), before, "the scratch database is gone");
    assert!(
        files(&w.store().join("_records/pg/drills")).is_empty(),
        "an interrupted drill is no drill"
    );
}

/// SIGINT in the middle of a Redis drill's scratch restore: exit 130, the scratch
/// database flushed again, no drill record.
#[test]
fn an_interrupted_redis_drill_flushes_its_scratch_database() {
    let redis = Redis::from_env(12);
    redis.cli(&["FLUSHDB"]);
    redis.cli(&[
        "EVAL",
        "for i=1,400000 do redis.call('SET','drill:'..i,'value-'..i) end return 1",
        "0",
    ]);
    let w = Work::new();
    let server = format!("redis://{}:{}/0", redis.host, redis.port);
    w.write(
        "dbseal.toml",
        &(keyed_store(&w) + &scratch_datastore("cache", "redis", &redis.url(), &server)),
    );
    ok(&w.run(&["backup", "--datastore", "cache"]));
    // The scratch database the drill will take: the highest empty one.
    let databases = redis.databases();
    let size = |db: u32| -> u64 {
        Redis {
            host: redis.host.clone(),
            port: redis.port,
            db,
        }
        .cli(&["DBSIZE"])
        .parse()
        .unwrap()
    };
    let scratch = (0..databases).rev().find(|db| size(*db) == 0).unwrap();
    drill_interrupted_when(&w, &[], || size(scratch) > 0);
    assert_eq!(
        size(scratch),
        0,
        "the scratch database db{scratch} is flushed again"
    );
    assert!(files(&w.store().join("_records/cache/drills")).is_empty());
    redis.cli(&["FLUSHDB"]);
}

/// SIGINT in the middle of a Neo4j drill's scratch restore (ArcadeDB): exit 130, what
/// was imported into the scratch database removed again, no drill record.
#[test]
fn an_interrupted_neo4j_drill_empties_its_scratch_database() {
    let graph = Graph::new("drillbig");
    graph.cypher("UNWIND range(1, 60000) AS i CREATE (:Item {i: i, name: 'item-' + toString(i)})");
    // ArcadeDB work-around: the scratch database is made beforehand, named in the URL.
    let scratch = Graph::new("drillbigscratch");
    let w = Work::new();
    w.write(
        "dbseal.toml",
        &(keyed_store(&w)
            + &scratch_datastore("graph", "neo4j", &graph.config_url(), &scratch.config_url())),
    );
    let env = [("BOLT_PASSWORD", graph.password.as_str())];
    ok(&w.run_env(&["backup", "--datastore", "graph"], &env));
    let nodes = || {
        scratch.cypher("MATCH (n) RETURN count(n) AS c")[0]["c"]
            .as_u64()
            .unwrap_or(0)
    };
    drill_interrupted_when(&w, &env, || nodes() > 0);
    assert_eq!(nodes(), 0, "the scratch database is empty again");
    assert!(files(&w.store().join("_records/graph/drills")).is_empty());
}

/// The `[store]` and `[encryption]` of `w`'s store and key, as a config file starts.
fn keyed_store(w: &Work) -> String {
    format!(
        "[store]\nurl = \"{}\"\n[encryption]\nrecipients = [\"{}\"]\nidentity = \"identity.txt\"\n",
        w.store().display(),
        w.recipient
    )
}

/// `[datastores.NAME]` of `kind` at `url`, verified and drilled in `scratch`.
fn scratch_datastore(name: &str, kind: &str, url: &str, scratch: &str) -> String {
    format!(
        "[datastores.{name}]\nkind = \"{kind}\"\nurl = \"{url}\"\nscratch_url = \"{scratch}\"\n"
    )
}

/// The names of a drill's `phases` (`[["stored", 0.1], …]`).
fn phase_names(drill: &serde_json::Value) -> Vec<&str> {
    drill["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect()
}

/// The DOM of the HTML file `page` as headless Chromium (Debian's `chromium`, installed
/// by scripts/install-deps.sh) loads and serializes it.
fn browser_dom(page: &std::path::Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium (apt-get install chromium; scripts/install-deps.sh does)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `dbseal drill` (with `env`), sends it SIGINT as soon as `started()` says its
/// scratch restore is under way (within 60 s), and checks it ends with exit 130.
fn drill_interrupted_when(
    w: &Work,
    env: &[(&str, &str)],
    started: impl Fn() -> bool,
) -> std::process::Output {
    let mut c = w.cmd();
    c.envs(env.iter().copied()).args(["drill"]);
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started() {
        assert!(
            std::time::Instant::now() < deadline,
            "the scratch restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}\n{}",
        stderr(&out),
        stdout(&out)
    );
    out
}
