//! Wakes config long-polls: a waiter per user id, notified after a commit that changed that
//! user's config. Entries exist only while someone waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::fleet::model::UserId;

#[derive(Clone, Default)]
pub struct ConfigNotifier {
    waiters: Arc<Mutex<HashMap<UserId, Arc<Notify>>>>,
}

impl ConfigNotifier {
    /// The bell of `user`, to await (call `enable` on the `Notified` before re-reading).
    pub fn bell(&self, user: UserId) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters
            .entry(user)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Drops the bell of `user` if nobody else holds it.
    pub fn release(&self, user: UserId, bell: Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        drop(bell);
        if waiters
            .get(&user)
            .is_some_and(|b| Arc::strong_count(b) == 1)
        {
            waiters.remove(&user);
        }
    }

    pub fn notify(&self, users: &[UserId]) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for user in users {
            if let Some(bell) = waiters.get(user) {
                bell.notify_waiters();
            }
        }
    }

    /// Wakes every waiter (a proxy every config may show changed).
    pub fn notify_all(&self) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for bell in waiters.values() {
            bell.notify_waiters();
        }
    }
}
