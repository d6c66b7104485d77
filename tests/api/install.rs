//! install.sh in a throwaway root: the files it makes, and that running it again keeps them.

use std::process::Command;

fn run_install(root: &std::path::Path) -> String {
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"))
        .args([
            "--prefix",
            root.to_str().unwrap(),
            "--binary",
            env!("CARGO_BIN_EXE_proxyfleet"),
        ])
        .output()
        .expect("run install.sh");
    assert!(
        output.status.success(),
        "install.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn install_sh_lays_out_a_working_root_and_is_idempotent() {
    let root = tempfile::tempdir().unwrap();
    let first = run_install(root.path());
    assert!(first.contains("admin token:    pfa_"), "{first}");
    // The panel's first account, with its password shown once.
    assert!(first.contains("created admin account \"admin\""), "{first}");
    assert!(first.contains("password (shown once"), "{first}");
    let binary = root.path().join("usr/local/bin/proxyfleet");
    let help = Command::new(&binary).arg("--help").output().unwrap();
    assert!(help.status.success());
    let size = |path: &std::path::Path| std::fs::metadata(path).unwrap().len();
    assert!(
        size(&binary) < size(std::path::Path::new(env!("CARGO_BIN_EXE_proxyfleet"))),
        "installed stripped"
    );
    let config_path = root.path().join("etc/proxyfleet/config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains("admin_token = \"pfa_"));
    let unit =
        std::fs::read_to_string(root.path().join("etc/systemd/system/proxyfleet.service")).unwrap();
    // Every path written follows the prefix: the unit and the config name the files installed.
    let under = |path: &str| format!("{}{path}", root.path().display());
    for line in [
        "NoNewPrivileges=true".to_string(),
        "ProtectSystem=strict".to_string(),
        format!("ReadWritePaths={}", under("/var/lib/proxyfleet")),
        format!(
            "ExecStart={} serve --config {}",
            under("/usr/local/bin/proxyfleet"),
            under("/etc/proxyfleet/config.toml")
        ),
        "Restart=on-failure".to_string(),
    ] {
        assert!(unit.contains(&line), "unit lacks {line}");
    }
    assert!(root.path().join("var/lib/proxyfleet/data").is_dir());
    assert!(root.path().join("var/lib/proxyfleet/backups").is_dir());
    // Every setting is in the file, the ones in use first, the rest commented with defaults.
    for line in [
        "https_listen = \"0.0.0.0:8443\"".to_string(),
        format!("data_dir = \"{}\"", under("/var/lib/proxyfleet/data")),
        format!("backup_dir = \"{}\"", under("/var/lib/proxyfleet/backups")),
        "# heartbeat_ttl_secs = 300".to_string(),
        "# [rate_limits.json]".to_string(),
        "# backup_keep = 7".to_string(),
    ] {
        assert!(config.contains(&line), "config lacks {line}");
    }
    // The store the first account went into is the one the config names.
    let check = Command::new(&binary)
        .args(["check", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{said}");
    assert!(said.contains(&under("/var/lib/proxyfleet/data")), "{said}");
    // The config it wrote is one the binary accepts.
    let checked = Command::new(&binary)
        .args(["config", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // Again: an upgrade in place keeps the configuration (and prints no new tokens).
    let second = run_install(root.path());
    assert!(!second.contains("admin token"), "{second}");
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), config);

    // Uninstall keeps the data unless told otherwise.
    let uninstall = |extra: &[&str]| {
        let output = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"))
            .args(["--prefix", root.path().to_str().unwrap(), "--uninstall"])
            .args(extra)
            .output()
            .expect("run install.sh --uninstall");
        assert!(output.status.success());
    };
    uninstall(&[]);
    assert!(!binary.exists());
    assert!(config_path.exists());
    assert!(root.path().join("var/lib/proxyfleet/data").is_dir());
    uninstall(&["--purge"]);
    assert!(!config_path.exists());
    assert!(!root.path().join("var/lib/proxyfleet").exists());
}
