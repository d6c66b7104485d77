//! The proxy registry (peerdnsreg, done right): register / heartbeat / unregister, expiry,
//! the history of arrivals and departures, and the edge routing config that follows the set.

pub mod credentials;
pub mod edge;
pub mod migrate;
pub mod model;
pub mod service;
pub mod sweeper;
pub mod validate;
pub mod writes;

pub use model::{Proxy, ProxyEvent, ProxyName, Registration, RemovalReason, Role};
pub use service::Registry;
