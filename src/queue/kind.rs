//! Every kind of background task. A task is stored with its kind's name, so a name is never
//! changed without a migration of the tasks still queued under it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Write the Varnish config for the current fleet and load it (`registry::edge`).
    EdgeSync,
    /// A proxy came, left or changed: reassign its users, refresh Pro choices.
    ProxyChanged,
    /// Run the operator's provisioning hook (the rebalancer found no room).
    Provision,
    /// Run the operator's retirement hook for one drained proxy.
    Retire,
    /// Send one mail through the SMTP relay.
    MailSend,
    /// Room appeared on the fallback proxies: place the users waiting for one.
    PlaceUnplaced,
    /// An invitation's expiry: its pending account lapses unless it was accepted.
    InvitationExpire,
    /// A proxy became blocked in a country: the users there leave it.
    ProxyBlocked,
}

impl TaskKind {
    pub const ALL: [TaskKind; 8] = [
        TaskKind::EdgeSync,
        TaskKind::ProxyChanged,
        TaskKind::Provision,
        TaskKind::Retire,
        TaskKind::MailSend,
        TaskKind::PlaceUnplaced,
        TaskKind::InvitationExpire,
        TaskKind::ProxyBlocked,
    ];

    /// The name stored with each task.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::EdgeSync => "edge.sync",
            TaskKind::ProxyChanged => "fleet.proxy_changed",
            TaskKind::Provision => "fleet.provision",
            TaskKind::Retire => "fleet.retire",
            TaskKind::MailSend => "mail.send",
            TaskKind::PlaceUnplaced => "fleet.place_unplaced",
            TaskKind::InvitationExpire => "fleet.invitation_expire",
            TaskKind::ProxyBlocked => "blocking.proxy_blocked",
        }
    }

    /// The kind a stored name stands for; `None` for a name no worker handles.
    pub fn parse(name: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in TaskKind::ALL {
            assert_eq!(TaskKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(TaskKind::parse("fleet.unknown"), None);
    }
}
