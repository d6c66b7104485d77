//! The OpenAPI file against the routes that exist, both ways: every documented operation is
//! routed (and asks for the credential it documents), and every path segment the code routes on
//! is documented. So the file cannot drift from the server.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

/// The router's own 404, as opposed to a handler's "no such user".
const NO_ROUTE_MESSAGE: &str = "no such resource";

fn sample(segment: &str) -> &str {
    match segment {
        "{id}" => "999999",
        "{name}" => "nosuchproxy",
        "{code}" => "nosuchcode",
        other => other,
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_with_its_security() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.expect("the file is JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 50, "{} paths", paths.len());
    for (path, operations) in paths {
        assert!(path.starts_with('/'), "{path}");
        let concrete: Vec<&str> = path.split('/').map(sample).collect();
        let url = app.url(&concrete.join("/"));
        for (method, operation) in operations.as_object().unwrap() {
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            assert!(operation["responses"].is_object(), "{method} {path}");
            let method: Method = method.to_uppercase().parse().unwrap();
            let mut request = app.client.request(method.clone(), &url);
            if method != Method::GET && method != Method::DELETE {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if secured {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} without a credential: {text}"
                );
            } else {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}: {text}"
                );
                assert!(
                    !(status == StatusCode::NOT_FOUND && text.contains(NO_ROUTE_MESSAGE)),
                    "{method} {path} is documented but not routed"
                );
            }
        }
    }
}

/// The string segments of every `warp::path!(...)` and `warp::path("...")` in the sources.
fn routed_segments(dir: &std::path::Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // The edge binary serves a subset of the primary's routes from Redis.
            if !path.ends_with("edge") {
                routed_segments(&path, out);
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices("warp::path") {
            let rest = &text[at..];
            let Some(open) = rest.find('(') else { continue };
            let Some(close) = rest[open..].find(')') else {
                continue;
            };
            let args = &rest[open + 1..open + close];
            for quoted in args.split('"').skip(1).step_by(2) {
                out.insert(quoted.to_string());
            }
        }
    }
}

#[test]
fn every_routed_segment_is_documented() {
    let doc: Value = serde_json::from_str(proxyfleet::app::OPENAPI).expect("JSON");
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .flat_map(|path| path.split('/').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut routed = BTreeSet::new();
    routed_segments(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut routed,
    );
    assert!(routed.len() > 30, "{routed:?}");
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routed but not in assets/openapi.json: {missing:?}"
    );
}
