//! The censor's view (P9): `/json` lists gateways only, whatever the query and on the edge
//! too; a proxy name belongs to the proxy that enrolled it; signed configs name their user and
//! their time; transport details travel from the registration to configs, `/json`, Redis and
//! the edge; a store made by the previous release upgrades without dropping a proxy.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::helpers::{
    client, error_code, eventually, spawn_app_with, verify_with_openssl, ServerProcess, TestApp,
    REGISTRY_TOKEN,
};
use crate::redis_support::{caught_up, hash, RedisServer};

/// Where the proxies that must never appear in `/json` are (the clients ask from 127.0.0.1).
const HIDDEN_IP: &str = "127.0.0.5";

/// One proxy of every role, each with a place (so only the role can keep it out of `/json`).
/// The gateway is enrolled with a gateway enrolment token; the others with the registry token.
async fn one_of_each_role(app: &TestApp) -> Vec<(&'static str, &'static str)> {
    let roles = [
        ("fb1", "fallback", "Paris", "48.85", "2.35", 9001),
        ("fr1", "free", "Berlin", "52.52", "13.40", 9002),
        ("pr1", "pro", "Madrid", "40.41", "-3.70", 9003),
        ("sb1", "standby", "Rome", "41.90", "12.49", 9004),
    ];
    for (name, role, city, lat, lon, port) in roles {
        let port = port.to_string();
        let form = [
            ("name", name),
            ("ip", HIDDEN_IP),
            ("port", port.as_str()),
            ("role", role),
            ("city", city),
            ("lat", lat),
            ("lon", lon),
        ];
        assert_eq!(app.register(&form).await.status(), StatusCode::OK, "{name}");
    }
    let token = enrolment(app, json!({ "role": "gateway", "uses": 2 })).await;
    for (name, city, lat, lon, port) in [
        ("gw1", "Vienna", "48.21", "16.37", "9005"),
        ("gw2", "Lisbon", "38.72", "-9.14", "9006"),
    ] {
        let response = app
            .client
            .post(app.url("/register"))
            .bearer_auth(&token)
            .form(&[
                ("name", name),
                ("ip", "127.0.0.2"),
                ("port", port),
                ("city", city),
                ("lat", lat),
                ("lon", lon),
                ("protocol", "openvpn"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        app.keys.remember(name, &response);
    }
    vec![
        ("fb1", "fallback"),
        ("fr1", "free"),
        ("pr1", "pro"),
        ("sb1", "standby"),
        ("gw1", "gateway"),
        ("gw2", "gateway"),
    ]
}

/// A new enrolment token (the admin API's answer, which shows it once).
async fn enrolment(app: &TestApp, body: Value) -> String {
    let response = app.admin_post("/api/v1/admin/enrolments", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    created["token"].as_str().expect("token").to_string()
}

/// `/json` as bitmask-vpn's bonafide package decodes it: plain float64 `lat`/`lon`, hosts as
/// strings, `fullness` a number and `overload` a boolean. Decoding fails on any other type.
#[derive(Deserialize)]
#[allow(dead_code)] // every field is decoded for its type, as the Go client does
struct GeoLocation {
    ip: String,
    cc: String,
    city: String,
    lat: f64,
    lon: f64,
    gateways: Vec<String>,
    #[serde(rename = "sortedGateways")]
    sorted_gateways: Vec<GeoGateway>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct GeoGateway {
    host: String,
    fullness: f64,
    overload: bool,
}

/// Every way the real clients (and a curious censor) ask: GET and POST (bonafide posts an
/// empty body with no content type), each query form.
const QUERIES: [&str; 13] = [
    "",
    "?n=1",
    "?n=100",
    "?n=",
    "?city=",
    "?city=vienna",
    "?city=lisbon&type=refresh",
    "?lat=48.2&lon=16.3",
    "?lat=&lon=",
    "?tz=%2B2",
    "?tz=-5&n=1",
    "?type=refresh",
    "?lat=38.7&lon=-9.1&n=2&tz=0",
];

async fn ask_json(base: &str, method: Method, query: &str) -> (StatusCode, String) {
    let mut request = client().request(method.clone(), format!("{base}/json{query}"));
    if method == Method::POST {
        request = request.header("content-length", "0");
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Asks `/json` every way on `base` and checks only gateways are ever named.
async fn sweep_json(base: &str, gateways: &BTreeSet<String>, hidden: &[&str]) {
    for method in [Method::GET, Method::POST] {
        for query in QUERIES {
            let (status, text) = ask_json(base, method.clone(), query).await;
            assert_eq!(status, StatusCode::OK, "{method} /json{query}: {text}");
            for name in hidden {
                assert!(
                    !text.contains(&format!("{name}.")) && !text.contains(HIDDEN_IP),
                    "{method} /json{query} shows {name} or its address: {text}"
                );
            }
            let answer: GeoLocation = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("bonafide cannot decode {method} /json{query}: {e}"));
            let hosts: BTreeSet<String> = answer.gateways.iter().cloned().collect();
            assert!(
                hosts.is_subset(gateways),
                "{method} /json{query}: {hosts:?}"
            );
            let sorted: Vec<&String> = answer.sorted_gateways.iter().map(|g| &g.host).collect();
            assert_eq!(sorted, answer.gateways.iter().collect::<Vec<_>>());
            let n = query
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("n="))
                .and_then(|v| v.parse::<usize>().ok());
            let in_city = query.contains("city=vienna") || query.contains("city=lisbon");
            let expected = match (n, in_city) {
                (_, true) => 1,
                (Some(n), false) => n.min(gateways.len()),
                (None, false) => gateways.len(),
            };
            assert_eq!(
                answer.gateways.len(),
                expected,
                "{method} /json{query}: without n every gateway, n truncates"
            );
        }
    }
}

#[tokio::test]
async fn json_lists_only_gateways_on_the_primary_and_the_edge_whatever_the_query() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |c| {
        c.redis_url = Some(url);
        c.peers_domain = "gw.test".into();
    })
    .await;
    let roles = one_of_each_role(&app).await;
    let gateways: BTreeSet<String> = roles
        .iter()
        .filter(|(_, role)| *role == "gateway")
        .map(|(name, _)| format!("{name}.gw.test"))
        .collect();
    let hidden: Vec<&str> = roles
        .iter()
        .filter(|(_, role)| *role != "gateway")
        .map(|(name, _)| *name)
        .collect();
    for (name, role) in &roles {
        let proxy = app
            .admin_json(&format!("/api/v1/admin/proxies/{name}"))
            .await;
        assert_eq!(proxy["role"], *role, "{name}");
    }
    sweep_json(&app.url(""), &gateways, &hidden).await;

    caught_up(&app.url(""), Duration::from_secs(30)).await;
    let edge = crate::edge::start_edge(&redis).await;
    eventually(
        Duration::from_secs(30),
        "the edge to load the fleet",
        || {
            let base = edge.base.clone();
            async move {
                let (status, text) = ask_json(&base, Method::GET, "").await;
                (status == StatusCode::OK && text.contains("gw1.")).then_some(())
            }
        },
    )
    .await;
    sweep_json(&edge.base, &gateways, &hidden).await;

    // A proxy made a gateway by an admin appears; made a fallback again, it is gone.
    let response = app
        .admin_post(
            "/api/v1/admin/proxies/fr1/role",
            &json!({ "role": "gateway" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The fleet view behind `/json` is rebuilt within a second of a role change.
    eventually(Duration::from_secs(10), "fr1 listed as a gateway", || {
        let base = app.url("");
        async move {
            let (_, text) = ask_json(&base, Method::GET, "").await;
            text.contains("fr1.gw.test").then_some(())
        }
    })
    .await;
    // Its own heartbeat (asking for another role) does not change what the operator chose.
    let form = [
        ("name", "fr1"),
        ("ip", HIDDEN_IP),
        ("port", "9002"),
        ("role", "free"),
    ];
    assert_eq!(app.register(&form).await.status(), StatusCode::OK);
    let proxy = app.admin_json("/api/v1/admin/proxies/fr1").await;
    assert_eq!(proxy["role"], "gateway");
}

/// Everything a hijack could change: the proxy records, the VCL (and the version of the
/// routable set that a varnish sync would load), a user's config.
async fn fleet_state(app: &TestApp, token: &str) -> (Value, String, Value, Value) {
    let proxies = app.admin_json("/api/v1/admin/proxies").await;
    let edge_version = app.admin_json("/api/v1/admin/edge").await["version"].clone();
    let vcl = app
        .admin_get("/api/v1/admin/edge/varnish.vcl")
        .await
        .text()
        .await
        .unwrap();
    let (_, _, config) = app.config(token).await;
    (proxies, vcl, config, edge_version)
}

#[tokio::test]
async fn a_name_belongs_to_the_proxy_that_enrolled_it() {
    let app = spawn_app_with(|c| c.heartbeat_ttl_secs = 3600).await;
    for (name, port) in [("victim", "9101"), ("mallory", "9102")] {
        let form = [("name", name), ("ip", "127.0.0.1"), ("port", port)];
        let response = app.register(&form).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers().get("x-proxy-secret").is_some(),
            "an enrolment answers the secret in a header too"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["proxy_secret"].as_str().unwrap().starts_with("pfp_"));
    }
    let (_, token, proxies) = app.create_user("u@example.org", None).await;
    assert!(!proxies.is_empty());
    let before = fleet_state(&app, &token).await;

    let hijack = [("name", "victim"), ("ip", "127.0.0.9"), ("port", "6666")];
    let mallory = app.keys.secret("mallory").unwrap();
    let attempts = [
        (
            "registry token re-registers",
            REGISTRY_TOKEN.to_string(),
            "/register",
        ),
        (
            "another proxy's secret re-registers",
            mallory.clone(),
            "/register",
        ),
        (
            "registry token unregisters",
            REGISTRY_TOKEN.to_string(),
            "/unregister",
        ),
        ("another proxy's secret unregisters", mallory, "/unregister"),
    ];
    for (what, bearer, path) in attempts {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(&bearer)
            .form(&hijack)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(error_code(response).await, "name_taken", "{what}");
    }
    // A token that is nobody's is a 401, whether the name exists or not.
    for name in ["victim", "nobody"] {
        let response = app
            .client
            .post(app.url("/register"))
            .bearer_auth("pfp_0000")
            .form(&[("name", name), ("ip", "127.0.0.9"), ("port", "6666")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_eq!(fleet_state(&app, &token).await, before, "nothing changed");

    // The proxy's own secret still works, and moves it.
    let moved = [("name", "victim"), ("ip", "127.0.0.3"), ("port", "9103")];
    assert_eq!(app.register(&moved).await.status(), StatusCode::OK);
    let proxy = app.admin_json("/api/v1/admin/proxies/victim").await;
    assert_eq!(
        (proxy["ip"].as_str(), proxy["port"].as_u64()),
        (Some("127.0.0.3"), Some(9103))
    );
    // A secret survives its proxy's absence: unregistered, it comes back with it.
    assert_eq!(app.unregister("victim").await.status(), StatusCode::OK);
    let response = app
        .client
        .post(app.url("/register"))
        .bearer_auth(REGISTRY_TOKEN)
        .form(&moved)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "the gone name is still held"
    );
    assert_eq!(app.register(&moved).await.status(), StatusCode::OK);
    app.assert_consistent().await;
}

#[tokio::test]
async fn enrolment_tokens_set_role_capacity_uses_and_expiry() {
    let app = spawn_app_with(|c| c.max_proxy_capacity = 500).await;
    let token = enrolment(
        &app,
        json!({ "role": "pro", "max_capacity": 40, "uses": 2, "note": "batch 1" }),
    )
    .await;
    let enrol = |name: &'static str, token: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/register"))
                .bearer_auth(token)
                .form(&[
                    ("name", name),
                    ("ip", "127.0.0.1"),
                    ("port", "9200"),
                    ("role", "gateway"),
                    ("capacity", "10000000"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for name in ["e1", "e2"] {
        let response = enrol(name, token.clone()).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["role"], "pro",
            "the token's role, not the proxy's wish"
        );
        assert_eq!(body["capacity"], 40, "clamped to the token's max_capacity");
    }
    let third = enrol("e3", token.clone()).await;
    assert_eq!(third.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(third).await, "enrolment_refused");
    let listed = app.admin_json("/api/v1/admin/enrolments").await;
    let first = &listed["enrolments"][0];
    assert_eq!(first["used"], 2);
    assert_eq!(first["enrolled"], json!(["e1", "e2"]));
    assert!(first.get("token").is_none() && !listed.to_string().contains(&token));

    // The registry token's capacity is clamped to max_proxy_capacity.
    let form = [
        ("name", "big"),
        ("ip", "127.0.0.1"),
        ("port", "9201"),
        ("capacity", "10000000"),
    ];
    let response = app.register(&form).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["capacity"], 500);

    // Revoked: refused at once.
    let revocable = enrolment(&app, json!({ "uses": 5 })).await;
    let id = app.admin_json("/api/v1/admin/enrolments").await["enrolments"][0]["id"].clone();
    let revoked = app
        .admin_post(&format!("/api/v1/admin/enrolments/{id}/revoke"), &json!({}))
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        enrol("e4", revocable).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Expired: refused once its second has passed (each try enrols a new name while it lasts).
    let short = enrolment(&app, json!({ "expires_in_secs": 1, "uses": 1000 })).await;
    let tries = std::sync::atomic::AtomicUsize::new(0);
    let refused_name = eventually(Duration::from_secs(10), "the token to expire", || {
        let name = format!(
            "late{}",
            tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (app, short) = (&app, short.clone());
        async move {
            let response = app
                .client
                .post(app.url("/register"))
                .bearer_auth(short)
                .form(&[
                    ("name", name.as_str()),
                    ("ip", "127.0.0.1"),
                    ("port", "9202"),
                ])
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::OK {
                return None;
            }
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert_eq!(error_code(response).await, "enrolment_refused");
            Some(name)
        }
    })
    .await;
    let refused = app
        .admin_get(&format!("/api/v1/admin/proxies/{refused_name}"))
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);

    // Bad input changes nothing.
    for bad in [
        json!({ "uses": 0 }),
        json!({ "role": "boss" }),
        json!({ "max_capacity": 501 }),
    ] {
        let response = app.admin_post("/api/v1/admin/enrolments", &bad).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(
        app.admin_json("/api/v1/admin/enrolments").await["enrolments"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the three made above, no more"
    );
}

#[tokio::test]
async fn secrets_rotate_and_revoke() {
    let app = spawn_app_with(|c| c.heartbeat_ttl_secs = 3600).await;
    let form = [("name", "rot1"), ("ip", "127.0.0.1"), ("port", "9300")];
    assert_eq!(app.register(&form).await.status(), StatusCode::OK);
    let old = app.keys.secret("rot1").unwrap();

    let rotated = app
        .admin_post("/api/v1/admin/proxies/rot1/secret", &json!({}))
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new = rotated.json::<Value>().await.unwrap()["proxy_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let with = |secret: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/register"))
                .bearer_auth(secret)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        with(old).await,
        StatusCode::UNAUTHORIZED,
        "the old secret is dead"
    );
    assert_eq!(with(new.clone()).await, StatusCode::OK);

    let revoked = app
        .admin_post("/api/v1/admin/proxies/rot1/revoke", &json!({}))
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(app.proxy_names().await.is_empty(), "out of service at once");
    let refused = app
        .client
        .post(app.url("/register"))
        .bearer_auth(&new)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "proxy_revoked");
    assert!(app.proxy_names().await.is_empty());
    let events = app
        .admin_json("/api/v1/admin/registry/events?name=rot1")
        .await;
    assert_eq!(events["events"][0]["kind"], "revoked");

    // Rotating lets it back in with the new secret.
    let rotated = app
        .admin_post("/api/v1/admin/proxies/rot1/secret", &json!({}))
        .await;
    let again = rotated.json::<Value>().await.unwrap()["proxy_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(with(again).await, StatusCode::OK);
    assert_eq!(app.proxy_names().await, vec!["rot1"]);
    let unknown = app
        .admin_post("/api/v1/admin/proxies/nosuch/secret", &json!({}))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    app.assert_consistent().await;
}

#[tokio::test]
async fn the_fleet_is_capped_and_unregister_is_rate_limited() {
    let app = spawn_app_with(|c| {
        c.max_proxies = 3;
        c.rate_limits.enabled = true;
        c.rate_limits.unregister = proxyfleet::http::rate_limit::Limit::new((1, 2), (0, 1));
    })
    .await;
    for i in 0..3 {
        let (name, port) = (format!("cap{i}"), (9400 + i).to_string());
        let form = [
            ("name", name.as_str()),
            ("ip", "127.0.0.1"),
            ("port", &port),
        ];
        assert_eq!(app.register(&form).await.status(), StatusCode::OK);
    }
    let form = [("name", "cap3"), ("ip", "127.0.0.1"), ("port", "9403")];
    let full = app.register(&form).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(full).await, "fleet_full");
    let form = [("name", "cap0"), ("ip", "127.0.0.1"), ("port", "9400")];
    assert_eq!(
        app.register(&form).await.status(),
        StatusCode::OK,
        "heartbeats go on"
    );

    assert_eq!(app.unregister("cap0").await.status(), StatusCode::OK);
    assert_eq!(app.unregister("cap1").await.status(), StatusCode::OK);
    let limited = app.unregister("cap2").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(app.proxy_names().await, vec!["cap2"]);
}

#[tokio::test]
async fn a_signed_config_names_its_user_and_its_time() {
    let validity = 86_400;
    let app = spawn_app_with(move |c| c.config_validity_secs = validity).await;
    let form = [
        ("name", "fb1"),
        ("ip", "127.0.0.1"),
        ("port", "9500"),
        ("protocol", "obfs4"),
        ("public_key", "b2JmczQtY2VydA"),
        ("sni", "cdn.example.org"),
        ("front", "www.example.com"),
        ("cert_sha256", &"ab".repeat(32)),
    ];
    assert_eq!(app.register(&form).await.status(), StatusCode::OK);
    let (id, token, _) = app.create_user("signed@example.org", None).await;
    let (other_id, other_token, _) = app.create_user("other@example.org", None).await;
    let pubkey = app.public_json("/api/v1/config/pubkey").await;
    let key = pubkey["public_key"].as_str().unwrap();
    let now = crate::helpers::unix_now() as u64;
    for (user, token) in [(id, &token), (other_id, &other_token)] {
        let response = app
            .client
            .get(app.url("/api/v1/config"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let signature = response.headers()["x-proxyfleet-signature"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.bytes().await.unwrap();
        let signed = verify_with_openssl(key, &signature, &body);
        assert_eq!(signed["user"], user);
        let issued = signed["issued_at"].as_u64().unwrap();
        let expires = signed["expires_at"].as_u64().unwrap();
        assert_eq!(expires - issued, validity);
        assert!(
            issued <= now + 1 && now < issued + validity / 2 + 1,
            "{signed}"
        );
        assert!(signed["version"].as_u64().is_some());
        // The transport details a client needs are in the signed body.
        let proxy = &signed["proxies"][0];
        assert_eq!(proxy["protocol"], "obfs4");
        assert_eq!(proxy["public_key"], "b2JmczQtY2VydA");
        assert_eq!(proxy["sni"], "cdn.example.org");
        assert_eq!(proxy["front"], "www.example.com");
        assert_eq!(proxy["cert_sha256"], "ab".repeat(32));
    }
}

#[tokio::test]
async fn transport_details_travel_through_the_mirror_to_the_edge() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |c| c.redis_url = Some(url)).await;
    let token = enrolment(&app, json!({ "role": "gateway" })).await;
    let response = app
        .client
        .post(app.url("/register"))
        .bearer_auth(&token)
        .json(
            &json!({ "name": "wg1", "ip": "127.0.0.4", "port": 51820, "lat": 50.1, "lon": 8.7,
                       "city": "Frankfurt", "protocol": "wireguard",
                       "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let fallback = [
        ("name", "fb1"),
        ("ip", "127.0.0.1"),
        ("port", "443"),
        ("protocol", "https"),
        ("sni", "front.example.org"),
    ];
    assert_eq!(app.register(&fallback).await.status(), StatusCode::OK);
    let (_, user_token, _) = app.create_user("t@example.org", None).await;

    let admin_view = app.admin_json("/api/v1/admin/proxies/wg1").await;
    assert_eq!(admin_view["protocol"], "wireguard");
    caught_up(&app.url(""), Duration::from_secs(30)).await;
    let mut conn = redis.connection().await;
    let mirrored = hash(&mut conn, "proxyfleet:proxy:wg1").await;
    assert_eq!(mirrored["protocol"], "wireguard");
    assert_eq!(mirrored["role"], "gateway");
    assert_eq!(
        mirrored["public_key"],
        "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
    );
    assert!(!mirrored.contains_key("sni"));
    let mirrored = hash(&mut conn, "proxyfleet:proxy:fb1").await;
    assert_eq!(mirrored["sni"], "front.example.org");

    let edge = crate::edge::start_edge(&redis).await;
    let (_, text) = eventually(Duration::from_secs(30), "the edge's /json", || {
        let base = edge.base.clone();
        async move {
            let answer = ask_json(&base, Method::GET, "").await;
            answer.1.contains("wg1.").then_some(answer)
        }
    })
    .await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["sortedGateways"][0]["protocol"], "wireguard");
    let config = client()
        .get(format!("{}/api/v1/config", edge.base))
        .bearer_auth(&user_token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(config["proxies"][0]["sni"], "front.example.org", "{config}");
    assert!(
        !config.to_string().contains("wg1"),
        "a gateway is no one's fallback"
    );
}

/// Made by the release before per-proxy secrets (data format 1): five proxies (fallback
/// `oldfb1` at 127.0.0.1:7001 and `oldfb2` at :7002, free `oldfree1`, pro `oldpro1`, standby
/// `oldsb1`, all with places, alive for a century) and a user of `oldfb2`.
const FORMAT_1_BACKUP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/format1-proxies.pfbak"
);
const FORMAT_1_USER_TOKEN: &str =
    "pfu_b04fb51dbfa350b7c65c70e6608e916de3a7258e9444f62363cd0883a2c4cd6d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_previous_release_upgrades_without_dropping_or_exposing_a_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let restored = std::process::Command::new(env!("CARGO_BIN_EXE_proxyfleet"))
        .args(["restore", FORMAT_1_BACKUP, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(restored.status.success(), "{restored:?}");
    let server = ServerProcess::start(&data, &[]);
    let listed = crate::helpers::proxy_names(&server.admin_json("/api/v1/admin/proxies").await);
    assert_eq!(
        listed,
        vec!["oldfb1", "oldfb2", "oldfree1", "oldpro1", "oldsb1"]
    );
    let json = client().get(server.url("/json")).send().await.unwrap();
    let json: Value = json.json().await.unwrap();
    assert_eq!(
        json["gateways"],
        json!([]),
        "no proxy became a gateway: {json}"
    );
    let config = client()
        .get(server.url("/api/v1/config"))
        .bearer_auth(FORMAT_1_USER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), StatusCode::OK);
    assert!(config.text().await.unwrap().contains("oldfb2"));

    let http = client();
    let heartbeat = |bearer: String, port: &'static str| {
        http.post(server.url("/register"))
            .bearer_auth(bearer)
            .form(&[
                ("name", "oldfb1"),
                ("ip", "127.0.0.1"),
                ("port", port),
                ("clients", "5"),
            ])
            .send()
    };
    // From elsewhere, the registry token cannot take it over.
    let elsewhere = heartbeat(REGISTRY_TOKEN.into(), "6666").await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    // From where it is registered, its first heartbeat claims its secret...
    let claimed = heartbeat(REGISTRY_TOKEN.into(), "7001").await.unwrap();
    assert_eq!(claimed.status(), StatusCode::OK);
    let secret = claimed.json::<Value>().await.unwrap()["proxy_secret"]
        .as_str()
        .expect("the claimed secret")
        .to_string();
    // ...and from then on only the secret heartbeats.
    let again = heartbeat(REGISTRY_TOKEN.into(), "7001").await.unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        heartbeat(secret, "7001").await.unwrap().status(),
        StatusCode::OK
    );
    let proxy = server.admin_json("/api/v1/admin/proxies/oldfb1").await;
    assert_eq!(
        (proxy["role"].as_str(), proxy["clients"].as_u64()),
        (Some("fallback"), Some(5))
    );
    let check = server.admin_json("/api/v1/admin/check").await;
    assert_eq!(check["ok"], true, "{check}");
    let pre_migration = std::fs::read_dir(dir.path().join("data-backups"))
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(&format!(
                    "pre-migration-1-to-{}",
                    proxyfleet::store::format::DATA_FORMAT
                ))
            })
        })
        .unwrap_or(false);
    assert!(pre_migration, "a backup was taken before migrating");
}
