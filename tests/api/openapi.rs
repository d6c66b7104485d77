//! The OpenAPI file against the routes that exist, both ways: the route tables the router is
//! built from name exactly the documented operations (method and path template), every
//! documented operation answers as routed (with the credential it documents), and no other
//! method is routed on a documented path. So the file cannot drift from the server.

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
        "{action}" => "disable",
        "{path}" => "world-land.svg",
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
        // Methods the file does not give for this path are not routed (asked with the admin
        // token, so no route stops at authentication before looking at the method).
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            if operations.get(method.as_str().to_lowercase()).is_some() {
                continue;
            }
            let response = app
                .client
                .request(method.clone(), &url)
                .bearer_auth(crate::helpers::ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(
                status == StatusCode::METHOD_NOT_ALLOWED
                    || (status == StatusCode::NOT_FOUND && text.contains(NO_ROUTE_MESSAGE)),
                "{method} {path} is not documented, yet answered {status}: {text}"
            );
        }
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

#[tokio::test]
async fn the_route_table_and_the_file_name_the_same_operations() {
    let app = spawn_app().await;
    let doc: Value = serde_json::from_str(proxyfleet::app::OPENAPI).expect("JSON");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let routed: BTreeSet<(String, String)> = app.endpoints.iter().cloned().collect();
    assert_eq!(
        routed.len(),
        app.endpoints.len(),
        "an endpoint is listed twice in the route tables"
    );
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in assets/openapi.json: {undocumented:?}\n\
         in assets/openapi.json but not routed: {unrouted:?}"
    );
}
