//! The rebalancer's planning (pure): from a snapshot of proxies and the users on the ones that
//! matter, decide which users move where, which standby proxies are promoted, whether a new
//! proxy must be provisioned, and which idle proxies are drained, each with its reason.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::fleet::model::UserId;
use crate::fleet::policy::Fit;
use crate::registry::model::ProxyName;
use crate::registry::Role;

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyState {
    pub name: ProxyName,
    pub role: Role,
    pub limit: u32,
    /// Distinct clients last reported (None: the proxy reports no load).
    pub clients: Option<u32>,
    /// Users linked to it.
    pub assigned: u64,
    pub over_limit_since_ms: Option<u64>,
    pub under_low_since_ms: Option<u64>,
    /// The lowest trust level it was given to (`trust::note_given`).
    pub floor: Option<u8>,
}

impl ProxyState {
    fn load(&self) -> u64 {
        u64::from(self.clients.unwrap_or(0)).max(self.assigned)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserState {
    pub id: UserId,
    pub proxies: Vec<ProxyName>,
    pub last_moved_ms: Option<u64>,
    /// Proxies blocked where the user was last seen: never a target for it.
    pub blocked_here: Vec<ProxyName>,
    /// The fallbacks it should hold: its trust level's bound (`trust::TrustRules::fallbacks_for`).
    pub wanted: usize,
    /// Which proxies suit it, by its level (None under `least_loaded`): placement's own rule.
    pub fit: Option<Fit>,
}

impl UserState {
    /// What the user must not be moved to: what it has, and what is blocked where it is.
    fn avoided(&self) -> Vec<ProxyName> {
        self.proxies
            .iter()
            .chain(&self.blocked_here)
            .cloned()
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub proxies: Vec<ProxyState>,
    /// Users of the overloaded and idle proxies.
    pub users_on: BTreeMap<ProxyName, Vec<UserState>>,
    /// Users owed a fallback.
    pub needs_fallback: Vec<UserState>,
}

#[derive(Debug, Clone)]
pub struct Rules {
    pub hysteresis_ms: u64,
    pub cooldown_ms: u64,
    pub max_moves: usize,
    pub drain_after_ms: u64,
    pub min_fallback_proxies: usize,
    /// A provisioning request is outstanding: do not ask again.
    pub provisioning_pending: bool,
    /// Drained proxies are retired through the hook rather than set to standby.
    pub retire_hook: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Periodic,
    Manual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    pub user: UserId,
    pub from: Option<ProxyName>,
    pub to: ProxyName,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub proxy: ProxyName,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provisioning {
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainAction {
    Standby,
    Retire,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    pub proxy: ProxyName,
    pub action: DrainAction,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: u64,
    pub at_ms: u64,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub moves: Vec<Move>,
    pub promoted: Vec<Promotion>,
    pub provisioned: Vec<Provisioning>,
    pub retired: Vec<Drain>,
    /// Users that should have moved (or needed a fallback) but found no room.
    pub unplaced: u64,
}

/// Working state while planning: loads include the moves planned so far, and the proxies
/// users may be moved to are kept ranked by headroom, so picking a target is O(log n) without
/// levels (a scan of the targets with them).
struct Board {
    load: HashMap<ProxyName, u64>,
    limit: HashMap<ProxyName, u32>,
    /// Each proxy's floor, lowered by the moves planned so far.
    floor: HashMap<ProxyName, u8>,
    /// Targets (fallback role, plus promotions) as (headroom, name), best last.
    ranked: BTreeSet<(i64, Reverse<ProxyName>)>,
    standby: Vec<ProxyName>,
}

impl Board {
    fn headroom(&self, name: &ProxyName) -> i64 {
        i64::from(*self.limit.get(name).unwrap_or(&0)) - *self.load.get(name).unwrap_or(&0) as i64
    }

    fn targets(&self) -> usize {
        self.ranked.len()
    }

    fn is_target(&self, name: &ProxyName) -> bool {
        self.ranked
            .contains(&(self.headroom(name), Reverse(name.clone())))
    }

    fn add_target(&mut self, name: &ProxyName) {
        self.ranked
            .insert((self.headroom(name), Reverse(name.clone())));
    }

    fn remove_target(&mut self, name: &ProxyName) {
        self.ranked
            .remove(&(self.headroom(name), Reverse(name.clone())));
    }

    /// The target with room (> 0) not in `avoid` that suits `fit` best (`Fit::rank`), then
    /// with the most headroom (ties: the smaller name): the order placement chooses in.
    fn best_target(&self, avoid: &[ProxyName], fit: Option<Fit>) -> Option<ProxyName> {
        let mut open = self
            .ranked
            .iter()
            .rev()
            .take_while(|(headroom, _)| *headroom > 0)
            .filter(|(_, Reverse(name))| !avoid.contains(name))
            .map(|(_, Reverse(name))| name);
        let Some(fit) = fit else {
            return open.next().cloned();
        };
        // Headroom order within each rank: the first of the lowest rank wins.
        let mut best: Option<(u8, &ProxyName)> = None;
        for name in open {
            let rank = fit.rank(self.floor.get(name).copied());
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, name));
                if rank == 0 {
                    break;
                }
            }
        }
        best.map(|(_, name)| name.clone())
    }

    /// `name` is planned for a user of `fit`'s level: its floor goes down to it.
    fn note_given(&mut self, name: &ProxyName, fit: Option<Fit>) {
        if let Some(fit) = fit {
            let floor = self.floor.entry(name.clone()).or_insert(fit.level);
            *floor = (*floor).min(fit.level);
        }
    }

    fn change_load(&mut self, name: &ProxyName, delta: i64) {
        let ranked = self.is_target(name);
        if ranked {
            self.remove_target(name);
        }
        let load = self.load.entry(name.clone()).or_default();
        *load = load.saturating_add_signed(delta);
        if ranked {
            self.add_target(name);
        }
    }

    fn shift(&mut self, from: Option<&ProxyName>, to: &ProxyName) {
        if let Some(from) = from {
            self.change_load(from, -1);
        }
        self.change_load(to, 1);
    }
}

pub fn plan(
    snapshot: &Snapshot,
    rules: &Rules,
    trigger: Trigger,
    now_ms: u64,
    rng: &mut impl Rng,
) -> Plan {
    let mut plan = Plan {
        id: 0,
        at_ms: now_ms,
        trigger,
        dry_run: false,
        moves: Vec::new(),
        promoted: Vec::new(),
        provisioned: Vec::new(),
        retired: Vec::new(),
        unplaced: 0,
    };
    let mut standby: Vec<&ProxyState> = snapshot
        .proxies
        .iter()
        .filter(|p| p.role == Role::Standby)
        .collect();
    // Promote the biggest standby first.
    standby.sort_by(|a, b| b.limit.cmp(&a.limit).then_with(|| a.name.cmp(&b.name)));
    let mut board = Board {
        load: snapshot
            .proxies
            .iter()
            .map(|p| (p.name.clone(), p.load()))
            .collect(),
        limit: snapshot
            .proxies
            .iter()
            .map(|p| (p.name.clone(), p.limit))
            .collect(),
        floor: snapshot
            .proxies
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.floor?)))
            .collect(),
        ranked: BTreeSet::new(),
        standby: standby.iter().map(|p| p.name.clone()).collect(),
    };
    for proxy in snapshot.proxies.iter().filter(|p| p.role == Role::Fallback) {
        board.add_target(&proxy.name);
    }
    let mut moved: HashSet<UserId> = HashSet::new();

    relieve_overloaded(
        snapshot, rules, trigger, now_ms, rng, &mut board, &mut plan, &mut moved,
    );
    place_needy(snapshot, rules, &mut board, &mut plan, &mut moved);
    drain_idle(snapshot, rules, now_ms, &mut board, &mut plan, &mut moved);
    plan
}

/// Finds room for one user: an existing target, else a promoted standby, else nothing (and a
/// provisioning request, once per plan).
fn find_room(
    board: &mut Board,
    plan: &mut Plan,
    rules: &Rules,
    avoid: &[ProxyName],
    fit: Option<Fit>,
    why: &str,
) -> Option<ProxyName> {
    let found = board.best_target(avoid, fit);
    if found.is_some() {
        board.note_given(found.as_ref()?, fit);
        return found;
    }
    while !board.standby.is_empty() {
        let promoted = board.standby.remove(0);
        plan.promoted.push(Promotion {
            proxy: promoted.clone(),
            reason: format!("no fallback proxy had headroom ({why})"),
        });
        board.add_target(&promoted);
        if board.headroom(&promoted) > 0 && !avoid.contains(&promoted) {
            board.note_given(&promoted, fit);
            return Some(promoted);
        }
    }
    if plan.provisioned.is_empty() && !rules.provisioning_pending {
        plan.provisioned.push(Provisioning {
            reason: format!("no fallback or standby proxy had headroom ({why})"),
        });
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn relieve_overloaded(
    snapshot: &Snapshot,
    rules: &Rules,
    trigger: Trigger,
    now_ms: u64,
    rng: &mut impl Rng,
    board: &mut Board,
    plan: &mut Plan,
    moved: &mut HashSet<UserId>,
) {
    let mut overloaded: Vec<(&ProxyState, u64)> = snapshot
        .proxies
        .iter()
        .filter(|p| p.role != Role::Standby && !p.role.out_of_service())
        .filter_map(|p| {
            let clients = u64::from(p.clients?);
            let excess = clients.checked_sub(u64::from(p.limit)).filter(|e| *e > 0)?;
            let settled = match trigger {
                Trigger::Manual => true,
                Trigger::Periodic => p
                    .over_limit_since_ms
                    .is_some_and(|since| now_ms.saturating_sub(since) >= rules.hysteresis_ms),
            };
            settled.then_some((p, excess))
        })
        .collect();
    overloaded.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.name.cmp(&b.0.name)));

    for (proxy, excess) in overloaded {
        let mut movable: Vec<&UserState> = snapshot
            .users_on
            .get(&proxy.name)
            .map(|users| users.iter().collect())
            .unwrap_or_default();
        movable.retain(|u| {
            !moved.contains(&u.id)
                && u.last_moved_ms
                    .is_none_or(|at| now_ms.saturating_sub(at) >= rules.cooldown_ms)
        });
        movable.sort_by_key(|u| u.id); // a seeded shuffle needs a fixed starting order
        movable.shuffle(rng);
        let wanted = (excess as usize).min(movable.len());
        let why = format!(
            "{} carries {} clients over its limit of {}",
            proxy.name, excess, proxy.limit
        );
        for user in movable.into_iter().take(wanted) {
            if plan.moves.len() >= rules.max_moves {
                plan.unplaced += 1;
                continue;
            }
            let mut avoid = user.avoided();
            avoid.push(proxy.name.clone());
            match find_room(board, plan, rules, &avoid, user.fit, &why) {
                Some(to) => {
                    board.shift(Some(&proxy.name), &to);
                    moved.insert(user.id);
                    plan.moves.push(Move {
                        user: user.id,
                        from: Some(proxy.name.clone()),
                        to,
                        reason: why.clone(),
                    });
                }
                None => plan.unplaced += 1,
            }
        }
    }
}

fn place_needy(
    snapshot: &Snapshot,
    rules: &Rules,
    board: &mut Board,
    plan: &mut Plan,
    moved: &mut HashSet<UserId>,
) {
    for user in &snapshot.needs_fallback {
        let missing = user.wanted.saturating_sub(user.proxies.len());
        let mut have = user.avoided();
        for _ in 0..missing {
            if plan.moves.len() >= rules.max_moves {
                plan.unplaced += 1;
                break;
            }
            match find_room(
                board,
                plan,
                rules,
                &have,
                user.fit,
                "a user had fewer fallback proxies than configured",
            ) {
                Some(to) => {
                    board.shift(None, &to);
                    moved.insert(user.id);
                    have.push(to.clone());
                    plan.moves.push(Move {
                        user: user.id,
                        from: None,
                        to,
                        reason: "the user had fewer fallback proxies than configured".into(),
                    });
                }
                None => {
                    plan.unplaced += 1;
                    break;
                }
            }
        }
    }
}

fn drain_idle(
    snapshot: &Snapshot,
    rules: &Rules,
    now_ms: u64,
    board: &mut Board,
    plan: &mut Plan,
    moved: &mut HashSet<UserId>,
) {
    let busy: HashSet<&str> = plan.moves.iter().map(|m| m.to.as_str()).collect();
    let promoted: HashSet<&str> = plan.promoted.iter().map(|p| p.proxy.as_str()).collect();
    let mut idle: Vec<&ProxyState> = snapshot
        .proxies
        .iter()
        .filter(|p| p.role == Role::Fallback)
        .filter(|p| !busy.contains(p.name.as_str()) && !promoted.contains(p.name.as_str()))
        .filter(|p| {
            p.under_low_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) >= rules.drain_after_ms)
        })
        .collect();
    // The idlest first.
    idle.sort_by(|a, b| a.load().cmp(&b.load()).then_with(|| a.name.cmp(&b.name)));
    let mut drained: Vec<ProxyName> = Vec::new();
    for proxy in idle {
        if board.targets() <= rules.min_fallback_proxies {
            break;
        }
        let users: Vec<&UserState> = snapshot
            .users_on
            .get(&proxy.name)
            .map(|u| u.iter().filter(|u| !moved.contains(&u.id)).collect())
            .unwrap_or_default();
        if plan.moves.len() + users.len() > rules.max_moves {
            continue;
        }
        // Tentatively take the proxy out; put it back if its users do not all fit.
        board.remove_target(&proxy.name);
        let mut tentative = Vec::new();
        let mut fits = true;
        for user in &users {
            let mut avoid = user.avoided();
            avoid.extend(drained.iter().cloned());
            match board.best_target(&avoid, user.fit) {
                Some(to) => {
                    board.shift(Some(&proxy.name), &to);
                    tentative.push((user.id, user.fit, to));
                }
                None => {
                    fits = false;
                    break;
                }
            }
        }
        if !fits {
            for (_, _, to) in &tentative {
                board.shift(Some(to), &proxy.name);
            }
            board.add_target(&proxy.name);
            continue;
        }
        let reason = format!(
            "{} has been under its low-water mark since {}",
            proxy.name,
            proxy.under_low_since_ms.unwrap_or(0) / 1000
        );
        for (user, fit, to) in tentative {
            board.note_given(&to, fit);
            moved.insert(user);
            plan.moves.push(Move {
                user,
                from: Some(proxy.name.clone()),
                to,
                reason: format!("draining idle {}", proxy.name),
            });
        }
        plan.retired.push(Drain {
            proxy: proxy.name.clone(),
            action: if rules.retire_hook {
                DrainAction::Retire
            } else {
                DrainAction::Standby
            },
            reason,
        });
        drained.push(proxy.name.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn n(name: &str) -> ProxyName {
        ProxyName::parse(name).unwrap()
    }

    fn proxy(
        name: &str,
        role: Role,
        limit: u32,
        clients: Option<u32>,
        assigned: u64,
    ) -> ProxyState {
        ProxyState {
            name: n(name),
            role,
            limit,
            clients,
            assigned,
            over_limit_since_ms: clients.filter(|c| *c > limit).map(|_| 1_000),
            under_low_since_ms: None,
            floor: None,
        }
    }

    fn users(ids: std::ops::Range<u64>, on: &str) -> Vec<UserState> {
        ids.map(|id| UserState {
            blocked_here: Vec::new(),
            id: UserId(id),
            proxies: vec![n(on)],
            last_moved_ms: None,
            wanted: 1,
            fit: None,
        })
        .collect()
    }

    fn rules() -> Rules {
        Rules {
            hysteresis_ms: 60_000,
            cooldown_ms: 3_600_000,
            max_moves: 1000,
            drain_after_ms: 3_600_000,
            min_fallback_proxies: 1,
            provisioning_pending: false,
            retire_hook: false,
        }
    }

    fn run(snapshot: &Snapshot, trigger: Trigger, now: u64) -> Plan {
        plan(
            snapshot,
            &rules(),
            trigger,
            now,
            &mut StdRng::seed_from_u64(7),
        )
    }

    #[test]
    fn an_overloaded_proxy_sheds_its_excess_onto_a_promoted_standby() {
        let snapshot = Snapshot {
            proxies: vec![
                proxy("p1", Role::Fallback, 5, Some(10), 10),
                proxy("p2", Role::Standby, 5, None, 0),
            ],
            users_on: [(n("p1"), users(1..11, "p1"))].into(),
            needs_fallback: vec![],
        };
        let plan = run(&snapshot, Trigger::Manual, 2_000);
        assert_eq!(plan.moves.len(), 5);
        assert!(plan
            .moves
            .iter()
            .all(|m| m.from.as_ref().is_some_and(|f| f == "p1") && m.to == "p2"));
        assert_eq!(plan.promoted.len(), 1);
        assert_eq!(plan.promoted[0].proxy, "p2");
        assert!(plan.provisioned.is_empty());
        // Seeded: the same snapshot gives the same users.
        assert_eq!(plan, run(&snapshot, Trigger::Manual, 2_000));
    }

    #[test]
    fn a_user_is_never_moved_to_a_proxy_blocked_where_it_is() {
        let mut on_p1 = users(1..11, "p1");
        for user in &mut on_p1 {
            // p2 has the most room, but the even users are where it is blocked.
            if user.id.0 % 2 == 0 {
                user.blocked_here = vec![n("p2")];
            }
        }
        let snapshot = Snapshot {
            proxies: vec![
                proxy("p1", Role::Fallback, 5, Some(10), 10),
                proxy("p2", Role::Fallback, 100, Some(0), 0),
                proxy("p3", Role::Fallback, 10, Some(0), 0),
            ],
            users_on: [(n("p1"), on_p1)].into(),
            needs_fallback: users(20..22, "p1")
                .into_iter()
                .map(|mut u| {
                    u.proxies.clear();
                    u.blocked_here = vec![n("p2")];
                    u
                })
                .collect(),
        };
        let plan = run(&snapshot, Trigger::Manual, 2_000);
        assert!(!plan.moves.is_empty());
        for m in &plan.moves {
            let blocked = m.user.0 % 2 == 0 || m.user.0 >= 20;
            assert!(!(blocked && m.to == "p2"), "{m:?}");
        }
        assert!(
            plan.moves.iter().any(|m| m.to == "p2"),
            "the others may go there"
        );
    }

    #[test]
    fn periodic_runs_wait_out_the_hysteresis_and_cooldown_holds_users() {
        let mut snapshot = Snapshot {
            proxies: vec![
                proxy("p1", Role::Fallback, 5, Some(10), 10),
                proxy("p2", Role::Fallback, 50, Some(0), 0),
            ],
            users_on: [(n("p1"), users(1..11, "p1"))].into(),
            needs_fallback: vec![],
        };
        assert!(
            run(&snapshot, Trigger::Periodic, 30_000).moves.is_empty(),
            "a spike is not acted on"
        );
        assert_eq!(run(&snapshot, Trigger::Periodic, 61_000).moves.len(), 5);
        for user in snapshot.users_on.get_mut("p1").unwrap().iter_mut() {
            user.last_moved_ms = Some(60_000);
        }
        assert!(
            run(&snapshot, Trigger::Manual, 61_000).moves.is_empty(),
            "cooldown"
        );
    }

    #[test]
    fn users_go_where_their_level_already_is_as_placement_does() {
        // "newcomers" is busier but level 0 knows it; "fresh" nobody had. A hot proxy sheds
        // a newcomer and a trusted user; a newcomer and a trusted user wait for a fallback.
        let floor = |name, floor, load| ProxyState {
            floor,
            ..proxy(name, Role::Fallback, 100, Some(load), u64::from(load))
        };
        let at = |level| Fit::under(crate::config::AssignmentPolicy::Trust, level, 3);
        let with_fit = |mut list: Vec<UserState>, fits: &[Option<Fit>]| {
            for (user, fit) in list.iter_mut().zip(fits) {
                user.fit = *fit;
            }
            list
        };
        let snapshot = Snapshot {
            proxies: vec![
                floor("hot", Some(0), 102),
                floor("newcomers", Some(0), 50),
                floor("fresh", None, 0),
            ],
            users_on: [(n("hot"), with_fit(users(1..3, "hot"), &[at(0), at(4)]))].into(),
            needs_fallback: with_fit(users(20..22, "hot"), &[at(0), at(4)])
                .into_iter()
                .map(|mut u| {
                    u.proxies.clear();
                    u
                })
                .collect(),
        };
        let plan = run(&snapshot, Trigger::Manual, 2_000);
        let to = |user: u64| -> Vec<&str> {
            plan.moves
                .iter()
                .filter(|m| m.user == UserId(user))
                .map(|m| m.to.as_str())
                .collect()
        };
        assert_eq!(to(1), ["newcomers"], "a newcomer stays among newcomers");
        assert_eq!(to(2), ["fresh"], "a trusted user gets the fresh proxy");
        assert_eq!(to(20), ["newcomers"]);
        assert_eq!(to(21), ["fresh"]);

        // Under least_loaded (no fit) the most headroom wins for everyone.
        let mut blind = snapshot.clone();
        for user in blind
            .users_on
            .values_mut()
            .flatten()
            .chain(&mut blind.needs_fallback)
        {
            user.fit = None;
        }
        let plan = run(&blind, Trigger::Manual, 2_000);
        assert!(plan.moves.iter().all(|m| m.to.as_str() == "fresh"));
    }

    #[test]
    fn without_room_it_asks_for_a_new_proxy_once() {
        let snapshot = Snapshot {
            proxies: vec![proxy("p1", Role::Fallback, 5, Some(10), 10)],
            users_on: [(n("p1"), users(1..11, "p1"))].into(),
            needs_fallback: users(20..23, "x")
                .into_iter()
                .map(|mut u| {
                    u.proxies.clear();
                    u
                })
                .collect(),
        };
        let plan = run(&snapshot, Trigger::Manual, 2_000);
        assert!(plan.moves.is_empty());
        assert_eq!(plan.provisioned.len(), 1);
        assert_eq!(plan.unplaced, 5 + 3);
        let mut pending = rules();
        pending.provisioning_pending = true;
        let again = super::plan(
            &snapshot,
            &pending,
            Trigger::Manual,
            2_000,
            &mut StdRng::seed_from_u64(1),
        );
        assert!(
            again.provisioned.is_empty(),
            "a request is already outstanding"
        );
    }

    #[test]
    fn idle_proxies_are_drained_but_never_below_the_minimum() {
        let mut idle = proxy("idle", Role::Fallback, 100, Some(1), 2);
        idle.under_low_since_ms = Some(0);
        let mut idle2 = proxy("idle2", Role::Fallback, 100, Some(0), 0);
        idle2.under_low_since_ms = Some(0);
        let snapshot = Snapshot {
            proxies: vec![
                idle,
                idle2,
                proxy("busy", Role::Fallback, 100, Some(50), 50),
            ],
            users_on: [(n("idle"), users(1..3, "idle"))].into(),
            needs_fallback: vec![],
        };
        let plan = run(&snapshot, Trigger::Periodic, 4_000_000);
        let drained: Vec<&str> = plan.retired.iter().map(|d| d.proxy.as_str()).collect();
        assert_eq!(drained, vec!["idle2", "idle"]);
        assert_eq!(plan.moves.len(), 2);
        assert!(plan.moves.iter().all(|m| m.to == "busy"));
        let mut strict = rules();
        strict.min_fallback_proxies = 2;
        let plan = super::plan(
            &snapshot,
            &strict,
            Trigger::Periodic,
            4_000_000,
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(plan.retired.len(), 1, "keeps two fallback proxies");
    }
}
