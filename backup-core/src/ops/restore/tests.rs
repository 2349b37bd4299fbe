use std::sync::{Arc, Mutex};

use super::*;
use crate::driver::Registry;
use crate::keys::KeyPair;
use crate::ops::backup::{backup_datastores, DatastoreBackupOptions, DatastoresBackup};
use crate::ops::test_driver::TestDriver;
use crate::ops::Frontend;
use crate::store::BackupStore;

/// A front-end that records notices and answers the production prompt.
#[derive(Default)]
struct Recorder {
    notices: Mutex<Vec<Notice>>,
    answer: Option<String>,
}

impl Frontend for Recorder {
    fn notice(&self, notice: Notice) {
        self.notices.lock().unwrap().push(notice);
    }
    fn confirm_production(&self, _name: &str) -> Option<String> {
        self.answer.clone()
    }
}

struct Fixture {
    ctx: OpContext,
    driver: TestDriver,
    frontend: Arc<Recorder>,
    identity: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture(answer: Option<&str>) -> Fixture {
    let keys = KeyPair::generate();
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("id.txt");
    keys.write_identity_file(&identity).unwrap();
    let mut driver = TestDriver::new("test", &["test"]);
    driver.accepts = &["other"];
    let registry = Registry::new()
        .with(driver.clone())
        .with(TestDriver::new("redis", &["redis"]))
        .with(TestDriver::new("sibling", &["other", "test"]));
    let text = format!(
        "[encryption]\nrecipients = [\"{}\"]\nidentity = \"{}\"\n[datastores.prod]\nkind = \"test\"\nurl = \"test://:${{PW}}@prod/db\"\nenvironment = \"production\"\n[datastores.dev]\nkind = \"test\"\nurl = \"test://dev/db\"\n[datastores.cache]\nkind = \"redis\"\nurl = \"redis://cache\"\n[datastores.sib]\nkind = \"sibling\"\nurl = \"other://sib/db\"\n",
        keys.recipient(),
        identity.display()
    );
    let config = Config::parse(
        &text,
        Path::new("dbseal.toml"),
        &|k| (k == "PW").then(|| "pw-secret-2".to_string()),
        &registry,
    )
    .unwrap();
    let frontend = Arc::new(Recorder {
        answer: answer.map(String::from),
        ..Default::default()
    });
    let ctx = OpContext::new(
        registry,
        BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(crate::Trust::ephemeral().unwrap()),
    )
    .with_config(Some(Arc::new(config)))
    .with_frontend(frontend.clone());
    Fixture {
        ctx,
        driver,
        frontend,
        identity,
        _dir: dir,
    }
}

async fn backup_of(ctx: &OpContext, name: &str) -> Manifest {
    let options = DatastoreBackupOptions {
        datastores: vec![name.into()],
        jobs: 1,
        ..Default::default()
    };
    match backup_datastores(ctx, &options).await.unwrap() {
        DatastoresBackup::Single(m) => *m,
        DatastoresBackup::Set(_) => panic!("one backup"),
    }
}

fn into(datastore: &str) -> RestoreBackupOptions {
    RestoreBackupOptions {
        datastore: Some(datastore.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn production_targets_need_a_confirmation() {
    let f = fixture(None);
    let m = backup_of(&f.ctx, "dev").await;
    let id = m.backup_id.to_string();
    let e = restore_backup(&f.ctx, &id, &into("prod"))
        .await
        .unwrap_err();
    assert_eq!(e.kind().exit_code(), 8);
    assert!(e.to_string().contains("--confirm-production prod"), "{e}");
    let wrong = RestoreBackupOptions {
        confirm_production: vec!["dev".into()],
        ..into("prod")
    };
    let e = restore_backup(&f.ctx, &id, &wrong).await.unwrap_err();
    assert!(e.to_string().contains("names dev instead"), "{e}");
    assert!(f.driver.restored.lock().unwrap().is_empty());
    // A URL that is the production datastore is guarded too.
    let by_url = RestoreBackupOptions {
        target: RestoreTarget {
            url: Some("test://prod/db".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        restore_backup(&f.ctx, &id, &by_url)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Refused
    );
    // Confirmed by flag: restored into the configured URL (with its password).
    let ok = RestoreBackupOptions {
        confirm_production: vec!["prod".into()],
        ..into("prod")
    };
    let RestoreResult::Restored(r) = restore_backup(&f.ctx, &id, &ok).await.unwrap() else {
        panic!("restored")
    };
    assert!(r.target.starts_with("datastore `prod` ("), "{}", r.target);
    assert!(!r.target.contains("pw-secret-2"), "{}", r.target);
    let restored = f.driver.restored.lock().unwrap().clone();
    assert_eq!(restored[0].0, "test://:pw-secret-2@prod/db");
    assert_eq!(restored[0].1, b"test://dev/db");
    // Confirmed at the prompt.
    let f = fixture(Some("prod\n"));
    let m = backup_of(&f.ctx, "dev").await;
    restore_backup(&f.ctx, m.backup_id.as_str(), &into("prod"))
        .await
        .unwrap();
    let f = fixture(Some("nope"));
    let m = backup_of(&f.ctx, "dev").await;
    let e = restore_backup(&f.ctx, m.backup_id.as_str(), &into("prod"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did not match"), "{e}");
}

#[tokio::test]
async fn replacing_takes_a_verified_safety_backup_first() {
    let f = fixture(None);
    let m = backup_of(&f.ctx, "dev").await;
    let id = m.backup_id.to_string();
    let options = RestoreBackupOptions {
        target: RestoreTarget {
            replace: true,
            ..Default::default()
        },
        confirm_production: vec!["prod".into()],
        ..into("prod")
    };
    // The dry run says so and touches nothing.
    let RestoreResult::DryRun(plan) = restore_backup(
        &f.ctx,
        &id,
        &RestoreBackupOptions {
            dry_run: true,
            ..options.clone()
        },
    )
    .await
    .unwrap() else {
        panic!("a plan")
    };
    assert_eq!(plan.safety_backup_into.as_deref(), Some("prod"));
    assert!(plan.production && !plan.needs_confirmation);
    assert!(!serde_json::to_string(&plan)
        .unwrap()
        .contains("pw-secret-2"));
    assert_eq!(f.ctx.store.list(None).await.unwrap().len(), 1);
    let RestoreResult::Restored(r) = restore_backup(&f.ctx, &id, &options).await.unwrap() else {
        panic!("restored")
    };
    let safety = r.safety_backup.clone().expect("a safety backup");
    assert_eq!(r.safety_datastore.as_deref(), Some("prod"));
    let s = f.ctx.store.manifest(&safety).await.unwrap();
    assert_eq!(s.labels[SAFETY_LABEL], id);
    assert_eq!(s.labels["environment"], "production");
    let rec = f
        .ctx
        .store
        .verification("prod", &safety)
        .await
        .unwrap()
        .unwrap();
    assert!(rec.ok && rec.level == "stored");
    let notices = f.frontend.notices.lock().unwrap().clone();
    assert!(
        notices.iter().any(|n| matches!(n, Notice::Important(t)
            if t.contains(&format!("safety backup {safety}")) && t.contains("--confirm-production prod"))),
        "{notices:?}"
    );
    // A target that does not exist yet needs none.
    let missing = RestoreBackupOptions {
        target: RestoreTarget {
            url: Some("test://h/missing".into()),
            replace: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let RestoreResult::Restored(r) = restore_backup(&f.ctx, &id, &missing).await.unwrap() else {
        panic!("restored")
    };
    assert!(r.safety_backup.is_none());
    // One that cannot be backed up is not touched.
    let n = f.driver.restored.lock().unwrap().len();
    let failing = RestoreBackupOptions {
        target: RestoreTarget {
            url: Some("test://h/fail".into()),
            replace: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = restore_backup(&f.ctx, &id, &failing).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(e.to_string().contains("was not touched"), "{e}");
    assert_eq!(f.driver.restored.lock().unwrap().len(), n);
}

#[tokio::test]
async fn targets_are_checked_before_anything_is_touched() {
    let f = fixture(None);
    let m = backup_of(&f.ctx, "dev").await;
    let id = m.backup_id.to_string();
    // Another kind's datastore.
    let e = restore_backup(&f.ctx, &id, &into("cache"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is a test backup, datastore `cache` is redis"),
        "{e}"
    );
    // A setting the driver does not support.
    let options = RestoreBackupOptions {
        target: RestoreTarget {
            url: Some("test://h/x".into()),
            schema: vec!["public".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let e = restore_backup(&f.ctx, &id, &options).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("--schema"), "{e}");
    assert!(f.driver.restored.lock().unwrap().is_empty());
}

#[tokio::test]
async fn files_appear_whole_and_private() {
    let f = fixture(None);
    let m = backup_of(&f.ctx, "dev").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let options = RestoreBackupOptions {
        output: Some(out.clone()),
        keys: KeyOptions {
            identities: vec![f.identity.clone()],
            ..Default::default()
        },
        ..Default::default()
    };
    restore_backup(&f.ctx, m.backup_id.as_str(), &options)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"test://dev/db");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let e = restore_backup(&f.ctx, m.backup_id.as_str(), &options)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    // A wrong key leaves nothing behind.
    let other = dir.path().join("other.txt");
    KeyPair::generate().write_identity_file(&other).unwrap();
    let out2 = dir.path().join("out2.bin");
    let options = RestoreBackupOptions {
        output: Some(out2.clone()),
        keys: KeyOptions {
            identities: vec![other],
            ..Default::default()
        },
        ..Default::default()
    };
    let e = restore_backup(&f.ctx, m.backup_id.as_str(), &options)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decryption);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 2, "out.bin and other.txt only");
}

#[tokio::test]
async fn sets_restore_every_member() {
    let f = fixture(None);
    let options = DatastoreBackupOptions {
        datastores: vec!["dev".into(), "prod".into()],
        jobs: 2,
        ..Default::default()
    };
    let DatastoresBackup::Set(set) = backup_datastores(&f.ctx, &options).await.unwrap() else {
        panic!("a set")
    };
    assert!(set.ok, "{set:?}");
    let id = set.set_id.to_string();
    let e = restore_set(&f.ctx, &id, &RestoreBackupOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(
        f.driver.restored.lock().unwrap().is_empty(),
        "nothing before the guard"
    );
    let confirmed = RestoreBackupOptions {
        confirm_production: vec!["prod".into()],
        ..Default::default()
    };
    let SetRestoreResult::DryRun(plan) = restore_set(
        &f.ctx,
        &id,
        &RestoreBackupOptions {
            dry_run: true,
            ..confirmed.clone()
        },
    )
    .await
    .unwrap() else {
        panic!("a plan")
    };
    assert_eq!(plan.members.len(), 2);
    let SetRestoreResult::Restored(r) = restore_set(&f.ctx, &id, &confirmed).await.unwrap() else {
        panic!("restored")
    };
    let names: Vec<_> = r
        .restored
        .iter()
        .map(|m| m.datastore.clone().unwrap())
        .collect();
    assert_eq!(names, ["dev", "prod"]);
    assert_eq!(f.driver.restored.lock().unwrap().len(), 2);
}
