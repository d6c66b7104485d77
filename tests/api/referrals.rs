//! Referral codes (both sides get the bonus, once) and promo codes (uses, expiry).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

impl TestApp {
    async fn redeem(&self, token: &str, code: &str) -> reqwest::Response {
        self.user_post(token, "/api/v1/referrals/redeem", &json!({ "code": code }))
            .await
    }

    async fn pro_until(&self, id: u64) -> Option<i64> {
        self.admin_json(&format!("/api/v1/admin/users/{id}")).await["pro_until"].as_i64()
    }
}

#[tokio::test]
async fn a_referral_gives_both_sides_the_bonus_once() {
    let app = spawn_app().await;
    let (ana, ana_token, _) = app.create_user("ana@example.org", None).await;
    let (bob, bob_token, _) = app.create_user("bob@example.org", None).await;
    let (cy, cy_token, _) = app.create_user("cy@example.org", None).await;
    let mine: Value = app.user_json(&ana_token, "/api/v1/referrals").await;
    let code = mine["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);
    assert_eq!(mine["bonus_days"], 7);
    let again: Value = app.user_json(&ana_token, "/api/v1/referrals").await;
    assert_eq!(again["code"], code.as_str(), "one code per user, stable");

    let own = app.redeem(&ana_token, &code).await;
    assert_eq!(own.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(own).await, "own_code");

    // Typed forgivingly: lower case with a dash.
    let typed = format!("{}-{}", code[..4].to_lowercase(), &code[4..]);
    let redeemed = app.redeem(&bob_token, &typed).await;
    assert_eq!(redeemed.status(), StatusCode::OK);
    let redeemed: Value = redeemed.json().await.unwrap();
    assert_eq!(redeemed["days"], 7);
    assert_eq!(redeemed["referrer"], ana);
    for id in [ana, bob] {
        let until = app.pro_until(id).await.expect("pro");
        assert!((until - unix_now() - 7 * 86_400).abs() <= 5, "user {id}");
    }
    let twice = app.redeem(&bob_token, &code).await;
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(twice).await, "already_redeemed");

    // Bob cannot redeem a second referral code either.
    let cys: Value = app.user_json(&cy_token, "/api/v1/referrals").await;
    let second = app.redeem(&bob_token, cys["code"].as_str().unwrap()).await;
    assert_eq!(error_code(second).await, "already_referred");
    let count: Value = app.user_json(&ana_token, "/api/v1/referrals").await;
    assert_eq!(count["redeemed_by"], 1);

    // The admin's list: every code made, its owner and its uses, paged by code.
    let mut listed = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .admin_json(&format!("/api/v1/admin/referral-codes?limit=1{after}"))
            .await;
        for code in page["codes"].as_array().unwrap() {
            listed.push((
                code["code"].as_str().unwrap().to_string(),
                code["owner"].clone(),
                code["uses"].clone(),
            ));
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let mut expected = vec![
        (code.clone(), json!(ana), json!(1)),
        (
            cys["code"].as_str().unwrap().to_string(),
            json!(cy),
            json!(0),
        ),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, expected);

    let unknown = app.redeem(&cy_token, "ZZZZ2222").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let garbage = app.redeem(&cy_token, "O0_IL1").await;
    assert_eq!(garbage.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = app.redeem(&cy_token, "O0-IL1").await;
    assert_eq!(
        unknown.status(),
        StatusCode::NOT_FOUND,
        "well formed, nobody's"
    );
    app.assert_consistent().await;
}

#[tokio::test]
async fn promo_codes_count_their_uses_and_expire() {
    let app = spawn_app().await;
    let created = app
        .admin_post(
            "/api/v1/admin/promo-codes",
            &json!({ "code": "happy-new-year", "days": 14, "max_uses": 2 }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["code"], "HAPPYNEWYEAR");
    let taken = app
        .admin_post(
            "/api/v1/admin/promo-codes",
            &json!({ "code": "HAPPYNEWYEAR", "days": 1, "max_uses": 1 }),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);

    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(app.create_user(&format!("p{i}@example.org"), None).await);
    }
    for (id, token, _) in &tokens[..2] {
        let ok = app.redeem(token, "happynewyear").await;
        assert_eq!(ok.status(), StatusCode::OK);
        let until = app.pro_until(*id).await.unwrap();
        assert!((until - unix_now() - 14 * 86_400).abs() <= 5);
    }
    let used_up = app.redeem(&tokens[2].1, "HAPPYNEWYEAR").await;
    assert_eq!(error_code(used_up).await, "code_used_up");
    assert_eq!(app.pro_until(tokens[2].0).await, None, "nothing given");
    let listed = app.admin_json("/api/v1/admin/promo-codes").await;
    assert_eq!(listed["codes"][0]["uses"], 2);
    // An operator's code may use any letters and digits, those a generated code avoids too.
    let summer = app
        .admin_post(
            "/api/v1/admin/promo-codes",
            &json!({ "code": "Summer-2026", "days": 2, "max_uses": 5 }),
        )
        .await;
    assert_eq!(summer.status(), StatusCode::CREATED);
    let ok = app.redeem(&tokens[2].1, "summer 2026").await;
    assert_eq!(ok.status(), StatusCode::OK);

    let soon = app
        .admin_post(
            "/api/v1/admin/promo-codes",
            &json!({ "days": 3, "max_uses": 10, "expires_at": unix_now() + 1 }),
        )
        .await;
    let code = soon.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(std::time::Duration::from_secs(2));
    let late = app.redeem(&tokens[2].1, &code).await;
    assert_eq!(error_code(late).await, "code_expired");
    let bad = app
        .admin_post(
            "/api/v1/admin/promo-codes",
            &json!({ "days": 0, "max_uses": 1 }),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
