//! The first start as a new operator meets it: a busy port stops the start before anything is
//! generated or stored, and the error names the setting to change.

use std::process::Command;

use proxyfleet::store::Store;

/// Runs `proxyfleet serve` on a fresh data directory with `env`, expecting it to exit (it
/// cannot listen); returns its stderr.
fn serve_expecting_exit(data: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proxyfleet"));
    command
        .arg("serve")
        .env("PROXYFLEET_DATA_DIR", data)
        .env("PROXYFLEET_ALLOW_PRIVATE_IPS", "true")
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run proxyfleet serve");
    assert!(!output.status.success(), "it should not start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_busy_port_stops_the_first_start_before_anything_is_stored() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();

    // The plain HTTP port is taken: the error names `listen` and its variable.
    let stderr = serve_expecting_exit(
        &data,
        &[
            ("PROXYFLEET_LISTEN", &taken),
            ("PROXYFLEET_HTTPS_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(stderr.contains(&taken), "{stderr}");
    assert!(
        stderr.contains("`listen`") && stderr.contains("PROXYFLEET_LISTEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert!(
        !Store::exists(&data),
        "no store, so no token was made unseen"
    );

    // The HTTPS port is taken: the same, naming `https_listen`.
    let stderr = serve_expecting_exit(
        &data,
        &[
            ("PROXYFLEET_LISTEN", "127.0.0.1:0"),
            ("PROXYFLEET_HTTPS_LISTEN", &taken),
        ],
    );
    assert!(
        stderr.contains("`https_listen`") && stderr.contains("PROXYFLEET_HTTPS_LISTEN"),
        "{stderr}"
    );
    assert!(!Store::exists(&data));
    assert!(!data.join("tls").exists(), "no certificate made either");
    drop(busy);
}
