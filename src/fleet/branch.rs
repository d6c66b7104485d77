//! Cutting a branch of the trust graph. When a proxy is blocked soon after a group of users
//! was given it, the suspects are usually one inviter and the people it brought in: the
//! operator disables (or enables again) a user together with everyone below it in the
//! invitation tree, optionally only those who joined after a time, in one transaction.

use std::collections::{HashSet, VecDeque};

use super::invitees;
use super::model::{User, UserId, UserStatus};
use super::Fleet;
use crate::error::{Error, Result};
use crate::store::{abort, TreeId};

/// The most users one branch operation changes: past it the operator is asked to cut lower
/// (one transaction holds every user of the branch).
pub const MAX_BRANCH: usize = 10_000;

/// Which users of a branch an operation takes.
#[derive(Debug, Clone, Copy)]
pub struct Branch {
    pub root: UserId,
    /// Only the users below the root who joined after this time (the root always).
    pub joined_after_ms: Option<u64>,
}

impl Fleet {
    /// Everyone below `root` in the invitation tree, nearest first.
    pub fn descendants(&self, root: UserId) -> Result<Vec<UserId>> {
        let mut below = Vec::new();
        let mut seen = HashSet::from([root]);
        let mut frontier = VecDeque::from([root]);
        while let Some(id) = frontier.pop_front() {
            for child in invitees::children(&self.store, id, MAX_BRANCH + 1)? {
                if !seen.insert(child) {
                    continue;
                }
                if below.len() == MAX_BRANCH {
                    return Err(Error::invalid(
                        "branch_too_large",
                        format!(
                            "more than {MAX_BRANCH} users are below user {root}: cut lower in \
                             the tree, or narrow it with invited_after"
                        ),
                    ));
                }
                below.push(child);
                frontier.push_back(child);
            }
        }
        Ok(below)
    }

    /// Disables (`disable`) or enables the branch's users that are not so already, in one
    /// transaction. Returns the users changed, the root first if it was.
    pub async fn set_branch_status(
        &self,
        branch: Branch,
        disable: bool,
        now_ms: u64,
    ) -> Result<Vec<User>> {
        let below = self.descendants(branch.root)?;
        let target = if disable {
            UserStatus::Disabled
        } else {
            UserStatus::Active
        };
        let changed = self.store.transaction(|tx| {
            if !tx.contains(TreeId::Users, branch.root.key())? {
                return abort(Error::NotFound(format!("user {}", branch.root)));
            }
            let mut changed = Vec::new();
            for id in std::iter::once(branch.root).chain(below.iter().copied()) {
                let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? else {
                    continue;
                };
                let taken = id == branch.root
                    || branch
                        .joined_after_ms
                        .is_none_or(|after| user.created_ms > after);
                // A pending or lapsed account follows its invitation, not the branch (the
                // root's disabling revokes the invitations it sent).
                let member = matches!(user.status, UserStatus::Active | UserStatus::Disabled);
                if !taken || !member || user.status == target {
                    continue;
                }
                if disable {
                    self.disable_in(tx, &mut user, now_ms)?;
                } else {
                    self.enable_in(tx, &mut user, now_ms)?;
                }
                changed.push(user);
            }
            Ok(changed)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        let ids: Vec<UserId> = changed.iter().map(|u| u.id).collect();
        self.notifier.notify(&ids);
        Ok(changed)
    }
}
