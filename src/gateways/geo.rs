//! GeoIP: a MaxMind-format (mmdb) city database, read with the maxminddb crate. Both record
//! layouts in use are understood: MaxMind's nested one (GeoLite2) and the flat one of the
//! ip-location-db packages (DB-IP lite: country_code, city, latitude, longitude, timezone).
//! `geoip_db` may name one file or a folder of them (DB-IP ships IPv4 and IPv6 apart). A
//! missing or unreadable database is a warning; a failed lookup is just "unknown".

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Mmap, Reader};
use serde::Deserialize;

/// Where an address is.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub country_code: Option<String>,
    pub city: Option<String>,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Deserialize)]
struct Record {
    // Flat layout (ip-location-db).
    country_code: Option<String>,
    city: Option<CityField>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    // Nested layout (MaxMind).
    country: Option<Country>,
    location: Option<LocationField>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CityField {
    Flat(String),
    Nested {
        names: Option<BTreeMap<String, String>>,
    },
}

#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
struct LocationField {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl Record {
    fn place(self) -> Option<Place> {
        let lat = self
            .latitude
            .or(self.location.as_ref().and_then(|l| l.latitude))?;
        let lon = self
            .longitude
            .or(self.location.as_ref().and_then(|l| l.longitude))?;
        let city = match self.city {
            Some(CityField::Flat(name)) => Some(name),
            Some(CityField::Nested { names }) => names.and_then(|n| n.get("en").cloned()),
            None => None,
        };
        Some(Place {
            country_code: self.country_code.or(self.country.and_then(|c| c.iso_code)),
            city: city.filter(|c| !c.is_empty()),
            lat,
            lon,
        })
    }
}

#[derive(Default)]
pub struct GeoDb {
    readers: Vec<Reader<Mmap>>,
}

impl GeoDb {
    /// Opens the database(s) at `path`; warns (never fails) when there is none usable.
    pub fn open(path: Option<&Path>) -> GeoDb {
        let Some(path) = path else {
            tracing::warn!("no GeoIP database configured (geoip_db): gateways are sorted by timezone or load only");
            return GeoDb::default();
        };
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|p| p.extension().is_some_and(|e| e == "mmdb"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut readers = Vec::new();
        for file in files {
            match Reader::open_mmap(&file) {
                Ok(reader) => readers.push(reader),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "GeoIP database unreadable; skipped")
                }
            }
        }
        if readers.is_empty() {
            tracing::warn!(path = %path.display(), "no usable GeoIP database: gateways are sorted by timezone or load only");
        }
        GeoDb { readers }
    }

    pub fn is_loaded(&self) -> bool {
        !self.readers.is_empty()
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<Place> {
        self.readers
            .iter()
            .find_map(|reader| reader.lookup::<Record>(ip).ok().and_then(Record::place))
    }
}
