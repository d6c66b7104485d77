//! The admin web panel: accounts with argon2 passwords, cookie sessions with CSRF tokens,
//! login throttling, the audit trail of every admin action, and the embedded UI at `/admin/`.

pub mod accounts;
pub mod audit;
pub mod check;
pub mod command;
pub mod down;
pub mod map;
pub mod migrate;
pub mod sessions;
pub mod settings;
pub mod setup;
pub mod signin;
pub mod summary;
pub mod throttle;
pub mod totp;

use crate::store::Store;
use audit::LoginFailures;
use throttle::LoginThrottle;

/// What the panel keeps in memory.
pub struct AdminPanel {
    pub throttle: LoginThrottle,
    /// The failed-login audit entries of the current minute.
    pub failures: LoginFailures,
    /// Answered admin requests, appended in shared transactions.
    pub trail: audit::Trail,
    /// The one-time link that makes the first account while none exists.
    pub setup: setup::SetupLink,
}

impl AdminPanel {
    /// Must run inside a tokio runtime (it starts the audit trail's writer).
    pub fn new(login_burst: u32, store: Store) -> AdminPanel {
        AdminPanel {
            trail: audit::Trail::start(store),
            throttle: LoginThrottle::new(login_burst),
            failures: LoginFailures::default(),
            setup: setup::SetupLink::default(),
        }
    }
}
