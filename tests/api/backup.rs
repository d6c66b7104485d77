//! Backups: an online snapshot taken by the CLI while writes go on restores to a consistent
//! store; corrupt, truncated and newer files are refused; the schedule keeps the newest; an
//! old store is backed up before it is migrated, and a newer one is not opened.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proxyfleet::backup::format::{self, Header, FILE_VERSION};
use proxyfleet::store::format::DATA_FORMAT;
use proxyfleet::store::{Store, TreeId};
use proxyfleet::Application;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    client, eventually, proxyfleet, spawn_app_with, test_config, ServerProcess, ADMIN_TOKEN,
};

fn restore(file: &Path, into: &Path) -> (bool, String) {
    proxyfleet(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            into.to_str().unwrap(),
        ],
        &[],
    )
}

async fn create_user(http: &crate::helpers::Http, base: &str, email: &str) -> bool {
    http.post(format!("{base}/api/v1/admin/users"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "email": email }))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::CREATED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_under_writes_restores_to_a_consistent_store() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = ServerProcess::start(&data, &[]);
    let base = server.url("");
    let http = client();
    for i in 0..50 {
        assert!(create_user(&http, &base, &format!("before{i}@example.org")).await);
    }
    // Writes go on while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, acknowledged, base, http) = (
            stop.clone(),
            acknowledged.clone(),
            base.clone(),
            http.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if create_user(&http, &base, &format!("during{i}@example.org")).await {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        })
    };
    crate::helpers::eventually(Duration::from_secs(10), "writes under way", || async {
        (acknowledged.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    let out = root.path().join("online.pfbak");
    let listen = server.address.to_string();
    let data_arg = data.to_str().unwrap().to_string();
    let out_arg = out.to_str().unwrap().to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        proxyfleet(
            &["backup", "--out", &out_arg],
            &[
                ("PROXYFLEET_DATA_DIR", &data_arg),
                ("PROXYFLEET_LISTEN", &listen),
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    assert!(text.contains("backup written"), "{text}");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(acknowledged.load(Ordering::Relaxed) > 0, "writes went on");
    drop(server);

    // Restored, the store is consistent (no half-made user) and holds what came before.
    let restored = root.path().join("restored");
    let (ok, text) = restore(&out, &restored);
    assert!(ok, "{text}");
    let (ok, text) = proxyfleet(
        &["check"],
        &[("PROXYFLEET_DATA_DIR", restored.to_str().unwrap())],
    );
    assert!(ok, "{text}");
    // The self-signed certificate and its key came back: the fingerprint clients pinned holds.
    for file in ["tls/self-signed.crt", "tls/self-signed.key"] {
        let original = std::fs::read(data.join(file)).unwrap();
        assert!(!original.is_empty());
        assert_eq!(
            std::fs::read(restored.join(file)).unwrap(),
            original,
            "{file}"
        );
    }
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(restored.join("tls/self-signed.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let server = ServerProcess::start(&restored, &[]);
    for i in [0, 49] {
        let found: Value = http
            .get(server.url(&format!("/api/v1/admin/users?q=before{i}@")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(found["users"].as_array().unwrap().len(), 1, "before{i}");
    }
    drop(server);

    // Restoring over a database is refused.
    let (ok, text) = restore(&out, &restored);
    assert!(!ok);
    assert!(text.contains("is not empty"), "{text}");

    // With the server stopped, the CLI opens the store itself.
    let offline = root.path().join("offline.pfbak");
    let (ok, text) = proxyfleet(
        &["backup", "--out", offline.to_str().unwrap()],
        &[("PROXYFLEET_DATA_DIR", data.to_str().unwrap())],
    );
    assert!(ok, "{text}");
    let bytes = std::fs::read(&offline).unwrap();
    let (header, _) = format::verify(&bytes, DATA_FORMAT).unwrap();
    assert_eq!(header.data_format, DATA_FORMAT);
}

fn backup_file(path: &Path, data_format: u64) {
    let header = Header {
        file_version: FILE_VERSION,
        data_format,
        created_ms: 0,
        records: 1,
        written_by: "proxyfleet test".into(),
    };
    let trees = [("meta", vec![(b"k".to_vec(), b"v".to_vec())])];
    std::fs::write(path, format::write(Vec::new(), &header, &trees).unwrap()).unwrap();
}

#[test]
fn restore_refuses_corrupt_truncated_foreign_and_newer_files() {
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good.pfbak");
    backup_file(&good, DATA_FORMAT);
    let bytes = std::fs::read(&good).unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("flipped", flipped, "corrupt"),
        ("truncated", bytes[..bytes.len() - 10].to_vec(), "corrupt"),
        (
            "foreign",
            b"SQLite format 3\0".to_vec(),
            "not a proxyfleet backup",
        ),
    ];
    for (name, content, expected) in cases {
        let file = root.path().join(name);
        std::fs::write(&file, content).unwrap();
        let target = root.path().join(format!("into-{name}"));
        let (ok, text) = restore(&file, &target);
        assert!(!ok, "{name} was restored: {text}");
        assert!(text.contains(expected), "{name}: {text}");
        assert!(!target.exists(), "{name}: nothing may be written");
    }
    let newer = root.path().join("newer.pfbak");
    backup_file(&newer, DATA_FORMAT + 1);
    let target = root.path().join("into-newer");
    let (ok, text) = restore(&newer, &target);
    assert!(!ok);
    assert!(text.contains("newer proxyfleet"), "{text}");
    assert!(!target.exists());

    // A hostile backup cannot choose where its TLS files go.
    let escaping = root.path().join("escaping.pfbak");
    let header = Header {
        file_version: FILE_VERSION,
        data_format: DATA_FORMAT,
        created_ms: 0,
        records: 1,
        written_by: "proxyfleet test".into(),
    };
    let trees = [(
        proxyfleet::backup::TLS_TREE,
        vec![(b"../../escaped".to_vec(), b"x".to_vec())],
    )];
    std::fs::write(
        &escaping,
        format::write(Vec::new(), &header, &trees).unwrap(),
    )
    .unwrap();
    let target = root.path().join("into-escaping");
    let (ok, text) = restore(&escaping, &target);
    assert!(!ok, "{text}");
    assert!(text.contains("TLS file"), "{text}");
    assert!(!root.path().join("escaped").exists());
}

fn backups_in(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix) && n.ends_with(".pfbak"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn scheduled_backups_keep_the_newest() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_path_buf();
    let app = spawn_app_with(|config| {
        config.backup_dir = Some(dir.clone());
        config.backup_interval_secs = 1;
        config.backup_keep = 2;
    })
    .await;
    app.register_ok("alpha", 9001).await;
    let first = eventually(Duration::from_secs(20), "two scheduled backups", || async {
        let names = backups_in(&dir, "proxyfleet-");
        (names.len() == 2).then_some(names)
    })
    .await;
    let later = eventually(Duration::from_secs(20), "newer backups", || async {
        let names = backups_in(&dir, "proxyfleet-");
        (names.len() == 2 && names[1] > first[1]).then_some(names)
    })
    .await;
    assert_eq!(later.len(), 2, "retention keeps two: {later:?}");
    let bytes = std::fs::read(dir.join(&later[1])).unwrap();
    assert!(format::verify(&bytes, DATA_FORMAT).is_ok());
}

#[tokio::test]
async fn an_old_store_is_backed_up_before_migrating_and_a_newer_one_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let configure = |config: &mut proxyfleet::Config| {
        config.data_dir = data.path().to_path_buf();
        config.backup_dir = Some(backups.path().to_path_buf());
    };
    let app = spawn_app_with(configure).await;
    app.create_user("ana@example.org", None).await;
    app.stop().await;
    // As a store made before formats were recorded.
    {
        let store = Store::reopen(data.path(), Duration::from_secs(10)).unwrap();
        assert_eq!(
            proxyfleet::store::format::read(&store).unwrap(),
            Some(DATA_FORMAT)
        );
        store
            .transaction(|tx| tx.remove(TreeId::Meta, "store.data_format").map(|_| ()))
            .unwrap();
        store.close().unwrap();
    }
    let app = spawn_app_with(configure).await;
    let users = app.admin_json("/api/v1/admin/users").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    app.stop().await;
    let taken = backups_in(
        backups.path(),
        &format!("pre-migration-0-to-{DATA_FORMAT}-"),
    );
    assert_eq!(taken.len(), 1, "{taken:?}");
    let bytes = std::fs::read(backups.path().join(&taken[0])).unwrap();
    let (header, _) = format::verify(&bytes, DATA_FORMAT).unwrap();
    assert_eq!(
        header.data_format, 0,
        "the backup holds the store as it was"
    );

    // A store from a newer proxyfleet is not opened.
    {
        let store = Store::reopen(data.path(), Duration::from_secs(10)).unwrap();
        assert_eq!(
            proxyfleet::store::format::read(&store).unwrap(),
            Some(DATA_FORMAT)
        );
        proxyfleet::store::format::write(&store, DATA_FORMAT + 1).unwrap();
        store.close().unwrap();
    }
    let mut config = test_config(data.path());
    configure(&mut config);
    let refused = Application::build(config).await.err().expect("refused");
    assert!(
        refused.to_string().contains("newer proxyfleet"),
        "{refused}"
    );
}

/// An age identity file and its recipient, as `age-keygen` would make them.
fn age_identity(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "# test identity\n{}\n",
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    (path, identity.to_public().to_string())
}

fn restore_with(file: &Path, into: &Path, identity: &Path) -> (bool, String) {
    proxyfleet(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            into.to_str().unwrap(),
            "--identity",
            identity.to_str().unwrap(),
        ],
        &[],
    )
}

fn is_age_file(path: &Path) -> bool {
    std::fs::read(path)
        .unwrap()
        .starts_with(b"age-encryption.org/v1\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_and_offline_backups_are_encrypted_to_the_recipient_and_restore_with_its_identity() {
    let root = tempfile::tempdir().unwrap();
    let (identity, recipient) = age_identity(root.path(), "owner.key");
    let (stranger, _) = age_identity(root.path(), "stranger.key");
    let data = root.path().join("data");
    let env = [("PROXYFLEET_BACKUP_RECIPIENT", recipient.as_str())];
    let server = ServerProcess::start(&data, &env);
    let http = client();
    assert!(create_user(&http, &server.url(""), "kept@example.org").await);
    let summary: Value = http
        .get(server.url("/api/v1/admin/summary"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let warned = summary["warnings"].as_array().unwrap();
    assert!(
        !warned
            .iter()
            .any(|w| w.as_str().unwrap().contains("backup_recipient")),
        "{summary}"
    );

    // Online: the running server encrypts what it sends.
    let online = root.path().join("online.pfbak");
    let listen = server.address.to_string();
    let (data_arg, out_arg) = (
        data.to_str().unwrap().to_string(),
        online.to_str().unwrap().to_string(),
    );
    let (ok, text) = tokio::task::spawn_blocking(move || {
        proxyfleet(
            &["backup", "--out", &out_arg],
            &[
                ("PROXYFLEET_DATA_DIR", &data_arg),
                ("PROXYFLEET_LISTEN", &listen),
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    assert!(is_age_file(&online));
    drop(server);

    // Offline: the CLI encrypts with the configured recipient.
    let offline = root.path().join("offline.pfbak");
    let (ok, text) = proxyfleet(
        &["backup", "--out", offline.to_str().unwrap()],
        &[
            ("PROXYFLEET_DATA_DIR", data.to_str().unwrap()),
            ("PROXYFLEET_BACKUP_RECIPIENT", &recipient),
        ],
    );
    assert!(ok, "{text}");
    assert!(is_age_file(&offline));
    let clear = std::fs::read(&offline).unwrap();
    assert!(
        !clear
            .windows(b"kept@example.org".len())
            .any(|w| w == b"kept@example.org"),
        "no record readable in the file"
    );

    for (n, file) in [&online, &offline].into_iter().enumerate() {
        // Without an identity, or with someone else's, nothing is restored.
        let target = root.path().join(format!("refused{n}"));
        let (ok, text) = restore(file, &target);
        assert!(!ok && text.contains("--identity"), "{text}");
        let (ok, text) = restore_with(file, &target, &stranger);
        assert!(!ok && text.contains("cannot be decrypted"), "{text}");
        assert!(!target.join("db").exists());

        let restored = root.path().join(format!("restored{n}"));
        let (ok, text) = restore_with(file, &restored, &identity);
        assert!(ok, "{text}");
        let server = ServerProcess::start(&restored, &[]);
        let found: Value = http
            .get(server.url("/api/v1/admin/users?q=kept@"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(found["users"].as_array().unwrap().len(), 1, "{found}");
    }

    // A cut-short encrypted file is refused too.
    let cut = root.path().join("cut.pfbak");
    std::fs::write(&cut, &clear[..clear.len() - 40]).unwrap();
    let (ok, text) = restore_with(&cut, &root.path().join("cut"), &identity);
    assert!(!ok, "{text}");
}

#[tokio::test]
async fn scheduled_and_pre_migration_backups_honour_the_recipient_and_clear_ones_warn() {
    let root = tempfile::tempdir().unwrap();
    let (identity, recipient) = age_identity(root.path(), "owner.key");
    let data = root.path().join("data");
    let dir = root.path().join("backups");

    // A store of an older data format (restored by another process, which has let go of
    // it), so the start migrates it and backs it up first.
    let old = root.path().join("old.pfbak");
    backup_file(&old, 0);
    let (ok, text) = restore(&old, &data);
    assert!(ok, "{text}");
    let (dir_in, recipient_in, data_in) = (dir.clone(), recipient.clone(), data.clone());
    let app = spawn_app_with(move |config| {
        config.data_dir = data_in;
        config.backup_dir = Some(dir_in);
        config.backup_interval_secs = 1;
        config.backup_recipient = Some(recipient_in);
    })
    .await;
    let migrated = backups_in(&dir, &format!("pre-migration-0-to-{DATA_FORMAT}-"));
    assert_eq!(migrated.len(), 1, "{migrated:?}");
    assert!(is_age_file(&dir.join(&migrated[0])));
    let scheduled = eventually(Duration::from_secs(20), "a scheduled backup", || async {
        backups_in(&dir, "proxyfleet-").first().cloned()
    })
    .await;
    assert!(is_age_file(&dir.join(&scheduled)));
    drop(app);
    let restored = root.path().join("restored");
    let (ok, text) = restore_with(&dir.join(&migrated[0]), &restored, &identity);
    assert!(ok, "{text}");
    assert!(text.contains("data format 0"), "{text}");

    // Without a recipient the dashboard says so; a malformed one stops the start.
    let clear = spawn_app_with(|_| {}).await;
    let summary = clear.admin_json("/api/v1/admin/summary").await;
    let warnings = summary["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("backup_recipient")),
        "{summary}"
    );
    let other = tempfile::tempdir().unwrap();
    let mut config = test_config(other.path());
    config.backup_recipient = Some("age1notarecipient".into());
    let refused = Application::build(config).await.err().expect("refused");
    assert!(
        refused.to_string().contains("backup_recipient"),
        "{refused}"
    );
}
