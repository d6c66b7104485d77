//! Integration tests: the real server, real HTTP, real varnishd.

mod health;
mod helpers;
mod install;
mod persistence;
mod queue;
mod registry;
mod validation;
mod varnish;
