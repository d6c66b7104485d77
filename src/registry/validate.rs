//! Turning the fields of a `/register` request into a `Registration`, or the first reason it
//! is not one. Pure: no I/O, so every rule is unit-tested here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::model::{Load, Location, Protocol, ProxyName, Registration, Role, Transport};
use crate::error::{Error, Result};
use crate::http::body::Fields;

pub struct Rules {
    pub allow_private_ips: bool,
}

pub fn registration(fields: &Fields, rules: &Rules) -> Result<Registration> {
    let name = ProxyName::parse(required(fields, "name")?)?;
    let ip = ip(required(fields, "ip")?, rules)?;
    let port = port(required(fields, "port")?)?;
    let role = optional(fields, "role")
        .map(Role::parse)
        .transpose()?
        .unwrap_or_default();
    let location = location(fields)?;
    let capacity = optional(fields, "capacity")
        .map(|v| integer(v, "capacity", 1, 10_000_000).map(|n| n as u32))
        .transpose()?;
    let load = Load {
        clients: optional(fields, "clients")
            .map(|v| integer(v, "clients", 0, 100_000_000).map(|n| n as u32))
            .transpose()?,
        cpu: optional(fields, "cpu")
            .map(|v| float(v, "cpu", 0.0, 100.0))
            .transpose()?,
        bandwidth: optional(fields, "bandwidth")
            .map(|v| integer(v, "bandwidth", 0, u64::MAX))
            .transpose()?,
    };
    let transport = transport(fields)?;
    Ok(Registration {
        name,
        ip,
        port,
        role,
        location,
        capacity,
        load,
        transport,
    })
}

/// The transport fields: `protocol` (one of `Protocol::ALL`), `cert_sha256` (64 hex digits,
/// colons allowed as openssl prints them), `public_key` (base64, standard or URL-safe, at most
/// 512 characters), `sni` and `front` (host names).
pub fn transport(fields: &Fields) -> Result<Transport> {
    let protocol = optional(fields, "protocol")
        .map(|raw| {
            Protocol::ALL
                .into_iter()
                .find(|p| p.name() == raw)
                .ok_or_else(|| {
                    Error::invalid(
                        "invalid_protocol",
                        "protocol must be one of https, obfs4, shadowsocks, wireguard, openvpn",
                    )
                })
        })
        .transpose()?;
    let cert_sha256 = optional(fields, "cert_sha256")
        .map(|raw| {
            let hex: String = raw.chars().filter(|c| *c != ':').collect();
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(hex.to_ascii_lowercase())
            } else {
                Err(Error::invalid(
                    "invalid_cert_sha256",
                    "cert_sha256 must be a SHA-256 fingerprint: 64 hex digits",
                ))
            }
        })
        .transpose()?;
    let public_key = optional(fields, "public_key")
        .map(|raw| {
            let base64 = |b: u8| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b);
            if raw.len() <= 512 && raw.bytes().all(base64) {
                Ok(raw.to_string())
            } else {
                Err(Error::invalid(
                    "invalid_public_key",
                    "public_key must be base64 (A-Z a-z 0-9 + / - _ =), at most 512 characters",
                ))
            }
        })
        .transpose()?;
    let host = |field: &'static str, code: &'static str| {
        optional(fields, field)
            .map(|raw| {
                if is_host_name(raw) {
                    Ok(raw.to_ascii_lowercase())
                } else {
                    Err(Error::invalid(
                        code,
                        format!("{field} must be a host name: labels of a-z 0-9 and -, at most 253 characters"),
                    ))
                }
            })
            .transpose()
    };
    Ok(Transport {
        protocol,
        cert_sha256,
        public_key,
        sni: host("sni", "invalid_sni")?,
        front: host("front", "invalid_front")?,
    })
}

/// A DNS host name: dot-separated labels of 1 to 63 letters, digits and inner hyphens.
fn is_host_name(raw: &str) -> bool {
    raw.len() <= 253
        && raw.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub fn name_only(fields: &Fields) -> Result<ProxyName> {
    ProxyName::parse(required(fields, "name")?)
}

fn required<'a>(fields: &'a Fields, name: &'static str) -> Result<&'a str> {
    optional(fields, name)
        .ok_or_else(|| Error::invalid("missing_field", format!("field `{name}` is required")))
}

/// A field's value; an empty value counts as absent (forms send `city=` for "unknown").
fn optional<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn port(raw: &str) -> Result<u16> {
    match raw.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(Error::invalid(
            "invalid_port",
            "port must be an integer from 1 to 65535",
        )),
    }
}

fn integer(raw: &str, field: &'static str, min: u64, max: u64) -> Result<u64> {
    match raw.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(Error::invalid(
            "invalid_number",
            format!("`{field}` must be an integer from {min} to {max}"),
        )),
    }
}

fn float(raw: &str, field: &'static str, min: f64, max: f64) -> Result<f64> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(Error::invalid(
            "invalid_number",
            format!("`{field}` must be a number from {min} to {max}"),
        )),
    }
}

fn ip(raw: &str, rules: &Rules) -> Result<IpAddr> {
    let ip: IpAddr = raw
        .parse()
        .map_err(|_| Error::invalid("invalid_ip", "ip must be an IPv4 or IPv6 address"))?;
    // A v4 address written as v6 is judged as the v4 address it is.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if !is_unicast(&ip) {
        return Err(Error::invalid("invalid_ip", "ip must be a unicast address"));
    }
    if !rules.allow_private_ips && !is_public(&ip) {
        return Err(Error::invalid(
            "private_ip",
            "ip must be a public address (private, loopback, documentation and reserved ranges \
             are refused; a lab fleet sets allow_private_ips = true, or \
             PROXYFLEET_ALLOW_PRIVATE_IPS=true)",
        ));
    }
    Ok(ip)
}

fn is_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: &Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    let shared_cgnat = a == 100 && (64..128).contains(&b); // 100.64.0.0/10
    let benchmarking = a == 198 && (b == 18 || b == 19); // 198.18.0.0/15
    let reserved = a >= 240; // 240.0.0.0/4
    let this_network = a == 0; // 0.0.0.0/8
    let protocol_assignments = a == 192 && b == 0 && ip.octets()[2] == 0; // 192.0.0.0/24
    let six_to_four_relay = a == 192 && b == 88 && ip.octets()[2] == 99; // 192.88.99.0/24
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_documentation()
        || shared_cgnat
        || benchmarking
        || reserved
        || this_network
        || protocol_assignments
        || six_to_four_relay)
}

fn is_public_v6(ip: &Ipv6Addr) -> bool {
    let s = ip.segments();
    // ::ffff:a.b.c.d is the IPv4 address itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(&v4);
    }
    let documentation = s[0] == 0x2001 && s[1] == 0x0db8; // 2001:db8::/32
    let ipv4_compatible = s[..6] == [0; 6]; // ::a.b.c.d (deprecated), and :: and ::1
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]; // 64:ff9b::/96
    let six_to_four = s[0] == 0x2002; // 2002::/16
    let site_local = s[0] & 0xffc0 == 0xfec0; // fec0::/10
    let discard = s[..4] == [0x100, 0, 0, 0]; // 100::/64
    let protocol_assignments = s[0] == 0x2001 && s[1] < 0x200; // 2001::/23 (Teredo, ORCHID...)
    !(ip.is_loopback()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || documentation
        || ipv4_compatible
        || nat64
        || six_to_four
        || site_local
        || discard
        || protocol_assignments)
}

fn location(fields: &Fields) -> Result<Location> {
    let country = optional(fields, "country")
        .map(|raw| {
            let upper = raw.to_ascii_uppercase();
            isocountry::CountryCode::for_alpha2(&upper)
                .map(|_| upper)
                .map_err(|_| {
                    Error::invalid(
                        "invalid_country",
                        "country must be an ISO 3166-1 alpha-2 code such as DE",
                    )
                })
        })
        .transpose()?;
    let city = optional(fields, "city")
        .map(|raw| {
            if raw.chars().count() <= 100 && !raw.chars().any(char::is_control) {
                Ok(raw.to_string())
            } else {
                Err(Error::invalid(
                    "invalid_city",
                    "city must be at most 100 printable characters",
                ))
            }
        })
        .transpose()?;
    let lat = optional(fields, "lat")
        .map(|v| coordinate(v, "lat", 90.0))
        .transpose()?;
    let lon = optional(fields, "lon")
        .map(|v| coordinate(v, "lon", 180.0))
        .transpose()?;
    if lat.is_some() != lon.is_some() {
        return Err(Error::invalid(
            "invalid_location",
            "lat and lon must be given together",
        ));
    }
    let tz_offset_min = optional(fields, "tz")
        .map(|raw| {
            utc_offset_minutes(raw).ok_or_else(|| {
                Error::invalid(
                    "invalid_tz",
                    "tz must be a UTC offset such as +2, -5 or +05:30",
                )
            })
        })
        .transpose()?;
    Ok(Location {
        country,
        city,
        lat,
        lon,
        tz_offset_min,
    })
}

/// A UTC offset as minutes: `+2`, `-5`, `2`, `+05:30`, `UTC+1`, `-03:30`. Within -12:00..+14:00.
pub fn utc_offset_minutes(raw: &str) -> Option<i32> {
    let text = raw.trim();
    let text = text
        .strip_prefix("UTC")
        .or_else(|| text.strip_prefix("utc"))
        .unwrap_or(text);
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None => (rest.parse::<i32>().ok()?, 0),
    };
    if !(0..60).contains(&minutes) || !(0..=14).contains(&hours) {
        return None; // also keeps the arithmetic below from overflowing
    }
    let total = sign * (hours * 60 + minutes);
    (-12 * 60..=14 * 60).contains(&total).then_some(total)
}

fn coordinate(raw: &str, field: &'static str, limit: f64) -> Result<f64> {
    float(raw, field, -limit, limit).map_err(|_| {
        Error::invalid(
            "invalid_location",
            format!("{field} must be a number from -{limit} to {limit}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PUBLIC: Rules = Rules {
        allow_private_ips: false,
    };
    const LAB: Rules = Rules {
        allow_private_ips: true,
    };

    fn code(result: Result<Registration>) -> &'static str {
        result.err().map(|e| e.code()).unwrap_or("ok")
    }

    #[test]
    fn accepts_a_full_registration() {
        let reg = registration(
            &fields(&[
                ("name", "fl1"),
                ("ip", "54.230.90.149"),
                ("port", "443"),
                ("role", "pro"),
                ("country", "de"),
                ("city", "Frankfurt"),
                ("lat", "50.11"),
                ("lon", "8.68"),
                ("capacity", "300"),
                ("clients", "12"),
                ("cpu", "37.5"),
                ("bandwidth", "1000000"),
            ]),
            &PUBLIC,
        )
        .unwrap();
        assert_eq!(reg.role, Role::Pro);
        assert_eq!(reg.location.country.as_deref(), Some("DE"));
        assert_eq!(reg.capacity, Some(300));
        assert_eq!(reg.load.clients, Some(12));
    }

    #[test]
    fn refuses_each_bad_field() {
        let base = [("name", "fl1"), ("ip", "54.230.90.149"), ("port", "443")];
        let with = |k: &'static str, v: &'static str| {
            let mut f = fields(&base);
            f.insert(k.into(), v.into());
            registration(&f, &PUBLIC)
        };
        assert_eq!(code(with("name", "Bad-Name")), "invalid_name");
        assert_eq!(code(with("ip", "nope")), "invalid_ip");
        assert_eq!(code(with("ip", "224.0.0.1")), "invalid_ip");
        assert_eq!(code(with("port", "0")), "invalid_port");
        assert_eq!(code(with("port", "65536")), "invalid_port");
        assert_eq!(code(with("role", "boss")), "invalid_role");
        assert_eq!(code(with("country", "XX")), "invalid_country");
        assert_eq!(code(with("lat", "91")), "invalid_location");
        assert_eq!(code(with("cpu", "101")), "invalid_number");
        assert_eq!(code(with("tz", "+15")), "invalid_tz");
        assert_eq!(code(with("tz", "soon")), "invalid_tz");
        assert_eq!(code(with("capacity", "0")), "invalid_number");
        assert_eq!(code(with("clients", "-1")), "invalid_number");
        let mut no_port = fields(&base);
        no_port.remove("port");
        assert_eq!(code(registration(&no_port, &PUBLIC)), "missing_field");
        let mut lat_only = fields(&base);
        lat_only.insert("lat".into(), "10".into());
        assert_eq!(code(registration(&lat_only, &PUBLIC)), "invalid_location");
    }

    #[test]
    fn transport_fields_are_checked_and_normalised() {
        let base = [("name", "fl1"), ("ip", "54.230.90.149"), ("port", "443")];
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut f = fields(&base);
            for (k, v) in pairs {
                f.insert(k.to_string(), v.to_string());
            }
            registration(&f, &PUBLIC)
        };
        let fingerprint = "AB:CD:".repeat(16);
        let fingerprint: &'static str = Box::leak(fingerprint.into_boxed_str());
        let reg = with(&[
            ("protocol", "obfs4"),
            ("cert_sha256", fingerprint),
            ("public_key", "dGhlIGtleQ=="),
            ("sni", "CDN.Example.org"),
            ("front", "ajax.example.com"),
        ])
        .unwrap();
        assert_eq!(reg.transport.protocol, Some(Protocol::Obfs4));
        assert_eq!(
            reg.transport.cert_sha256.as_deref(),
            Some(&*"abcd".repeat(16))
        );
        assert_eq!(reg.transport.sni.as_deref(), Some("cdn.example.org"));
        assert!(with(&[]).unwrap().transport.is_empty());
        assert_eq!(code(with(&[("protocol", "vmess")])), "invalid_protocol");
        assert_eq!(code(with(&[("cert_sha256", "abc")])), "invalid_cert_sha256");
        assert_eq!(code(with(&[("public_key", "a b")])), "invalid_public_key");
        assert_eq!(code(with(&[("sni", "-bad.example")])), "invalid_sni");
        assert_eq!(code(with(&[("front", "a..b")])), "invalid_front");
        let long: &'static str = Box::leak("k".repeat(513).into_boxed_str());
        assert_eq!(code(with(&[("public_key", long)])), "invalid_public_key");
        assert_eq!(code(with(&[("role", "gateway")])), "ok");
    }

    #[test]
    fn utc_offsets_in_the_usual_spellings() {
        assert_eq!(utc_offset_minutes("+2"), Some(120));
        assert_eq!(utc_offset_minutes("-5"), Some(-300));
        assert_eq!(utc_offset_minutes("+05:30"), Some(330));
        assert_eq!(utc_offset_minutes("UTC-3:30"), Some(-210));
        assert_eq!(utc_offset_minutes("0"), Some(0));
        assert_eq!(utc_offset_minutes("+14"), Some(840));
        assert_eq!(utc_offset_minutes("+2:75"), None);
        assert_eq!(utc_offset_minutes(""), None);
    }

    #[test]
    fn private_addresses_only_in_a_lab() {
        for private in [
            "10.0.0.1",
            "127.0.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            let f = fields(&[("name", "a"), ("ip", private), ("port", "1")]);
            assert_eq!(code(registration(&f, &PUBLIC)), "private_ip", "{private}");
            assert_eq!(code(registration(&f, &LAB)), "ok", "{private}");
        }
        let public_v6 = fields(&[("name", "a"), ("ip", "2a00:1450::1"), ("port", "1")]);
        assert_eq!(code(registration(&public_v6, &PUBLIC)), "ok");
    }
}
