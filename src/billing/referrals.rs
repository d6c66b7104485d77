//! Referral codes (every user has one, made on first ask) and promo codes (made by an
//! operator). Redeeming gives Pro days, in one transaction with the redemption record, so a
//! code is never counted twice for one user nor past its uses.

use serde::Serialize;

use super::codes::{self, Code};
use super::pro;
use super::Billing;
use crate::error::{Error, Result};
use crate::fleet::model::{User, UserId};
use crate::fleet::users::save_user;
use crate::store::{abort, TreeId, Tx, TxResult};

/// Tries before giving up on finding an unused random code (a clash is about 1 in 10^11).
const GENERATE_TRIES: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct Redeemed {
    pub code: String,
    pub days: u64,
    pub pro_until: Option<u64>,
    /// The referrer rewarded, for a referral code.
    pub referrer: Option<UserId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoCode {
    pub code: String,
    pub days: u64,
    pub max_uses: u64,
    pub uses: u64,
    pub expires_at: Option<u64>,
    pub created_at: u64,
}

/// A user's referral code as the admin sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferralCode {
    pub code: String,
    pub owner: UserId,
    pub uses: u64,
}

fn redemption_key(code: &str, user: UserId) -> Vec<u8> {
    let mut key = code.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&user.key());
    key
}

fn user_in(tx: &Tx, id: UserId) -> TxResult<User> {
    match tx.get::<User>(TreeId::Users, id.key())? {
        Some(user) => Ok(user),
        None => abort(Error::NotFound(format!("user {id}"))),
    }
}

impl Billing {
    /// The user's referral code, made (and stored) on the first ask.
    pub async fn referral_code(&self, user_id: UserId, now_ms: u64) -> Result<String> {
        let candidates: Vec<String> = {
            let mut rng = rand::thread_rng();
            (0..GENERATE_TRIES)
                .map(|_| codes::generate(&mut rng, codes::REFERRAL_LEN))
                .collect()
        };
        let (code, made) = self.store.transaction(|tx| {
            let mut user = user_in(tx, user_id)?;
            if let Some(code) = &user.referral_code {
                return Ok((code.clone(), false));
            }
            for code in &candidates {
                if !tx.contains(TreeId::Codes, code)? {
                    tx.put(TreeId::Codes, code, &Code::Referral { owner: user_id })?;
                    user.referral_code = Some(code.clone());
                    save_user(tx, &user, now_ms)?;
                    return Ok((code.clone(), true));
                }
            }
            abort(Error::internal("no free referral code after several tries"))
        })?;
        if made {
            self.store.durable().await?;
        }
        Ok(code)
    }

    /// Redeems a referral or promo code for `user_id`.
    pub async fn redeem(&self, user_id: UserId, typed: &str, now_ms: u64) -> Result<Redeemed> {
        let code = codes::normalize(typed)?;
        let candidates = self.candidates(now_ms)?;
        let per_user = self.settings.pro_proxies_per_user;
        let bonus = self.settings.referral_bonus_days;
        let (redeemed, changed) = self.store.transaction(|tx| {
            let Some(found) = tx.get::<Code>(TreeId::Codes, &code)? else {
                return abort(Error::NotFound(format!("code {code}")));
            };
            // The referrer's new pro proxies count in the loads the redeemer's choice sees.
            let mut candidates = candidates.clone();
            let mut user = user_in(tx, user_id)?;
            if tx.contains(TreeId::Redemptions, redemption_key(&code, user_id))? {
                return abort(Error::conflict(
                    "already_redeemed",
                    "this account has already redeemed this code",
                ));
            }
            let (days, referrer) = match found {
                Code::Referral { owner } if owner == user_id => {
                    return abort(Error::invalid(
                        "own_code",
                        "your own referral code cannot be redeemed by you",
                    ));
                }
                Code::Referral { owner } => {
                    if user.referred_by.is_some() {
                        return abort(Error::conflict(
                            "already_referred",
                            "this account has already redeemed a referral code",
                        ));
                    }
                    let mut referrer = user_in(tx, owner)?;
                    pro::extend(tx, &mut referrer, bonus, &mut candidates, per_user, now_ms)?;
                    user.referred_by = Some(owner);
                    (bonus, Some(owner))
                }
                Code::Promo {
                    days,
                    max_uses,
                    uses,
                    expires_ms,
                    created_ms,
                } => {
                    if expires_ms.is_some_and(|at| at <= now_ms) {
                        return abort(Error::conflict(
                            "code_expired",
                            format!("code {code} has expired"),
                        ));
                    }
                    if uses >= max_uses {
                        return abort(Error::conflict(
                            "code_used_up",
                            format!("code {code} has no uses left"),
                        ));
                    }
                    let updated = Code::Promo {
                        days,
                        max_uses,
                        uses: uses + 1,
                        expires_ms,
                        created_ms,
                    };
                    tx.put(TreeId::Codes, &code, &updated)?;
                    (days, None)
                }
            };
            pro::extend(tx, &mut user, days, &mut candidates, per_user, now_ms)?;
            tx.put(TreeId::Redemptions, redemption_key(&code, user_id), &now_ms)?;
            let redeemed = Redeemed {
                code: code.clone(),
                days,
                pro_until: user.pro_until_ms.map(|t| t / 1000),
                referrer,
            };
            Ok((redeemed, [Some(user_id), referrer]))
        })?;
        self.store.durable().await?;
        let changed: Vec<UserId> = changed.into_iter().flatten().collect();
        self.notifier.notify(&changed);
        Ok(redeemed)
    }

    /// Creates a promo code (`code` as given, or a random 10-symbol one).
    pub async fn create_promo(
        &self,
        code: Option<&str>,
        days: u64,
        max_uses: u64,
        expires_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<PromoCode> {
        if !(1..=3650).contains(&days) || max_uses == 0 {
            return Err(Error::invalid(
                "invalid_promo",
                "days must be 1 to 3650 and max_uses at least 1",
            ));
        }
        if expires_ms.is_some_and(|at| at <= now_ms) {
            return Err(Error::invalid(
                "invalid_promo",
                "expires_at must be in the future",
            ));
        }
        let code = match code {
            Some(typed) => codes::normalize(typed)?,
            None => codes::generate(&mut rand::thread_rng(), 10),
        };
        let record = Code::Promo {
            days,
            max_uses,
            uses: 0,
            expires_ms,
            created_ms: now_ms,
        };
        self.store.transaction(|tx| {
            if tx.contains(TreeId::Codes, &code)? {
                return abort(Error::conflict(
                    "code_taken",
                    format!("code {code} already exists"),
                ));
            }
            tx.put(TreeId::Codes, &code, &record)
        })?;
        self.store.durable().await?;
        Ok(PromoCode {
            code,
            days,
            max_uses,
            uses: 0,
            expires_at: expires_ms.map(|t| t / 1000),
            created_at: now_ms / 1000,
        })
    }

    /// Every promo code with its uses (referral codes are per user and not listed here).
    pub fn promo_codes(&self) -> Result<Vec<PromoCode>> {
        let mut found = Vec::new();
        for item in self.store.scan_from::<Code>(TreeId::Codes, []) {
            let (key, code) = item?;
            if let Code::Promo {
                days,
                max_uses,
                uses,
                expires_ms,
                created_ms,
            } = code
            {
                found.push(PromoCode {
                    code: String::from_utf8_lossy(&key).into_owned(),
                    days,
                    max_uses,
                    uses,
                    expires_at: expires_ms.map(|t| t / 1000),
                    created_at: created_ms / 1000,
                });
            }
        }
        Ok(found)
    }

    /// A page of referral codes after `after`, in code order, each with its owner and uses.
    pub fn referral_codes(&self, after: Option<&str>, limit: usize) -> Result<Vec<ReferralCode>> {
        let from = after.map_or_else(Vec::new, |code| {
            let mut key = code.as_bytes().to_vec();
            key.push(0); // just past it
            key
        });
        let mut found = Vec::new();
        for item in self.store.scan_from::<Code>(TreeId::Codes, from) {
            if found.len() >= limit {
                break;
            }
            let (key, code) = item?;
            if let Code::Referral { owner } = code {
                let code = String::from_utf8_lossy(&key).into_owned();
                let uses = self.redemptions(&code) as u64;
                found.push(ReferralCode { code, owner, uses });
            }
        }
        Ok(found)
    }

    /// How many users redeemed `code`.
    pub fn redemptions(&self, code: &str) -> usize {
        let mut prefix = code.as_bytes().to_vec();
        prefix.push(0);
        self.store
            .keys_with_prefix(TreeId::Redemptions, prefix)
            .count()
    }
}
