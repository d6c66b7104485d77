//! Who may speak for a proxy name. The fleet-wide registry token, or an admin-issued enrolment
//! token, only enrols a name nobody holds; the enrolment hands the proxy a secret of its own
//! (once; only its SHA-256 is kept), and from then on only that secret heartbeats or
//! unregisters the name. A censor holding the registry token, or running one proxy, can
//! neither take over another proxy's name nor change its address, role or capacity.
//!
//! The credential outlives the registration (an expired proxy comes back with its secret),
//! and is forgotten `credential_keep_days` after the proxy was last gone (upkeep).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::model::{ProxyName, Registration, Role};
use crate::error::{Error, Result};
use crate::http::TokenHash;
use crate::store::codec::u64_key;
use crate::store::{Store, TreeId, Tx, TxResult};

/// Meta counter: names holding a credential (the `max_proxies` cap).
pub const ENROLLED: &str = "registry.enrolled";
/// Meta counter numbering enrolment tokens.
const ENROLMENT_SEQ: &str = "registry.enrolment_seq";

/// What a proxy's secret is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretState {
    Active(TokenHash),
    /// Refused (403 `proxy_revoked`) until an admin rotates it.
    Revoked(TokenHash),
    /// Registered before per-proxy secrets: the first heartbeat with the fleet token from the
    /// address it was registered at claims a secret (upgrades drop no proxy, and the token
    /// alone cannot move it elsewhere).
    Unclaimed {
        ip: IpAddr,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyCredential {
    pub secret: SecretState,
    /// The role the proxy has when it (re)appears: given at enrolment or by an admin. A
    /// heartbeat's `role` field is ignored: a proxy cannot raise its own role.
    pub role: Role,
    /// Largest capacity the proxy may claim; `None` = the fleet's `max_proxy_capacity`.
    pub max_capacity: Option<u32>,
    /// Since when the proxy is not registered (unregistered, expired or revoked).
    pub gone_since_ms: Option<u64>,
}

/// An admin-issued enrolment token: enrols up to `uses` new names with this role and
/// capacity ceiling, until it expires or is revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolment {
    pub id: u64,
    pub token_hash: TokenHash,
    pub role: Role,
    pub max_capacity: Option<u32>,
    pub uses: u32,
    pub expires_ms: u64,
    pub revoked: bool,
    pub created_ms: u64,
    /// Names it enrolled (at most `uses`).
    pub enrolled: Vec<String>,
    pub note: String,
}

impl Enrolment {
    /// Names enrolled so far.
    pub fn used(&self) -> u32 {
        self.enrolled.len() as u32
    }

    fn refusal(&self, now_ms: u64) -> Option<&'static str> {
        if self.revoked {
            Some("this enrolment token was revoked")
        } else if self.expires_ms <= now_ms {
            Some("this enrolment token has expired")
        } else if self.used() >= self.uses {
            Some("this enrolment token has no uses left")
        } else {
            None
        }
    }
}

/// What the secret index (`proxy_secrets`) holds for a secret: whose it is, and the capacity
/// ceiling its enrolment set (which never changes), so a heartbeat needs no other read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretOwner {
    pub name: String,
    pub max_capacity: Option<u32>,
}

/// The credential a request presented, classified before the write (`Credentials::classify`).
#[derive(Debug, Clone, PartialEq)]
pub enum Presented {
    /// The fleet-wide registry token.
    Fleet,
    /// An enrolment token (its id).
    Enrolment(u64),
    /// A proxy secret (its hash), and whose it is.
    Secret {
        hash: TokenHash,
        owner: Arc<SecretOwner>,
    },
}

impl Presented {
    /// The capacity ceiling a heartbeat with this credential gets: its enrolment's, else the
    /// fleet's.
    pub fn ceiling(&self, ceilings: Ceilings) -> u32 {
        let own = match self {
            Presented::Secret { owner, .. } => owner.max_capacity,
            _ => None,
        };
        ceilings.capacity(own)
    }
}

/// A new proxy secret: shown once, kept as a hash.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("pfp_{}", hex::encode(bytes))
}

/// Fleet-wide ceilings on what enrolment accepts.
#[derive(Debug, Clone, Copy)]
pub struct Ceilings {
    pub max_proxies: u64,
    pub max_proxy_capacity: u32,
}

impl Ceilings {
    /// The largest capacity a proxy may claim: its enrolment's ceiling, never above the fleet's.
    pub fn capacity(self, enrolment: Option<u32>) -> u32 {
        enrolment
            .unwrap_or(self.max_proxy_capacity)
            .min(self.max_proxy_capacity)
    }
}

/// What the credential allows a registration to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub role: Role,
    pub max_capacity: u32,
    /// The secret the proxy now holds (kept on its live record).
    pub secret_hash: TokenHash,
    /// A secret issued by this registration (enrolment, or a legacy proxy's claim).
    pub secret: Option<String>,
}

pub fn name_taken(name: &str) -> Error {
    Error::forbidden(
        "name_taken",
        format!("proxy name {name} belongs to another proxy: heartbeats and unregister need that proxy's own secret"),
    )
}

pub fn revoked(name: &str) -> Error {
    Error::forbidden(
        "proxy_revoked",
        format!("the secret of proxy {name} was revoked by an operator"),
    )
}

/// Decides, inside the registration's transaction, whether `presented` may register `reg`
/// and what it may be; enrols or claims when the name is new (or legacy). `new_secret` is
/// the secret to issue if one is issued. The outer `Err` is the store's; the inner one is
/// this registration's refusal (nothing written).
pub fn admit(
    tx: &Tx,
    reg: &Registration,
    presented: &Presented,
    new_secret: &str,
    ceilings: Ceilings,
    now_ms: u64,
) -> TxResult<Result<Admitted>> {
    let name = reg.name.as_str();
    let held: Option<ProxyCredential> = tx.get(TreeId::ProxyCredentials, name)?;
    match (presented, held) {
        (Presented::Secret { hash, .. }, Some(mut credential)) => match credential.secret {
            SecretState::Active(active) if active == *hash => {
                if credential.gone_since_ms.take().is_some() {
                    tx.put(TreeId::ProxyCredentials, name, &credential)?;
                }
                Ok(Ok(Admitted {
                    role: credential.role,
                    max_capacity: ceilings.capacity(credential.max_capacity),
                    secret_hash: active,
                    secret: None,
                }))
            }
            SecretState::Revoked(old) if old == *hash => Ok(Err(revoked(name))),
            _ => Ok(Err(name_taken(name))),
        },
        (Presented::Secret { .. }, None) => Ok(Err(name_taken(name))),
        (Presented::Fleet, Some(mut credential)) => match credential.secret {
            SecretState::Unclaimed { ip, port } if ip == reg.ip && port == reg.port => {
                let hash = TokenHash::of(new_secret);
                credential.secret = SecretState::Active(hash);
                credential.gone_since_ms = None;
                tx.put(TreeId::ProxyCredentials, name, &credential)?;
                let owner = SecretOwner {
                    name: name.to_string(),
                    max_capacity: credential.max_capacity,
                };
                tx.put(TreeId::ProxySecrets, hash.as_bytes(), &owner)?;
                Ok(Ok(Admitted {
                    role: credential.role,
                    max_capacity: ceilings.capacity(credential.max_capacity),
                    secret_hash: hash,
                    secret: Some(new_secret.to_string()),
                }))
            }
            _ => Ok(Err(name_taken(name))),
        },
        (Presented::Enrolment(_), Some(_)) => Ok(Err(name_taken(name))),
        (Presented::Fleet, None) => enrol(tx, reg, None, new_secret, ceilings, now_ms),
        (Presented::Enrolment(id), None) => enrol(tx, reg, Some(*id), new_secret, ceilings, now_ms),
    }
}

fn enrol(
    tx: &Tx,
    reg: &Registration,
    enrolment_id: Option<u64>,
    new_secret: &str,
    ceilings: Ceilings,
    now_ms: u64,
) -> TxResult<Result<Admitted>> {
    let enrolled = tx.counter(ENROLLED)?;
    if enrolled >= ceilings.max_proxies {
        return Ok(Err(Error::AtCapacity {
            code: "fleet_full",
            message: format!(
                "the fleet holds its maximum of {} proxies (max_proxies); no new name is enrolled",
                ceilings.max_proxies
            ),
        }));
    }
    let (role, max_capacity) = match enrolment_id {
        None => (reg.role, None),
        Some(id) => {
            let Some(mut enrolment) = tx.get::<Enrolment>(TreeId::Enrolments, u64_key(id))? else {
                return Ok(Err(Error::Unauthorized));
            };
            if let Some(why) = enrolment.refusal(now_ms) {
                return Ok(Err(Error::forbidden("enrolment_refused", why)));
            }
            enrolment.enrolled.push(reg.name.to_string());
            tx.put(TreeId::Enrolments, u64_key(id), &enrolment)?;
            (enrolment.role, enrolment.max_capacity)
        }
    };
    let hash = TokenHash::of(new_secret);
    let credential = ProxyCredential {
        secret: SecretState::Active(hash),
        role,
        max_capacity,
        gone_since_ms: None,
    };
    tx.put(TreeId::ProxyCredentials, reg.name.as_str(), &credential)?;
    let owner = SecretOwner {
        name: reg.name.to_string(),
        max_capacity,
    };
    tx.put(TreeId::ProxySecrets, hash.as_bytes(), &owner)?;
    tx.put(TreeId::Meta, ENROLLED, &(enrolled + 1))?;
    let max_capacity = ceilings.capacity(max_capacity);
    Ok(Ok(Admitted {
        role,
        max_capacity,
        secret_hash: hash,
        secret: Some(new_secret.to_string()),
    }))
}

/// May `presented` unregister proxy `name`? Only its own active secret may: the fleet token
/// cannot, not even for a proxy that has not claimed its secret since the upgrade (it expires).
/// The inner `Err` is the refusal: 404 for a name nobody holds, else 403.
pub fn may_unregister(tx: &Tx, name: &ProxyName, presented: &Presented) -> TxResult<Result<()>> {
    let held: Option<ProxyCredential> = tx.get(TreeId::ProxyCredentials, name.as_str())?;
    let Some(held) = held else {
        return Ok(Err(Error::NotFound(format!("proxy {name}"))));
    };
    Ok(match (presented, held.secret) {
        (Presented::Secret { hash, .. }, SecretState::Active(active)) if active == *hash => Ok(()),
        (Presented::Secret { hash, .. }, SecretState::Revoked(old)) if old == *hash => {
            Err(revoked(name.as_str()))
        }
        _ => Err(name_taken(name.as_str())),
    })
}

/// Notes that the proxy left the registry (its credential stays, for its return).
pub fn mark_gone(tx: &Tx, name: &ProxyName, now_ms: u64) -> TxResult<()> {
    if let Some(mut credential) =
        tx.get::<ProxyCredential>(TreeId::ProxyCredentials, name.as_str())?
    {
        credential.gone_since_ms.get_or_insert(now_ms);
        tx.put(TreeId::ProxyCredentials, name.as_str(), &credential)?;
    }
    Ok(())
}

/// The credential store's reads and the admin's operations on it.
#[derive(Clone)]
pub struct Credentials {
    store: Store,
    /// The secret index as read so far (hash -> owner), so a heartbeat's token is classified
    /// without a store read: measured here, that read cost a fifth of the heartbeat rate. A
    /// hint only: the heartbeat's transaction compares the live record's secret, so an entry
    /// that outlived a rotation gets a refusal there. Holds at most one entry per credential.
    known: Arc<RwLock<HashMap<[u8; 32], Arc<SecretOwner>>>>,
}

/// What creating an enrolment token takes.
#[derive(Debug, Clone)]
pub struct NewEnrolment {
    pub role: Role,
    pub max_capacity: Option<u32>,
    pub uses: u32,
    pub expires_ms: u64,
    pub note: String,
}

impl Credentials {
    pub fn new(store: Store) -> Credentials {
        Credentials {
            store,
            known: Arc::default(),
        }
    }

    fn forget_known(&self, hash: &TokenHash) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.remove(hash.as_bytes());
    }

    /// What a bearer token is, for `/register` and `/unregister`: the fleet token, a proxy's
    /// secret or an enrolment token; `None` = none of them (401). Proxy secrets are looked up
    /// first: they carry every heartbeat.
    pub fn classify(&self, token: &str, fleet: &TokenHash) -> Result<Option<Presented>> {
        let hash = TokenHash::of(token);
        if hash == *fleet {
            return Ok(Some(Presented::Fleet));
        }
        let known = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            known.get(hash.as_bytes()).cloned()
        };
        if let Some(owner) = known {
            return Ok(Some(Presented::Secret { hash, owner }));
        }
        if let Some(owner) = self
            .store
            .get::<SecretOwner>(TreeId::ProxySecrets, hash.as_bytes())?
        {
            let owner = Arc::new(owner);
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            known.insert(*hash.as_bytes(), owner.clone());
            return Ok(Some(Presented::Secret { hash, owner }));
        }
        Ok(self
            .store
            .get::<u64>(TreeId::EnrolmentTokens, hash.as_bytes())?
            .map(Presented::Enrolment))
    }

    /// A new enrolment token; returns it (shown once) with its record.
    pub async fn create_enrolment(
        &self,
        new: NewEnrolment,
        now_ms: u64,
    ) -> Result<(String, Enrolment)> {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = format!("pfe_{}", hex::encode(bytes));
        let hash = TokenHash::of(&token);
        let enrolment = self.store.transaction(|tx| {
            let id = tx.next(ENROLMENT_SEQ)?;
            let enrolment = Enrolment {
                id,
                token_hash: hash,
                role: new.role,
                max_capacity: new.max_capacity,
                uses: new.uses,
                expires_ms: new.expires_ms,
                revoked: false,
                created_ms: now_ms,
                enrolled: Vec::new(),
                note: new.note.clone(),
            };
            tx.put(TreeId::Enrolments, u64_key(id), &enrolment)?;
            tx.put(TreeId::EnrolmentTokens, hash.as_bytes(), &id)?;
            Ok(enrolment)
        })?;
        self.store.durable().await?;
        Ok((token, enrolment))
    }

    /// Every enrolment token, newest first.
    pub fn enrolments(&self) -> Result<Vec<Enrolment>> {
        self.store
            .scan_rev::<Enrolment>(TreeId::Enrolments, None)
            .map(|item| item.map(|(_, e)| e))
            .collect()
    }

    /// Revokes an enrolment token: it enrols no more names (those it enrolled keep theirs).
    pub async fn revoke_enrolment(&self, id: u64) -> Result<Enrolment> {
        let enrolment = self.store.transaction(|tx| {
            let Some(mut enrolment) = tx.get::<Enrolment>(TreeId::Enrolments, u64_key(id))? else {
                return crate::store::abort(Error::NotFound(format!("enrolment {id}")));
            };
            enrolment.revoked = true;
            tx.put(TreeId::Enrolments, u64_key(id), &enrolment)?;
            tx.remove(TreeId::EnrolmentTokens, enrolment.token_hash.as_bytes())?;
            Ok(enrolment)
        })?;
        self.store.durable().await?;
        Ok(enrolment)
    }

    /// A new secret for proxy `name` (the old one stops working at once; a revoked proxy is
    /// let back in). Returns the secret, shown once.
    pub async fn rotate(&self, name: &ProxyName) -> Result<String> {
        let secret = new_secret();
        let hash = TokenHash::of(&secret);
        let replaced = self.store.transaction(|tx| {
            let Some(mut credential) =
                tx.get::<ProxyCredential>(TreeId::ProxyCredentials, name.as_str())?
            else {
                return crate::store::abort(Error::NotFound(format!("proxy {name}")));
            };
            let replaced = match credential.secret {
                SecretState::Active(old) | SecretState::Revoked(old) => Some(old),
                SecretState::Unclaimed { .. } => None,
            };
            if let Some(old) = replaced {
                tx.remove(TreeId::ProxySecrets, old.as_bytes())?;
            }
            credential.secret = SecretState::Active(hash);
            tx.put(TreeId::ProxyCredentials, name.as_str(), &credential)?;
            let owner = SecretOwner {
                name: name.to_string(),
                max_capacity: credential.max_capacity,
            };
            tx.put(TreeId::ProxySecrets, hash.as_bytes(), &owner)?;
            // The live record checks heartbeats: it holds the new secret from now on.
            if let Some(mut proxy) = tx.get::<super::Proxy>(TreeId::Proxies, name.as_str())? {
                proxy.secret_hash = Some(hash);
                tx.put(TreeId::Proxies, name.as_str(), &proxy)?;
            }
            Ok(replaced)
        })?;
        if let Some(old) = replaced {
            self.forget_known(&old);
        }
        self.store.durable().await?;
        Ok(secret)
    }

    /// Forgets the credentials of proxies gone for longer than `keep_ms` (their names can be
    /// enrolled again). Returns how many. Housekeeping: not flushed (a crash only means the
    /// next upkeep does it again).
    pub fn forget_gone(&self, keep_ms: u64, now_ms: u64) -> Result<usize> {
        let stale: Vec<String> = self
            .store
            .scan_from::<ProxyCredential>(TreeId::ProxyCredentials, b"")
            .filter_map(|item| match item {
                Ok((key, c)) if c.gone_since_ms.is_some_and(|t| t + keep_ms <= now_ms) => {
                    Some(Ok(String::from_utf8_lossy(&key).into_owned()))
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_>>()?;
        let mut forgotten = 0;
        for name in stale {
            let gone = self.store.transaction(|tx| {
                let Some(credential) =
                    tx.get::<ProxyCredential>(TreeId::ProxyCredentials, &name)?
                else {
                    return Ok(None);
                };
                let still_gone = credential
                    .gone_since_ms
                    .is_some_and(|t| t + keep_ms <= now_ms)
                    && !tx.contains(TreeId::Proxies, &name)?;
                if !still_gone {
                    return Ok(None);
                }
                let hash = match credential.secret {
                    SecretState::Active(hash) | SecretState::Revoked(hash) => Some(hash),
                    SecretState::Unclaimed { .. } => None,
                };
                if let Some(hash) = hash {
                    tx.remove(TreeId::ProxySecrets, hash.as_bytes())?;
                }
                tx.remove(TreeId::ProxyCredentials, &name)?;
                let enrolled = tx.counter(ENROLLED)?;
                tx.put(TreeId::Meta, ENROLLED, &enrolled.saturating_sub(1))?;
                Ok(Some(hash))
            })?;
            if let Some(hash) = gone {
                if let Some(hash) = hash {
                    self.forget_known(&hash);
                }
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }
}

/// Revokes proxy `name`'s secret inside `tx` (the caller removes the live record).
pub fn revoke_in(tx: &Tx, name: &ProxyName) -> TxResult<bool> {
    let Some(mut credential) =
        tx.get::<ProxyCredential>(TreeId::ProxyCredentials, name.as_str())?
    else {
        return Ok(false);
    };
    credential.secret = match credential.secret {
        SecretState::Active(hash) | SecretState::Revoked(hash) => SecretState::Revoked(hash),
        // Never claimed: nothing can claim it now (an admin rotation issues a secret).
        SecretState::Unclaimed { .. } => SecretState::Revoked(TokenHash::of(&new_secret())),
    };
    tx.put(TreeId::ProxyCredentials, name.as_str(), &credential)?;
    Ok(true)
}

/// Sets the role a proxy has whenever it (re)appears (an admin's decision).
pub fn set_role_in(tx: &Tx, name: &str, role: Role) -> TxResult<()> {
    if let Some(mut credential) = tx.get::<ProxyCredential>(TreeId::ProxyCredentials, name)? {
        credential.role = role;
        tx.put(TreeId::ProxyCredentials, name, &credential)?;
    }
    Ok(())
}

/// The credential invariants: every registered proxy has a credential, every secret in the
/// index names a credential holding that secret, and the enrolled count is the credentials'.
pub fn check(store: &Store) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for item in store.keys_from(TreeId::Proxies, b"") {
        let name = String::from_utf8_lossy(&item?).into_owned();
        if !store.contains(TreeId::ProxyCredentials, &name)? {
            problems.push(format!("proxy {name} has no credential"));
        }
    }
    for item in store.scan_from::<SecretOwner>(TreeId::ProxySecrets, b"") {
        let (hash, SecretOwner { name, .. }) = item?;
        let held = store
            .get::<ProxyCredential>(TreeId::ProxyCredentials, &name)?
            .map(|c| c.secret);
        let agrees = matches!(held, Some(SecretState::Active(h) | SecretState::Revoked(h)) if h.as_bytes()[..] == hash[..]);
        if !agrees {
            problems.push(format!(
                "a secret in the index names {name}, whose credential does not hold it"
            ));
        }
    }
    for item in store.values::<super::Proxy>(TreeId::Proxies) {
        let proxy = item?;
        let held = store
            .get::<ProxyCredential>(TreeId::ProxyCredentials, proxy.name.as_str())?
            .map(|c| c.secret);
        let agrees = match (proxy.secret_hash, held) {
            (None, _) => true, // not heartbeated since the upgrade, or not yet claimed
            (Some(hash), Some(SecretState::Active(active))) => hash == active,
            _ => false,
        };
        if !agrees {
            problems.push(format!(
                "proxy {} holds a secret its credential does not",
                proxy.name
            ));
        }
    }
    let counted: u64 = store.get(TreeId::Meta, ENROLLED)?.unwrap_or(0);
    let held = store.len(TreeId::ProxyCredentials) as u64;
    if counted != held {
        problems.push(format!(
            "{held} proxy credentials but the enrolled count says {counted}"
        ));
    }
    Ok(problems)
}
