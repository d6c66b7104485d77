//! The map page's data: the fleet grouped by location (country and city), with where it is,
//! how many proxies, and clients against capacity. The browser gets one point per place, not
//! one row per proxy, however large the fleet.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::registry::Proxy;

#[derive(Serialize, Debug, PartialEq)]
pub struct Place {
    pub country: Option<String>,
    pub city: Option<String>,
    /// Mean position of the proxies there that gave one; None if none did.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub proxies: u64,
    pub clients: u64,
    pub capacity: u64,
    /// clients / capacity, 0 when there is no capacity.
    pub fullness: f64,
    /// How many of the proxies here are blocked in each country that blocks any (the map's
    /// block layer; docs/BLOCKING.md).
    pub blocked: BTreeMap<String, u64>,
}

/// Groups `proxies` by (country, city), biggest places first. `blocked_in` names the countries
/// a proxy is blocked in.
pub fn places(
    proxies: &[Proxy],
    default_capacity: u32,
    blocked_in: impl Fn(&str) -> Vec<String>,
) -> Vec<Place> {
    #[derive(Default)]
    struct Sum {
        proxies: u64,
        clients: u64,
        capacity: u64,
        positions: u64,
        lat: f64,
        lon: f64,
        blocked: BTreeMap<String, u64>,
    }
    let mut sums: BTreeMap<(Option<String>, Option<String>), Sum> = BTreeMap::new();
    for proxy in proxies {
        let place = &proxy.location;
        let sum = sums
            .entry((place.country.clone(), place.city.clone()))
            .or_default();
        sum.proxies += 1;
        for country in blocked_in(proxy.name.as_str()) {
            *sum.blocked.entry(country).or_default() += 1;
        }
        sum.clients += u64::from(proxy.load.clients.unwrap_or(0));
        sum.capacity += u64::from(proxy.capacity.unwrap_or(default_capacity));
        if let (Some(lat), Some(lon)) = (place.lat, place.lon) {
            sum.positions += 1;
            sum.lat += lat;
            sum.lon += lon;
        }
    }
    let mut places: Vec<Place> = sums
        .into_iter()
        .map(|((country, city), sum)| {
            let positioned = sum.positions > 0;
            Place {
                country,
                city,
                lat: positioned.then(|| sum.lat / sum.positions as f64),
                lon: positioned.then(|| sum.lon / sum.positions as f64),
                proxies: sum.proxies,
                clients: sum.clients,
                capacity: sum.capacity,
                fullness: if sum.capacity == 0 {
                    0.0
                } else {
                    sum.clients as f64 / sum.capacity as f64
                },
                blocked: sum.blocked,
            }
        })
        .collect();
    places.sort_by(|a, b| b.proxies.cmp(&a.proxies).then(b.clients.cmp(&a.clients)));
    places
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::model::Location;

    fn proxy(name: &str, city: &str, lat: f64, clients: u32) -> Proxy {
        let mut proxy = Proxy::example(name, "192.0.2.1", 443);
        proxy.location = Location {
            country: Some("NL".into()),
            city: Some(city.into()),
            lat: Some(lat),
            lon: Some(4.9),
            ..Location::default()
        };
        proxy.capacity = Some(100);
        proxy.load.clients = Some(clients);
        proxy
    }

    #[test]
    fn proxies_in_one_city_make_one_place_with_summed_load() {
        let fleet = [
            proxy("a1", "Amsterdam", 52.0, 50),
            proxy("a2", "Amsterdam", 53.0, 100),
            proxy("r1", "Rotterdam", 51.9, 10),
        ];
        let blocked_in = |name: &str| match name {
            "a2" => vec!["CN".to_string(), "IR".to_string()],
            _ => Vec::new(),
        };
        let places = places(&fleet, 200, blocked_in);
        assert_eq!(places.len(), 2);
        let amsterdam = &places[0];
        assert_eq!(amsterdam.city.as_deref(), Some("Amsterdam"));
        assert_eq!(
            (amsterdam.proxies, amsterdam.clients, amsterdam.capacity),
            (2, 150, 200)
        );
        assert_eq!(amsterdam.lat, Some(52.5));
        assert!((amsterdam.fullness - 0.75).abs() < 1e-9);
        let blocked: Vec<(&str, u64)> = amsterdam
            .blocked
            .iter()
            .map(|(c, n)| (c.as_str(), *n))
            .collect();
        assert_eq!(blocked, [("CN", 1), ("IR", 1)]);
        assert!(places[1].blocked.is_empty());
    }
}
