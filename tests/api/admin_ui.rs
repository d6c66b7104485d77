//! The admin panel in a real headless Chromium (Debian's, driven by chromedriver through
//! WebDriver): sign in, follow the dashboard's attention list to a proxy's page, watch a proxy
//! appear live without the other rows being redrawn, open a proxy's page, retire a proxy whose
//! hook fails and be told so, search a user, gift Pro days and find the audit entry, dry-run
//! the rebalancer, see a CSRF-less form refused, and be signed out by a password change. Screenshots of each page go to `PROXYFLEET_SCREENSHOTS` when it is set
//! (the README's come from `docs/screenshots/`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::admin::{create_account, ADMIN_PASSWORD, ADMIN_USER};
use crate::helpers::{free_port, require_program, spawn_app_with, TestApp};
use crate::rebalance::overloaded_fleet;

const PATIENCE: Duration = Duration::from_secs(20);

/// chromedriver on a free port, stopped with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let program = require_program("chromedriver", "chromium-driver");
    require_program("chromium", "chromium");
    let port = free_port();
    let child = Command::new(program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < PATIENCE,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    // The flags keep Chromium off the network (this machine's is closed) and quiet.
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(true);
    ClientBuilder::new(http)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(browser: &Client, css: &str) {
    let element = browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .expect(css);
    element.click().await.expect("click");
}

/// Waits until the element at `css` shows `wanted`; returns its text.
async fn wait_for_text(browser: &Client, css: &str, wanted: &str) -> String {
    wait_for_text_without(browser, css, wanted, None).await
}

/// As `wait_for_text`, and `unwanted` must be gone too (a list replaced by a search).
async fn wait_for_text_without(
    browser: &Client,
    css: &str,
    wanted: &str,
    unwanted: Option<&str>,
) -> String {
    let started = Instant::now();
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if text.contains(wanted) && !unwanted.is_some_and(|u| text.contains(u)) {
                    return text;
                }
            }
        }
        if started.elapsed() > PATIENCE {
            let page = match browser.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("`{css}` never showed `{wanted}`; the page shows:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Some(dir) = std::env::var_os("PROXYFLEET_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }
}

/// Fails on anything in the page's error log (`window.pfErrors`: uncaught errors, rejected
/// promises, `console.error`) since the panel was loaded in this tab.
async fn assert_no_page_errors(browser: &Client) {
    let errors = browser
        .execute("return window.pfErrors", vec![])
        .await
        .expect("read the page's error log");
    assert_eq!(
        errors,
        serde_json::json!([]),
        "the panel logged errors: {errors}"
    );
}

/// Runs a fetch in the page (with the page's cookie) and returns the response's status.
async fn fetch_status(browser: &Client, method: &str, path: &str, body: &str) -> u64 {
    let script = r#"
        const [method, path, body, done] = arguments;
        fetch(path, { method, headers: { 'Content-Type': 'application/json' }, body: method === 'GET' ? undefined : body, credentials: 'same-origin' })
          .then((r) => done(r.status), () => done(0));
    "#;
    browser
        .execute_async(script, vec![json!(method), json!(path), json!(body)])
        .await
        .expect("fetch in the page")
        .as_u64()
        .expect("a status")
}

/// Signs in from the open sign-in form; returns once the dashboard shows.
async fn sign_in(browser: &Client) {
    fill(browser, "#login input[name=username]", ADMIN_USER).await;
    fill(browser, "#login input[name=password]", ADMIN_PASSWORD).await;
    click(browser, "#login button[type=submit]").await;
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#card-users"))
        .await
        .expect("the dashboard after signing in");
}

/// Clicks `css`, then accepts the confirmation the click opens (`window.confirm`).
async fn click_and_confirm(browser: &Client, css: &str) {
    click(browser, css).await;
    let started = Instant::now();
    // The dialog opens from the click's handler: accepting fails until it is there.
    while browser.accept_alert().await.is_err() {
        assert!(started.elapsed() < PATIENCE, "no confirmation after {css}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The number in the first "Dry run #N" the element at `css` shows.
async fn dry_run_id(browser: &Client, css: &str) -> u64 {
    let text = wait_for_text(browser, css, "Dry run #").await;
    let after = &text[text.find("Dry run #").unwrap() + "Dry run #".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a plan number")
}

/// Seeds the fleet; returns alice's token (she invites from the browser test).
async fn seed(app: &TestApp) -> String {
    let located = [
        ("country", "NL"),
        ("city", "Amsterdam"),
        ("lat", "52.37"),
        ("lon", "4.9"),
        ("clients", "120"),
        ("capacity", "200"),
    ];
    app.proxy("ams1", 9101, &located).await;
    app.proxy(
        "dal1",
        9102,
        &[
            ("country", "US"),
            ("city", "Dallas"),
            ("lat", "32.8"),
            ("lon", "-96.8"),
            ("clients", "190"),
            ("capacity", "200"),
        ],
    )
    .await;
    let (alice, alice_token, _) = app.create_user("alice@example.org", None).await;
    app.create_user("bob@example.org", Some(alice)).await;
    app.create_user("alfred@example.org", Some(alice)).await;
    // Two probes in Iran cannot reach dal1: blocked there.
    app.block_by_probes("dal1", "IR").await;
    alice_token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_fleet_from_the_browser() {
    // Retiring a proxy runs a hook that fails (twice, then it is a dead letter): the panel must
    // say so rather than "done".
    let app = spawn_app_with(|c| {
        c.admin_login_burst = 50;
        c.retire_command = Some("echo 'no such droplet' >&2; exit 3".into());
        c.queue_max_attempts = 2;
        c.queue_backoff_base_ms = 20;
    })
    .await;
    let alice_token = seed(&app).await;
    let driver = start_driver();
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = browser(&driver, profile.path()).await;

    // The first account, made with the setup link the start printed; then signed out.
    let token = app
        .setup_token
        .clone()
        .expect("no account yet: a setup link");
    browser
        .goto(&app.url(&format!("/admin/setup?token={token}")))
        .await
        .expect("open the setup link");
    fill(&browser, "#setup input[name=username]", ADMIN_USER).await;
    fill(&browser, "#setup input[name=password]", ADMIN_PASSWORD).await;
    fill(&browser, "#setup input[name=again]", "another passphrase").await;
    click(&browser, "#setup button[type=submit]").await;
    wait_for_text(&browser, "#setup-error", "differ").await;
    fill(&browser, "#setup input[name=again]", ADMIN_PASSWORD).await;
    click(&browser, "#setup button[type=submit]").await;
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#card-users"))
        .await
        .expect("the dashboard after the setup");
    let address = browser.current_url().await.expect("url");
    assert!(
        !address.as_str().contains("token"),
        "the token left the address bar: {address}"
    );
    click(&browser, "#logout").await;

    // Sign in.
    fill(&browser, "#login input[name=username]", ADMIN_USER).await;
    fill(&browser, "#login input[name=password]", "not the password").await;
    click(&browser, "#login button[type=submit]").await;
    wait_for_text(&browser, "#login-error", "Wrong username").await;
    sign_in(&browser).await;
    wait_for_text(&browser, "#card-proxies", "2").await;
    wait_for_text(&browser, "#card-users", "3").await;
    wait_for_text(&browser, "#card-storage", "MB free").await;
    let blocked = wait_for_text(&browser, "#blocked-list", "dal1").await;
    assert!(
        blocked.contains("IR") && blocked.contains("100%"),
        "{blocked}"
    );
    // What needs attention names the blocked proxy, and its link opens that proxy's page.
    wait_for_text(&browser, "#warnings", "Proxy dal1 is blocked in IR").await;
    screenshot(&browser, "dashboard").await;
    click(&browser, "#warnings a[href='#/proxies/dal1']").await;
    wait_for_text(&browser, "#proxy-facts", "127.0.0.1:9102").await;

    // A proxy that registers now appears on the open proxies page without a reload.
    browser.goto(&app.url("/admin/#/proxies")).await.unwrap();
    wait_for_text(&browser, "#proxy-list", "ams1").await;
    // The live refresh redraws what changed only: ams1's buttons stay the same elements.
    let ams1_retire = browser
        .find(Locator::Css("#proxy-list tr[data-key=ams1] button.retire"))
        .await
        .expect("ams1's Retire button");
    app.proxy(
        "fra1",
        9103,
        &[
            ("country", "DE"),
            ("city", "Frankfurt"),
            ("clients", "30"),
            ("capacity", "200"),
        ],
    )
    .await;
    wait_for_text(&browser, "#proxy-list", "fra1").await;
    assert!(
        ams1_retire
            .is_displayed()
            .await
            .expect("not replaced by the refresh"),
        "ams1's Retire button is the same element after fra1 was added"
    );
    // The users assigned to each proxy (ams1, the first row, holds all three).
    wait_for_text(&browser, "#proxy-list .users-assigned", "3").await;
    screenshot(&browser, "proxies").await;
    // ams1's own page: what it is, its load on a time axis, its users, its events, and who was
    // ever given it (all three users: the trust policy put them there).
    click(&browser, "#proxy-list tr[data-key=ams1] a.name").await;
    wait_for_text(&browser, "#proxy-facts", "Amsterdam").await;
    wait_for_text(&browser, "#proxy-users-total", "3 assigned").await;
    wait_for_text(&browser, "#proxy-events", "registered").await;
    wait_for_text(&browser, "#proxy-load", "times in UTC").await;
    let exposed = wait_for_text(&browser, "#proxy-exposure", "alfred@example.org").await;
    for email in ["alice@example.org", "bob@example.org"] {
        assert!(exposed.contains(email), "{exposed}");
    }
    screenshot(&browser, "proxy").await;

    // A gateway in Lisbon, chosen there by hand twice: the map page counts it.
    app.proxy(
        "lis1",
        9150,
        &[
            ("role", "gateway"),
            ("city", "Lisbon"),
            ("country", "PT"),
            ("lat", "38.7"),
            ("lon", "-9.1"),
            ("capacity", "100"),
        ],
    )
    .await;
    for _ in 0..2 {
        let chosen = app
            .client
            .get(app.url("/json?city=lisbon&type=refresh"))
            .send()
            .await
            .unwrap();
        assert_eq!(chosen.status(), reqwest::StatusCode::OK);
    }
    // A gateway in Rotterdam, a few pixels from Amsterdam on the world map: the two places are
    // drawn as one dot numbered 2, and both stay in the table.
    app.proxy(
        "rtm1",
        9151,
        &[
            ("role", "gateway"),
            ("city", "Rotterdam"),
            ("country", "NL"),
            ("lat", "51.92"),
            ("lon", "4.48"),
        ],
    )
    .await;
    browser.goto(&app.url("/admin/#/map")).await.unwrap();
    wait_for_text(&browser, "#world text.cluster-count", "2").await;
    let places = wait_for_text(&browser, "#places", "Rotterdam").await;
    assert!(places.contains("Amsterdam"), "{places}");
    let chosen = wait_for_text(&browser, "#overrides", "lisbon").await;
    assert!(chosen.contains('2'), "{chosen}");
    wait_for_text(&browser, "#places", "Dallas").await;
    // The block layer: dal1 is blocked in Iran; Dallas is ringed and the legend says why.
    wait_for_text(&browser, "#places", "1 in IR").await;
    wait_for_text(&browser, "#map-legend", "proxies blocked in some country").await;
    let rings = browser
        .find_all(Locator::Css("#world circle.blocked-ring"))
        .await
        .unwrap();
    assert_eq!(rings.len(), 1, "one place has blocked proxies");
    screenshot(&browser, "map").await;

    // The start of a token a user reads out finds the account (no box to tick).
    browser.goto(&app.url("/admin/#/users")).await.unwrap();
    fill(&browser, "#user-search input[name=q]", &alice_token[..12]).await;
    click(&browser, "#user-search button[type=submit]").await;
    let by_token = wait_for_text_without(
        &browser,
        "#user-list",
        "alice@example.org",
        Some("bob@example.org"),
    )
    .await;
    assert!(!by_token.contains("alfred@example.org"), "{by_token}");

    // Search a user by email prefix, open them, gift Pro days.
    browser.goto(&app.url("/admin/#/users")).await.unwrap();
    fill(&browser, "#user-search input[name=q]", "al").await;
    click(&browser, "#user-search button[type=submit]").await;
    // The unfiltered list shows alfred too: wait for the search's answer to replace it.
    let found = wait_for_text_without(
        &browser,
        "#user-list",
        "alfred@example.org",
        Some("bob@example.org"),
    )
    .await;
    assert!(
        found.contains("alice@example.org") && !found.contains("bob@example.org"),
        "{found}"
    );
    screenshot(&browser, "users").await;
    browser
        .find(Locator::LinkText("alice@example.org"))
        .await
        .expect("alice is listed")
        .click()
        .await
        .expect("open alice");
    let detail = wait_for_text(&browser, "#user-detail", "#2").await;
    wait_for_text(&browser, "#invitee-tree", "2 invited directly").await;
    assert!(
        detail.contains("#3"),
        "alice invited bob and alfred: {detail}"
    );
    fill(&browser, "#gift-form input[name=days]", "45").await;
    click(&browser, "#gift-form button[type=submit]").await;
    wait_for_text(&browser, "#pro-status", "until").await;
    // With Pro, alice's invitation quota is the Pro one.
    wait_for_text(&browser, "#invitation-quota", "0 of 20 in the last 30 days").await;
    // Her trust, explained, and set by the operator.
    wait_for_text(
        &browser,
        "#trust-level",
        "level 4 for 0 days (the top); may invite",
    )
    .await;
    wait_for_text(
        &browser,
        "#suspicion",
        "no proxy it was given has been blocked",
    )
    .await;
    fill(&browser, "#trust-form input[name=level]", "3").await;
    click(&browser, "#trust-form button[type=submit]").await;
    wait_for_text(
        &browser,
        "#trust-level",
        "level 3 for 0 days; it rises to 4 at",
    )
    .await;
    screenshot(&browser, "user").await;

    // An invitation's pending account says what it is, and offers no disable button.
    let invited = app
        .user_post(
            &alice_token,
            "/api/v1/invitations",
            &json!({ "email": "carol@example.org" }),
        )
        .await;
    assert_eq!(invited.status(), reqwest::StatusCode::CREATED);
    let invitee = invited.json::<Value>().await.unwrap()["invitee"].clone();
    browser
        .goto(&app.url(&format!("/admin/#/users/{invitee}")))
        .await
        .unwrap();
    let pending = wait_for_text(&browser, "#user-detail", "not yet accepted").await;
    assert!(pending.contains("pending"), "{pending}");
    assert!(browser.find(Locator::Css("#disable-user")).await.is_err());

    browser.goto(&app.url("/admin/#/audit")).await.unwrap();
    let audit = wait_for_text(&browser, "#audit-list", "/pro").await;
    assert!(
        audit.contains(ADMIN_USER),
        "the gift is recorded with who did it: {audit}"
    );
    screenshot(&browser, "audit").await;

    // The rebalancer's dry run shows the plan it would carry out, without carrying it out.
    browser.goto(&app.url("/admin/#/rebalance")).await.unwrap();
    click(&browser, "#dry-run-now").await;
    wait_for_text(&browser, "#dry-run-plan", "Dry run").await;
    screenshot(&browser, "rebalancer").await;

    for (page, css, text) in [
        ("money", "#promo-form", "New promo code"),
        ("queues", "#queue-counts", "mail.send"),
        ("settings", "#settings", "heartbeat_ttl_secs"),
    ] {
        browser
            .goto(&app.url(&format!("/admin/#/{page}")))
            .await
            .unwrap();
        wait_for_text(&browser, css, text).await;
        screenshot(&browser, page).await;
    }

    // Retiring dal1 from its page: the panel follows the hook's task and tells its real
    // outcome, a failure with the hook's own words, in a band that covers no control.
    browser
        .goto(&app.url("/admin/#/proxies/dal1"))
        .await
        .unwrap();
    wait_for_text(&browser, "#proxy-facts", "fallback").await;
    click_and_confirm(&browser, "#proxy-actions button.retire").await;
    wait_for_text(&browser, "#notices", "dal1: retired").await;
    let failed = wait_for_text(&browser, "#notices", "failed after 2 tries").await;
    assert!(failed.contains("no such droplet"), "{failed}");
    wait_for_text(&browser, "#proxy-tasks", "dead").await;
    wait_for_text(&browser, "#proxy-role", "retired").await;
    let covered = browser
        .execute(
            "const band = document.getElementById('notices').getBoundingClientRect();
             return [...document.querySelectorAll('button, a, input, select')].filter((el) => {
               const r = el.getBoundingClientRect();
               return r.width && r.height && r.left < band.right && band.left < r.right
                 && r.top < band.bottom && band.top < r.bottom;
             }).map((el) => el.outerHTML);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(covered, json!([]), "controls under the notices");
    screenshot(&browser, "proxy-retired").await;

    // At a phone's width: the navigation folds behind Menu, and no page scrolls sideways as a
    // whole (wide tables scroll inside their own box).
    browser
        .set_window_size(390, 844)
        .await
        .expect("a narrow window");
    for page in [
        "dashboard",
        "map",
        "proxies",
        "proxies/ams1",
        "users",
        "rebalance",
        "money",
        "queues",
        "audit",
        "accounts",
        "settings",
        "account",
    ] {
        browser
            .goto(&app.url(&format!("/admin/#/{page}")))
            .await
            .unwrap();
        // A proxy's page is drawn once its facts are.
        let rendered = match page.split_once('/') {
            Some(_) => "main[data-page=proxies] #proxy-facts dl".to_string(),
            None => format!("main[data-page={page}] h1 ~ *"),
        };
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(&rendered))
            .await
            .unwrap_or_else(|_| panic!("{page} at 390 px"));
        let sideways = browser
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            sideways.as_i64().unwrap_or(i64::MAX) <= 0,
            "{page} scrolls sideways by {sideways} px at 390 px"
        );
    }
    let nav = browser.find(Locator::Css("#nav")).await.unwrap();
    assert!(!nav.is_displayed().await.unwrap(), "folded at 390 px");
    click(&browser, "#menu").await;
    assert!(nav.is_displayed().await.unwrap(), "Menu unfolds it");
    screenshot(&browser, "narrow-menu").await;
    click(&browser, "#nav a[href='#/proxies']").await;
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("main[data-page=proxies]"))
        .await
        .expect("the proxies page from the folded menu");
    screenshot(&browser, "narrow-proxies").await;
    browser
        .set_window_size(1400, 1000)
        .await
        .expect("a wide window again");
    assert_no_page_errors(&browser).await;

    // A form posted from the page without the CSRF token is refused and changes nothing.
    let alice_before = app.admin_json("/api/v1/admin/users/1").await;
    let status = fetch_status(&browser, "POST", "/api/v1/admin/users/1/disable", "{}").await;
    assert_eq!(status, 403);
    browser
        .execute(
            "const f = document.createElement('form'); f.method = 'POST'; f.action = '/api/v1/admin/users/1/disable'; document.body.append(f); f.submit();",
            vec![],
        )
        .await
        .unwrap();
    let refused = browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("body"))
        .await
        .unwrap();
    let started = Instant::now();
    while !refused
        .text()
        .await
        .unwrap_or_default()
        .contains("csrf_failed")
    {
        assert!(
            started.elapsed() < PATIENCE,
            "the CSRF-less form was not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alice_after = app.admin_json("/api/v1/admin/users/1").await;
    assert_eq!(alice_after["user"]["status"], "active");
    assert_eq!(alice_before["user"], alice_after["user"]);

    // Changing the password signs this browser out.
    browser.goto(&app.url("/admin/#/account")).await.unwrap();
    fill(
        &browser,
        "#password-form input[name=current]",
        ADMIN_PASSWORD,
    )
    .await;
    fill(
        &browser,
        "#password-form input[name=new]",
        "an even longer passphrase",
    )
    .await;
    fill(
        &browser,
        "#password-form input[name=again]",
        "an even longer passphrase",
    )
    .await;
    click(&browser, "#password-form button[type=submit]").await;
    wait_for_text(&browser, "#login-error", "Password changed").await;
    assert_eq!(
        fetch_status(&browser, "GET", "/admin/api/session", "").await,
        401
    );
    browser.refresh().await.unwrap();
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#login"))
        .await
        .expect("the sign-in form again");

    browser.close().await.expect("close the browser");
}

/// The rebalancer page as an operator uses it: a dry run, reviewed while the fleet changes under
/// it (the standby it would promote leaves), is refused with what changed and nothing moves; the
/// fresh dry run the page then offers is applied by its button, and exactly its moves happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_applies_the_plan_they_reviewed_from_the_browser() {
    let app = spawn_app_with(|c| {
        c.admin_login_burst = 50;
        c.max_clients = 5;
    })
    .await;
    create_account(&app).await;
    let users = overloaded_fleet(&app).await;
    let driver = start_driver();
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = browser(&driver, profile.path()).await;
    browser.goto(&app.url("/admin/")).await.unwrap();
    sign_in(&browser).await;

    browser.goto(&app.url("/admin/#/rebalance")).await.unwrap();
    click(&browser, "#dry-run-now").await;
    let reviewed = dry_run_id(&browser, "#dry-run-plan").await;
    wait_for_text(&browser, "#dry-run-plan", "5 moves, 1 promoted").await;
    assert_eq!(app.unregister("p2").await.status(), reqwest::StatusCode::OK);
    click_and_confirm(&browser, "#dry-run-plan .apply-plan").await;
    wait_for_text(&browser, "#dry-run-plan .stale", "p2 to promote is gone").await;
    screenshot(&browser, "rebalancer-stale").await;
    for (id, _) in &users {
        assert_eq!(app.user_proxies(*id).await, ["p1"], "nothing moved");
    }

    // Another standby enrols; the page's fresh dry run is the one applied.
    app.proxy("p3", 9003, &[("role", "standby")]).await;
    click(&browser, "#dry-run-plan .dry-run-again").await;
    wait_for_text(
        &browser,
        "#dry-run-plan",
        &format!("Dry run #{}", reviewed + 1),
    )
    .await;
    let fresh = reviewed + 1;
    let plans = app
        .admin_json("/api/v1/admin/rebalance/plans?limit=10")
        .await;
    let planned = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == fresh)
        .expect("the fresh dry run is kept")
        .clone();
    assert_eq!(planned["dry_run"], true);
    click_and_confirm(&browser, "#dry-run-plan .apply-plan").await;
    let applied_id = fresh + 1; // the applied plan replaces the dry run under a new number
    let notice = format!("Plan #{applied_id} applied: 5 moves");
    wait_for_text(&browser, "#notices", &notice).await;
    let moves = planned["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 5);
    for mv in moves {
        let user = mv["user"].as_u64().unwrap();
        assert_eq!(
            app.user_proxies(user).await,
            [mv["to"].as_str().unwrap()],
            "{mv}"
        );
    }
    assert!(moves.iter().all(|mv| mv["to"] == "p3"), "{planned}");
    let unmoved: Vec<u64> = users
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !moves.iter().any(|mv| mv["user"] == *id))
        .collect();
    assert_eq!(unmoved.len(), 5);
    for id in unmoved {
        assert_eq!(app.user_proxies(id).await, ["p1"]);
    }
    // The applied plan is the reviewed one, which no longer waits for review.
    let plans = app
        .admin_json("/api/v1/admin/rebalance/plans?limit=10")
        .await;
    let plans = plans["plans"].as_array().unwrap();
    assert!(plans.iter().all(|p| p["id"] != fresh), "{plans:?}");
    let applied = &plans[0];
    assert_eq!(applied["id"], applied_id);
    assert_eq!(applied["dry_run"], false);
    assert_eq!(applied["moves"], planned["moves"]);
    screenshot(&browser, "rebalancer-applied").await;
    assert_no_page_errors(&browser).await;
    browser.close().await.expect("close the browser");
}
