//! The config server: what each client is told to use. This part serves the user's fallback
//! proxies (the fleet's assignment); free subsets, the pro merge and signing build on it.

pub mod config;
pub mod notify;
pub mod routes;
