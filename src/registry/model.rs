//! Registry data: what a proxy is, and the newtypes that can only be made by parsing.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A proxy name: 1 to 63 of `[a-z0-9]`, so it is a DNS label and, prefixed `f_`, a VCL
/// identifier (peerdnsreg's rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProxyName(String);

impl ProxyName {
    pub fn parse(raw: &str) -> Result<ProxyName> {
        let ok = (1..=63).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(ProxyName(raw.to_string()))
        } else {
            Err(Error::invalid(
                "invalid_name",
                "name must be 1 to 63 characters of lowercase letters a-z and digits 0-9",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by name are looked up with a `&str` (the hash and order are the string's).
impl std::borrow::Borrow<str> for ProxyName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ProxyName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A name is its own store key.
impl AsRef<[u8]> for ProxyName {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl PartialEq<str> for ProxyName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ProxyName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for ProxyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a proxy is for. `fallback` is the default, as in the fallback-proxy proposal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Fallback,
    Free,
    Pro,
    Standby,
    /// A menshen-style public VPN gateway: the only role `/json` lists. Appended last: roles
    /// are stored by position.
    Gateway,
    /// Out of service by an operator's drain: nothing automatic chooses, promotes or assigns
    /// it; only an operator returns it (undrain). Data format 4.
    Drained,
    /// Out of service by an operator's retire (its retire hook ran): as `Drained`, returned
    /// only by an operator (reactivate). Data format 4.
    Retired,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Fallback,
        Role::Free,
        Role::Pro,
        Role::Standby,
        Role::Gateway,
        Role::Drained,
        Role::Retired,
    ];

    /// The roles a proxy may claim when it registers (or an operator may give it); out of
    /// service is reached only through the drain and retire actions.
    pub const CLAIMABLE: [Role; 5] = [
        Role::Fallback,
        Role::Free,
        Role::Pro,
        Role::Standby,
        Role::Gateway,
    ];

    /// A role a proxy may claim (see `CLAIMABLE`).
    pub fn parse(raw: &str) -> Result<Role> {
        Role::CLAIMABLE
            .into_iter()
            .find(|role| role.name() == raw)
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_role",
                    "role must be one of fallback, free, pro, standby, gateway",
                )
            })
    }

    /// Any role, out of service included (a filter of the proxy list).
    pub fn parse_any(raw: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == raw)
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_role",
                    "role must be one of fallback, free, pro, standby, gateway, drained, retired",
                )
            })
    }

    /// Drained or retired by an operator: carries no one until an operator returns it.
    pub fn out_of_service(self) -> bool {
        matches!(self, Role::Drained | Role::Retired)
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Fallback => "fallback",
            Role::Free => "free",
            Role::Pro => "pro",
            Role::Standby => "standby",
            Role::Gateway => "gateway",
            Role::Drained => "drained",
            Role::Retired => "retired",
        }
    }
}

/// How a client connects to a proxy: what the proxy registered besides its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Https,
    Obfs4,
    Shadowsocks,
    Wireguard,
    Openvpn,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Https,
        Protocol::Obfs4,
        Protocol::Shadowsocks,
        Protocol::Wireguard,
        Protocol::Openvpn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Https => "https",
            Protocol::Obfs4 => "obfs4",
            Protocol::Shadowsocks => "shadowsocks",
            Protocol::Wireguard => "wireguard",
            Protocol::Openvpn => "openvpn",
        }
    }
}

/// Transport details a client needs besides ip and port. All optional, all validated
/// (`validate::transport`): a proxy that registers none is a plain address, as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transport {
    pub protocol: Option<Protocol>,
    /// SHA-256 of the proxy's TLS certificate, 64 lower-case hex digits (pinning).
    pub cert_sha256: Option<String>,
    /// The proxy's public key (obfs4 cert, WireGuard key...), base64.
    pub public_key: Option<String>,
    /// TLS server name to present.
    pub sni: Option<String>,
    /// Domain-fronting host (the CDN name the censor sees).
    pub front: Option<String>,
}

impl Transport {
    pub fn is_empty(&self) -> bool {
        self == &Transport::default()
    }
}

/// Where a proxy is. All optional: a proxy may not know its own location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub city: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// UTC offset in minutes, if the proxy said (the gateway recommender's timezone fallback).
    pub tz_offset_min: Option<i32>,
}

/// Load a proxy reports in each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Distinct clients in the last window.
    pub clients: Option<u32>,
    /// CPU use, percent (0-100).
    pub cpu: Option<f64>,
    /// Bandwidth in use, bits per second.
    pub bandwidth: Option<u64>,
}

/// A validated registration (or heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub name: ProxyName,
    pub ip: IpAddr,
    pub port: u16,
    pub role: Role,
    pub location: Location,
    pub capacity: Option<u32>,
    pub load: Load,
    pub transport: Transport,
}

/// A registered proxy as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    pub name: ProxyName,
    pub ip: IpAddr,
    pub port: u16,
    pub role: Role,
    pub location: Location,
    pub capacity: Option<u32>,
    pub load: Load,
    pub registered_ms: u64,
    pub last_seen_ms: u64,
    pub expires_ms: u64,
    /// The role was set by an operator or the rebalancer (promote, drain): heartbeats keep it.
    pub role_pinned: bool,
    /// Since when the reported clients exceed the limit (hysteresis of the rebalancer).
    pub over_limit_since_ms: Option<u64>,
    /// Since when the reported clients are below the low-water mark (drain of idle proxies).
    pub under_low_since_ms: Option<u64>,
    /// When the load history last took a sample of this proxy.
    pub load_sampled_ms: u64,
    /// Since data format 2. `default` for JSON copies (the Redis mirror) written before it.
    #[serde(default)]
    pub transport: Transport,
    /// SHA-256 of the proxy's secret, kept on the live record so a heartbeat is checked with
    /// the read it makes anyway (`credentials` holds the truth; rotation and revocation change
    /// both). Never leaves the store: the Redis mirror writes `Proxy::public_record`.
    #[serde(default)]
    pub secret_hash: Option<crate::http::TokenHash>,
}

/// One point of a proxy's load history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSample {
    pub at_ms: u64,
    pub clients: Option<u32>,
    pub cpu: Option<f64>,
    pub bandwidth: Option<u64>,
}

impl Proxy {
    /// A bare fallback proxy for unit tests: no location, no load, never seen.
    #[cfg(test)]
    pub fn example(name: &str, ip: &str, port: u16) -> Proxy {
        Proxy {
            name: ProxyName::parse(name).expect("a valid test name"),
            ip: ip.parse().expect("a valid test address"),
            port,
            role: Role::Fallback,
            location: Location::default(),
            capacity: None,
            load: Load::default(),
            registered_ms: 0,
            last_seen_ms: 0,
            expires_ms: 1,
            role_pinned: false,
            over_limit_since_ms: None,
            under_low_since_ms: None,
            load_sampled_ms: 0,
            transport: Transport::default(),
            secret_hash: None,
        }
    }

    /// The record as JSON for readers outside the store (the Redis mirror): everything but the
    /// secret's hash.
    pub fn public_record(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("secret_hash");
        }
        value.to_string()
    }

    /// Clients this proxy may carry: its own capacity, else the fleet default.
    pub fn limit(&self, default_max_clients: u32) -> u32 {
        self.capacity.unwrap_or(default_max_clients)
    }

    /// The part of a proxy the edge routing config depends on.
    pub fn endpoint(&self) -> (IpAddr, u16) {
        (self.ip, self.port)
    }
}

/// Why a proxy left the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    Unregistered,
    Expired,
    /// An admin revoked the proxy's secret. Appended last: reasons are stored by position.
    Revoked,
}

/// One entry of the registry's history: a proxy arrived, moved, or left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyEvent {
    pub seq: u64,
    pub at_ms: u64,
    pub name: ProxyName,
    pub kind: ProxyEventKind,
    pub ip: IpAddr,
    pub port: u16,
}

/// New kinds go at the end: stored records name a kind by its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyEventKind {
    Registered,
    /// Re-registered with another address or port.
    Moved,
    Unregistered,
    Expired,
    Revoked,
    /// Became blocked in this country (`blocking`: docs/BLOCKING.md).
    Blocked(String),
    /// Stopped being blocked in this country.
    Unblocked(String),
}

impl ProxyEventKind {
    /// The kind's name, as the API shows it.
    pub fn name(&self) -> &'static str {
        match self {
            ProxyEventKind::Registered => "registered",
            ProxyEventKind::Moved => "moved",
            ProxyEventKind::Unregistered => "unregistered",
            ProxyEventKind::Expired => "expired",
            ProxyEventKind::Revoked => "revoked",
            ProxyEventKind::Blocked(_) => "blocked",
            ProxyEventKind::Unblocked(_) => "unblocked",
        }
    }

    /// The country a block event is about.
    pub fn country(&self) -> Option<&str> {
        match self {
            ProxyEventKind::Blocked(c) | ProxyEventKind::Unblocked(c) => Some(c),
            _ => None,
        }
    }
}

impl From<RemovalReason> for ProxyEventKind {
    fn from(reason: RemovalReason) -> Self {
        match reason {
            RemovalReason::Unregistered => ProxyEventKind::Unregistered,
            RemovalReason::Expired => ProxyEventKind::Expired,
            RemovalReason::Revoked => ProxyEventKind::Revoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_dns_label_and_vcl_rule() {
        assert!(ProxyName::parse("abc123").is_ok());
        assert!(ProxyName::parse(&"a".repeat(63)).is_ok());
        for bad in ["", "ABC", "a-b", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(ProxyName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
