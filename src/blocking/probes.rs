//! The operator's probes: vantage points in a country (a VPS, a volunteer's box) that test
//! the proxies and report with a token bound to that country. Their reports weigh more than a
//! client's (`block_probe_weight`), since the operator vouches for where they are.

use serde::{Deserialize, Serialize};

use super::{Blocking, Country};
use crate::error::{Error, Result};
use crate::http::TokenHash;
use crate::store::codec::u64_key;
use crate::store::{abort, TreeId};

const NEXT_PROBE_ID: &str = "blocking.next_probe_id";
/// The longest probe name.
pub const MAX_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub id: u64,
    pub name: String,
    pub country: String,
    pub token_hash: TokenHash,
    pub created_ms: u64,
    /// Revoked probes' tokens stop working; the probe is kept for the reports it made.
    pub revoked_ms: Option<u64>,
}

impl Blocking {
    /// Creates a probe in `country`; returns it with its token (shown once, only its hash is
    /// kept).
    pub async fn create_probe(
        &self,
        name: &str,
        country: &Country,
        now_ms: u64,
    ) -> Result<(Probe, String)> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "invalid_name",
                format!("a probe's name is 1 to {MAX_NAME} printable characters"),
            ));
        }
        let token = crate::fleet::users::new_token_with_prefix("pfp");
        let token_hash = TokenHash::of(&token);
        let probe = self.store.transaction(|tx| {
            let probe = Probe {
                id: tx.next(NEXT_PROBE_ID)?,
                name: name.to_string(),
                country: country.as_str().to_string(),
                token_hash,
                created_ms: now_ms,
                revoked_ms: None,
            };
            tx.put(TreeId::Probes, u64_key(probe.id), &probe)?;
            tx.put(TreeId::ProbeTokens, token_hash.as_bytes(), &probe.id)?;
            Ok(probe)
        })?;
        self.store.durable().await?;
        Ok((probe, token))
    }

    pub fn probes(&self) -> Result<Vec<Probe>> {
        self.store.values::<Probe>(TreeId::Probes).collect()
    }

    /// The live probe holding this token.
    pub fn probe_by_token(&self, token: &str) -> Result<Option<Probe>> {
        let hash = TokenHash::of(token);
        let Some(id) = self
            .store
            .get::<u64>(TreeId::ProbeTokens, hash.as_bytes())?
        else {
            return Ok(None);
        };
        Ok(self
            .store
            .get::<Probe>(TreeId::Probes, u64_key(id))?
            .filter(|p| p.revoked_ms.is_none() && p.token_hash == hash))
    }

    /// Revokes a probe: its token stops working at once. Revoking twice is harmless.
    pub async fn revoke_probe(&self, id: u64, now_ms: u64) -> Result<Probe> {
        let probe = self.store.transaction(|tx| {
            let Some(mut probe) = tx.get::<Probe>(TreeId::Probes, u64_key(id))? else {
                return abort(Error::NotFound(format!("probe {id}")));
            };
            if probe.revoked_ms.is_none() {
                probe.revoked_ms = Some(now_ms);
                tx.put(TreeId::Probes, u64_key(id), &probe)?;
                tx.remove(TreeId::ProbeTokens, probe.token_hash.as_bytes())?;
            }
            Ok(probe)
        })?;
        self.store.durable().await?;
        Ok(probe)
    }
}
