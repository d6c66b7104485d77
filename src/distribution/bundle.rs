//! The config an invitation carries (`proxyfleet-config.json`), so the invitee's client can
//! connect to its fallback proxies without any request to a service the censor may block:
//! the signed config of the invitee's pending account, its signature, the fingerprint of the
//! key that made it, and the account's token. The same bundle goes to the inviter's client as
//! a `proxyfleet://` link and a QR code of it, for channels other than mail.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{render, FleetView};
use super::Distribution;
use crate::fleet::model::User;

/// The bundle's `format`: a client refuses one it does not know.
pub const FORMAT: &str = "proxyfleet-config/1";
/// The link's scheme and path; the bundle's JSON follows as `?bundle=` (base64url, no
/// padding).
pub const LINK_PREFIX: &str = "proxyfleet://config?bundle=";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    /// The config exactly as signed (the bytes `GET /api/v1/config` would send).
    pub body: String,
    /// Ed25519 over `body`'s bytes, base64 (as the `x-proxyfleet-signature` header).
    pub signature: String,
    /// The signing key, base64, and the hex SHA-256 of its 32 bytes: a client checks the
    /// fingerprint against the key it was shipped with before trusting the body.
    pub public_key: String,
    pub public_key_sha256: String,
    /// The account's bearer token (reads the config on the primary and on edges).
    pub token: String,
    /// The invitation it came with: accepting it activates the account.
    pub invitation_code: String,
    pub invitation_expires_at: u64,
}

impl Distribution {
    /// The bundle of a pending account made by the invitation `code`, expiring at
    /// `invitation_expires_ms`. The config is valid until the invitation expires and one
    /// config validity beyond, so an invitee who accepts on the last day still holds a valid
    /// config until its client fetches the next; `issued_at` stays the current signing
    /// window's start, so a config fetched later is never older than this one.
    pub fn invitation_bundle(
        &self,
        view: &FleetView,
        user: &User,
        token: &str,
        code: &str,
        invitation_expires_ms: u64,
        now_ms: u64,
    ) -> Bundle {
        let mut config = self.config_in(view, user, None, None, now_ms);
        let covers = invitation_expires_ms / 1000 + self.settings.validity_secs;
        config.expires_at = config.expires_at.max(covers);
        let rendered = render(&config);
        let public_key = self.keys.public_key();
        let raw_key = base64::engine::general_purpose::STANDARD
            .decode(&public_key)
            .unwrap_or_default();
        Bundle {
            format: FORMAT.to_string(),
            body: String::from_utf8_lossy(&rendered.body).into_owned(),
            signature: self.keys.sign(&rendered.body),
            public_key,
            public_key_sha256: hex::encode(Sha256::digest(raw_key)),
            token: token.to_string(),
            invitation_code: code.to_string(),
            invitation_expires_at: invitation_expires_ms / 1000,
        }
    }
}

impl Bundle {
    /// `proxyfleet://config?bundle=<base64url of the bundle's JSON>`.
    pub fn link(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!(
            "{LINK_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        )
    }

    /// The link as a QR code (SVG), or `None` when it is too long for one (a QR code holds
    /// at most 2,953 bytes: a config listing many proxies with certificates may not fit).
    pub fn qr_svg(&self) -> Option<String> {
        let link = self.link();
        qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::L)
            .ok()
            .map(|code| {
                code.render::<qrcode::render::svg::Color>()
                    .min_dimensions(320, 320)
                    .quiet_zone(true)
                    .build()
            })
    }

    /// Reads a link made by [`Bundle::link`].
    pub fn from_link(link: &str) -> Option<Bundle> {
        let encoded = link.strip_prefix(LINK_PREFIX)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(body_len: usize) -> Bundle {
        Bundle {
            format: FORMAT.into(),
            body: "x".repeat(body_len),
            signature: "s".into(),
            public_key: "k".into(),
            public_key_sha256: "f".into(),
            token: "pfu_0".into(),
            invitation_code: "c".into(),
            invitation_expires_at: 1,
        }
    }

    #[test]
    fn a_link_reads_back_and_fits_a_qr_code_until_it_cannot() {
        let small = bundle(900);
        assert_eq!(Bundle::from_link(&small.link()), Some(small.clone()));
        assert!(small.qr_svg().is_some_and(|svg| svg.contains("<svg")));
        assert_eq!(bundle(4_000).qr_svg(), None, "too long for any QR code");
        assert_eq!(Bundle::from_link("proxyfleet://config?bundle=%%"), None);
        assert_eq!(Bundle::from_link("https://example.org"), None);
    }
}
