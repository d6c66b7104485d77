//! Gateway recommendation, compatible with LEAP's menshen: geolocate the client, sort the
//! gateways by distance then load, with city, coordinate and timezone overrides.

pub mod geo;
pub mod overrides;
pub mod rank;

use std::sync::{Arc, Mutex};

use crate::distribution::config::FleetView;
use crate::registry::{Proxy, Role};
use geo::GeoDb;
use rank::{location_key, offset_from_longitude, Centres, Gateway, LocationLoad};

/// The gateways of one fleet view, with what every request needs precomputed.
pub struct GatewaySet {
    pub gateways: Vec<Gateway>,
    pub centres: Centres,
    pub locations: std::collections::BTreeMap<String, LocationLoad>,
    /// `locations` serialised once: every answer carries it.
    pub locations_json: Box<serde_json::value::RawValue>,
}

impl GatewaySet {
    pub fn new(mut gateways: Vec<Gateway>) -> GatewaySet {
        gateways.sort_by(|a, b| a.host.cmp(&b.host));
        let locations = rank::locations(&gateways);
        let locations_json = serde_json::value::to_raw_value(&locations).unwrap_or_else(|_| {
            serde_json::value::RawValue::from_string("{}".into()).unwrap_or_default()
        });
        GatewaySet {
            centres: rank::centres(&gateways),
            locations,
            locations_json,
            gateways,
        }
    }
}

pub struct Gateways {
    pub geo: GeoDb,
    peers_domain: String,
    max_clients: u32,
    cached: Mutex<Option<(Arc<FleetView>, Arc<GatewaySet>)>>,
}

impl Gateways {
    pub fn new(geo: GeoDb, peers_domain: String, max_clients: u32) -> Gateways {
        Gateways {
            geo,
            peers_domain,
            max_clients,
            cached: Mutex::new(None),
        }
    }

    /// A proxy as a gateway. Only the `gateway` role is ever offered: fallback, free, pro and
    /// standby proxies are private to the users they were given to, and `/json` answers
    /// anyone. A gateway needs a place: its registered coordinates, else where GeoIP puts
    /// its address (without either it cannot be ranked and is left out).
    fn gateway(&self, proxy: &Proxy) -> Option<Gateway> {
        if proxy.role != Role::Gateway {
            return None;
        }
        let (lat, lon) = match (proxy.location.lat, proxy.location.lon) {
            (Some(lat), Some(lon)) => (lat, lon),
            _ => self.geo.lookup(proxy.ip).map(|p| (p.lat, p.lon))?,
        };
        let limit = f64::from(proxy.limit(self.max_clients).max(1));
        let clients = f64::from(proxy.load.clients.unwrap_or(0));
        let fullness = rank::round3(clients / limit);
        let city = proxy
            .location
            .city
            .clone()
            .unwrap_or_else(|| proxy.name.to_string());
        Some(Gateway {
            host: format!("{}.{}", proxy.name, self.peers_domain),
            ip: proxy.ip.to_string(),
            location: location_key(&city),
            city,
            country_code: proxy.location.country.clone(),
            lat,
            lon,
            tz_offset_min: proxy
                .location
                .tz_offset_min
                .unwrap_or_else(|| offset_from_longitude(lon)),
            fullness,
            overloaded: fullness >= 1.0 || proxy.load.cpu.is_some_and(|cpu| cpu >= 95.0),
            transport: proxy.transport.clone(),
        })
    }

    /// The gateway set of `view`, built once per view.
    pub fn set(&self, view: &Arc<FleetView>, now_ms: u64) -> Arc<GatewaySet> {
        {
            let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((seen, set)) = cached.as_ref() {
                if Arc::ptr_eq(seen, view) {
                    return set.clone();
                }
            }
        }
        // Built outside the lock: other requests keep using the previous set meanwhile.
        let gateways: Vec<Gateway> = view
            .by_name
            .values()
            .filter(|p| p.expires_ms > now_ms)
            .filter_map(|p| self.gateway(p))
            .collect();
        let set = Arc::new(GatewaySet::new(gateways));
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        *cached = Some((view.clone(), set.clone()));
        set
    }
}
