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

/// Starts `proxyfleet serve` on `data` with no token configured, reads its stdout up to the
/// listening line, stops it; returns the generated-token lines it printed.
fn first_lines(data: &std::path::Path) -> Vec<String> {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .arg("serve")
        .env("PROXYFLEET_DATA_DIR", data)
        .env("PROXYFLEET_LISTEN", "127.0.0.1:0")
        .env("PROXYFLEET_HTTPS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start proxyfleet");
    let stdout = child.stdout.take().unwrap();
    let mut printed = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("proxyfleet listening on http://") {
            break;
        }
        if line.starts_with("generated ") {
            printed.push(line);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    printed
}

#[test]
fn generated_tokens_are_printed_at_every_start_until_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let first = first_lines(&data);
    assert_eq!(first.len(), 2, "admin and registry: {first:?}");
    assert!(
        first[0].contains("pfa_") && first[1].contains("pfr_"),
        "{first:?}"
    );
    // Killed right after: the next start prints the same tokens (only their hashes are in
    // the store; the file that keeps them is the server user's alone).
    assert_eq!(first_lines(&data), first);
    let file = data.join("generated-tokens");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let ack = Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .args(["tokens", "--ack"])
        .env("PROXYFLEET_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(ack.status.success());
    assert!(String::from_utf8_lossy(&ack.stdout).contains("acknowledged"));
    assert!(!file.exists());
    assert!(
        first_lines(&data).is_empty(),
        "acknowledged: printed no more"
    );
}
