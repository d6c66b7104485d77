use reqwest::StatusCode;

use crate::helpers::{error_code, spawn_app, spawn_app_with, REGISTRY_TOKEN};

type Form<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn every_invalid_registration_is_refused_and_stores_nothing() {
    let app = spawn_app_with(|c| c.allow_private_ips = false).await;
    let good = [("name", "ok1"), ("ip", "54.230.90.149"), ("port", "443")];
    let cases: &[(Form, u16, &str)] = &[
        (
            &[("ip", "54.230.90.149"), ("port", "443")],
            422,
            "missing_field",
        ),
        (&[("name", "ok1"), ("port", "443")], 422, "missing_field"),
        (
            &[("name", "ok1"), ("ip", "54.230.90.149")],
            422,
            "missing_field",
        ),
        (
            &[
                ("name", "Bad_Name"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
            ],
            422,
            "invalid_name",
        ),
        (
            &[
                ("name", &"a".repeat(64)),
                ("ip", "54.230.90.149"),
                ("port", "443"),
            ],
            422,
            "invalid_name",
        ),
        (
            &[("name", "ok1"), ("ip", "999.1.1.1"), ("port", "443")],
            422,
            "invalid_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "0.0.0.0"), ("port", "443")],
            422,
            "invalid_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "239.1.1.1"), ("port", "443")],
            422,
            "invalid_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "10.1.2.3"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "127.0.0.1"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "fd12::1"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "54.230.90.149"), ("port", "0")],
            422,
            "invalid_port",
        ),
        (
            &[("name", "ok1"), ("ip", "54.230.90.149"), ("port", "65536")],
            422,
            "invalid_port",
        ),
        (
            &[("name", "ok1"), ("ip", "54.230.90.149"), ("port", "http")],
            422,
            "invalid_port",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("role", "king"),
            ],
            422,
            "invalid_role",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("country", "ZZ"),
            ],
            422,
            "invalid_country",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("country", "GER"),
            ],
            422,
            "invalid_country",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("lat", "90.5"),
                ("lon", "0"),
            ],
            422,
            "invalid_location",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("lat", "0"),
                ("lon", "-181"),
            ],
            422,
            "invalid_location",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("lat", "10"),
            ],
            422,
            "invalid_location",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("lat", "NaN"),
                ("lon", "1"),
            ],
            422,
            "invalid_location",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("capacity", "0"),
            ],
            422,
            "invalid_number",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("clients", "-3"),
            ],
            422,
            "invalid_number",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("cpu", "250"),
            ],
            422,
            "invalid_number",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("bandwidth", "fast"),
            ],
            422,
            "invalid_number",
        ),
        (
            &[
                ("name", "ok1"),
                ("name", "ok2"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
            ],
            400,
            "duplicate_field",
        ),
    ];
    for (form, status, code) in cases {
        let response = app.register(form).await;
        assert_eq!(response.status().as_u16(), *status, "{form:?}");
        assert_eq!(error_code(response).await, *code, "{form:?}");
    }
    assert!(
        app.proxy_names().await.is_empty(),
        "a refused registration stored something"
    );
    let history = app.admin_json("/api/v1/admin/registry/events").await;
    assert!(history["events"].as_array().unwrap().is_empty());

    // The same rules hold for JSON bodies, and broken JSON is a 400.
    let response = app
        .client
        .post(app.url("/register"))
        .bearer_auth(REGISTRY_TOKEN)
        .json(&serde_json::json!({"name": "ok1", "ip": "54.230.90.149", "port": 70000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(response).await, "invalid_port");
    let response = app
        .client
        .post(app.url("/register"))
        .bearer_auth(REGISTRY_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "invalid_json");

    // And the good registration still goes through.
    assert_eq!(app.register(&good).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let huge = "x".repeat(4096);
    let response = app
        .register(&[
            ("name", "big"),
            ("ip", "127.0.0.1"),
            ("port", "80"),
            ("city", &huge),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "body_too_large");
    assert!(app.proxy_names().await.is_empty());
}

#[tokio::test]
async fn wrong_methods_are_json_errors() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/register")).send().await.unwrap();
    assert!(response.status().is_client_error());
    error_code(response).await;
}
