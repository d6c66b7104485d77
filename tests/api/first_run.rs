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

/// Starts `proxyfleet serve` on `data` with no token configured and returns the
/// generated-token lines it printed (it is stopped again).
fn first_lines(data: &std::path::Path) -> Vec<String> {
    start(data, false)
        .printed
        .iter()
        .filter(|line| line.starts_with("generated "))
        .cloned()
        .collect()
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

/// A started server and every line it printed up to its last start-up line (the panel's
/// address). Killed when dropped.
struct Started {
    child: std::process::Child,
    http: String,
    printed: Vec<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `proxyfleet serve` on `data` (with the tests' tokens when `tokens`, else none: it
/// generates them) and reads what it prints up to its last start-up line.
fn start(data: &std::path::Path, tokens: bool) -> Started {
    use std::io::BufRead;
    let mut command = Command::new(env!("CARGO_BIN_EXE_proxyfleet"));
    command
        .arg("serve")
        .env("PROXYFLEET_DATA_DIR", data)
        .env("PROXYFLEET_LISTEN", "127.0.0.1:0")
        .env("PROXYFLEET_HTTPS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped());
    if tokens {
        command
            .env("PROXYFLEET_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN)
            .env("PROXYFLEET_REGISTRY_TOKEN", crate::helpers::REGISTRY_TOKEN);
    }
    let mut child = command.spawn().expect("start proxyfleet");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut http = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(address) = line.strip_prefix("proxyfleet listening on http://") {
            http = format!("http://{address}");
        }
        let last = line.starts_with("admin panel: ");
        printed.push(line);
        if last {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Started {
        child,
        http,
        printed,
    }
}

/// The first admin account made in the browser while the server runs, with the one-time link
/// the first start printed; a wrong token, a weak password and a second use are refused, and
/// once an account exists no start prints a link.
#[tokio::test]
async fn the_first_account_is_made_with_the_setup_link_printed_at_start() {
    use reqwest::StatusCode;
    use serde_json::{json, Value};
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = start(&data, true);
    let panel = server
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("admin panel: "))
        .expect("the panel line")
        .to_string();
    assert!(
        panel.starts_with("https://127.0.0.1:") && panel.ends_with("/admin/"),
        "{panel}"
    );
    let link = server
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("no admin account yet: open "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the setup link")
        .to_string();
    let token = link
        .strip_prefix(&format!("{panel}setup?token="))
        .expect("the link is under the panel")
        .to_string();
    assert!(token.starts_with("pfs_"), "{token}");

    // Over plain HTTP on loopback (the HTTPS listener's certificate is self-signed).
    let http = crate::helpers::client();
    let page = http
        .get(format!("{}/admin/setup?token={token}", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<html"));
    let setup = |body: Value| {
        http.post(format!("{}/admin/api/setup", server.http))
            .json(&body)
            .send()
    };
    let wrong =
        setup(json!({ "token": "pfs_guess", "username": "ops", "password": "a long passphrase" }))
            .await
            .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(crate::helpers::error_code(wrong).await, "setup_token");
    let weak = setup(json!({ "token": token, "username": "ops", "password": "short" }))
        .await
        .unwrap();
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let made = setup(json!({ "token": token, "username": "ops", "password": "a long passphrase" }))
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::OK);
    let cookie = made.headers()["set-cookie"].to_str().unwrap().to_string();
    let signed_in: Value = made.json().await.unwrap();
    assert_eq!(signed_in["username"], "ops");
    let session: Value = http
        .get(format!("{}/admin/api/session", server.http))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["username"], "ops", "signed in by the setup");
    let again =
        setup(json!({ "token": token, "username": "intruder", "password": "a long passphrase" }))
            .await
            .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(crate::helpers::error_code(again).await, "setup_done");
    drop(server);

    let restarted = start(&data, true);
    assert!(
        !restarted
            .printed
            .iter()
            .any(|line| line.contains("setup?token=")),
        "an account exists: {:?}",
        restarted.printed
    );
}
