//! Integration tests: the real server, real HTTP, real varnishd.

mod admin;
mod admin_ui;
mod billing;
mod check;
mod devices;
mod distribution;
mod edge;
mod fleet;
mod gateways;
mod health;
mod helpers;
mod install;
mod mail;
mod mirror;
mod openapi;
mod persistence;
mod purchase;
mod queue;
mod rate_limits;
mod rebalance;
mod redis_support;
mod referrals;
mod registry;
mod validation;
mod varnish;
