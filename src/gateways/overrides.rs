//! How often clients chose a city by hand (`/json?city=...&type=refresh`): a sign that the
//! recommended gateways did not serve them there. Kept per city: a total since the store was
//! made, and a count for each of the last `DAYS_KEPT` days. Only cities that have gateways are
//! counted (the request is refused otherwise), so the records are as many as the fleet's cities.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::store::{Store, TreeId, Tx, TxResult};

/// The all-time total of a city: `<TOTAL_PREFIX><city>` -> u64.
const TOTAL_PREFIX: &str = "gateways.override.";
/// The recent days of a city: `<DAYS_PREFIX><city>` -> [(day number, count)], oldest first.
const DAYS_PREFIX: &str = "gateways.override_days.";
/// How many days of counts a city keeps.
pub const DAYS_KEPT: usize = 90;

const DAY_MS: u64 = 86_400_000;

/// One city's counts.
#[derive(Debug, Serialize, PartialEq)]
pub struct CityOverrides {
    pub total: u64,
    /// Newest last: (UTC date `YYYY-MM-DD`, count), only days with a choice.
    pub days: Vec<DayCount>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct DayCount {
    pub day: String,
    pub count: u64,
}

/// The last batch of edge counts folded in (`add_edge_batch`).
const EDGE_BATCH: &str = "gateways.edge_overrides_batch";

/// Counts one manual choice of `city` at `now_ms` (one transaction: total and day).
pub fn count(store: &Store, city: &str, now_ms: u64) -> Result<()> {
    let today = now_ms / DAY_MS;
    store.transaction(|tx| add_in(tx, city, today, 1, today))
}

/// Adds `count` choices of `city` made on day `day` (a day number) as of `today`.
fn add_in(tx: &Tx, city: &str, day: u64, count: u64, today: u64) -> TxResult<()> {
    let total_key = format!("{TOTAL_PREFIX}{city}");
    let days_key = format!("{DAYS_PREFIX}{city}");
    let total: u64 = tx.get(TreeId::Meta, &total_key)?.unwrap_or(0);
    tx.put(TreeId::Meta, &total_key, &total.saturating_add(count))?;
    let mut days: Vec<(u64, u64)> = tx.get(TreeId::Meta, &days_key)?.unwrap_or_default();
    // Edges' counts may be for a day already past: kept in day order.
    match days.iter_mut().find(|(d, _)| *d == day) {
        Some((_, n)) => *n = n.saturating_add(count),
        None => {
            days.push((day, count));
            days.sort_unstable();
        }
    }
    // Days older than the kept window go, and never more than DAYS_KEPT entries.
    days.retain(|(d, _)| *d + DAYS_KEPT as u64 > today);
    let excess = days.len().saturating_sub(DAYS_KEPT);
    days.drain(..excess);
    tx.put(TreeId::Meta, &days_key, &days)
}

/// The last batch of edge counts already folded into the store.
pub fn edge_batches_folded(store: &Store) -> Result<u64> {
    Ok(store.get(TreeId::Meta, EDGE_BATCH)?.unwrap_or(0))
}

/// Folds batch `batch` of the edges' counts, `(day number, city, count)`, into the store in one
/// transaction with the batch's number, so a batch is added once even if the caller dies
/// before it forgets the batch in Redis. A batch not after the last folded adds nothing.
/// Returns whether it was added.
pub fn add_edge_batch(
    store: &Store,
    batch: u64,
    counts: &[(u64, String, u64)],
    now_ms: u64,
) -> Result<bool> {
    let today = now_ms / DAY_MS;
    store.transaction(|tx| {
        let folded: u64 = tx.get(TreeId::Meta, EDGE_BATCH)?.unwrap_or(0);
        if batch <= folded {
            return Ok(false);
        }
        for (day, city, count) in counts {
            add_in(tx, city, *day, *count, today)?;
        }
        tx.put(TreeId::Meta, EDGE_BATCH, &batch)?;
        Ok(true)
    })
}

/// The day number of `now_ms` (what edges write with each count).
pub fn day_of(now_ms: u64) -> u64 {
    now_ms / DAY_MS
}

/// Every city's counts, by city.
pub fn counts(store: &Store) -> Result<BTreeMap<String, CityOverrides>> {
    let mut cities = BTreeMap::new();
    for item in store.scan_prefix::<u64>(TreeId::Meta, TOTAL_PREFIX) {
        let (key, total) = item?;
        let city = String::from_utf8_lossy(&key[TOTAL_PREFIX.len()..]).into_owned();
        let days: Vec<(u64, u64)> = store
            .get(TreeId::Meta, format!("{DAYS_PREFIX}{city}"))?
            .unwrap_or_default();
        let days = days
            .into_iter()
            .map(|(day, count)| DayCount {
                day: date_of(day),
                count,
            })
            .collect();
        cities.insert(city, CityOverrides { total, days });
    }
    Ok(cities)
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01, UTC).
fn date_of(day: u64) -> String {
    let secs = i64::try_from(day * 86_400).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn choices_are_counted_per_city_and_day_and_old_days_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let day0 = 20_000 * DAY_MS; // 2024-10-04
        count(&store, "Paris", day0).unwrap();
        count(&store, "Paris", day0 + 3_600_000).unwrap();
        count(&store, "Paris", day0 + DAY_MS).unwrap();
        count(&store, "Lima", day0).unwrap();
        let counts = counts(&store).unwrap();
        assert_eq!(counts["Paris"].total, 3);
        assert_eq!(
            counts["Paris"].days,
            vec![
                DayCount {
                    day: "2024-10-04".into(),
                    count: 2
                },
                DayCount {
                    day: "2024-10-05".into(),
                    count: 1
                }
            ]
        );
        assert_eq!(counts["Lima"].total, 1);
        // 90 days later the first two days are out of the window; the total stays.
        count(&store, "Paris", day0 + DAYS_KEPT as u64 * DAY_MS).unwrap();
        let paris = &counts_of(&store)["Paris"];
        assert_eq!(paris.total, 4);
        assert_eq!(
            paris.days.iter().map(|d| d.count).collect::<Vec<_>>(),
            vec![1, 1],
            "{paris:?}"
        );
    }

    fn counts_of(store: &Store) -> BTreeMap<String, CityOverrides> {
        counts(store).unwrap()
    }
}
