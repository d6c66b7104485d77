//! Counts the edges keep in Redis for the primary: the manual city choices their `/json`
//! served (`type=refresh`). Each edge adds to one hash (`HINCRBY`, field `<day>|<city>`); the
//! primary's mirror job takes the hash whole (`RENAME` to a numbered batch, atomic against the
//! edges' writes), adds the batch to its store in one transaction that also records the batch's
//! number, then deletes it. A crash between any two steps neither loses nor repeats a count: a
//! batch renamed but not folded is folded on the next pass, one folded but not deleted is
//! deleted.

use redis::aio::MultiplexedConnection;

use super::MirrorDeps;
use crate::clock::now_ms;
use crate::gateways::overrides;

/// A city key longer than this is not one the primary wrote (cities come from proxies).
const MAX_CITY_LEN: usize = 200;
/// At most this many fields are read from one batch (the edges count only known cities, for
/// at most a few days between two passes).
const MAX_FIELDS: usize = 100_000;

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// `<day>|<city>` -> (day, city), or `None` for a field no edge writes.
fn parse_field(field: &str) -> Option<(u64, String)> {
    let (day, city) = field.split_once('|')?;
    let day = day.parse().ok()?;
    (!city.is_empty() && city.len() <= MAX_CITY_LEN).then(|| (day, city.to_string()))
}

/// Folds what the edges counted into the store. Returns how many choices were added.
pub async fn fold(deps: &MirrorDeps, conn: &mut MultiplexedConnection) -> Result<u64, String> {
    let keys = &deps.mirror.keys;
    let folded = overrides::edge_batches_folded(&deps.store).map_err(text)?;
    if folded > 0 {
        // Folded before a crash that left it in Redis.
        redis::cmd("DEL")
            .arg(keys.edge_overrides_folding(folded))
            .query_async::<()>(conn)
            .await
            .map_err(text)?;
    }
    let batch = folded + 1;
    let folding = keys.edge_overrides_folding(batch);
    let (pending, waiting): (bool, bool) = redis::pipe()
        .exists(&folding)
        .exists(keys.edge_overrides())
        .query_async(conn)
        .await
        .map_err(text)?;
    if !pending {
        if !waiting {
            return Ok(0);
        }
        // Only the primary renames, so the key is still there; the edges' next HINCRBY
        // starts a new hash.
        redis::cmd("RENAME")
            .arg(keys.edge_overrides())
            .arg(&folding)
            .query_async::<()>(conn)
            .await
            .map_err(text)?;
    }
    let fields: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg(&folding)
        .query_async(conn)
        .await
        .map_err(text)?;
    let counts: Vec<(u64, String, u64)> = fields
        .into_iter()
        .take(MAX_FIELDS)
        .filter_map(|(field, count)| parse_field(&field).map(|(day, city)| (day, city, count)))
        .collect();
    let added: u64 = counts.iter().map(|(_, _, n)| n).sum();
    overrides::add_edge_batch(&deps.store, batch, &counts, now_ms()).map_err(text)?;
    deps.store.durable().await.map_err(text)?;
    redis::cmd("DEL")
        .arg(&folding)
        .query_async::<()>(conn)
        .await
        .map_err(text)?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fields_an_edge_writes_are_read() {
        assert_eq!(parse_field("20000|lisbon"), Some((20000, "lisbon".into())));
        assert_eq!(
            parse_field("20000|new york|x"),
            Some((20000, "new york|x".into()))
        );
        for bad in ["", "lisbon", "x|lisbon", "20000|", "-1|lisbon"] {
            assert_eq!(parse_field(bad), None, "{bad}");
        }
        assert_eq!(
            parse_field(&format!("1|{}", "a".repeat(MAX_CITY_LEN + 1))),
            None
        );
    }
}
