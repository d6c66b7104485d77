//! The panel's files, embedded in the binary: the page and vendored static files from
//! `assets/admin/`, the application's ES modules and styles from `web/` (no build step, so no
//! Node toolchain anywhere).

use rust_embed::RustEmbed;
use warp::http::{header, Response, StatusCode};
use warp::hyper::Body;

#[derive(RustEmbed)]
#[folder = "assets/admin/"]
struct Static;

#[derive(RustEmbed)]
#[folder = "web/"]
#[exclude = "README.md"]
struct App;

/// The page's security headers: no framing, no inline script, no third-party origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

fn file_response(
    data: std::borrow::Cow<'static, [u8]>,
    mime: &str,
    hash: [u8; 32],
) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, mime)
        .header(header::ETAG, format!("\"{}\"", hex::encode(&hash[..8])))
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header("x-frame-options", "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
        .body(Body::from(data))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// `index.html` for `/admin/` (and `/admin/setup`), a static file, or an application module; None when unknown.
pub fn file(path: &str) -> Option<Response<Body>> {
    // `setup` is the page too: it opens on the first account's form (the setup link).
    let (file, mime) = if path.is_empty() || path == "index.html" || path == "setup" {
        let file = Static::get("index.html")?;
        (file, "text/html; charset=utf-8".to_string())
    } else if let Some(rest) = path.strip_prefix("app/") {
        let file = App::get(rest)?;
        let mime = file.metadata.mimetype().to_string();
        (file, mime)
    } else {
        let file = Static::get(path)?;
        let mime = file.metadata.mimetype().to_string();
        (file, mime)
    };
    let hash = file.metadata.sha256_hash();
    Some(file_response(file.data, &mime, hash))
}
