//! `proxyfleet edge`: the read APIs served from Redis alone answer byte for byte what the
//! primary answers; writes are refused with 421.

use std::time::Duration;

use proxyfleet::app::edge::EdgeApp;
use proxyfleet::http::rate_limit::{Limit, RateLimitSettings};
use proxyfleet::mirror::edge::EdgeSettings;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{client, eventually, spawn_app_with, TestApp};
use crate::redis_support::{caught_up, RedisServer};

pub(crate) struct Edge {
    pub(crate) base: String,
    stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// An edge with the rate limits off, as the primary's tests run (every test talks from
/// 127.0.0.1).
pub(crate) async fn start_edge(redis: &RedisServer) -> Edge {
    start_edge_with(
        redis,
        RateLimitSettings {
            enabled: false,
            ..RateLimitSettings::default()
        },
    )
    .await
}

pub(crate) async fn start_edge_with(redis: &RedisServer, rate_limits: RateLimitSettings) -> Edge {
    let app = EdgeApp::build(EdgeSettings {
        redis_url: redis.url(),
        listen: "127.0.0.1:0".parse().unwrap(),
        prefix: "proxyfleet:".into(),
        geoip_db: None,
        primary: Some("https://fleet.example.org".into()),
        trusted_proxies: Vec::new(),
        config_wait_max_secs: 60,
        rate_limits,
    })
    .await
    .expect("edge starts");
    let edge = Edge {
        base: format!("http://{}", app.address()),
        stop: app.stopper(),
    };
    tokio::spawn(app.run());
    edge
}

/// Status, the headers a client relies on, and the raw body.
async fn fetch(
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let kept = [
        "etag",
        "x-proxyfleet-signature",
        "content-type",
        "content-encoding",
        "cache-control",
        "vary",
    ];
    let headers = kept
        .iter()
        .filter_map(|name| {
            response
                .headers()
                .get(*name)
                .map(|v| (name.to_string(), v.to_str().unwrap().to_string()))
        })
        .collect();
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

async fn same_answer(
    app: &TestApp,
    edge: &Edge,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> bool {
    fetch(&app.url(path), token, headers).await
        == fetch(&format!("{}{path}", edge.base), token, headers).await
}

#[tokio::test]
async fn the_edge_answers_reads_byte_for_byte_like_the_primary() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |c| c.redis_url = Some(url)).await;
    let cities = [
        ("berlin", "Berlin", "DE", "52.52", "13.40", "10"),
        ("paris", "Paris", "FR", "48.86", "2.35", "50"),
        ("tokyo", "Tokyo", "JP", "35.68", "139.69", "90"),
    ];
    for (i, (name, city, country, lat, lon, clients)) in cities.iter().enumerate() {
        let role = if i == 0 { "fallback" } else { "free" };
        app.proxy(
            name,
            10_000 + i as u16,
            &[
                ("role", role),
                ("city", city),
                ("country", country),
                ("lat", lat),
                ("lon", lon),
                ("clients", clients),
            ],
        )
        .await;
    }
    app.proxy("pro1", 10_010, &[("role", "pro")]).await;
    // `/json` lists gateways only: two of them, in Berlin and Paris.
    for (name, port, city, lat, lon) in [
        ("gwber", 10_020, "Berlin", "52.52", "13.40"),
        ("gwpar", 10_021, "Paris", "48.86", "2.35"),
    ] {
        let place = [
            ("role", "gateway"),
            ("city", city),
            ("lat", lat),
            ("lon", lon),
        ];
        app.proxy(name, port, &place).await;
    }
    let mut tokens = Vec::new();
    for i in 0..3 {
        let (id, token, _) = app.create_user(&format!("e{i}@example.org"), None).await;
        tokens.push((id, token));
    }
    caught_up(&app.url(""), Duration::from_secs(30)).await;
    let edge = start_edge(&redis).await;

    // Both refresh their fleet every second: wait until the edge has read it.
    eventually(
        Duration::from_secs(10),
        "the edge to read the fleet",
        || async {
            same_answer(&app, &edge, "/json?lat=50&lon=8&n=3", None, &[])
                .await
                .then_some(())
        },
    )
    .await;
    for path in [
        "/json?lat=40&lon=120&n=2",
        "/json?city=Paris",
        "/json?tz=%2B9",
        "/api/v1/config/pubkey",
    ] {
        assert!(
            same_answer(&app, &edge, path, None, &[]).await,
            "GET {path} differs"
        );
    }
    for (_, token) in &tokens {
        let plain = fetch(&format!("{}/api/v1/config", edge.base), Some(token), &[]).await;
        assert_eq!(plain.0, StatusCode::OK);
        assert_eq!(
            plain,
            fetch(&app.url("/api/v1/config"), Some(token), &[]).await
        );
        let gzip = [("accept-encoding", "gzip")];
        assert!(
            same_answer(&app, &edge, "/api/v1/config", Some(token), &gzip).await,
            "gzip differs"
        );
        let etag = plain.1.iter().find(|(n, _)| n == "etag").unwrap().1.clone();
        let cached = [("if-none-match", etag.as_str())];
        let not_modified = fetch(
            &format!("{}/api/v1/config", edge.base),
            Some(token),
            &cached,
        )
        .await;
        assert_eq!(not_modified.0, StatusCode::NOT_MODIFIED);
        assert!(same_answer(&app, &edge, "/api/v1/config", Some(token), &cached).await);
    }

    // A wrong token is refused alike; writes are sent to the primary.
    let refused = fetch(
        &format!("{}/api/v1/config", edge.base),
        Some("pfu_wrong"),
        &[],
    )
    .await;
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&refused.2).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    for path in ["/register", "/api/v1/admin/users", "/api/v1/config"] {
        let response = client()
            .post(format!("{}{path}", edge.base))
            .body("name=x")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::MISDIRECTED_REQUEST,
            "POST {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "read_only_edge");
        assert_eq!(body["primary"], "https://fleet.example.org");
    }

    // A long-poll on the edge returns when the user's config changes on the primary.
    let (id, token) = tokens[0].clone();
    let before = fetch(&format!("{}/api/v1/config", edge.base), Some(&token), &[]).await;
    let etag = before
        .1
        .iter()
        .find(|(n, _)| n == "etag")
        .unwrap()
        .1
        .clone();
    let edge_url = format!("{}/api/v1/config?wait=20", edge.base);
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let answer = fetch(&edge_url, Some(&token), &[("if-none-match", etag.as_str())]).await;
        (answer, started.elapsed())
    });
    let health = format!("{}/healthz", edge.base);
    crate::helpers::eventually(
        Duration::from_secs(10),
        "the edge long-poll to wait",
        || async {
            let (_, _, body) = fetch(&health, None, &[]).await;
            let health: Value = serde_json::from_slice(&body).ok()?;
            (health["long_polls"] == 1).then_some(())
        },
    )
    .await;
    app.gift_pro(id, 30).await;
    let (answer, waited) = waiting.await.unwrap();
    assert_eq!(answer.0, StatusCode::OK);
    assert!(
        waited < Duration::from_secs(20),
        "answered on the change, not at the deadline"
    );
    let config: Value = serde_json::from_slice(&answer.2).unwrap();
    let names: Vec<&str> = config["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"pro1"), "{names:?}");
    assert!(same_answer(&app, &edge, "/api/v1/config", Some(&tokens[0].1), &[]).await);

    // Load reported to the primary reaches the edge's gateway ranking.
    app.proxy(
        "gwber",
        10_020,
        &[
            ("city", "Berlin"),
            ("country", "DE"),
            ("lat", "52.52"),
            ("lon", "13.40"),
            ("clients", "150"),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the edge to follow the load",
        || async {
            let (_, _, body) =
                fetch(&format!("{}/json?lat=50&lon=8&n=3", edge.base), None, &[]).await;
            let json: Value = serde_json::from_slice(&body).unwrap();
            let berlin = json["sortedGateways"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["location"] == "berlin")
                .cloned();
            berlin.filter(|g| g["fullness"] == 0.75).map(|_| ())
        },
    )
    .await;
    eventually(Duration::from_secs(10), "both to agree again", || async {
        same_answer(&app, &edge, "/json?lat=50&lon=8&n=3", None, &[])
            .await
            .then_some(())
    })
    .await;
}

/// The primary's count of manual choices of `city` (`/api/v1/admin/gateways/overrides`).
async fn overrides_of(app: &TestApp, city: &str) -> u64 {
    app.admin_json("/api/v1/admin/gateways/overrides").await["overrides"][city]
        .as_u64()
        .unwrap_or(0)
}

async fn choose(base: &str, city: &str, times: usize) {
    for _ in 0..times {
        let chosen = client()
            .get(format!("{base}/json?city={city}&type=refresh"))
            .send()
            .await
            .unwrap();
        assert_eq!(chosen.status(), StatusCode::OK, "{base} {city}");
    }
}

#[tokio::test]
async fn manual_city_choices_made_on_edges_are_counted_once_by_the_primary() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |c| {
        c.redis_url = Some(url);
        c.redis_check_secs = 1;
    })
    .await;
    let lisbon = [
        ("role", "gateway"),
        ("city", "Lisbon"),
        ("country", "PT"),
        ("lat", "38.7"),
        ("lon", "-9.1"),
    ];
    app.proxy("gwlis", 10_030, &lisbon).await;
    caught_up(&app.url(""), Duration::from_secs(30)).await;
    // The second edge limits `/json` as a deployed edge does: a burst of 4 per address, then
    // one a minute.
    let limited = RateLimitSettings {
        json: Limit::new((1, 4), (0, 1)),
        ..RateLimitSettings::default()
    };
    let (one, two) = (
        start_edge(&redis).await,
        start_edge_with(&redis, limited).await,
    );
    for edge in [&one, &two] {
        eventually(Duration::from_secs(30), "the edge to serve", || async {
            let health = client()
                .get(format!("{}/healthz", edge.base))
                .send()
                .await
                .ok()?;
            (health.status() == StatusCode::OK).then_some(())
        })
        .await;
    }

    // Three choices on one edge, two on the other, one on the primary itself.
    choose(&one.base, "lisbon", 3).await;
    choose(&two.base, "lisbon", 2).await;
    choose(&app.url(""), "lisbon", 1).await;
    eventually(Duration::from_secs(30), "six choices counted", || async {
        (overrides_of(&app, "lisbon").await == 6).then_some(())
    })
    .await;
    // A city without gateways is refused by the edge and counted nowhere.
    let unknown = client()
        .get(format!("{}/json?city=atlantis&type=refresh", one.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // The per-day counts and /metrics carry the edges' choices too.
    let counted = app.admin_json("/api/v1/admin/gateways/overrides").await;
    assert_eq!(counted["by_day"]["lisbon"][0]["count"], 6, "{counted}");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("proxyfleet_gateway_overrides_total{city=\"lisbon\"} 6"),
        "{metrics}"
    );

    // Exactly once across a crash at either step. A batch the primary renamed but did not fold
    // is folded; one it folded but did not delete adds nothing.
    let mut conn = redis.connection().await;
    let folded = counted["edge_batches"].as_u64().expect("edge_batches");
    assert!(folded >= 1, "{counted}");
    let day = counted["by_day"]["lisbon"][0]["day"]
        .as_str()
        .unwrap()
        .to_string();
    let day_number = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .unwrap()
        .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days();
    let field = format!("{day_number}|lisbon");
    let _: () = redis::cmd("HSET")
        .arg(format!("proxyfleet:edge:overrides:folding:{folded}"))
        .arg(&field)
        .arg(100)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("proxyfleet:edge:overrides:folding:{}", folded + 1))
        .arg(&field)
        .arg(4)
        .query_async(&mut conn)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the renamed batch folded",
        || async { (overrides_of(&app, "lisbon").await == 10).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(30), "the batches deleted", || async {
        let mut conn = redis.connection().await;
        let left: Vec<String> = redis::cmd("KEYS")
            .arg("proxyfleet:edge:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        left.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        overrides_of(&app, "lisbon").await,
        10,
        "the folded batch was not added again"
    );

    // A full copy of the store to Redis leaves what edges wrote for the primary alone (a batch
    // number the primary is not at is never touched by it).
    let _: () = redis::cmd("HSET")
        .arg("proxyfleet:edge:overrides:folding:999999")
        .arg(&field)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    crate::redis_support::resync(&app.url(""), Duration::from_secs(60)).await;
    let kept: bool = redis::cmd("EXISTS")
        .arg("proxyfleet:edge:overrides:folding:999999")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(kept, "the full copy removed an edge's key");
    choose(&two.base, "lisbon", 2).await;
    eventually(
        Duration::from_secs(30),
        "the choices after the copy",
        || async { (overrides_of(&app, "lisbon").await == 12).then_some(()) },
    )
    .await;

    // A flood from one address past its burst is refused before anything is counted: 429
    // with Retry-After and the error shape, also for bitmask-vpn's POST and with a made-up
    // X-Forwarded-For (the peer is not a trusted proxy). Each edge limits its own clients.
    let mut let_through = 0;
    for attempt in 0..40 {
        let request = if attempt % 2 == 0 {
            client().get(format!("{}/json?city=lisbon&type=refresh", two.base))
        } else {
            client()
                .post(format!("{}/json?city=lisbon&type=refresh", two.base))
                .header("x-forwarded-for", format!("198.51.100.{attempt}"))
        };
        let answer = request.send().await.unwrap();
        if answer.status() == StatusCode::OK {
            // One more allowance falls due each minute.
            let_through += 1;
            continue;
        }
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(answer.headers().contains_key("retry-after"));
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    }
    assert!(let_through <= 1, "{let_through} of 40 let through");
    // The edges count before they answer, so once the primary has this later choice it has
    // every choice the flood could have made.
    choose(&one.base, "lisbon", 1).await;
    eventually(
        Duration::from_secs(30),
        "the later choice counted",
        || async { (overrides_of(&app, "lisbon").await >= 13).then_some(()) },
    )
    .await;
    assert_eq!(overrides_of(&app, "lisbon").await, 13 + let_through);
}
