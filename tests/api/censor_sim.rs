//! The censor simulation (`bench/censor_sim.rs`) on a small scenario: it runs the real
//! placement, blocking and suspicion code day by day, and proxyfleet must leave fewer honest
//! users cut off than today's assignment in the same run.

use serde_json::Value;

#[test]
fn the_small_scenario_cuts_off_fewer_honest_users_than_todays_assignment() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bench-censor-sim"))
        .args(["--users", "1000", "--proxies", "50", "--days", "20"])
        .args(["--arrival-days", "10", "--json"])
        .output()
        .expect("run bench-censor-sim");
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 21 + 1, "a line per day, then the summary");
    for day in &lines[..21] {
        for fleet in ["today", "proxyfleet"] {
            let d = &day[fleet];
            assert!(d["connected"].as_u64() <= d["honest"].as_u64(), "{day}");
            assert!(d["burned"].as_u64().unwrap() <= 50, "{day}");
        }
    }
    let last = &lines[20];
    assert_eq!(last["proxyfleet"]["honest"], last["today"]["honest"]);
    assert_eq!(last["proxyfleet"]["honest"], 950, "5% of 1,000 are agents");
    let summary = &lines[21]["summary"];
    let (ours, today) = (
        summary["cut_off"].as_u64().unwrap(),
        summary["cut_off_today"].as_u64().unwrap(),
    );
    assert!(ours < today, "{summary}");
    assert!(
        last["proxyfleet"]["burned"].as_u64() < last["today"]["burned"].as_u64(),
        "{last}"
    );
}
