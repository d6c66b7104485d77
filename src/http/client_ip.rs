//! The client's address: the peer, or, when the peer is a trusted reverse proxy, the nearest
//! untrusted address in `X-Forwarded-For` (read right to left, as each proxy appends).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::Filter;

pub fn client_ip(trusted: Arc<Vec<IpAddr>>) -> BoxedFilter<(Option<IpAddr>,)> {
    peer()
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .map(move |peer: Option<SocketAddr>, forwarded: Option<String>| {
            resolve(peer.map(|p| p.ip()), forwarded.as_deref(), &trusted)
        })
        .boxed()
}

/// The TCP peer: from the connection our listener recorded (`http::listener`), else warp's.
pub fn peer(
) -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<super::listener::Connection>()
        .and(warp::addr::remote())
        .map(
            |connection: Option<super::listener::Connection>, remote: Option<SocketAddr>| {
                connection.map(|c| c.peer).or(remote)
            },
        )
}

/// Pure: the address to believe.
pub fn resolve(
    peer: Option<IpAddr>,
    forwarded: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let Some(forwarded) = forwarded else {
        return Some(peer);
    };
    let mut client = peer;
    for hop in forwarded.rsplit(',') {
        match hop.trim().parse::<IpAddr>().map(canonical) {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return Some(ip),
            Err(_) => break, // a garbled entry: trust nothing further left
        }
    }
    Some(client)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_may_name_the_client() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let xff = Some("203.0.113.9, 198.51.100.7, 10.0.0.2");
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), xff, &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            resolve(Some(ip("192.0.2.5")), xff, &trusted),
            Some(ip("192.0.2.5")),
            "untrusted peer"
        );
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), None, &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), Some("junk, 10.0.0.2"), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            resolve(Some(ip("::ffff:10.0.0.1")), Some("2001:db8::1"), &trusted),
            Some(ip("2001:db8::1"))
        );
    }
}
