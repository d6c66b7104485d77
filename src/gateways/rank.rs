//! Ordering gateways for a client (pure), as menshen does: nearest first by great-circle
//! distance in buckets (gateways of one city are equally near), then the least full; overloaded
//! ones last; equal ones shuffled so clients spread out.

use std::collections::BTreeMap;

use rand::Rng;
use serde::Serialize;

/// Distances within this many kilometres count as equal.
pub const BUCKET_KM: f64 = 50.0;
/// Fullness within this step counts as equal (then the order is random).
const FULLNESS_STEP: f64 = 0.05;

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub host: String,
    pub ip: String,
    /// Location key (the city, lower case, letters and digits only).
    pub location: String,
    pub city: String,
    pub country_code: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub tz_offset_min: i32,
    /// clients / capacity, 0 when unknown.
    pub fullness: f64,
    pub overloaded: bool,
    /// How to connect, as the gateway registered it (shown in `sortedGateways`).
    pub transport: crate::registry::model::Transport,
}

/// Where the client is, as far as we know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Origin {
    Point { lat: f64, lon: f64 },
    Timezone { offset_min: i32 },
    Unknown,
}

pub fn location_key(city: &str) -> String {
    city.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Great-circle distance in km (haversine).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().asin()
}

/// Minutes between two UTC offsets, around the clock.
pub fn tz_distance(a: i32, b: i32) -> i32 {
    let d = (a - b).rem_euclid(24 * 60);
    d.min(24 * 60 - d)
}

/// A gateway's offset when it gave none: from its longitude.
pub fn offset_from_longitude(lon: f64) -> i32 {
    ((lon / 15.0).round() as i32) * 60
}

/// The best `n` gateways for `origin`, best first (partial selection: the whole list is never
/// sorted, and distances are computed once per location, which matters at 10,000 gateways).
pub fn best<'a>(
    gateways: &'a [Gateway],
    centres: &Centres,
    origin: Origin,
    n: usize,
    rng: &mut impl Rng,
) -> Vec<&'a Gateway> {
    let buckets: Vec<i64> = match origin {
        Origin::Point { lat, lon } => centres
            .points
            .iter()
            .map(|(clat, clon)| (distance_km(lat, lon, *clat, *clon) / BUCKET_KM).floor() as i64)
            .collect(),
        _ => Vec::new(),
    };
    // Only the nearest locations can hold the best n: walk them by distance bucket (whole
    // buckets, ties included) until they hold n gateways that are not overloaded.
    let candidates: Vec<usize> = match origin {
        Origin::Point { .. } => nearest_candidates(centres, &buckets, n)
            .unwrap_or_else(|| (0..gateways.len()).collect()),
        _ => (0..gateways.len()).collect(),
    };
    let mut keyed: Vec<(SortKey, &Gateway)> = candidates
        .into_iter()
        .filter_map(|i| gateways.get(i).map(|g| (i, g)))
        .map(|(i, g)| {
            let nearness = match origin {
                Origin::Point { .. } => centres
                    .slot
                    .get(i)
                    .and_then(|s| buckets.get(*s))
                    .copied()
                    .unwrap_or(i64::MAX),
                Origin::Timezone { offset_min } => {
                    i64::from(tz_distance(offset_min, g.tz_offset_min) / 60)
                }
                Origin::Unknown => 0,
            };
            let load_step = (g.fullness / FULLNESS_STEP).floor() as i64;
            ((g.overloaded, nearness, load_step, rng.gen::<u32>()), g)
        })
        .collect();
    let n = n.min(keyed.len());
    if n == 0 {
        return Vec::new();
    }
    if n < keyed.len() {
        keyed.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
        keyed.truncate(n);
    }
    keyed.sort_by_key(|a| a.0);
    keyed.into_iter().map(|(_, g)| g).collect()
}

/// (overloaded, nearness bucket, fullness step, random tie-break): smaller is better.
type SortKey = (bool, i64, i64, u32);

/// Gateways of the nearest whole buckets of locations, once they hold `n` healthy ones.
fn nearest_candidates(centres: &Centres, buckets: &[i64], n: usize) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by_key(|l| buckets[*l]);
    let mut picked = Vec::new();
    let mut healthy = 0;
    let mut i = 0;
    while i < order.len() {
        let bucket = buckets[order[i]];
        while i < order.len() && buckets[order[i]] == bucket {
            picked.extend_from_slice(&centres.members[order[i]]);
            healthy += centres.healthy[order[i]];
            i += 1;
        }
        if healthy >= n {
            return Some(picked);
        }
    }
    None
}

/// Where each location's centre is, and which location each gateway (by position in the
/// slice it was computed from) belongs to. A city's distance is its centre's, so its gateways
/// share one distance bucket.
pub struct Centres {
    slot: Vec<usize>,
    points: Vec<(f64, f64)>,
    /// Gateways (positions) of each location, and how many of them are not overloaded.
    members: Vec<Vec<usize>>,
    healthy: Vec<usize>,
}

pub fn centres(gateways: &[Gateway]) -> Centres {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sums: Vec<(f64, f64, f64)> = Vec::new();
    let mut slot = Vec::with_capacity(gateways.len());
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut healthy: Vec<usize> = Vec::new();
    for (position, g) in gateways.iter().enumerate() {
        let next = index.len();
        let at = *index.entry(g.location.as_str()).or_insert(next);
        if at == sums.len() {
            sums.push((0.0, 0.0, 0.0));
            members.push(Vec::new());
            healthy.push(0);
        }
        sums[at].0 += g.lat;
        sums[at].1 += g.lon;
        sums[at].2 += 1.0;
        members[at].push(position);
        healthy[at] += usize::from(!g.overloaded);
        slot.push(at);
    }
    let points = sums
        .into_iter()
        .map(|(lat, lon, n)| (lat / n, lon / n))
        .collect();
    Centres {
        slot,
        points,
        members,
        healthy,
    }
}

/// Sorts `gateways` for `origin`, best first.
pub fn rank(gateways: &mut [Gateway], origin: Origin, rng: &mut impl Rng) {
    let centres = centres(gateways);
    let ranked: Vec<Gateway> = best(gateways, &centres, origin, gateways.len(), rng)
        .into_iter()
        .cloned()
        .collect();
    for (slot, g) in gateways.iter_mut().zip(ranked) {
        *slot = g;
    }
}

/// Load of a location: the mean and the best (lowest) fullness of its gateways.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LocationLoad {
    pub country_code: Option<String>,
    pub display_name: String,
    pub lat: f64,
    pub lon: f64,
    pub timezone: String,
    /// True while at least one gateway there is not overloaded.
    pub healthy: bool,
    /// Mean fullness.
    pub fullness: f64,
    /// Fullness of the emptiest gateway.
    pub fullness_best: f64,
    pub gateways: usize,
}

pub fn locations(gateways: &[Gateway]) -> BTreeMap<String, LocationLoad> {
    let mut grouped: BTreeMap<String, Vec<&Gateway>> = BTreeMap::new();
    for g in gateways {
        grouped.entry(g.location.clone()).or_default().push(g);
    }
    grouped
        .into_iter()
        .map(|(key, list)| {
            let n = list.len() as f64;
            let first = list[0];
            let load = LocationLoad {
                country_code: first.country_code.clone(),
                display_name: first.city.clone(),
                lat: list.iter().map(|g| g.lat).sum::<f64>() / n,
                lon: list.iter().map(|g| g.lon).sum::<f64>() / n,
                timezone: format_offset(first.tz_offset_min),
                healthy: list.iter().any(|g| !g.overloaded),
                fullness: round3(list.iter().map(|g| g.fullness).sum::<f64>() / n),
                fullness_best: round3(
                    list.iter()
                        .map(|g| g.fullness)
                        .fold(f64::INFINITY, f64::min),
                ),
                gateways: list.len(),
            };
            (key, load)
        })
        .collect()
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `+01:00` style.
pub fn format_offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn gw(host: &str, city: &str, lat: f64, lon: f64, fullness: f64) -> Gateway {
        Gateway {
            host: host.into(),
            ip: "192.0.2.1".into(),
            location: location_key(city),
            city: city.into(),
            country_code: None,
            lat,
            lon,
            tz_offset_min: offset_from_longitude(lon),
            fullness,
            overloaded: fullness >= 1.0,
            transport: Default::default(),
        }
    }

    fn hosts(list: &[Gateway]) -> Vec<&str> {
        list.iter().map(|g| g.host.as_str()).collect()
    }

    #[test]
    fn nearest_first_then_least_full_and_overloaded_last() {
        let mut list = vec![
            gw("tokyo", "Tokyo", 35.68, 139.69, 0.1),
            gw("ny", "New York", 40.71, -74.0, 0.1),
            gw("paris-full", "Paris", 48.85, 2.35, 1.2),
            gw("paris", "Paris", 48.86, 2.34, 0.5),
            gw("ams", "Amsterdam", 52.37, 4.9, 0.9),
        ];
        let brussels = Origin::Point {
            lat: 50.85,
            lon: 4.35,
        };
        rank(&mut list, brussels, &mut StdRng::seed_from_u64(1));
        assert_eq!(
            hosts(&list),
            vec!["ams", "paris", "ny", "tokyo", "paris-full"]
        );
    }

    #[test]
    fn load_breaks_ties_within_a_city_and_equal_ones_shuffle() {
        let base = vec![
            gw("a", "Paris", 48.85, 2.35, 0.7),
            gw("b", "Paris", 48.86, 2.36, 0.2),
            gw("c", "Paris", 48.87, 2.30, 0.21),
        ];
        let origin = Origin::Point {
            lat: 50.85,
            lon: 4.35,
        };
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let mut list = base.clone();
            rank(&mut list, origin, &mut StdRng::seed_from_u64(seed));
            assert_eq!(list[2].host, "a", "the fullest is last");
            firsts.insert(list[0].host.clone());
        }
        assert_eq!(
            firsts.len(),
            2,
            "b and c are equally good: both come first sometimes"
        );
    }

    #[test]
    fn the_best_few_match_a_full_sort() {
        let list: Vec<Gateway> = (0..200)
            .map(|i| {
                gw(
                    &format!("g{i}"),
                    &format!("c{}", i % 17),
                    (i % 60) as f64,
                    (i * 7 % 170) as f64,
                    (i % 10) as f64 / 10.0,
                )
            })
            .collect();
        let origin = Origin::Point {
            lat: 10.0,
            lon: 20.0,
        };
        let top: Vec<String> = best(
            &list,
            &centres(&list),
            origin,
            5,
            &mut StdRng::seed_from_u64(9),
        )
        .iter()
        .map(|g| g.host.clone())
        .collect();
        let mut sorted = list.clone();
        rank(&mut sorted, origin, &mut StdRng::seed_from_u64(9));
        assert_eq!(
            top,
            sorted
                .iter()
                .take(5)
                .map(|g| g.host.clone())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn timezones_wrap_around_the_clock() {
        assert_eq!(tz_distance(-11 * 60, 12 * 60), 60);
        assert_eq!(tz_distance(60, -60), 120);
        let mut list = vec![
            gw("tokyo", "Tokyo", 35.68, 139.69, 0.1),
            gw("ny", "New York", 40.71, -74.0, 0.1),
            gw("paris", "Paris", 48.86, 2.34, 0.1),
        ];
        rank(
            &mut list,
            Origin::Timezone { offset_min: -300 },
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(hosts(&list), vec!["ny", "paris", "tokyo"]);
        assert_eq!(format_offset(-210), "-03:30");
    }

    #[test]
    fn locations_aggregate_mean_and_best() {
        let list = vec![
            gw("a", "Paris", 48.85, 2.35, 0.6),
            gw("b", "Paris", 48.86, 2.36, 0.2),
        ];
        let locations = locations(&list);
        let paris = &locations["paris"];
        assert_eq!(
            (paris.fullness, paris.fullness_best, paris.gateways),
            (0.4, 0.2, 2)
        );
        assert!(paris.healthy);
    }
}
