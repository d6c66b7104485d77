//! One proxy's reachability in one country: the latest report of each reporter and the state
//! they lead to, by the rules of docs/BLOCKING.md. Pure: no store, no clock.

use serde::{Deserialize, Serialize};

/// Who reported: an account (all its devices are one reporter) or one of the operator's probes.
/// Shown as `{"user": id}` or `{"probe": id}` (externally tagged: bincode stores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reporter {
    User(u64),
    Probe(u64),
}

/// How the reporter's country is known, which sets the report's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A client, located by GeoIP.
    Located,
    /// A client GeoIP could not place, which said where it is.
    Declared,
    /// A probe, bound to its country by the operator.
    Probe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub reporter: Reporter,
    pub source: Source,
    pub reachable: bool,
    pub at_ms: u64,
    /// What the client saw (`timeout`, `reset`...), at most `MAX_ERROR` bytes.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockState {
    Ok,
    /// Failures reported, not (yet) enough to decide.
    Suspected,
    Blocked,
    /// Was blocked; reachable again since, by reports made after the block.
    Recovered,
}

/// The thresholds (`block_*` settings; defaults and reasons in docs/BLOCKING.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Reports older than this are forgotten.
    pub window_ms: u64,
    /// The weight of distinct reporters a verdict of blocked needs.
    pub min_weight: f64,
    /// The share of that weight reporting failures that makes it blocked.
    pub failure_share: f64,
    /// Below this share of failures (by reports made after the block), it recovered.
    pub recovery_share: f64,
    /// Weights: a located client counts 1.
    pub declared_weight: f64,
    pub probe_weight: f64,
}

impl Rules {
    fn weight(&self, source: Source) -> f64 {
        match source {
            Source::Located => 1.0,
            Source::Declared => self.declared_weight,
            Source::Probe => self.probe_weight,
        }
    }
}

/// The reporters a verdict keeps at most (the latest report of each): past it the oldest
/// report is dropped, so one record stays bounded however many accounts report.
pub const MAX_REPORTERS: usize = 256;
/// The longest `error` kept.
pub const MAX_ERROR: usize = 200;

/// A proxy's reachability in one country.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub proxy: String,
    pub country: String,
    pub state: BlockState,
    /// When `state` last changed.
    pub since_ms: u64,
    /// When it last became blocked or stopped being so: only reports after it count, so the
    /// failures that blocked it do not keep it blocked, nor the successes before a block
    /// keep it open.
    pub epoch_ms: u64,
    /// The latest report of each reporter, oldest first.
    pub reports: Vec<Report>,
}

/// The figures a verdict is decided by, as the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Weight of the distinct reporters counted, and of those reporting failures.
    pub weight: f64,
    pub failing_weight: f64,
    pub failure_share: f64,
    pub reporters: usize,
}

impl Verdict {
    pub fn new(proxy: &str, country: &str, now_ms: u64) -> Verdict {
        Verdict {
            proxy: proxy.to_string(),
            country: country.to_string(),
            state: BlockState::Ok,
            since_ms: now_ms,
            epoch_ms: 0,
            reports: Vec::new(),
        }
    }

    /// Records a report (replacing the reporter's previous one) and decides again. Returns
    /// the state before, when it changed.
    pub fn add(&mut self, report: Report, rules: &Rules, now_ms: u64) -> Option<BlockState> {
        self.reports.retain(|r| r.reporter != report.reporter);
        self.reports.push(report);
        if self.reports.len() > MAX_REPORTERS {
            self.reports.remove(0);
        }
        self.decide(rules, now_ms)
    }

    /// The score over the reports counted now: within the window and after the epoch.
    pub fn score(&self, rules: &Rules, now_ms: u64) -> Score {
        let since = now_ms.saturating_sub(rules.window_ms).max(self.epoch_ms);
        let (mut weight, mut failing_weight, mut reporters) = (0.0, 0.0, 0);
        for report in self.reports.iter().filter(|r| r.at_ms >= since) {
            let w = rules.weight(report.source);
            weight += w;
            reporters += 1;
            if !report.reachable {
                failing_weight += w;
            }
        }
        let failure_share = if weight > 0.0 {
            failing_weight / weight
        } else {
            0.0
        };
        Score {
            weight,
            failing_weight,
            failure_share,
            reporters,
        }
    }

    /// Decides the state from the reports (forgetting those past the window). Returns the
    /// state before, when it changed.
    pub fn decide(&mut self, rules: &Rules, now_ms: u64) -> Option<BlockState> {
        let horizon = now_ms.saturating_sub(rules.window_ms);
        self.reports.retain(|r| r.at_ms >= horizon);
        let score = self.score(rules, now_ms);
        let enough = score.weight >= rules.min_weight;
        let next = match self.state {
            BlockState::Blocked => {
                // Only reports made since the block count (the epoch): recovered once
                // enough of them say it is reachable.
                if enough && score.failure_share < rules.recovery_share {
                    BlockState::Recovered
                } else {
                    BlockState::Blocked
                }
            }
            current => {
                if enough && score.failure_share >= rules.failure_share {
                    BlockState::Blocked
                } else if score.failing_weight > 0.0 && score.failure_share >= rules.recovery_share
                {
                    BlockState::Suspected
                } else if current == BlockState::Recovered
                    && now_ms.saturating_sub(self.since_ms) < rules.window_ms
                {
                    // Shown as recovered for a window, then ok.
                    BlockState::Recovered
                } else {
                    BlockState::Ok
                }
            }
        };
        if next == self.state {
            return None;
        }
        let before = self.state;
        if (before == BlockState::Blocked) != (next == BlockState::Blocked) {
            self.epoch_ms = now_ms;
        }
        self.state = next;
        self.since_ms = now_ms;
        Some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        window_ms: 86_400_000,
        min_weight: 3.0,
        failure_share: 0.6,
        recovery_share: 0.3,
        declared_weight: 0.5,
        probe_weight: 2.0,
    };

    fn report(reporter: Reporter, source: Source, reachable: bool, at_ms: u64) -> Report {
        Report {
            reporter,
            source,
            reachable,
            at_ms,
            error: None,
        }
    }

    fn user(id: u64, reachable: bool, at_ms: u64) -> Report {
        report(Reporter::User(id), Source::Located, reachable, at_ms)
    }

    #[test]
    fn one_account_alone_never_blocks_a_proxy() {
        let mut verdict = Verdict::new("p", "IR", 0);
        for at in 1..100 {
            verdict.add(user(7, false, at), &RULES, at);
        }
        assert_eq!(verdict.state, BlockState::Suspected);
        assert_eq!(verdict.reports.len(), 1, "one report per reporter");
    }

    #[test]
    fn three_accounts_block_it_and_reports_after_the_block_recover_it() {
        let mut verdict = Verdict::new("p", "IR", 0);
        verdict.add(user(1, false, 10), &RULES, 10);
        verdict.add(user(2, true, 20), &RULES, 20);
        verdict.add(user(3, true, 30), &RULES, 30);
        assert_eq!(verdict.state, BlockState::Suspected, "1 of 3 failing");
        verdict.add(user(4, false, 35), &RULES, 35);
        assert_eq!(verdict.state, BlockState::Suspected, "2 of 4 is under 60%");
        assert_eq!(
            verdict.add(user(5, false, 40), &RULES, 40),
            Some(BlockState::Suspected)
        );
        assert_eq!(verdict.state, BlockState::Blocked, "3 of 5 failing");
        // The failures before the block do not count against its recovery: a probe and one
        // client saying it is reachable again are enough.
        verdict.add(
            report(Reporter::Probe(1), Source::Probe, true, 50),
            &RULES,
            50,
        );
        assert_eq!(verdict.state, BlockState::Blocked, "weight 2 of 3 needed");
        verdict.add(user(6, true, 60), &RULES, 60);
        assert_eq!(verdict.state, BlockState::Recovered);
        verdict.decide(&RULES, 70);
        assert_eq!(verdict.state, BlockState::Recovered, "shown for a window");
        // Recovered, then fine for a whole window: ok.
        verdict.decide(&RULES, 60 + RULES.window_ms);
        assert_eq!(verdict.state, BlockState::Ok);
    }

    #[test]
    fn declared_countries_weigh_less_and_probes_more() {
        let mut verdict = Verdict::new("p", "IR", 0);
        for id in 1..=5 {
            verdict.add(
                report(Reporter::User(id), Source::Declared, false, id),
                &RULES,
                id,
            );
        }
        assert_eq!(verdict.state, BlockState::Suspected, "5 x 0.5 < 3");
        verdict.add(
            report(Reporter::Probe(9), Source::Probe, false, 10),
            &RULES,
            10,
        );
        assert_eq!(verdict.state, BlockState::Blocked, "2.5 + 2 >= 3");
        assert_eq!(
            verdict.score(&RULES, 10).reporters,
            1,
            "only reports from the block on count now"
        );
    }

    #[test]
    fn old_reports_are_forgotten_and_the_reporters_kept_are_bounded() {
        let mut verdict = Verdict::new("p", "IR", 0);
        verdict.add(user(1, false, 0), &RULES, 0);
        verdict.add(user(2, false, 0), &RULES, 0);
        verdict.add(
            user(3, false, RULES.window_ms + 1),
            &RULES,
            RULES.window_ms + 1,
        );
        assert_eq!(verdict.reports.len(), 1, "the first two left the window");
        assert_ne!(verdict.state, BlockState::Blocked);
        for id in 0..(MAX_REPORTERS as u64 + 10) {
            verdict.add(
                user(100 + id, true, RULES.window_ms + 2),
                &RULES,
                RULES.window_ms + 2,
            );
        }
        assert_eq!(verdict.reports.len(), MAX_REPORTERS);
    }
}
