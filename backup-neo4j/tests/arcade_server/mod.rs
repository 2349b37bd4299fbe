//! Starting a private ArcadeDB server (the Bolt stand-in for Neo4j) from the
//! `arcadedb_embedded` Python package's JRE and jars, on ports of its own, with a
//! database `neo4j`. Shared by backup-neo4j's tests and the CLI's fault matrix (which
//! includes this file by path).

use std::path::Path;
use std::process::{Child, Command};

/// Starts the server on the data in `dir` (created if missing; its log in
/// `dir/server.log`). The caller waits for it to answer and kills it.
pub fn spawn(dir: &Path, bolt_port: u16, http_port: u16, password: &str) -> Child {
    // A port already taken would make the test talk to some other server.
    for port in [bolt_port, http_port] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} for the private ArcadeDB server is already in use"
        );
    }
    let pkg = String::from_utf8(
        Command::new("python3")
            .args([
                "-c",
                "import arcadedb_embedded, os; print(os.path.dirname(arcadedb_embedded.__file__))",
            ])
            .output()
            .expect("python3")
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert!(
        !pkg.is_empty(),
        "arcadedb_embedded is not installed: run scripts/test.sh"
    );
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    Command::new(format!("{pkg}/jre/bin/java"))
        .current_dir(dir)
        .arg("-Xmx512m")
        .arg("-XX:-UsePerfData") // no /tmp/hsperfdata_* left behind
        .arg("-cp")
        .arg(format!("{pkg}/jars/*"))
        .arg(format!("-Darcadedb.server.rootPath={}", dir.display()))
        .arg(format!(
            "-Darcadedb.server.databaseDirectory={}/databases",
            dir.display()
        ))
        .arg(format!("-Darcadedb.server.rootPassword={password}"))
        .arg("-Darcadedb.server.httpIncomingHost=127.0.0.1")
        .arg(format!("-Darcadedb.server.httpIncomingPort={http_port}"))
        .arg("-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin")
        .arg("-Darcadedb.bolt.host=127.0.0.1")
        .arg(format!("-Darcadedb.bolt.port={bolt_port}"))
        .arg(format!(
            "-Darcadedb.server.defaultDatabases=neo4j[root:{password}:admin]"
        ))
        .arg("com.arcadedb.server.ArcadeDBServer")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting a private ArcadeDB")
}
