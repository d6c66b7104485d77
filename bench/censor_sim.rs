//! The censor's game, day by day, as Salmon (PETS 2016) and Lox (PETS 2023) simulate it:
//! honest users and censor agents join a fleet, agents hand every proxy they are given to the
//! censor, who blocks it the next day. Two fleets play the same game with the same arrivals:
//! - **today**: the assignment proxyfleet had before blocking awareness (the trust policy,
//!   no reports, no suspicion, no levels: a blocked proxy stays with its users);
//! - **proxyfleet**: the real code of this crate decides: placement by trust level
//!   (`fleet::policy::choose` with a `Fit`), levels (`fleet::trust`), verdicts from the users'
//!   reports (`blocking::verdict`), blame and quarantine (`fleet::suspicion`), the users of a
//!   blocked proxy placed again.
//!
//! No HTTP and no store: the rules are the server's, the bookkeeping is this file's.
//!
//! Usage: bench-censor-sim [--users N] [--agents SHARE] [--proxies N] [--days N]
//!   [--arrival-days N] [--capacity N] [--fallbacks N] [--probes N] [--invited SHARE]
//!   [--agents-invited SHARE] [--recent-days N] [--old-weight W] [--invitee-max-level N]
//!   [--seed N] [--json]
//! Prints a Markdown table per day (or, with --json, one JSON object per day and a summary).

use std::collections::{BTreeSet, HashMap};

use proxyfleet::blocking::verdict::{self, BlockState, Report, Reporter, Source, Verdict};
use proxyfleet::config::{AssignmentPolicy, Config};
use proxyfleet::fleet::policy::{choose, Candidate, Fit};
use proxyfleet::fleet::suspicion::{self, Blame, BlameRules, Suspicion};
use proxyfleet::fleet::trust::{Trust, TrustRules};
use proxyfleet::fleet::FleetSettings;
use proxyfleet::registry::model::ProxyName;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DAY_MS: u64 = 24 * 3600 * 1000;
const COUNTRY: &str = "IR";

#[derive(Debug, Clone)]
struct Scenario {
    users: usize,
    agent_share: f64,
    proxies: usize,
    days: u64,
    capacity: u32,
    fallbacks: usize,
    /// The operator's probes in the country, each testing every proxy once a day.
    probes: usize,
    /// Share of honest users there on day 0 (the operator's own, made at `created_level`).
    founders: f64,
    /// Days over which the others join.
    arrival_days: u64,
    /// Share of honest joiners who come by invitation (the rest by open entry, at level 0).
    invited: f64,
    /// Share of agents who come by invitation.
    agents_invited: f64,
    /// Blame: given this many days before a block counts in full, earlier `old_weight`.
    recent_days: u64,
    old_weight: f64,
    /// The highest level an invitee starts at (`trust.invitee_max_level`).
    invitee_max_level: u8,
    seed: u64,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            users: 10_000,
            agent_share: 0.05,
            proxies: 500,
            days: 60,
            capacity: 60,
            fallbacks: 3,
            probes: 1,
            founders: 0.1,
            arrival_days: 30,
            invited: 0.9,
            agents_invited: 0.5,
            recent_days: Config::default().blame_recent_secs / 86_400,
            old_weight: Config::default().blame_old_weight,
            invitee_max_level: Config::default().trust.invitee_max_level,
            seed: 1,
        }
    }
}

/// How a user joins.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Founder,
    Open,
    /// Invited by a member the day it joins (an agent fools an honest member).
    Invited,
}

#[derive(Debug, Clone, Copy)]
struct Arrival {
    day: u64,
    agent: bool,
    entry: Entry,
}

/// Who joins when: the same list for both fleets.
fn arrivals(s: &Scenario, rng: &mut StdRng) -> Vec<Arrival> {
    let agents = (s.users as f64 * s.agent_share).round() as usize;
    let honest = s.users - agents;
    let founders = (honest as f64 * s.founders).round() as usize;
    let mut list = Vec::with_capacity(s.users);
    for i in 0..s.users {
        let agent = i >= honest;
        let entry = if !agent && i < founders {
            Entry::Founder
        } else if rng.gen_bool(if agent { s.agents_invited } else { s.invited }) {
            Entry::Invited
        } else {
            Entry::Open
        };
        let day = match entry {
            Entry::Founder => 0,
            _ => rng.gen_range(1..=s.arrival_days),
        };
        list.push(Arrival { day, agent, entry });
    }
    list.sort_by_key(|a| a.day);
    list
}

struct User {
    agent: bool,
    inviter: Option<usize>,
    proxies: Vec<usize>,
    trust: Trust,
    suspicion: Suspicion,
}

struct Proxy {
    name: ProxyName,
    holders: BTreeSet<usize>,
    /// Everyone it was ever given to, with when last (the exposure index).
    given: Vec<(usize, u64)>,
    floor: Option<u8>,
    verdict: Verdict,
}

/// One fleet playing the game.
struct Fleet {
    aware: bool,
    users: Vec<User>,
    proxies: Vec<Proxy>,
    by_name: HashMap<ProxyName, usize>,
    /// What the censor knows, and what it blocked.
    known: BTreeSet<usize>,
    blocked: BTreeSet<usize>,
    waiting: Vec<usize>,
    rules: TrustRules,
    verdicts: verdict::Rules,
    blame: BlameRules,
    fallbacks: usize,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Day {
    day: u64,
    honest: usize,
    connected: usize,
    burned: usize,
    agents_quarantined: usize,
    /// Agents holding a proxy not blocked yet (what they can still give away tomorrow).
    agents_holding: usize,
    honest_quarantined: usize,
    /// Why the honest users cut off are: quarantined, on probation, waiting for room (no
    /// proxy), or holding only proxies blocked (not known to be, yet).
    cut_quarantined: usize,
    cut_probation: usize,
    cut_waiting: usize,
    cut_holding_blocked: usize,
}

impl Fleet {
    fn new(aware: bool, s: &Scenario) -> Fleet {
        // The server's own defaults, with the settings the scenario names.
        let mut config = Config {
            blame_recent_secs: s.recent_days * 86_400,
            blame_old_weight: s.old_weight,
            ..Config::default()
        };
        config.trust.invitee_max_level = s.invitee_max_level;
        let proxies: Vec<Proxy> = (0..s.proxies)
            .map(|i| {
                let name = ProxyName::parse(&format!("p{i}")).expect("name");
                Proxy {
                    verdict: Verdict::new(name.as_str(), COUNTRY, 0),
                    name,
                    holders: BTreeSet::new(),
                    given: Vec::new(),
                    floor: None,
                }
            })
            .collect();
        let by_name = proxies
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Fleet {
            aware,
            users: Vec::new(),
            proxies,
            by_name,
            known: BTreeSet::new(),
            blocked: BTreeSet::new(),
            waiting: Vec::new(),
            rules: config.trust.clone(),
            verdicts: verdict::Rules::from_config(&config),
            blame: FleetSettings::from_config(&config).blame,
            fallbacks: s.fallbacks,
        }
    }

    fn level(&self, user: usize, now_ms: u64) -> u8 {
        self.users[user].trust.standing(&self.rules, now_ms).level
    }

    fn quarantined(&self, user: usize) -> bool {
        self.users[user].suspicion.quarantined_ms.is_some()
    }

    /// The fallbacks a user should hold: the level's bound in the aware fleet.
    fn wanted(&self, user: usize, now_ms: u64) -> usize {
        if self.aware {
            self.rules
                .fallbacks_for(self.level(user, now_ms), self.fallbacks)
        } else {
            self.fallbacks
        }
    }

    /// Candidates for `user`: every proxy with its load, minus (aware) those known blocked.
    fn candidates(&self) -> Vec<Candidate> {
        self.proxies
            .iter()
            .filter(|p| !(self.aware && p.verdict.state == BlockState::Blocked))
            .map(|p| Candidate {
                name: p.name.clone(),
                limit: 100_000,
                load: p.holders.len() as u64,
                floor: p.floor,
            })
            .collect()
    }

    /// Tops `user` up to what it should hold; true when it holds enough.
    fn place(&mut self, user: usize, capacity: u32, now_ms: u64) -> bool {
        self.place_up_to(user, capacity, usize::MAX, now_ms)
    }

    /// As `place`, giving the user at most `at_most` proxies in all.
    fn place_up_to(&mut self, user: usize, capacity: u32, at_most: usize, now_ms: u64) -> bool {
        if self.aware && (self.quarantined(user) || self.users[user].trust.held(now_ms)) {
            return false;
        }
        let wanted = self.wanted(user, now_ms).min(at_most);
        let have = self.users[user].proxies.len();
        if have >= wanted {
            return true;
        }
        let mut candidates = self.candidates();
        for c in &mut candidates {
            c.limit = capacity;
        }
        let ancestry: Vec<Vec<ProxyName>> = self.users[user]
            .inviter
            .map(|i| {
                self.users[i]
                    .proxies
                    .iter()
                    .map(|&p| self.proxies[p].name.clone())
                    .collect()
            })
            .into_iter()
            .collect();
        let held: Vec<ProxyName> = self.users[user]
            .proxies
            .iter()
            .map(|&p| self.proxies[p].name.clone())
            .collect();
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| !held.contains(&c.name))
            .collect();
        // Today's assignment ranks by headroom alone, as the server does without a fit.
        let fit = Fit::under(
            AssignmentPolicy::Trust,
            self.level(user, now_ms),
            self.rules.fresh_level,
        )
        .filter(|_| self.aware);
        let chosen = choose(
            AssignmentPolicy::Trust,
            wanted - have,
            &ancestry,
            &candidates,
            fit,
        );
        for name in chosen {
            let p = self.by_name[&name];
            self.give(user, p, now_ms);
        }
        self.users[user].proxies.len() >= wanted
    }

    fn give(&mut self, user: usize, p: usize, now_ms: u64) {
        let level = self.level(user, now_ms);
        let proxy = &mut self.proxies[p];
        proxy.holders.insert(user);
        proxy.given.retain(|&(u, _)| u != user);
        proxy.given.push((user, now_ms));
        proxy.floor = Some(proxy.floor.map_or(level, |f| f.min(level)));
        self.users[user].proxies.push(p);
        if self.users[user].agent {
            self.known.insert(p);
        }
    }

    fn join(&mut self, arrival: Arrival, capacity: u32, rng: &mut StdRng, now_ms: u64) {
        let id = self.users.len();
        let eligible: Vec<usize> = match arrival.entry {
            Entry::Invited => (0..self.users.len())
                .filter(|&u| !self.users[u].agent && self.may_invite(u, now_ms))
                .collect(),
            _ => Vec::new(),
        };
        let inviter = (!eligible.is_empty()).then(|| eligible[rng.gen_range(0..eligible.len())]);
        let level = match (arrival.entry, inviter) {
            (Entry::Founder, _) => self.rules.created_level,
            (Entry::Invited, Some(i)) => self.rules.invitee_level(self.level(i, now_ms)),
            _ => 0,
        };
        self.users.push(User {
            agent: arrival.agent,
            inviter,
            proxies: Vec::new(),
            trust: Trust::starting(level, "joined", now_ms),
            suspicion: Suspicion::default(),
        });
        if !self.place(id, capacity, now_ms) {
            self.waiting.push(id);
        }
    }

    fn may_invite(&self, user: usize, now_ms: u64) -> bool {
        !self.aware
            || (self.level(user, now_ms) >= self.rules.invite_level && !self.quarantined(user))
    }

    /// The censor blocks what its agents learnt.
    fn censor(&mut self) {
        self.blocked.extend(self.known.iter().copied());
    }

    /// Reports and verdicts; a proxy newly blocked blames, lowers and moves its users.
    fn react(&mut self, probes: usize, capacity: u32, now_ms: u64) {
        if !self.aware {
            return;
        }
        let mut newly = Vec::new();
        for p in 0..self.proxies.len() {
            let reachable = !self.blocked.contains(&p);
            let mut reports: Vec<Report> = self.proxies[p]
                .holders
                .iter()
                .map(|&u| Report {
                    reporter: Reporter::User(u as u64),
                    source: Source::Located,
                    // Agents lie: what is blocked works, for them.
                    reachable: reachable || self.users[u].agent,
                    at_ms: now_ms,
                    error: None,
                })
                .collect();
            reports.extend((0..probes).map(|i| Report {
                reporter: Reporter::Probe(i as u64),
                source: Source::Probe,
                reachable,
                at_ms: now_ms,
                error: None,
            }));
            if reports.is_empty() {
                continue;
            }
            let verdict = &mut self.proxies[p].verdict;
            for report in reports {
                verdict.add(report, &self.verdicts, now_ms);
            }
            if verdict.state == BlockState::Blocked && verdict.since_ms == now_ms {
                newly.push(p);
            }
        }
        for p in newly {
            let given: Vec<(proxyfleet::fleet::model::UserId, u64)> = self.proxies[p]
                .given
                .iter()
                .map(|&(u, at)| (proxyfleet::fleet::model::UserId(u as u64), at))
                .collect();
            for (u, share) in suspicion::shares(&given, now_ms, &self.blame) {
                let u = u.0 as usize;
                let blame = Blame {
                    proxy: self.proxies[p].name.to_string(),
                    country: COUNTRY.into(),
                    blocked_ms: now_ms,
                    share,
                };
                self.users[u]
                    .suspicion
                    .add(blame, self.blame.threshold, now_ms);
                // Given it just before the block: probation, as the server does.
                let recent = self.proxies[p]
                    .given
                    .iter()
                    .any(|&(g, at)| g == u && now_ms.saturating_sub(at) <= self.blame.recent_ms);
                if recent {
                    self.users[u].trust.held_until_ms =
                        Some(now_ms + self.rules.probation_days * DAY_MS);
                }
                let why = format!("{} blocked", self.proxies[p].name);
                let rules = self.rules.clone();
                self.users[u].trust.lower(&rules, why, now_ms);
            }
            let holders: Vec<usize> = std::mem::take(&mut self.proxies[p].holders)
                .into_iter()
                .collect();
            for u in holders {
                self.users[u].proxies.retain(|&q| q != p);
                self.waiting.push(u);
            }
        }
        self.place_waiting(capacity, now_ms);
    }

    fn place_waiting(&mut self, capacity: u32, now_ms: u64) {
        let waiting = std::mem::take(&mut self.waiting);
        // Everyone's first proxy before anyone's second.
        for &u in &waiting {
            if self.users[u].proxies.is_empty() {
                self.place_up_to(u, capacity, 1, now_ms);
            }
        }
        for u in waiting {
            if !self.place(u, capacity, now_ms) {
                self.waiting.push(u);
            }
        }
    }

    /// The rebalancer's daily top-up: users whose level now allows more proxies get them.
    fn top_up(&mut self, capacity: u32, now_ms: u64) {
        if !self.aware {
            return;
        }
        // Extra proxies only once nobody waits for a first one.
        if self
            .waiting
            .iter()
            .any(|&u| self.users[u].proxies.is_empty())
        {
            return;
        }
        for u in 0..self.users.len() {
            if self.users[u].proxies.len() < self.wanted(u, now_ms) {
                self.place(u, capacity, now_ms);
            }
        }
    }

    fn day(&self, day: u64, now_ms: u64) -> Day {
        let mut d = Day {
            day,
            burned: self.blocked.len(),
            ..Day::default()
        };
        for user in &self.users {
            let quarantined = user.suspicion.quarantined_ms.is_some();
            let working = user.proxies.iter().any(|p| !self.blocked.contains(p));
            if user.agent {
                d.agents_quarantined += usize::from(quarantined);
                d.agents_holding += usize::from(working);
                continue;
            }
            d.honest += 1;
            d.honest_quarantined += usize::from(quarantined);
            if working {
                d.connected += 1;
            } else if quarantined {
                d.cut_quarantined += 1;
            } else if user.trust.held(now_ms) {
                d.cut_probation += 1;
            } else if user.proxies.is_empty() {
                d.cut_waiting += 1;
            } else {
                d.cut_holding_blocked += 1;
            }
        }
        d
    }
}

fn parse_args() -> (Scenario, bool) {
    let mut s = Scenario::default();
    let mut json = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = || {
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{}: a number", args[i]))
        };
        match args[i].as_str() {
            "--json" => {
                json = true;
                i += 1;
                continue;
            }
            "--users" => s.users = number() as usize,
            "--agents" => s.agent_share = number(),
            "--proxies" => s.proxies = number() as usize,
            "--days" => s.days = number() as u64,
            "--capacity" => s.capacity = number() as u32,
            "--fallbacks" => s.fallbacks = number() as usize,
            "--probes" => s.probes = number() as usize,
            "--arrival-days" => s.arrival_days = (number() as u64).max(1),
            "--invited" => s.invited = number(),
            "--agents-invited" => s.agents_invited = number(),
            "--recent-days" => s.recent_days = number() as u64,
            "--old-weight" => s.old_weight = number(),
            "--invitee-max-level" => s.invitee_max_level = number() as u8,
            "--seed" => s.seed = number() as u64,
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    (s, json)
}

fn main() {
    let (s, json) = parse_args();
    let mut rng = StdRng::seed_from_u64(s.seed);
    let arrivals = arrivals(&s, &mut rng);
    let mut today = Fleet::new(false, &s);
    let mut aware = Fleet::new(true, &s);
    // Each fleet draws its inviters from its own generator, seeded alike.
    let mut rng_today = StdRng::seed_from_u64(s.seed + 1);
    let mut rng_aware = StdRng::seed_from_u64(s.seed + 1);
    let mut next = 0;
    if !json {
        println!("Scenario: {s:?}\n");
        println!("| day | today: honest connected | today: burned | proxyfleet: honest connected | proxyfleet: burned | agents quarantined | agents holding a working proxy | honest quarantined |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    let mut last = (Day::default(), Day::default());
    for day in 0..=s.days {
        // Noon of each day, so levels rise on their day.
        let now_ms = day * DAY_MS + DAY_MS / 2;
        aware.censor();
        today.censor();
        aware.react(s.probes, s.capacity, now_ms);
        aware.top_up(s.capacity, now_ms);
        today.place_waiting(s.capacity, now_ms);
        while next < arrivals.len() && arrivals[next].day == day {
            today.join(arrivals[next], s.capacity, &mut rng_today, now_ms);
            aware.join(arrivals[next], s.capacity, &mut rng_aware, now_ms);
            next += 1;
        }
        let (t, a) = (today.day(day, now_ms), aware.day(day, now_ms));
        let share = |d: &Day| 100.0 * d.connected as f64 / d.honest.max(1) as f64;
        if json {
            println!(
                "{}",
                serde_json::json!({"day": day, "today": t, "proxyfleet": a})
            );
        } else if day % 5 == 0 || day == s.days {
            println!(
                "| {day} | {:.1}% | {} | {:.1}% | {} | {} of {} | {} | {} |",
                share(&t),
                t.burned,
                share(&a),
                a.burned,
                a.agents_quarantined,
                aware.users.iter().filter(|u| u.agent).count(),
                a.agents_holding,
                a.honest_quarantined
            );
        }
        last = (t, a);
    }
    let (t, a) = last;
    let cut_today = t.honest - t.connected;
    let cut_aware = a.honest - a.connected;
    let summary = serde_json::json!({
        "summary": {
            "honest": a.honest,
            "connected_share": a.connected as f64 / a.honest.max(1) as f64,
            "cut_off": cut_aware,
            "cut_off_today": cut_today,
            "ratio": cut_aware as f64 / cut_today.max(1) as f64,
            "cut_off_why": {
                "quarantined": a.cut_quarantined,
                "probation": a.cut_probation,
                "waiting_for_room": a.cut_waiting,
                "holding_blocked": a.cut_holding_blocked,
            },
        }
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "\nDay {}: proxyfleet keeps {:.1}% of honest users connected; {} cut off, against {} with today's assignment ({:.2} as many).",
            s.days,
            100.0 * a.connected as f64 / a.honest.max(1) as f64,
            cut_aware,
            cut_today,
            cut_aware as f64 / cut_today.max(1) as f64
        );
        println!(
            "Of those cut off: {} quarantined, {} on probation, {} waiting for room, {} holding only proxies blocked but not yet reported so.",
            a.cut_quarantined, a.cut_probation, a.cut_waiting, a.cut_holding_blocked
        );
    }
}
