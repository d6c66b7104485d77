//! Edge sync: the VCL follows the registry. A change of the routable set queues an
//! `edge.sync` task (debounced); the task renders the VCL, writes it to disk and loads it into
//! varnishd, unless a newer change superseded it or the text is what varnish already runs.
//! A fleet split into groups (`vcl.rs`) reloads only the groups whose text changed, plus
//! any whose label a restarted varnishd lost.

pub mod varnish;
pub mod vcl;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::service::Registry;
use super::writes::EDGE_VERSION;
use crate::clock::now_ms;
use crate::store::{Store, TreeId};
use varnish::VarnishCli;
use vcl::{EdgeConfig, VclSettings};

pub const EDGE_SYNC: crate::queue::TaskKind = crate::queue::TaskKind::EdgeSync;
const STATUS: &str = "edge.status";
/// What each group label runs (`LoadedGroups`), beside the status.
const GROUPS: &str = "edge.groups";
/// The last check of what varnishd runs (`VarnishCheck`).
const CHECK: &str = "edge.varnish_check";
/// The secret salt of the group key (`vcl::group_of`), made once per install.
const GROUP_SALT: &str = "edge.group_salt";

#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub peers_domain: String,
    pub probe_path: String,
    pub vcl_path: PathBuf,
    pub varnish_admin: Option<String>,
    pub varnish_secret_file: Option<PathBuf>,
    /// Proxies per VCL before the fleet is split into groups (`edge_vcl_group_size`).
    pub group_size: usize,
    pub group_salt: String,
}

/// The groups varnishd runs, as last synced: label -> SHA-256 of its VCL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadedGroups {
    pub labels: std::collections::BTreeMap<String, String>,
    /// Group VCLs compiled since the database was created.
    pub group_loads: u64,
}

/// This install's group salt, made at the first start.
pub fn group_salt(store: &Store) -> crate::error::Result<String> {
    if let Some(salt) = store.get::<String>(TreeId::Meta, GROUP_SALT)? {
        return Ok(salt);
    }
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let salt = hex::encode(bytes);
    store.put(TreeId::Meta, GROUP_SALT, &salt)?;
    Ok(salt)
}

/// What the edge runs now, as last synced.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EdgeStatus {
    /// Registry set version the loaded VCL was rendered from.
    pub version: u64,
    pub vcl_sha256: String,
    pub proxies: usize,
    pub synced_ms: u64,
    /// Name of the VCL active in varnishd, when a varnish admin address is configured.
    pub varnish_vcl: Option<String>,
    /// VCLs written (and loaded) since the database was created.
    pub loads: u64,
}

/// The last check that varnishd runs what the last sync loaded (`verify`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VarnishCheck {
    pub checked_ms: u64,
    /// The VCL varnishd had active at the check.
    pub active: Option<String>,
    /// What differed from the last sync (a restarted varnishd runs its boot VCL, a label is
    /// gone), or the error reaching varnishd; `None` when it ran exactly ours.
    pub problem: Option<String>,
    /// Reloads queued because varnishd did not run what was loaded.
    pub reloads: u64,
}

pub fn varnish_check(store: &Store) -> crate::error::Result<Option<VarnishCheck>> {
    store.get(TreeId::Meta, CHECK)
}

async fn varnish_cli(settings: &EdgeSettings, admin: &str) -> Result<VarnishCli, String> {
    let secret = match &settings.varnish_secret_file {
        Some(path) => tokio::fs::read(path)
            .await
            .map_err(|e| format!("varnish secret {}: {e}", path.display()))?,
        None => Vec::new(),
    };
    VarnishCli::connect(admin, &secret).await
}

/// Asks varnishd (`vcl.list`) whether it still runs what the last sync loaded: the active VCL
/// and every group label. A varnishd restarted by its supervisor boots its own VCL and forgets
/// ours, while our status would go on saying it runs ours. Returns the registry version to
/// sync again when it does not (the caller queues that sync); records the check either way.
pub async fn verify(store: &Store, settings: &EdgeSettings) -> Result<Option<u64>, String> {
    let Some(admin) = &settings.varnish_admin else {
        return Ok(None);
    };
    let failed = |e: crate::error::Error| e.to_string();
    let (_, last) = status(store).map_err(failed)?;
    let Some(expected) = last.as_ref().and_then(|s| s.varnish_vcl.clone()) else {
        return Ok(None); // nothing loaded yet: the first sync will
    };
    let groups = loaded_groups(store).map_err(failed)?;
    let mut check = varnish_check(store).map_err(failed)?.unwrap_or_default();
    check.checked_ms = now_ms();
    let listed = match varnish_cli(settings, admin).await {
        Ok(mut cli) => cli.list().await,
        Err(e) => Err(e),
    };
    let problem = match &listed {
        Err(e) => {
            check.active = None;
            Some(format!("varnishd unreachable: {e}"))
        }
        Ok(list) => {
            check.active = list.active().map(str::to_string);
            let missing = groups.labels.keys().find(|label| !list.has_label(label));
            match (check.active.as_deref(), missing) {
                (Some(active), None) if active == expected => None,
                (active, None) => Some(format!(
                    "varnishd runs {}, not {expected} (restarted?)",
                    active.unwrap_or("no VCL")
                )),
                (_, Some(label)) => Some(format!("varnishd lost the label {label} (restarted?)")),
            }
        }
    };
    // Reachable but running something else: load ours again. Unreachable: nothing to do
    // until it answers (a sync would fail the same way).
    let mut reload = None;
    if listed.is_ok() && problem.is_some() {
        // Only if no sync loaded something newer meanwhile; then the next sync must load
        // even though the text did not change, every group included.
        reload = store
            .transaction(|tx| {
                let status: Option<EdgeStatus> = tx.get(TreeId::Meta, STATUS)?;
                let Some(mut status) = status.filter(|s| s.varnish_vcl == Some(expected.clone()))
                else {
                    return Ok(None);
                };
                status.vcl_sha256.clear();
                status.varnish_vcl = None;
                tx.put(TreeId::Meta, STATUS, &status)?;
                let mut groups: LoadedGroups = tx.get(TreeId::Meta, GROUPS)?.unwrap_or_default();
                groups.labels.clear();
                tx.put(TreeId::Meta, GROUPS, &groups)?;
                Ok(Some(
                    tx.get::<u64>(TreeId::Meta, EDGE_VERSION)?.unwrap_or(0),
                ))
            })
            .map_err(failed)?;
        if reload.is_some() {
            check.reloads += 1;
            tracing::warn!(
                problem = problem.as_deref().unwrap_or_default(),
                "edge: reloading varnish"
            );
        }
    }
    check.problem = problem;
    store.put(TreeId::Meta, CHECK, &check).map_err(failed)?;
    Ok(reload)
}

#[derive(Deserialize)]
struct SyncPayload {
    version: u64,
}

pub fn render_current(
    registry: &Registry,
    settings: &EdgeSettings,
) -> crate::error::Result<(EdgeConfig, usize)> {
    let proxies = registry.list(now_ms())?;
    let config = vcl::render_config(
        &proxies,
        &VclSettings {
            peers_domain: &settings.peers_domain,
            probe_path: &settings.probe_path,
            group_size: settings.group_size,
            group_salt: &settings.group_salt,
        },
    );
    Ok((config, proxies.len()))
}

pub fn status(store: &Store) -> crate::error::Result<(u64, Option<EdgeStatus>)> {
    let version = store.get::<u64>(TreeId::Meta, EDGE_VERSION)?.unwrap_or(0);
    Ok((version, store.get(TreeId::Meta, STATUS)?))
}

pub fn loaded_groups(store: &Store) -> crate::error::Result<LoadedGroups> {
    Ok(store.get(TreeId::Meta, GROUPS)?.unwrap_or_default())
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The SHA-256 of the whole config: the top VCL, then each group's label and VCL.
fn digest(config: &EdgeConfig) -> String {
    let mut hasher = Sha256::new();
    hasher.update(config.top.as_bytes());
    for group in &config.groups {
        hasher.update(group.label.as_bytes());
        hasher.update(group.vcl.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The file a group's VCL is written to, beside the top one: `<stem>-<label>.vcl`.
fn group_path(top: &Path, label: &str) -> PathBuf {
    let stem = top
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    top.with_file_name(format!("{stem}-{label}.vcl"))
}

/// Writes the config's files and removes group files of an earlier split.
async fn write_files(top: &Path, config: &EdgeConfig) -> Result<(), String> {
    write_atomically(top, &config.top).await?;
    let mut wanted = Vec::new();
    for group in &config.groups {
        let path = group_path(top, &group.label);
        write_atomically(&path, &group.vcl).await?;
        wanted.push(path);
    }
    let (Some(dir), Some(stem)) = (top.parent(), top.file_stem()) else {
        return Ok(());
    };
    let prefix = format!("{}-pfg", stem.to_string_lossy());
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix)
                && name.ends_with(".vcl")
                && !wanted.contains(&entry.path())
            {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }
    Ok(())
}

/// Loads into varnishd what changed: each group whose text differs from what its label runs
/// (or whose label varnishd lacks), then the top VCL; then discards the rest of ours. Each
/// group loaded is recorded at once, so a sync that fails half-way (varnishd gone) does not
/// compile the same groups again on its retry. Returns the active VCL's name.
async fn load(
    cli: &mut VarnishCli,
    store: &Store,
    config: &EdgeConfig,
    version: u64,
) -> Result<String, String> {
    let failed = |e: crate::error::Error| e.to_string();
    let mut loaded = loaded_groups(store).map_err(failed)?;
    let present = cli.list().await?;
    let stamp = now_ms();
    for group in &config.groups {
        let sha = sha256_hex(&group.vcl);
        let current = loaded.labels.get(&group.label) == Some(&sha);
        if !(current && present.has_label(&group.label)) {
            let name = format!("{}v{version}t{stamp}", group.label);
            cli.load(&name, &group.vcl).await?;
            cli.label(&group.label, &name).await?;
            loaded.labels.insert(group.label.clone(), sha);
            loaded.group_loads += 1;
            store.put(TreeId::Meta, GROUPS, &loaded).map_err(failed)?;
        }
    }
    let name = format!("pf{version}t{stamp}");
    cli.load(&name, &config.top).await?;
    let keep: Vec<String> = config.groups.iter().map(|g| g.label.clone()).collect();
    cli.use_and_discard_others(&name, &keep).await?;
    loaded.labels.retain(|label, _| keep.contains(label));
    store.put(TreeId::Meta, GROUPS, &loaded).map_err(failed)?;
    Ok(name)
}

/// The `edge.sync` task.
pub async fn sync(
    store: &Store,
    registry: &Registry,
    settings: &EdgeSettings,
    payload: &str,
) -> Result<(), String> {
    let payload: SyncPayload =
        serde_json::from_str(payload).map_err(|e| format!("bad payload: {e}"))?;
    let (current_version, last) = status(store).map_err(|e| e.to_string())?;
    if payload.version < current_version {
        return Ok(()); // a newer change queued its own sync
    }
    let (config, count) = render_current(registry, settings).map_err(|e| e.to_string())?;
    let digest = digest(&config);
    if last.as_ref().is_some_and(|s| s.vcl_sha256 == digest) {
        return Ok(()); // varnish already runs exactly this
    }
    write_files(&settings.vcl_path, &config).await?;
    let mut varnish_vcl = None;
    if let Some(admin) = &settings.varnish_admin {
        let mut cli = varnish_cli(settings, admin).await?;
        varnish_vcl = Some(load(&mut cli, store, &config, payload.version).await?);
    }
    let status = EdgeStatus {
        version: payload.version,
        vcl_sha256: digest,
        proxies: count,
        synced_ms: now_ms(),
        varnish_vcl,
        loads: last.map_or(0, |s| s.loads) + 1,
    };
    store
        .put(TreeId::Meta, STATUS, &status)
        .map_err(|e| e.to_string())?;
    tracing::info!(
        version = status.version,
        proxies = count,
        groups = config.groups.len(),
        "edge config synced"
    );
    Ok(())
}

async fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("vcl.tmp");
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| format!("rename to {}: {e}", path.display()))
}
