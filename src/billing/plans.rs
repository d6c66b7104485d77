//! Pro plans: from the config, or two defaults when none is configured.

pub use crate::config::Plan;

use crate::error::{Error, Result};

pub fn defaults() -> Vec<Plan> {
    vec![
        Plan {
            id: "pro-1m".into(),
            name: "Pro, 1 month".into(),
            price: 499,
            currency: "usd".into(),
            days: 30,
        },
        Plan {
            id: "pro-1y".into(),
            name: "Pro, 1 year".into(),
            price: 3999,
            currency: "usd".into(),
            days: 365,
        },
    ]
}

/// The configured plans, checked, or the defaults when the list is empty.
pub fn effective(configured: &[Plan]) -> Result<Vec<Plan>> {
    if configured.is_empty() {
        return Ok(defaults());
    }
    let mut plans: Vec<Plan> = Vec::with_capacity(configured.len());
    for plan in configured {
        let id_ok = !plan.id.is_empty()
            && plan.id.len() <= 40
            && plan
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let currency_ok =
            plan.currency.len() == 3 && plan.currency.bytes().all(|b| b.is_ascii_lowercase());
        if !id_ok || !currency_ok || plan.price == 0 || !(1..=3650).contains(&plan.days) {
            return Err(Error::internal(format!(
                "plan {:?}: id must be [a-z0-9-], currency three lower-case letters, price > 0, days 1 to 3650",
                plan.id
            )));
        }
        if plans.iter().any(|p| p.id == plan.id) {
            return Err(Error::internal(format!(
                "plan {:?} is configured twice",
                plan.id
            )));
        }
        plans.push(plan.clone());
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_none_and_checks_configured_ones() {
        let plans = effective(&[]).unwrap();
        assert_eq!(
            plans
                .iter()
                .map(|p| (p.id.as_str(), p.days))
                .collect::<Vec<_>>(),
            vec![("pro-1m", 30), ("pro-1y", 365)]
        );
        let mut custom = defaults();
        custom[0].id = "Pro Month".into();
        assert!(effective(&custom).is_err());
        let twice = vec![defaults()[0].clone(), defaults()[0].clone()];
        assert!(effective(&twice).is_err());
    }
}
