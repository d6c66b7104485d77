//! The admin panel's access rules over real HTTP: argon2 accounts, the session cookie, CSRF on
//! every mutation, login throttling, sessions ended by a password change, the audit trail,
//! masked settings and the operator's proxy actions.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp, ADMIN_TOKEN};

pub const ADMIN_USER: &str = "ops";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// Makes the panel account the tests sign in with (through the admin token).
pub async fn create_account(app: &TestApp) {
    let response = app
        .admin_post(
            "/admin/api/accounts",
            &json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "account created");
}

/// A signed-in panel session: the cookie pair and the CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    pub set_cookie: String,
}

pub async fn login(app: &TestApp, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/admin/api/login"))
        .json(&json!({ "username": ADMIN_USER, "password": password }))
        .send()
        .await
        .expect("login request")
}

pub async fn sign_in(app: &TestApp) -> Session {
    let response = login(app, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    Session {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_string(),
        set_cookie,
    }
}

impl Session {
    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        let request = app.client.get(app.url(path)).header(COOKIE, &self.cookie);
        request.send().await.expect("request")
    }

    /// A mutation with the session's CSRF token, as the panel sends it.
    pub async fn post(&self, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
        self.post_with_csrf(app, path, Some(&self.csrf), body).await
    }

    /// A mutation with the given CSRF token, or none (what a cross-site form would send).
    pub async fn post_with_csrf(
        &self,
        app: &TestApp,
        path: &str,
        csrf: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut request = app
            .client
            .post(app.url(path))
            .header(COOKIE, &self.cookie)
            .json(&body);
        if let Some(token) = csrf {
            request = request.header("X-CSRF-Token", token);
        }
        request.send().await.expect("request")
    }
}

async fn users_total(app: &TestApp) -> u64 {
    app.admin_json("/api/v1/admin/summary").await["users_total"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_session_cookie_is_httponly_and_strict_and_mutations_need_its_csrf_token() {
    let app = spawn_app().await;
    create_account(&app).await;

    let wrong = login(&app, "not the password at all").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    let session = sign_in(&app).await;
    assert!(session.cookie.starts_with("pf_admin="));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            session.set_cookie.contains(attribute),
            "{}",
            session.set_cookie
        );
    }
    assert!(
        !session.set_cookie.contains("Secure"),
        "plain HTTP on loopback"
    );

    let me = session.get(&app, "/admin/api/session").await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap()["username"], ADMIN_USER);

    // A mutation with the cookie alone (what a cross-site form would carry) is refused.
    let before = users_total(&app).await;
    let body = json!({ "email": "forged@example.org" });
    for csrf in [None, Some("0000")] {
        let refused = session
            .post_with_csrf(&app, "/api/v1/admin/users", csrf, body.clone())
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(refused).await, "csrf_failed");
    }
    assert_eq!(users_total(&app).await, before, "nothing was created");

    let created = session.post(&app, "/api/v1/admin/users", body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(users_total(&app).await, before + 1);

    // Who did it, from the audit trail.
    let audit = session.get(&app, "/admin/api/audit?q=users").await;
    let entries: Value = audit.json().await.unwrap();
    let entry = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /api/v1/admin/users" && e["status"] == 201)
        .expect("the creation is in the audit log");
    assert_eq!(entry["actor"], ADMIN_USER);
    assert!(
        entry["params"]
            .as_str()
            .unwrap()
            .contains("forged@example.org"),
        "{entry}"
    );
    // An action on one user names it as its target, and the target finds it.
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    let gift = session
        .post(
            &app,
            &format!("/api/v1/admin/users/{id}/pro"),
            json!({ "days": 2 }),
        )
        .await;
    assert_eq!(gift.status(), StatusCode::OK);
    let by_target: Value = session
        .get(&app, &format!("/admin/api/audit?q=user%20{id}"))
        .await
        .json()
        .await
        .unwrap();
    let gifted = &by_target["entries"][0];
    assert_eq!(gifted["target"], format!("user {id}"), "{by_target}");
    assert_eq!(
        gifted["action"],
        format!("POST /api/v1/admin/users/{id}/pro")
    );

    // Behind a TLS proxy the cookie is Secure.
    let https = app
        .client
        .post(app.url("/admin/api/login"))
        .header("X-Forwarded-Proto", "https")
        .json(&json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = https.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn failed_logins_are_throttled_after_a_burst_with_retry_after() {
    let app = spawn_app_with(|c| c.admin_login_burst = 3).await;
    create_account(&app).await;
    // Successes never count.
    for _ in 0..5 {
        assert_eq!(login(&app, ADMIN_PASSWORD).await.status(), StatusCode::OK);
    }
    for _ in 0..4 {
        assert_eq!(
            login(&app, "guess guess guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The fourth failure starts a wait: now even the right password waits.
    let throttled = login(&app, ADMIN_PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 1, "the first wait is a second");
    assert_eq!(error_code(throttled).await, "too_many_requests");

    // Five failed attempts from one address in one minute: one audit entry with a count
    // (two if the minute turned meanwhile).
    let audit = app.admin_json("/admin/api/audit?q=login_failed").await;
    let failed = audit["entries"].as_array().unwrap();
    assert!((1..=2).contains(&failed.len()), "{audit}");
    let counted: u64 = failed.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 5, "{audit}");
    assert_eq!(failed[0]["client_ip"], "127.0.0.1");
}

#[tokio::test]
async fn changing_the_password_ends_every_session_of_the_account() {
    let app = spawn_app().await;
    create_account(&app).await;
    let first = sign_in(&app).await;
    let second = sign_in(&app).await;

    let wrong = first
        .post(
            &app,
            "/admin/api/password",
            json!({ "current": "not my password", "new": "a much longer password" }),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "wrong_password");
    let short = first
        .post(
            &app,
            "/admin/api/password",
            json!({ "current": ADMIN_PASSWORD, "new": "short" }),
        )
        .await;
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let changed = first
        .post(
            &app,
            "/admin/api/password",
            json!({ "current": ADMIN_PASSWORD, "new": "a much longer password" }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);

    for session in [&first, &second] {
        let gone = session.get(&app, "/admin/api/session").await;
        assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
        let api = session.get(&app, "/api/v1/admin/summary").await;
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login(&app, ADMIN_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "a much longer password").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_stolen_session_guesses_the_password_no_faster_than_the_login_does() {
    let app = spawn_app_with(|c| c.admin_login_burst = 3).await;
    create_account(&app).await;
    let stolen = sign_in(&app).await;
    // Guesses through the password form and the second-factor form share one throttle.
    for _ in 0..2 {
        let wrong = stolen
            .post(
                &app,
                "/admin/api/password",
                json!({ "current": "guess guess guess", "new": "a much longer password" }),
            )
            .await;
        assert_eq!(error_code(wrong).await, "wrong_password");
    }
    let totp = stolen
        .post(
            &app,
            "/admin/api/totp",
            json!({ "password": "guess guess guess", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "code": "123456" }),
        )
        .await;
    assert_eq!(error_code(totp).await, "wrong_password");
    let fourth = stolen
        .post(
            &app,
            "/admin/api/password",
            json!({ "current": "guess guess guess", "new": "a much longer password" }),
        )
        .await;
    assert_eq!(error_code(fourth).await, "wrong_password");

    // Now even the right password waits, and nothing changed.
    let throttled = stolen
        .post(
            &app,
            "/admin/api/password",
            json!({ "current": ADMIN_PASSWORD, "new": "a much longer password" }),
        )
        .await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    let totp = stolen
        .post(
            &app,
            "/admin/api/totp/disable",
            json!({ "password": ADMIN_PASSWORD, "code": "123456" }),
        )
        .await;
    assert_eq!(totp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        stolen.get(&app, "/admin/api/session").await.status(),
        StatusCode::OK
    );
    let refused = app
        .admin_json("/admin/api/audit?q=password_change_refused")
        .await;
    assert_eq!(refused["entries"].as_array().unwrap().len(), 3, "{refused}");
}

#[tokio::test]
async fn the_panel_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("app/main.js"));

    let script = app
        .client
        .get(app.url("/admin/app/main.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let missing = app
        .client
        .get(app.url("/admin/app/README.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Without a session the panel's data stays shut.
    let data = app
        .client
        .get(app.url("/api/v1/admin/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(data.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn settings_show_every_setting_with_secrets_masked() {
    let app = spawn_app().await;
    let text = app
        .admin_get("/api/v1/admin/settings")
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains(ADMIN_TOKEN), "{text}");
    assert!(!text.contains(crate::helpers::REGISTRY_TOKEN), "{text}");
    let settings: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(settings["settings"]["heartbeat_ttl_secs"], 300);
    assert_eq!(settings["settings"]["admin_token"], "••••••");
}

#[tokio::test]
async fn draining_a_proxy_moves_its_users_off_and_retiring_without_a_hook_queues_none() {
    let app = spawn_app().await;
    app.proxy("alpha", 9001, &[]).await;
    let (id, _, _) = app.create_user("drained@example.org", None).await;
    assert_eq!(app.user_proxies(id).await, vec!["alpha"]);

    let path = "/api/v1/admin/proxies/alpha/action";
    let bad = app.admin_post(path, &json!({ "action": "explode" })).await;
    assert!(bad.status().is_client_error());
    let unknown = app
        .admin_post(
            "/api/v1/admin/proxies/nobody/action",
            &json!({ "action": "drain" }),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let drained = app.admin_post(path, &json!({ "action": "drain" })).await;
    assert_eq!(drained.status(), StatusCode::OK);
    assert_eq!(drained.json::<Value>().await.unwrap()["role"], "drained");
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the user left the drained proxy",
        || async { app.user_proxies(id).await.is_empty().then_some(()) },
    )
    .await;
    // Its own heartbeat does not undo the operator's choice.
    app.proxy("alpha", 9001, &[]).await;
    let listed = app.admin_json("/api/v1/admin/proxies").await;
    assert_eq!(listed["proxies"][0]["role"], "drained");

    let undrained = app.admin_post(path, &json!({ "action": "undrain" })).await;
    assert_eq!(undrained.json::<Value>().await.unwrap()["role"], "fallback");

    // Without a retire_command there is no hook to run, so no hook task is reported as the
    // retirement's outcome (tests/api/proxy_page.rs runs one that fails).
    let retired = app.admin_post(path, &json!({ "action": "retire" })).await;
    assert_eq!(retired.status(), StatusCode::OK);
    let retired: Value = retired.json().await.unwrap();
    assert_eq!(
        retired["tasks"][0]["kind"], "fleet.proxy_changed",
        "{retired}"
    );
    let counts = app.admin_json("/api/v1/admin/queue").await;
    assert!(counts["by_kind"]["fleet.retire"].is_null(), "{counts}");
}

#[tokio::test]
async fn a_second_factor_is_asked_for_once_turned_on() {
    use proxyfleet::admin::totp::code_at;
    let app = spawn_app_with(|c| c.admin_login_burst = 20).await;
    create_account(&app).await;
    let session = sign_in(&app).await;
    let other = sign_in(&app).await;
    let now = || crate::helpers::unix_now() as u64;

    let fresh: Value = session
        .get(&app, "/admin/api/totp/new")
        .await
        .json()
        .await
        .unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_string();
    assert!(fresh["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/proxyfleet:ops?secret="));
    assert!(fresh["qr_svg"].as_str().unwrap().starts_with("<?xml"));

    // Turning it on needs the CSRF token, the password and a right code; a wrong one changes
    // nothing. Codes are good once: `code(n)` is the code n steps ahead (one step of skew).
    let code = |ahead: u64| code_at(&secret, now() + 30 * ahead).unwrap();
    let enable = |password: &str, code: String| json!({ "secret": secret, "code": code, "password": password });
    let no_csrf = session
        .post_with_csrf(
            &app,
            "/admin/api/totp",
            None,
            enable(ADMIN_PASSWORD, code(0)),
        )
        .await;
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let no_password = session
        .post(
            &app,
            "/admin/api/totp",
            json!({ "secret": secret, "code": code(0) }),
        )
        .await;
    assert_eq!(no_password.status(), StatusCode::BAD_REQUEST);
    let wrong_password = session
        .post(&app, "/admin/api/totp", enable("not the password", code(0)))
        .await;
    assert_eq!(error_code(wrong_password).await, "wrong_password");
    let wrong = session
        .post(
            &app,
            "/admin/api/totp",
            enable(ADMIN_PASSWORD, "000000".into()),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        login(&app, ADMIN_PASSWORD).await.status(),
        StatusCode::OK,
        "still off"
    );

    let enrolment_code = code(0);
    let on = session
        .post(
            &app,
            "/admin/api/totp",
            enable(ADMIN_PASSWORD, enrolment_code.clone()),
        )
        .await;
    assert_eq!(on.status(), StatusCode::OK);
    let recovery: Vec<String> =
        serde_json::from_value(on.json::<Value>().await.unwrap()["recovery_codes"].clone())
            .unwrap();
    assert_eq!(recovery.len(), 10);
    // Turning it on ended every other session of the account, and kept this one.
    assert_eq!(
        other.get(&app, "/admin/api/session").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        session.get(&app, "/admin/api/session").await.status(),
        StatusCode::OK
    );

    // The password alone is not enough now; a wrong code is a failed login.
    let asked = login(&app, ADMIN_PASSWORD).await;
    assert_eq!(asked.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(asked).await, "totp_required");
    let with_code = |code: String| {
        app.client
            .post(app.url("/admin/api/login"))
            .json(&json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD, "totp": code }))
            .send()
    };
    assert_eq!(
        with_code("123456".into()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The code that turned it on was spent; the next one signs in, once.
    assert_eq!(
        with_code(enrolment_code).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let next = code(1);
    assert_eq!(
        with_code(next.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        with_code(next).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "a replayed code"
    );
    // A recovery code signs in once.
    assert_eq!(
        with_code(recovery[0].clone()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        with_code(recovery[0].clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // A stolen session cannot replace the secret without the password and a current code.
    let thief_secret = proxyfleet::admin::totp::new_secret();
    let thief_code = code_at(&thief_secret, now()).unwrap();
    let replaced = session
        .post(
            &app,
            "/admin/api/totp",
            json!({ "secret": thief_secret, "code": thief_code, "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(error_code(replaced).await, "wrong_code");

    let me: Value = session
        .get(&app, "/admin/api/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["totp_enabled"], true);
    let off = session
        .post(
            &app,
            "/admin/api/totp/disable",
            json!({ "code": recovery[1], "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(off.status(), StatusCode::OK);
    assert_eq!(login(&app, ADMIN_PASSWORD).await.status(), StatusCode::OK);

    let audit = app.admin_json("/admin/api/audit?q=totp").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"POST /admin/api/totp"), "{actions:?}");
    assert!(
        actions.contains(&"POST /admin/api/totp/disable"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn live_pages_answer_304_until_something_changes() {
    let app = spawn_app().await;
    app.proxy("first", 9001, &[]).await;
    let get = |path: &'static str, etag: Option<String>| {
        let mut request = app.client.get(app.url(path)).bearer_auth(ADMIN_TOKEN);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        request.send()
    };
    let paths = [
        "/api/v1/admin/summary",
        "/api/v1/admin/proxies?limit=50&history=true",
        "/api/v1/admin/map",
    ];
    for (n, path) in paths.into_iter().enumerate() {
        // Background work (the edge sync a registration queues) settles first; then a poll
        // naming the current ETag gets a bare 304.
        let etag =
            crate::helpers::eventually(std::time::Duration::from_secs(10), "a 304", || async {
                let fresh = get(path, None).await.unwrap();
                assert_eq!(fresh.status(), StatusCode::OK);
                let etag = fresh.headers()["etag"].to_str().unwrap().to_string();
                let again = get(path, Some(etag.clone())).await.unwrap();
                (again.status() == StatusCode::NOT_MODIFIED).then_some(etag)
            })
            .await;
        app.proxy(&format!("second{n}"), 9002, &[("country", "NL")])
            .await;
        let changed = get(path, Some(etag.clone())).await.unwrap();
        assert_eq!(changed.status(), StatusCode::OK, "{path}");
        assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    }
}

#[tokio::test]
async fn the_dashboard_counts_proxies_that_left_and_did_not_come_back() {
    let app = spawn_app().await;
    app.proxy("stays", 9001, &[]).await;
    app.proxy("leaves", 9002, &[]).await;
    let down = || async { app.admin_json("/api/v1/admin/summary").await["proxies_down"].clone() };
    assert_eq!(down().await["unregistered"], 0);

    assert_eq!(app.unregister("leaves").await.status(), StatusCode::OK);
    let after = down().await;
    assert_eq!(
        (after["unregistered"].as_u64(), after["expired"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(after["window_secs"], 86_400);

    app.proxy("leaves", 9002, &[]).await;
    assert_eq!(down().await["unregistered"], 0, "it is back");
}

/// The dashboard's charts: sign-ups per day (oldest first, today last) and the fleet's clients
/// per 30 s slot, from the proxies' load samples; days beyond 90 are refused by clamping.
#[tokio::test]
async fn the_dashboard_series_count_todays_sign_ups_and_the_clients_reported() {
    let app = spawn_app().await;
    app.proxy("fb1", 9001, &[("clients", "12")]).await;
    app.proxy("fb2", 9002, &[("clients", "30")]).await;
    app.create_user("ana@example.org", None).await;
    app.create_user("bob@example.org", None).await;
    let series = app.admin_json("/api/v1/admin/summary/series?days=3").await;
    let days = series["signups_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 3, "{series}");
    let counts: Vec<u64> = days.iter().map(|d| d[1].as_u64().unwrap()).collect();
    assert_eq!(counts, vec![0, 0, 2], "{series}");
    let day_starts: Vec<u64> = days.iter().map(|d| d[0].as_u64().unwrap()).collect();
    assert!(
        day_starts.windows(2).all(|w| w[1] - w[0] == 86_400),
        "{series}"
    );
    let clients: u64 = series["fleet_clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| slot[1].as_u64().unwrap())
        .sum();
    assert_eq!(clients, 42, "{series}");
    let wide = app
        .admin_json("/api/v1/admin/summary/series?days=10000")
        .await;
    assert_eq!(wide["signups_per_day"].as_array().unwrap().len(), 90);
    let bad = app
        .admin_get("/api/v1/admin/summary/series?days=many")
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(bad).await, "invalid_query");
}
