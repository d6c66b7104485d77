//! Every answer the test suite receives, checked against the API description
//! (assets/openapi.json): a documented operation answers only statuses it documents, and a JSON
//! body matches the schema documented for that status. `helpers::client()` puts this check in
//! front of every request the suite makes through it, so the description is validated by the
//! whole suite's live traffic (hostile callers included), not by a sample of requests.
//!
//! What is not checked: paths no operation documents (the router's own 404 is a test of its
//! own), a method the path does not document (405), and bodies that are not JSON.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{json, Map, Value};

/// One documented operation: its path template's segments and, by status, the schema of its
/// JSON answer (`None`: documented without one).
struct Operation {
    method: String,
    template: String,
    segments: Vec<String>,
    responses: BTreeMap<String, Option<jsonschema::Validator>>,
}

struct Description {
    operations: Vec<Operation>,
}

static DESCRIPTION: LazyLock<Description> = LazyLock::new(|| {
    let text = std::fs::read_to_string("assets/openapi.json").expect("assets/openapi.json");
    Description::new(&serde_json::from_str(&text).expect("the description is JSON"))
});

/// `#/components/...` of the document.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').expect("a local reference");
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} is not in the description"))
}

/// An OpenAPI 3.0 schema as JSON Schema: references inlined, `nullable` as a null alternative.
fn json_schema(doc: &Value, schema: &Value) -> Value {
    match schema {
        Value::Object(fields) => {
            if let Some(reference) = fields.get("$ref").and_then(Value::as_str) {
                return json_schema(doc, resolve(doc, reference));
            }
            let mut converted = Map::new();
            for (key, value) in fields {
                let value = match key.as_str() {
                    "nullable" | "example" | "description" | "format" => continue,
                    "properties" => Value::Object(
                        value
                            .as_object()
                            .expect("properties")
                            .iter()
                            .map(|(name, s)| (name.clone(), json_schema(doc, s)))
                            .collect(),
                    ),
                    "items" | "additionalProperties" | "not" if value.is_object() => {
                        json_schema(doc, value)
                    }
                    "allOf" | "anyOf" | "oneOf" => Value::Array(
                        value
                            .as_array()
                            .expect("a list of schemas")
                            .iter()
                            .map(|s| json_schema(doc, s))
                            .collect(),
                    ),
                    _ => value.clone(),
                };
                converted.insert(key.clone(), value);
            }
            let converted = Value::Object(converted);
            if fields.get("nullable") == Some(&Value::Bool(true)) {
                json!({ "anyOf": [converted, { "type": "null" }] })
            } else {
                converted
            }
        }
        other => other.clone(),
    }
}

impl Description {
    fn new(doc: &Value) -> Description {
        let mut operations = Vec::new();
        for (template, methods) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in methods.as_object().expect("operations") {
                let mut responses = BTreeMap::new();
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let response = match response.get("$ref").and_then(Value::as_str) {
                        Some(reference) => resolve(doc, reference),
                        None => response,
                    };
                    let schema = response["content"]["application/json"]["schema"].clone();
                    let validator = (!schema.is_null()).then(|| {
                        jsonschema::validator_for(&json_schema(doc, &schema)).unwrap_or_else(|e| {
                            panic!("{method} {template} {status}: a bad schema: {e}")
                        })
                    });
                    responses.insert(status.clone(), validator);
                }
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    segments: template.split('/').map(str::to_string).collect(),
                    responses,
                });
            }
        }
        Description { operations }
    }

    /// The operation serving `method path`: the most literal template whose segments match
    /// (a `{name}` any one segment, a final `{path}` the rest), if it documents `method` (a
    /// method it does not document is the router's 405, not an operation's answer).
    fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        let asked: Vec<&str> = path.split('/').collect();
        let literal = |op: &Operation| op.segments.iter().filter(|s| !s.starts_with('{')).count();
        let best = self
            .operations
            .iter()
            .filter(|op| matches(&op.segments, &asked))
            .max_by_key(|op| literal(op))?;
        self.operations
            .iter()
            .find(|op| op.template == best.template && op.method == method)
    }
}

fn matches(template: &[String], asked: &[&str]) -> bool {
    if template.last().is_some_and(|s| s == "{path}") && asked.len() >= template.len() {
        let fixed = template.len() - 1;
        return template[..fixed]
            .iter()
            .zip(asked)
            .all(|(t, a)| t.starts_with('{') && !a.is_empty() || t == a);
    }
    template.len() == asked.len()
        && template
            .iter()
            .zip(asked)
            .all(|(t, a)| (t.starts_with('{') && !a.is_empty()) || t == a)
}

/// What is wrong with an answer, if anything.
fn violation(method: &str, path: &str, status: u16, body: Option<&Value>) -> Option<String> {
    let operation = DESCRIPTION.find(method, path)?;
    let documented = operation
        .responses
        .get(&status.to_string())
        .or_else(|| operation.responses.get("default"));
    let Some(validator) = documented else {
        return Some(format!(
            "{method} {} answered {status}, which it does not document (it documents {:?})",
            operation.template,
            operation.responses.keys().collect::<Vec<_>>()
        ));
    };
    let (Some(validator), Some(body)) = (validator, body) else {
        return None;
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    (!errors.is_empty()).then(|| {
        format!(
            "{method} {} answered {status} with a body its schema refuses: {}\n{body}",
            operation.template,
            errors.join("; ")
        )
    })
}

/// Fails the test that received the answer; with `PROXYFLEET_CONFORMANCE_LOG=file`, appends to
/// that file instead, so one run of the suite lists every disagreement at once.
fn report(problem: String) {
    match std::env::var_os("PROXYFLEET_CONFORMANCE_LOG") {
        Some(file) => {
            use std::io::Write;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .expect("the conformance log");
            writeln!(log, "{problem}").expect("written");
        }
        None => panic!("{problem}"),
    }
}

/// With `PROXYFLEET_CONFORMANCE_SAMPLES=file`, every JSON answer of a documented operation is
/// appended to that file (`{"method","template","status","body"}` a line): what the suite saw,
/// for whoever describes an answer in assets/openapi.json.
fn sample(method: &str, path: &str, status: u16, body: Option<&Value>) {
    let (Some(file), Some(body)) = (std::env::var_os("PROXYFLEET_CONFORMANCE_SAMPLES"), body)
    else {
        return;
    };
    let Some(operation) = DESCRIPTION.find(method, path) else {
        return;
    };
    use std::io::Write;
    let line = serde_json::json!({
        "method": method,
        "template": operation.template,
        "status": status,
        "body": body,
    });
    let mut samples = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("the samples file");
    // One write a line: tests answer on several threads at once.
    samples
        .write_all(format!("{line}\n").as_bytes())
        .expect("written");
}

/// The check `helpers::client()` runs on every answer.
pub struct Conformance;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Conformance {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let method = request.method().to_string();
        let response = next.run(request, extensions).await?;
        // Where the answer came from: after a redirect, the last address asked.
        let path = response.url().path().to_string();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let status = response.status().as_u16();
        if !is_json {
            if let Some(problem) = violation(&method, &path, status, None) {
                report(problem);
            }
            return Ok(response);
        }
        // A JSON answer is read whole (it is one document), checked, and handed on as it came.
        let version = response.version();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        sample(&method, &path, status, body.as_ref());
        if let Some(problem) = violation(&method, &path, status, body.as_ref()) {
            report(problem);
        }
        let mut rebuilt = http::Response::builder().status(status).version(version);
        *rebuilt.headers_mut().expect("a response builder") = headers;
        Ok(reqwest::Response::from(
            rebuilt.body(bytes).expect("the same parts"),
        ))
    }
}

#[test]
fn templates_match_their_own_paths_only() {
    let segments = |t: &str| t.split('/').map(str::to_string).collect::<Vec<_>>();
    let asked = |p: &'static str| p.split('/').collect::<Vec<_>>();
    let users = segments("/api/v1/admin/users/{id}");
    assert!(matches(&users, &asked("/api/v1/admin/users/7")));
    assert!(!matches(&users, &asked("/api/v1/admin/users/")));
    assert!(!matches(&users, &asked("/api/v1/admin/users/7/pro")));
    let files = segments("/admin/{path}");
    assert!(matches(&files, &asked("/admin/app/main.js")));
    assert!(!matches(&files, &asked("/api/app/main.js")));
    // The most literal template wins: `/users/{id}` against `/users/{id}/pro`, and a literal
    // segment over a placeholder.
    let found = DESCRIPTION
        .find("GET", "/api/v1/admin/proxies/ams1/users")
        .expect("documented");
    assert_eq!(found.template, "/api/v1/admin/proxies/{name}/users");
    // `/admin/api/login` is documented for POST only: a GET there is no operation's answer.
    assert!(DESCRIPTION.find("GET", "/admin/api/login").is_none());
    assert!(DESCRIPTION.find("GET", "/admin/app/main.js").is_some());
}

#[test]
fn a_body_the_schema_refuses_is_named_with_its_place() {
    let wrong = json!({ "tasks": [{ "id": "seven" }] });
    let problem =
        violation("GET", "/api/v1/admin/proxies/ams1/tasks", 200, Some(&wrong)).expect("refused");
    assert!(problem.contains("/tasks/0"), "{problem}");
    let undocumented = violation("GET", "/api/v1/admin/proxies/ams1/tasks", 418, None)
        .expect("an undocumented status");
    assert!(undocumented.contains("418"), "{undocumented}");
    assert_eq!(
        violation(
            "GET",
            "/api/v1/admin/proxies/ams1/tasks",
            200,
            Some(&json!({ "tasks": [] }))
        ),
        None
    );
    assert_eq!(violation("GET", "/no/such/path", 404, None), None);
}
