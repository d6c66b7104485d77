//! Edge sync: the VCL follows the registry. A change of the routable set queues an
//! `edge.sync` task (debounced); the task renders the VCL, writes it to disk and loads it into
//! varnishd, unless a newer change superseded it or the text is what varnish already runs.

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
use vcl::VclSettings;

pub const EDGE_SYNC: &str = "edge.sync";
const STATUS: &str = "edge.status";

#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub peers_domain: String,
    pub probe_path: String,
    pub vcl_path: PathBuf,
    pub varnish_admin: Option<String>,
    pub varnish_secret_file: Option<PathBuf>,
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

#[derive(Deserialize)]
struct SyncPayload {
    version: u64,
}

pub fn render_current(
    registry: &Registry,
    settings: &EdgeSettings,
) -> crate::error::Result<(String, usize)> {
    let proxies = registry.list(now_ms())?;
    let text = vcl::render(
        &proxies,
        &VclSettings {
            peers_domain: &settings.peers_domain,
            probe_path: &settings.probe_path,
        },
    );
    Ok((text, proxies.len()))
}

pub fn status(store: &Store) -> crate::error::Result<(u64, Option<EdgeStatus>)> {
    let version = store.get::<u64>(TreeId::Meta, EDGE_VERSION)?.unwrap_or(0);
    Ok((version, store.get(TreeId::Meta, STATUS)?))
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
    let (text, count) = render_current(registry, settings).map_err(|e| e.to_string())?;
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    if last.as_ref().is_some_and(|s| s.vcl_sha256 == digest) {
        return Ok(()); // varnish already runs exactly this
    }
    write_atomically(&settings.vcl_path, &text).await?;
    let mut varnish_vcl = None;
    if let Some(admin) = &settings.varnish_admin {
        let secret = match &settings.varnish_secret_file {
            Some(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("varnish secret {}: {e}", path.display()))?,
            None => Vec::new(),
        };
        let name = format!("pf{}t{}", payload.version, now_ms());
        let mut cli = VarnishCli::connect(admin, &secret).await?;
        cli.load_and_use(&name, &text).await?;
        varnish_vcl = Some(name);
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
