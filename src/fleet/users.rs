//! Users: creation (with their first fallback proxies), reading, listing, disabling.

use rand::RngCore;

use super::links::{self, set_proxies};
use super::model::{Email, ProxyName, User, UserId, UserStatus};
use super::policy::{self, Candidate};
use super::Fleet;
use crate::changes::ChangeKind;
use crate::error::{Error, Result};
use crate::http::TokenHash;
use crate::queue::Queue;
use crate::registry::Role;
use crate::store::codec::{pair_key, u64_key};
use crate::store::combiner::Combiner;
use crate::store::{abort, Store, TreeId, Tx, TxResult};

pub const NEXT_USER_ID: &str = "users.next_id";
/// How far up the trust graph the trust policy looks.
const MAX_ANCESTRY: usize = 64;

/// A new user as the API returns it once: with the token.
pub struct Created {
    pub user: User,
    pub token: Option<String>,
}

pub fn new_token() -> String {
    new_token_with_prefix("pfu")
}

/// 256 random bits, hex, after a prefix naming the kind of token (`pfu` user, `pfd` device).
pub fn new_token_with_prefix(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// The user `id`, or a 404 that aborts the transaction.
fn existing_user(tx: &Tx, id: UserId) -> TxResult<User> {
    match tx.get::<User>(TreeId::Users, id.key())? {
        Some(user) => Ok(user),
        None => abort(Error::NotFound(format!("user {id}"))),
    }
}

/// Stores the user and records the change for replay.
pub fn save_user(tx: &Tx, user: &User, now_ms: u64) -> TxResult<()> {
    tx.put(TreeId::Users, user.id.key(), user)?;
    tx.log(now_ms, ChangeKind::UserUpserted(Box::new(user.clone())))?;
    Ok(())
}

/// Most sign-ups applied in one transaction. Concurrent sign-ups share a transaction and a
/// flush, as heartbeats and webhooks do, instead of paying for one each (BENCHMARKS.md,
/// "Sign-ups with 10,000 proxies").
pub const SIGN_UPS_PER_TRANSACTION: usize = 128;

/// One sign-up as the combiner takes it: everything chosen before the transaction.
pub struct SignUp {
    pub email: Email,
    pub invited_by: Option<UserId>,
    /// The trust level it starts at.
    pub level: u8,
    pub proxies: Vec<ProxyName>,
    pub token: String,
    pub now_ms: u64,
}

/// Each sign-up's own outcome: one refused address does not fail the others of its batch.
pub type SignUpOutcome = std::result::Result<User, Error>;

/// What creating a user writes with. Not the whole `Fleet`: the sign-up combiner's task holds
/// this, and a `Fleet` there would hold the combiner's own sender (the task, and the store it
/// holds, would never end).
#[derive(Clone)]
pub struct NewUsers {
    pub queue: Queue,
    pub fallbacks_per_user: usize,
    pub trust: super::trust::TrustRules,
}

impl NewUsers {
    /// Starts the sign-up combiner (inside a tokio runtime).
    pub fn combiner(self, store: Store) -> Combiner<SignUp, SignUpOutcome> {
        Combiner::start(
            store,
            SIGN_UPS_PER_TRANSACTION,
            move |tx, batch: &[SignUp]| {
                batch
                    .iter()
                    .map(|s| match refusal(tx, &s.email, s.invited_by)? {
                        Some(refused) => Ok(Err(refused)),
                        None => self
                            .create_in(
                                tx,
                                &s.email,
                                s.invited_by,
                                s.level,
                                &s.proxies,
                                &s.token,
                                s.now_ms,
                            )
                            .map(Ok),
                    })
                    .collect()
            },
        )
    }

    /// Creates a user inside `tx`: unique email, token, trust level, first proxies. `proxies`
    /// were chosen before the transaction (a choice, not an invariant: the rebalancer
    /// corrects it).
    #[allow(clippy::too_many_arguments)] // the fields of the record it makes
    pub fn create_in(
        &self,
        tx: &Tx,
        email: &Email,
        invited_by: Option<UserId>,
        level: u8,
        proxies: &[ProxyName],
        token: &str,
        now_ms: u64,
    ) -> TxResult<User> {
        let mut user = self.insert(
            tx,
            email,
            invited_by,
            (level, proxies),
            token,
            UserStatus::Active,
            now_ms,
        )?;
        self.joined(tx, &mut user, now_ms)?;
        Ok(user)
    }

    /// Creates an invitee's pending account inside the invitation's transaction: its email,
    /// token and proxies are taken, but it joins the trust graph (and gets its welcome mail
    /// and any missing proxy) only when accepted (`activate_in`).
    #[allow(clippy::too_many_arguments)] // the fields of the record it makes
    pub fn create_pending_in(
        &self,
        tx: &Tx,
        email: &Email,
        inviter: UserId,
        level: u8,
        proxies: &[ProxyName],
        token: &str,
        now_ms: u64,
    ) -> TxResult<User> {
        self.insert(
            tx,
            email,
            Some(inviter),
            (level, proxies),
            token,
            UserStatus::Pending,
            now_ms,
        )
    }

    /// Activates a pending account (its invitation was accepted).
    pub fn activate_in(&self, tx: &Tx, user: &mut User, now_ms: u64) -> TxResult<()> {
        user.status = UserStatus::Active;
        save_user(tx, user, now_ms)?;
        self.joined(tx, user, now_ms)
    }

    #[allow(clippy::too_many_arguments)] // the fields of the record it makes
    fn insert(
        &self,
        tx: &Tx,
        email: &Email,
        invited_by: Option<UserId>,
        (level, proxies): (u8, &[ProxyName]),
        token: &str,
        status: UserStatus,
        now_ms: u64,
    ) -> TxResult<User> {
        if let Some(refused) = refusal(tx, email, invited_by)? {
            return abort(refused);
        }
        let id = UserId(tx.next(NEXT_USER_ID)?);
        let token_hash = TokenHash::of(token);
        let mut user = User::new(id, email.clone(), token_hash, invited_by, now_ms);
        user.status = status;
        tx.put(TreeId::UserEmails, email.as_str(), &id)?;
        tx.put(TreeId::UserTokens, token_hash.as_bytes(), &id)?;
        super::token_prefixes::record(tx, token, &token_hash)?;
        if !set_proxies(
            tx,
            &mut user,
            proxies.to_vec(),
            "first fallback on sign-up",
            now_ms,
        )? {
            save_user(tx, &user, now_ms)?;
        }
        let why = match invited_by {
            Some(inviter) => format!("invited by user {inviter}"),
            None => "created by an operator".to_string(),
        };
        super::trust::start(tx, id, level, &why, &self.trust, now_ms)?;
        super::trust::note_given(tx, proxies, level)?;
        Ok(user)
    }

    /// What makes an active user a member: its edge in the trust graph, a place in the queue
    /// for proxies it lacks, the welcome mail.
    fn joined(&self, tx: &Tx, user: &mut User, now_ms: u64) -> TxResult<()> {
        if let Some(inviter) = user.invited_by {
            tx.put_marker(TreeId::Invitees, pair_key(inviter.0, user.id.0))?;
        }
        let level = super::trust::level_of(tx, user.id, &self.trust, now_ms)?;
        if user.proxies.len() < self.trust.fallbacks_for(level, self.fallbacks_per_user) {
            tx.put(TreeId::NeedsFallback, user.id.key(), &now_ms)?;
        }
        let welcome = serde_json::json!({ "email": user.email.as_str() });
        crate::mail::queue_in(
            tx,
            &self.queue,
            user.email.as_str(),
            "welcome",
            &welcome,
            &format!("welcome:{}", user.id),
            now_ms,
        )?;
        Ok(())
    }
}

/// Why this sign-up cannot be made (the address is taken, the inviter does not exist), read
/// inside the transaction that would make it. Sign-ups earlier in the same transaction count.
fn refusal(tx: &Tx, email: &Email, invited_by: Option<UserId>) -> TxResult<Option<Error>> {
    if tx.contains(TreeId::UserEmails, email.as_str())? {
        return Ok(Some(Error::conflict(
            "email_taken",
            format!("{} already has an account", email.as_str()),
        )));
    }
    if let Some(inviter) = invited_by {
        if !tx.contains(TreeId::Users, inviter.key())? {
            return Ok(Some(Error::invalid(
                "unknown_inviter",
                format!("no user {inviter} to be invited by"),
            )));
        }
    }
    Ok(None)
}

impl Fleet {
    /// Reads the index again (the periodic view refresh, so requests rarely have to).
    pub fn refresh_candidates(&self, now_ms: u64) -> Result<()> {
        let generation = self.registry.generation();
        self.index
            .refresh(generation, || self.read_candidates(now_ms))
    }

    /// A page of the users holding `proxy` as a fallback, by id after `after`, and whether more
    /// follow.
    pub fn users_page_on(
        &self,
        proxy: &ProxyName,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<(Vec<User>, bool)> {
        let (ids, more) = links::users_page(&self.store, proxy.as_str(), after, limit)?;
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self.user(id)? {
                users.push(user);
            }
        }
        Ok((users, more))
    }

    /// How many users hold `proxy` (the link count placement and the rebalancer read).
    pub fn users_on(&self, proxy: &str) -> Result<u64> {
        links::assigned(&self.store, proxy)
    }

    /// Live fallback proxies with their load, read from the store: every proxy, its link
    /// count and its floor.
    pub fn read_candidates(&self, now_ms: u64) -> Result<Vec<Candidate>> {
        let mut candidates = Vec::new();
        let floors = self.floors()?;
        for proxy in self.registry.list(now_ms)? {
            if proxy.role != Role::Fallback {
                continue;
            }
            let assigned = links::assigned(&self.store, proxy.name.as_str())?;
            candidates.push(Candidate {
                limit: proxy.limit(self.settings.max_clients),
                load: u64::from(proxy.load.clients.unwrap_or(0)).max(assigned),
                floor: floors.get(proxy.name.as_str().as_bytes()).copied(),
                name: proxy.name.clone(),
            });
        }
        Ok(candidates)
    }

    /// The proxy lists of `inviter`, its inviter, and so on (cycles and depth bounded).
    fn ancestry(&self, inviter: Option<UserId>) -> Result<Vec<Vec<ProxyName>>> {
        let mut lists = Vec::new();
        let mut next = inviter;
        let mut seen = Vec::new();
        while let Some(id) = next {
            if seen.contains(&id) || lists.len() >= MAX_ANCESTRY {
                break;
            }
            seen.push(id);
            let Some(user) = self.user(id)? else { break };
            lists.push(user.proxies.clone());
            next = user.invited_by;
        }
        Ok(lists)
    }

    /// The fallback proxies a new user of `level` with this inviter gets now; keep the
    /// `Pending` until the user is committed (or refused).
    pub fn initial_proxies(
        &self,
        invited_by: Option<UserId>,
        level: u8,
        now_ms: u64,
    ) -> Result<(Vec<ProxyName>, super::index::Pending)> {
        let ancestry = self.ancestry(invited_by)?;
        let named: Vec<&ProxyName> = ancestry.iter().flatten().collect();
        let count = self.wanted_at(level);
        let fit = self.fit(level);
        self.index.place(
            self.registry.generation(),
            || self.read_candidates(now_ms),
            &named,
            count,
            fit,
            |shortlist| policy::choose(self.settings.policy, count, &ancestry, shortlist, fit),
        )
    }

    /// How many fallback proxies a user of `level` holds.
    pub fn wanted_at(&self, level: u8) -> usize {
        self.settings
            .trust
            .fallbacks_for(level, self.settings.fallbacks_per_user)
    }

    /// How placement ranks proxies for a user of `level` (None: the `least_loaded` policy
    /// ignores levels).
    pub fn fit(&self, level: u8) -> Option<policy::Fit> {
        policy::Fit::under(self.settings.policy, level, self.settings.trust.fresh_level)
    }

    /// The level a new user starts at: the requested one, else an invitee's (one below its
    /// inviter's), else `trust.created_level`.
    pub fn starting_level(
        &self,
        requested: Option<u8>,
        invited_by: Option<UserId>,
        now_ms: u64,
    ) -> Result<u8> {
        let rules = &self.settings.trust;
        if let Some(level) = requested {
            if level > super::trust::TOP {
                return Err(Error::invalid(
                    "invalid_level",
                    format!("level must be from 0 to {}", super::trust::TOP),
                ));
            }
            return Ok(level);
        }
        match invited_by.map(|id| self.user(id)).transpose()?.flatten() {
            Some(inviter) => {
                let (_, standing) = self.trust_of(&inviter, now_ms)?;
                Ok(rules.invitee_level(standing.level))
            }
            None => Ok(rules.created_level),
        }
    }

    /// Creates a user. Concurrent sign-ups share one transaction and one flush (see
    /// `SIGN_UPS_PER_TRANSACTION`); each still gets its own answer.
    pub async fn create_user(
        &self,
        email: &Email,
        invited_by: Option<UserId>,
        level: Option<u8>,
        now_ms: u64,
    ) -> Result<Created> {
        let level = self.starting_level(level, invited_by, now_ms)?;
        let (proxies, _pending) = self.initial_proxies(invited_by, level, now_ms)?;
        let token = new_token();
        let sign_up = SignUp {
            email: email.clone(),
            invited_by,
            level,
            proxies,
            token: token.clone(),
            now_ms,
        };
        let user = self.sign_ups.submit(sign_up).await??;
        // The welcome mail is sent now rather than with the next idle wake-up (up to 500 ms
        // later): a worker waking to a backlog of hundreds of mails stalled sign-ups.
        self.queue.wake();
        Ok(Created {
            user,
            token: Some(token),
        })
    }

    pub fn user(&self, id: UserId) -> Result<Option<User>> {
        self.store.get(TreeId::Users, id.key())
    }

    /// The active user holding this token.
    pub fn user_by_token(&self, token: &str) -> Result<Option<User>> {
        let hash = TokenHash::of(token);
        let Some(id) = self
            .store
            .get::<UserId>(TreeId::UserTokens, hash.as_bytes())?
        else {
            return Ok(None);
        };
        Ok(self
            .user(id)?
            .filter(|u| u.status == UserStatus::Active && u.token_hashes().any(|h| *h == hash)))
    }

    /// Users ever created (ids are dense from 1), without counting the tree.
    pub fn users_total(&self) -> Result<u64> {
        Ok(self.store.get(TreeId::Meta, NEXT_USER_ID)?.unwrap_or(0))
    }

    /// A page of users: by id after `after`, or, with `query`, by email prefix in email order
    /// after the email `after_email` (each page is one range scan, however deep it is).
    pub fn list_users(
        &self,
        after: Option<UserId>,
        query: Option<&str>,
        after_email: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>> {
        match query
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty())
        {
            Some(prefix) => {
                // Just past `after_email` (keys are whole emails), never before the prefix.
                let from = match after_email {
                    Some(email) if email.as_bytes() >= prefix.as_bytes() => {
                        let mut key = email.to_lowercase().into_bytes();
                        key.push(0);
                        key
                    }
                    _ => prefix.as_bytes().to_vec(),
                };
                let mut found = Vec::new();
                for item in self.store.scan_from::<UserId>(TreeId::UserEmails, &from) {
                    let (email, id) = item?;
                    if !email.starts_with(prefix.as_bytes()) || found.len() >= limit {
                        break;
                    }
                    if let Some(user) = self.user(id)? {
                        found.push(user);
                    }
                }
                Ok(found)
            }
            None => self
                .store
                .scan_from::<User>(TreeId::Users, u64_key(after.map_or(0, |a| a.0 + 1)))
                .take(limit)
                .map(|item| item.map(|(_, user)| user))
                .collect(),
        }
    }

    /// A page of the users `filter` keeps, in id order after `after`. At most `budget` users
    /// are read per call, so a rare match costs a bounded number of pages, never one
    /// unbounded scan: `next_after` says where to go on (None once every user was read).
    pub fn find_users(
        &self,
        filter: &UserFilter,
        after: Option<UserId>,
        limit: usize,
        budget: usize,
        now_ms: u64,
    ) -> Result<FoundUsers> {
        // Text that starts like a token finds the accounts holding such a token: only they
        // can match, so they are read instead of every account.
        if let Some(text) = filter.contains.as_deref() {
            if super::token_prefixes::token_shaped(text) {
                let holders = super::token_prefixes::holders(&self.store, text)?;
                return self.find_among(filter, &holders, after, limit, now_ms);
            }
        }
        let mut found = Vec::new();
        let mut last = after;
        let start = u64_key(after.map_or(0, |a| a.0 + 1));
        let scan = self.store.scan_from::<User>(TreeId::Users, start);
        for (read, item) in scan.enumerate() {
            if found.len() >= limit || read >= budget {
                return Ok(FoundUsers {
                    users: found,
                    next_after: last,
                });
            }
            let (_, user) = item?;
            last = Some(user.id);
            if filter.keeps(&user, None, now_ms) && self.level_kept(filter, &user, now_ms)? {
                found.push(user);
            }
        }
        Ok(FoundUsers {
            users: found,
            next_after: None,
        })
    }

    /// A page of the users of `holders` (a token search's accounts) that `filter` keeps, in
    /// id order after `after`.
    fn find_among(
        &self,
        filter: &UserFilter,
        holders: &std::collections::BTreeSet<UserId>,
        after: Option<UserId>,
        limit: usize,
        now_ms: u64,
    ) -> Result<FoundUsers> {
        let mut found: Vec<User> = Vec::new();
        for id in holders.range(UserId(after.map_or(0, |a| a.0 + 1))..) {
            if found.len() >= limit {
                let next_after = found.last().map(|u| u.id);
                return Ok(FoundUsers {
                    users: found,
                    next_after,
                });
            }
            let Some(user) = self.store.get::<User>(TreeId::Users, id.key())? else {
                continue;
            };
            if filter.keeps(&user, Some(holders), now_ms)
                && self.level_kept(filter, &user, now_ms)?
            {
                found.push(user);
            }
        }
        Ok(FoundUsers {
            users: found,
            next_after: None,
        })
    }

    fn level_kept(&self, filter: &UserFilter, user: &User, now_ms: u64) -> Result<bool> {
        match filter.level {
            Some(level) => Ok(self.trust_of(user, now_ms)?.1.level == level),
            None => Ok(true),
        }
    }

    /// Sets a user's proxies by hand (an operator's move). Each must be a live proxy.
    pub async fn set_user_proxies(
        &self,
        id: UserId,
        names: Vec<String>,
        now_ms: u64,
    ) -> Result<User> {
        let mut proxies: Vec<ProxyName> = Vec::with_capacity(names.len());
        for name in &names {
            let parsed = ProxyName::parse(name)?;
            if proxies.contains(&parsed) {
                return Err(Error::invalid(
                    "duplicate_proxy",
                    format!("{name} is listed twice"),
                ));
            }
            if self.registry.get(&parsed, now_ms)?.is_none() {
                return Err(Error::invalid(
                    "unknown_proxy",
                    format!("no live proxy {name}"),
                ));
            }
            proxies.push(parsed);
        }
        let rules = &self.settings.trust;
        let per_user = self.settings.fallbacks_per_user;
        self.change_user(id, |tx, user| {
            if let Err(disabled) = user.check_enabled() {
                return abort(disabled);
            }
            set_proxies(tx, user, proxies.clone(), "set by an operator", now_ms)?;
            let level = super::trust::level_of(tx, id, rules, now_ms)?;
            super::trust::note_given(tx, &proxies, level)?;
            let wanted = rules.fallbacks_for(level, per_user);
            if user.proxies.len() < wanted && !user.proxies.is_empty() {
                tx.put(TreeId::NeedsFallback, id.key(), &now_ms)
            } else {
                // An empty set is the operator's choice: the rebalancer leaves it alone.
                tx.remove(TreeId::NeedsFallback, id.key()).map(|_| ())
            }
        })
        .await
    }

    /// Disables a user: the token stops working and the proxy slots are released.
    /// A pending or lapsed account is refused (409): its invitation decides it, so revoke
    /// that instead.
    pub async fn disable(&self, id: UserId, now_ms: u64) -> Result<User> {
        self.change_user(id, |tx, user| {
            if matches!(user.status, UserStatus::Pending | UserStatus::Lapsed) {
                return user.check_enabled().or_else(abort);
            }
            self.disable_in(tx, user, now_ms)
        })
        .await
    }

    /// What disabling does, in the caller's transaction (one user, or a branch of the tree).
    pub fn disable_in(&self, tx: &Tx, user: &mut User, now_ms: u64) -> TxResult<()> {
        user.status = UserStatus::Disabled;
        (self.on_disable)(tx, user)?;
        // What the account vouched for and nobody used yet goes with it.
        super::invitations::revoke_all_open(tx, &self.queue, user.id, now_ms)?;
        let released = !user.proxies.is_empty();
        if !set_proxies(tx, user, Vec::new(), "account disabled", now_ms)? {
            save_user(tx, user, now_ms)?;
        }
        if released {
            // Its slots are free: users waiting for a proxy may take them.
            super::placement::queue_placement(&self.queue, tx, now_ms)?;
        }
        tx.remove(TreeId::NeedsFallback, user.id.key()).map(|_| ())
    }

    /// Enables a disabled user again: its tokens work and the rebalancer gives it fallback
    /// proxies on its next run (Pro, if any time is left, comes back with a purchase or gift).
    pub async fn enable(&self, id: UserId, now_ms: u64) -> Result<User> {
        self.change_user(id, |tx, user| match user.status {
            UserStatus::Disabled => self.enable_in(tx, user, now_ms),
            UserStatus::Active => {
                abort(Error::conflict("user_enabled", "the user is not disabled"))
            }
            UserStatus::Pending | UserStatus::Lapsed => user.check_enabled().or_else(abort),
        })
        .await
    }

    /// What enabling does, in the caller's transaction.
    pub fn enable_in(&self, tx: &Tx, user: &mut User, now_ms: u64) -> TxResult<()> {
        user.status = UserStatus::Active;
        save_user(tx, user, now_ms)?;
        tx.put(TreeId::NeedsFallback, user.id.key(), &now_ms)?;
        super::placement::queue_placement(&self.queue, tx, now_ms)
    }

    /// Changes one user in a transaction (the change stores it), durably, and wakes the
    /// user's config long-polls.
    async fn change_user(
        &self,
        id: UserId,
        change: impl Fn(&Tx, &mut User) -> TxResult<()>,
    ) -> Result<User> {
        let user = self.store.transaction(|tx| {
            let mut user = existing_user(tx, id)?;
            change(tx, &mut user)?;
            Ok(user)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        self.notifier.notify(&[id]);
        Ok(user)
    }
}

/// What the admin's user search keeps; every field given must match.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// Lowercase text found in the email, a device's name or the user's id written out; text
    /// shaped like the start of a token finds only the accounts holding such a token
    /// (`fleet::token_prefixes`).
    pub contains: Option<String>,
    pub status: Option<UserStatus>,
    /// Pro on (or off) now.
    pub pro: Option<bool>,
    /// The trust level now.
    pub level: Option<u8>,
    /// Holds this proxy as a fallback or Pro proxy.
    pub proxy: Option<ProxyName>,
}

impl UserFilter {
    /// Everything but the level (which needs the user's trust record). `token_holders`: the
    /// accounts holding a token the text starts (when it looks like one).
    fn keeps(
        &self,
        user: &User,
        token_holders: Option<&std::collections::BTreeSet<UserId>>,
        now_ms: u64,
    ) -> bool {
        let text = self.contains.as_deref().is_none_or(|text| {
            user.id.0.to_string().contains(text)
                || token_holders.is_some_and(|holders| holders.contains(&user.id))
                || user.email.as_str().to_lowercase().contains(text)
                || user
                    .devices
                    .iter()
                    .any(|d| d.name.to_lowercase().contains(text))
        });
        let status = self.status.is_none_or(|s| s == user.status);
        let pro = self.pro.is_none_or(|pro| pro == user.is_pro(now_ms));
        let proxy = self
            .proxy
            .as_ref()
            .is_none_or(|name| user.proxies.contains(name) || user.pro_proxies.contains(name));
        text && status && pro && proxy
    }
}

/// A page of a user search.
pub struct FoundUsers {
    pub users: Vec<User>,
    /// Where the next page starts (the last user read); None once all were read.
    pub next_after: Option<UserId>,
}
