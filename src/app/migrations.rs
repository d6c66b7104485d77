//! Data-format migrations, run at start before anything else reads the store. A backup of the
//! store as it was is written first, so an upgrade that goes wrong can be undone with
//! `proxyfleet restore`. A store newer than this binary is refused.

use crate::backup::schedule::file_name;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::format::{self, DATA_FORMAT};
use crate::store::Store;

/// One step: from format `from` to `from + 1`.
struct Migration {
    from: u64,
    what: &'static str,
    run: fn(&Store) -> Result<()>,
}

const MIGRATIONS: [Migration; 6] = [
    Migration {
        from: 0,
        what: "stores made before formats were recorded: build the trust graph's invitee index",
        run: |store| crate::fleet::invitees::backfill(store).map(|_| ()),
    },
    Migration {
        from: 1,
        what: "proxies gain transport details and per-proxy credentials (each registered proxy \
               claims its secret on its next heartbeat from its address)",
        run: crate::registry::migrate::to_format_2,
    },
    Migration {
        from: 2,
        what: "admin accounts can be disabled and gain single-use codes; audit entries gain a \
               count and the request's parameters",
        run: crate::admin::migrate::to_format_3,
    },
    Migration {
        from: 3,
        what: "proxies can be out of service (roles `drained` and `retired`, set by an \
               operator); nothing stored changes, but an older proxyfleet cannot read them",
        run: |_| Ok(()),
    },
    Migration {
        from: 4,
        what: "invitations expire (those made before: 14 days after they were made) and can \
               be revoked; each inviter gets an index of its invitations and a quota ledger; \
               each proxy an index of the users ever given it, from the assignment history",
        run: |store| {
            crate::fleet::invitations::to_format_5(store)?;
            crate::fleet::exposure::backfill(store).map(|_| ())
        },
    },
    Migration {
        from: 5,
        what: "invitations make the invitee's account at once, pending until accepted, and \
               name it (users gain the statuses `pending` and `lapsed`)",
        run: crate::fleet::invitations::to_format_6,
    },
];

/// Brings the store to `DATA_FORMAT`. Returns the backup taken first, if any migration ran.
pub fn run(store: &Store, config: &Config) -> Result<Option<std::path::PathBuf>> {
    let Some(found) = format::read(store)? else {
        format::write(store, DATA_FORMAT)?; // a new store
        return Ok(None);
    };
    if found > DATA_FORMAT {
        return Err(Error::internal(format!(
            "{} holds data format {found}, written by a newer proxyfleet; this one knows up to \
             format {DATA_FORMAT}. Run the newer version, or restore a backup of this format",
            config.data_dir.display()
        )));
    }
    if found == DATA_FORMAT {
        return Ok(None);
    }
    let prefix = format!("pre-migration-{found}-to-{DATA_FORMAT}-");
    let path = config
        .backup_dir()
        .join(file_name(&prefix, crate::clock::now_ms()));
    let recipient = crate::backup::encryption::recipient(config)?;
    let written = crate::backup::write_file(store, &path, recipient.as_ref())?;
    tracing::info!(path = %written.path.display(), records = written.records,
        "backup taken before migrating the store");
    for step in MIGRATIONS.iter().filter(|m| m.from >= found) {
        tracing::info!(
            from = step.from,
            to = step.from + 1,
            what = step.what,
            "migrating"
        );
        (step.run)(store)?;
        format::write(store, step.from + 1)?;
    }
    store.flush_now()?;
    Ok(Some(written.path))
}
