//! Request bodies: a size limit on every one, and the registry's "form or JSON" fields.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::reject;
use crate::error::{Error, Result};

/// Flat string fields, whatever the encoding they arrived in.
pub type Fields = BTreeMap<String, String>;

/// The body as flat fields, from `application/json` (an object of scalars) or
/// `application/x-www-form-urlencoded` (also the default, as peerdnsreg's clients send it).
pub fn fields(limit: u64) -> impl Filter<Extract = (Fields,), Error = Rejection> + Clone {
    warp::body::content_length_limit(limit)
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
        .and_then(|content_type: Option<String>, body: Bytes| async move {
            parse_fields(content_type.as_deref(), &body).map_err(reject)
        })
}

/// A JSON body of type `T`, limited to `limit` bytes.
pub fn json<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(limit)
        .and(warp::body::bytes())
        .and_then(|body: Bytes| async move {
            serde_json::from_slice::<T>(&body).map_err(|e| {
                reject(Error::bad_request(
                    "invalid_json",
                    format!("body is not valid JSON for this request: {e}"),
                ))
            })
        })
}

pub fn parse_fields(content_type: Option<&str>, body: &[u8]) -> Result<Fields> {
    let is_json = content_type
        .map(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
        .unwrap_or(false);
    if is_json {
        parse_json_fields(body)
    } else {
        parse_form_fields(body)
    }
}

fn parse_json_fields(body: &[u8]) -> Result<Fields> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request("invalid_json", format!("body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::bad_request(
            "invalid_json",
            "body must be a JSON object",
        ));
    };
    let mut fields = Fields::new();
    for (name, value) in map {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(Error::bad_request(
                    "invalid_json",
                    format!("field `{name}` must be a string, number or boolean"),
                ))
            }
        };
        fields.insert(name, text);
    }
    Ok(fields)
}

fn parse_form_fields(body: &[u8]) -> Result<Fields> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        Error::bad_request("invalid_form", format!("body is not a valid form: {e}"))
    })?;
    let mut fields = Fields::new();
    for (name, value) in pairs {
        if fields.contains_key(&name) {
            return Err(Error::bad_request(
                "duplicate_field",
                format!("field `{name}` is given twice"),
            ));
        }
        fields.insert(name, value);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_json_give_the_same_fields() {
        let form = parse_fields(None, b"name=a1&ip=1.2.3.4&port=443").unwrap();
        let json = parse_fields(
            Some("application/json"),
            br#"{"name":"a1","ip":"1.2.3.4","port":443}"#,
        )
        .unwrap();
        assert_eq!(form, json);
        assert_eq!(form["port"], "443");
    }

    #[test]
    fn rejects_nested_json_and_duplicate_form_fields() {
        assert!(parse_fields(Some("application/json"), br#"{"a":{"b":1}}"#).is_err());
        assert!(parse_fields(Some("application/json"), b"[1]").is_err());
        assert!(parse_fields(None, b"a=1&a=2").is_err());
    }
}
