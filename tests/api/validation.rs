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
        // IPv6 special ranges and the 6to4 relay anycast, which reach no proxy of anyone's.
        (
            &[("name", "ok1"), ("ip", "::10.1.2.3"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "::ffff:10.1.2.3"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "64:ff9b::a01:203"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "2002:a01:203::1"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "fec0::1"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "100::1"), ("port", "443")],
            422,
            "private_ip",
        ),
        (
            &[
                ("name", "ok1"),
                ("ip", "2001:0:4136:e378::1"),
                ("port", "443"),
            ],
            422,
            "private_ip",
        ),
        (
            &[("name", "ok1"), ("ip", "192.88.99.1"), ("port", "443")],
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

/// Sends raw bytes and returns everything the server answers before closing.
async fn raw_exchange(app: &crate::helpers::TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn json_error_of(answer: &str) -> (u16, String) {
    let status = answer[9..12].parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    (status, body["error"]["code"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn odd_requests_get_a_json_4xx_and_change_nothing() {
    use crate::helpers::ADMIN_TOKEN;
    let app = spawn_app().await;
    let users = || async { app.admin_json("/api/v1/admin/summary").await["users_total"].clone() };
    let before = users().await;

    // A JSON body naming a key twice, here and in a registration.
    let twice = app
        .client
        .post(app.url("/api/v1/admin/users"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"email":"a@example.org","email":"b@example.org"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(twice).await, "invalid_json");
    let register = app
        .client
        .post(app.url("/register"))
        .bearer_auth(REGISTRY_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"name":"one","name":"two","ip":"127.0.0.1","port":"9001"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::BAD_REQUEST);

    // An Authorization header that is not UTF-8, on a read and on an audited admin write.
    for request in [
        &b"GET /api/v1/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"[..],
        &b"POST /api/v1/admin/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"[..],
    ] {
        let answer = raw_exchange(&app, request).await;
        assert_eq!(json_error_of(&answer), (400, "invalid_header".into()), "{answer}");
    }

    // A URI or headers too long: hyper's own answers, in the JSON shape.
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let answer = raw_exchange(&app, long_uri.as_bytes()).await;
    assert_eq!(
        json_error_of(&answer),
        (414, "uri_too_long".into()),
        "{answer}"
    );
    let many: String = (0..200).map(|i| format!("X-{i}: a\r\n")).collect();
    let answer = raw_exchange(
        &app,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(
        json_error_of(&answer),
        (431, "headers_too_large".into()),
        "{answer}"
    );

    // A negative limit is a bad query (422), not "method not allowed".
    let negative = app
        .client
        .get(app.url("/api/v1/admin/users?limit=-1"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(negative.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(negative).await, "invalid_query");

    // A time zone far outside -12..+14 (it used to overflow).
    let tz = app
        .client
        .get(app.url("/json?tz=%2B99999999999"))
        .send()
        .await
        .unwrap();
    assert!(tz.status().is_client_error(), "{}", tz.status());
    assert_eq!(error_code(tz).await, "invalid_tz");

    // The same proxy twice in a user's set.
    app.proxy("dup", 9001, &[]).await;
    let (id, token, _) = app.create_user("dup@example.org", None).await;
    let proxies_before = app.user_proxies(id).await;
    let doubled = app
        .client
        .put(app.url(&format!("/api/v1/admin/users/{id}/proxies")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "proxies": ["dup", "dup", "dup", "dup", "dup"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(doubled.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(doubled).await, "duplicate_proxy");
    assert_eq!(app.user_proxies(id).await, proxies_before);

    // gzip with q=0.0 is refused by the client: the config comes plain.
    for refused in ["gzip;q=0.0", "gzip; q=0.000", "*;q=0"] {
        let plain = app
            .client
            .get(app.url("/api/v1/config"))
            .bearer_auth(&token)
            .header("accept-encoding", refused)
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(
            plain.headers().get("content-encoding").is_none(),
            "{refused}"
        );
    }
    let mut after = users().await;
    after = serde_json::json!(after.as_u64().unwrap() - 1); // the user made for the last cases
    assert_eq!(after, before);
}

/// The audit layer reads an audited request's headers leniently: an admin write whose
/// `X-Forwarded-For` is not UTF-8 is still recorded, never served around the trail.
#[tokio::test]
async fn an_admin_write_with_a_garbled_forwarded_header_is_still_audited() {
    use crate::helpers::ADMIN_TOKEN;
    let app = spawn_app().await;
    let body = br#"{"email":"garbled@example.org"}"#;
    let mut request = format!(
        "POST /api/v1/admin/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(b"X-Forwarded-For: \xff\xfe\r\n\r\n");
    request.extend_from_slice(body);
    let answer = raw_exchange(&app, &request).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let audit = app.admin_json("/admin/api/audit?q=users").await;
    let recorded = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "POST /api/v1/admin/users" && e["status"] == 201)
        .count();
    assert_eq!(recorded, 1, "{audit}");
}
