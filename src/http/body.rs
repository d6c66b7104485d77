//! Request bodies: a size limit on every one, and the registry's "form or JSON" fields.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::filters::BoxedFilter;
use warp::Filter;

use super::reject;
use crate::error::{Error, Result};

/// Flat string fields, whatever the encoding they arrived in.
pub type Fields = BTreeMap<String, String>;

/// The body as flat fields, from `application/json` (an object of scalars) or
/// `application/x-www-form-urlencoded` (also the default, as peerdnsreg's clients send it).
pub fn fields(limit: u64) -> BoxedFilter<(Fields,)> {
    warp::body::content_length_limit(limit)
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
        .and_then(|content_type: Option<String>, body: Bytes| async move {
            parse_fields(content_type.as_deref(), &body).map_err(reject)
        })
        .boxed()
}

/// A JSON body of type `T`, limited to `limit` bytes.
pub fn json<T: DeserializeOwned + Send + 'static>(limit: u64) -> BoxedFilter<(T,)> {
    warp::body::content_length_limit(limit)
        .and(warp::body::bytes())
        .and_then(|body: Bytes| async move {
            no_duplicate_keys(&body).map_err(reject)?;
            serde_json::from_slice::<T>(&body).map_err(|e| {
                reject(Error::bad_request(
                    "invalid_json",
                    format!("body is not valid JSON for this request: {e}"),
                ))
            })
        })
        .boxed()
}

/// Refuses a JSON document in which an object names a key twice. serde_json keeps the last
/// one, so `{"role":"free","role":"gateway"}` would mean whatever the last reader decides;
/// forms with a repeated field are refused the same way.
pub fn no_duplicate_keys(body: &[u8]) -> Result<()> {
    use serde::Deserialize;
    let mut reader = serde_json::Deserializer::from_slice(body);
    match Unique::deserialize(&mut reader) {
        Ok(Unique) => Ok(()),
        Err(e) if e.to_string().starts_with("duplicate key") => {
            Err(Error::bad_request("invalid_json", e.to_string()))
        }
        // Not JSON at all: the caller's own parse says so in its words.
        Err(_) => Ok(()),
    }
}

/// Any JSON value, walked only to find a repeated key.
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                let key: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

/// Control characters and Unicode's bidirectional formatting characters: text that holds
/// them can render differently from what it is (a name that reads backwards in the panel
/// or a log line).
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
    no_duplicate_keys(body)?;
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
    fn rejects_duplicate_json_keys_at_any_depth() {
        assert!(no_duplicate_keys(br#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
        for twice in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":[{"d":1,"d":1}]}"#,
            r#"{"\u0061":1,"a":2}"#,
        ] {
            let refused = no_duplicate_keys(twice.as_bytes()).unwrap_err();
            assert_eq!(refused.code(), "invalid_json", "{twice}");
        }
        assert!(parse_json_fields(br#"{"name":"a","name":"b"}"#).is_err());
    }

    #[test]
    fn rejects_nested_json_and_duplicate_form_fields() {
        assert!(parse_fields(Some("application/json"), br#"{"a":{"b":1}}"#).is_err());
        assert!(parse_fields(Some("application/json"), b"[1]").is_err());
        assert!(parse_fields(None, b"a=1&a=2").is_err());
    }
}
