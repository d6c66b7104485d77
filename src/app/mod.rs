//! Wiring: open the store, resolve tokens, start the background jobs, bind the HTTP listener,
//! and shut all of it down in order.

pub mod edge;
pub(crate) mod jobs;
pub mod logs;
mod migrations;
pub mod permissions;
pub mod tls;
mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api as routes;
pub use crate::api::{AppState, Tokens, OPENAPI};
pub use tokens::{acknowledge_tokens, NewTokens};

use crate::billing::stripe_api::StripeApi;
use crate::billing::{Billing, BillingSettings};
use crate::config::Config;
use crate::distribution::keys::Keys;
use crate::distribution::notify::ConfigNotifier;
use crate::distribution::{Distribution, DistributionSettings};
use crate::error::{Error, Result};
use crate::fleet::rebalance::{self, RebalanceSettings};
use crate::fleet::{Fleet, FleetSettings};
use crate::gateways::geo::GeoDb;
use crate::gateways::Gateways;
use crate::http;
use crate::mail::Mailer;
use crate::mirror::{self, Mirror};
use crate::queue::{worker, Queue, QueuePolicy};
use crate::registry::edge::EdgeSettings;
use crate::registry::writes::Writer;
use crate::registry::{sweeper, Registry};
use crate::store::Store;

/// How long a start waits for a store lock that sled's threads are about to release.
const STORE_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Stops a running application: stop accepting, finish requests and tasks, flush.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// The HTTPS listener, when there is one.
pub struct Https {
    pub address: SocketAddr,
    pub fingerprint: String,
    pub self_signed: bool,
}

pub struct Application {
    address: SocketAddr,
    https: Option<Https>,
    server: Pin<Box<dyn Future<Output = ()> + Send>>,
    state: Arc<AppState>,
    stop: Arc<watch::Sender<bool>>,
    background: Vec<JoinHandle<()>>,
    new_tokens: NewTokens,
    setup_token: Option<String>,
    endpoints: crate::api::Table,
}

/// Binds `address`; the error names the setting (and its variable) that moves it.
async fn bind_named(
    address: SocketAddr,
    setting: &str,
    variable: &str,
) -> Result<tokio::net::TcpListener> {
    http::listener::bind(address).await.map_err(|e| {
        Error::invalid(
            "listen_failed",
            format!(
                "cannot listen on {address} ({setting}): {e}; set `{setting}` in the \
                 configuration file or {variable} to a free address, or stop what holds it"
            ),
        )
    })
}

impl Application {
    /// Opens everything and binds the listener (port 0 picks a free port), without serving yet.
    pub async fn build(config: Config) -> Result<Application> {
        Application::build_with_clock(config, crate::clock::Clock::system()).await
    }

    /// As [`Application::build`], with the clock the HTTP API reads (tests move it forward).
    pub async fn build_with_clock(
        config: Config,
        clock: crate::clock::Clock,
    ) -> Result<Application> {
        config
            .validate()
            .map_err(|problems| Error::invalid("config_invalid", problems))?;
        tls::check_plain_http(&config)?;
        // Every listener first: a busy port must stop the start before anything is generated
        // or stored (a first start that stored the tokens' hashes and then failed to listen
        // would never print the tokens).
        let listener = bind_named(config.listen, "listen", "PROXYFLEET_LISTEN").await?;
        let https_listener = match config.https_listen {
            Some(address) => {
                Some(bind_named(address, "https_listen", "PROXYFLEET_HTTPS_LISTEN").await?)
            }
            None => None,
        };
        if crate::backup::encryption::recipient(&config)?.is_none() {
            tracing::warn!(
                "backups are written unencrypted, with every secret of the fleet in them: set \
                 backup_recipient to an age recipient (age1...)"
            );
        }
        permissions::private_by_default();
        for dir in [&config.data_dir, &config.backup_dir()] {
            let loose = permissions::tighten(dir)?;
            if !loose.is_empty() {
                tracing::warn!(dir = %dir.display(), paths = loose.len(),
                    "files holding secrets were readable by others: set to 0600 (directories 0700)");
            }
        }
        let tls_files = config
            .https_listen
            .map(|_| tls::load_or_create(&config))
            .transpose()?;
        // A store closed a moment ago by this process (a restart in place, the tests) may still
        // be locked by sled's I/O threads; another process holding it fails after the wait.
        let store = Store::reopen(&config.data_dir, STORE_LOCK_WAIT)?;
        store
            .guard_disk(config.min_free_disk_mb.saturating_mul(1_048_576))
            .map_err(|e| Error::caused_by("read the data disk's free space", e))?;
        migrations::run(&store, &config)?;
        if config.redis_url.is_some() {
            // Before anything writes: every transaction from here on feeds the replica.
            store.keep_replica(crate::changes::replication());
        }
        let (tokens, new_tokens) = tokens::load_or_create(&store, &config).await?;
        let queue = Queue::new(
            store.clone(),
            QueuePolicy {
                max_attempts: config.queue_max_attempts,
                backoff_base_ms: config.queue_backoff_base_ms,
                lease_ms: config.queue_lease_secs * 1000,
                done_retention_ms: config.queue_done_retention_secs * 1000,
            },
        );
        let orphaned = queue.release_orphaned_leases(clock.now_ms())?;
        if orphaned > 0 {
            tracing::warn!(
                tasks = orphaned,
                "tasks the previous run was doing when it stopped are handed out again"
            );
        }
        let registry = Registry::new(
            store.clone(),
            queue.clone(),
            Writer {
                queue: queue.clone(),
                ttl_ms: config.heartbeat_ttl_secs * 1000,
                edge_debounce_ms: config.edge_debounce_ms,
                max_clients: config.max_clients,
                low_water_percent: config.low_water_percent,
                ceilings: crate::registry::credentials::Ceilings {
                    max_proxies: config.max_proxies,
                    max_proxy_capacity: config.max_proxy_capacity,
                },
            },
        );
        let edge = EdgeSettings {
            peers_domain: config.peers_domain.clone(),
            probe_path: config.edge_probe_path.clone(),
            vcl_path: config.edge_vcl_path(),
            varnish_admin: config.varnish_admin.clone(),
            varnish_secret_file: config.varnish_secret_file.clone(),
            group_size: config.edge_vcl_group_size,
            group_salt: crate::registry::edge::group_salt(&store)?,
        };
        let fleet = Fleet::new(
            store.clone(),
            queue.clone(),
            registry.clone(),
            ConfigNotifier::default(),
            FleetSettings::from_config(&config),
            // A disabled account's Pro proxies stop accepting its token at once.
            Arc::new(crate::billing::pro::release),
            crate::fleet::pending::InviteeSecret::load_or_create(&store)?,
        );
        let rebalance = RebalanceSettings::from_config(&config);
        let distribution = Distribution::new(
            Keys::load_or_create(&store).await?,
            DistributionSettings {
                free_k: config.free_subset_k,
                network_window_secs: config.subset_network_window_secs,
                poll_after_secs: config.config_poll_secs,
                validity_secs: config.config_validity_secs,
            },
            registry.clone(),
            fleet.blocked.clone(),
        );
        let gateways = Gateways::new(
            GeoDb::open(config.geoip_db.as_deref()),
            config.peers_domain.clone(),
            config.max_clients,
        );
        let billing = Billing::new(
            store.clone(),
            queue.clone(),
            registry.clone(),
            fleet.notifier.clone(),
            match &config.stripe_secret_key {
                Some(key) => Some(StripeApi::new(
                    &config.stripe_api_base,
                    key.expose(),
                    Duration::from_secs(config.stripe_timeout_secs),
                )?),
                None => None,
            },
            BillingSettings::from_config(&config)?,
        );
        let backup_schedule = crate::backup::schedule::Schedule {
            dir: config.backup_dir(),
            every: Duration::from_secs(config.backup_interval_secs),
            keep: config.backup_keep,
            recipient: crate::backup::encryption::recipient(&config)?,
        };
        let mailer = Mailer::new(store.clone(), &config)?;
        let mirror = Mirror::new(
            config.redis_url.clone(),
            &config.redis_prefix,
            std::time::Duration::from_secs(config.redis_check_secs),
        )
        .sealing_secrets(
            config
                .redis_encrypt_secrets
                .as_deref()
                .map(crate::mirror::sealing::Sealing::from_file)
                .transpose()?,
        );
        let admin = crate::admin::AdminPanel::new(config.admin_login_burst, store.clone());
        let limits = crate::http::rate_limit::RateLimits::new(&config.rate_limits);
        let listener_limits = http::listener::Limits {
            keep_body: Some(crate::api::admin::layer::is_audited),
            ..http::listener::Limits::from_config(&config)
        }
        .within_file_limit();
        let capacity = http::listener::Capacity::new(&listener_limits);
        let blocking = crate::blocking::Blocking::new(
            store.clone(),
            queue.clone(),
            crate::blocking::verdict::Rules::from_config(&config),
            fleet.blocked.clone(),
        )?;
        let state = Arc::new(AppState {
            clock,
            capacity: capacity.clone(),
            metrics: crate::metrics::Metrics::new(routes::OPENAPI),
            limits,
            admin,
            config,
            store,
            queue,
            tokens,
            registry,
            edge,
            fleet,
            rebalance,
            distribution: Arc::new(distribution),
            gateways,
            billing,
            blocking,
            mailer,
            mirror: Arc::new(mirror),
            backup_schedule,
        });

        let (stop, _) = watch::channel(false);
        let stop = Arc::new(stop);
        let address = listener.local_addr().map_err(Error::internal)?;
        tokens::write_control_url(&state.config.data_dir, address)?;
        let (endpoints, plain_routes) = routes::routes(state.clone(), false);
        let mut server: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(http::listener::serve(
            listener,
            None,
            plain_routes,
            listener_limits.clone(),
            capacity.clone(),
            stop.subscribe(),
        ));
        let mut https = None;
        if let (Some(listener), Some(files)) = (https_listener, tls_files) {
            let acceptor = http::listener::tls_acceptor(&files.cert_pem, &files.key_pem)?;
            let tls_address = listener.local_addr().map_err(Error::internal)?;
            let tls_server = http::listener::serve(
                listener,
                Some(acceptor),
                routes::routes(state.clone(), true).1,
                listener_limits,
                capacity,
                stop.subscribe(),
            );
            server = Box::pin(async move {
                tokio::join!(server, tls_server);
            });
            https = Some(Https {
                address: tls_address,
                fingerprint: files.fingerprint,
                self_signed: files.self_signed,
            });
        }

        let setup_token = state.admin.setup.open_if_no_account(&state.store)?;
        let background = start_background(&state, &stop);
        Ok(Application {
            address,
            https,
            server,
            state,
            stop,
            background,
            new_tokens,
            setup_token,
            endpoints,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn https(&self) -> Option<&Https> {
        self.https.as_ref()
    }

    /// Every endpoint the HTTP API serves: method and path template.
    pub fn endpoints(&self) -> &crate::api::Table {
        &self.endpoints
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The one-time token of `/admin/setup?token=...` when the store had no admin account at
    /// this start: print it with the panel's address.
    pub fn setup_token(&self) -> Option<&str> {
        self.setup_token.as_deref()
    }

    /// Tokens generated by this start (first start only): show them once.
    pub fn new_tokens(&self) -> &NewTokens {
        &self.new_tokens
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop.clone())
    }

    /// Serves until the shutdown handle fires, then lets requests finish (the listener's grace
    /// period), stops the background jobs and closes the store. When it returns, the data
    /// directory may be opened again.
    pub async fn run_until_stopped(self) -> Result<()> {
        self.server.await;
        // Requests are finished; let workers finish their current task, then close.
        let _ = self.stop.send(true);
        for job in self.background {
            if tokio::time::timeout(Duration::from_secs(30), job)
                .await
                .is_err()
            {
                tracing::warn!("a background job did not stop within 30 s");
            }
        }
        let store = self.state.store.clone();
        drop(self.state);
        // A connection cut at the end of the grace period may hold the store a moment longer.
        let deadline = tokio::time::Instant::now() + STORE_CLOSE_WAIT;
        while store.handles() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Closed on this thread, not on the blocking pool: sled's last clean-up must not be
        // left to a pool thread's exit, where it logged into a subscriber already torn down
        // and aborted the process (under RUST_LOG=trace).
        store.close()?;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// How long a stopping server waits for the last tasks holding the store to let go.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Exit status when the storage engine failed at a full disk (EX_TEMPFAIL).
pub const EXIT_STORAGE_FAILED: i32 = 75;

/// Measured here: after sled meets ENOSPC it fails every later write, even once space is
/// freed, and its memory grows without bound. The only cure is a fresh process, so the
/// server exits and the service manager (`Restart=on-failure`) starts it again; every write
/// it acknowledged is on disk.
async fn watch_storage(store: Store, stop: watch::Receiver<bool>) {
    if store.watch_disk(stop).await {
        tracing::error!(
            "the storage engine failed at a full disk and cannot recover in this process: \
             exiting with status {EXIT_STORAGE_FAILED} to be restarted"
        );
        std::process::exit(EXIT_STORAGE_FAILED);
    }
}

fn start_background(state: &Arc<AppState>, stop: &Arc<watch::Sender<bool>>) -> Vec<JoinHandle<()>> {
    let mut jobs = Vec::new();
    for _ in 0..state.config.queue_workers {
        let state = state.clone();
        let handler_state = state.clone();
        jobs.push(tokio::spawn(worker::run(
            state.queue.clone(),
            state.clock.clone(),
            stop.subscribe(),
            move |task| jobs::run_task(handler_state.clone(), task),
        )));
    }
    let ttl = Duration::from_secs(state.config.heartbeat_ttl_secs);
    jobs.push(tokio::spawn(sweeper::run(
        state.registry.clone(),
        ttl,
        stop.subscribe(),
    )));
    jobs.push(tokio::spawn(jobs::upkeep(state.clone(), stop.subscribe())));
    jobs.push(tokio::spawn(jobs::fold_deferred(
        state.store.clone(),
        stop.subscribe(),
    )));
    jobs.push(tokio::spawn(jobs::compact_store(
        state.clone(),
        stop.subscribe(),
    )));
    jobs.push(tokio::spawn(watch_storage(
        state.store.clone(),
        stop.subscribe(),
    )));
    jobs.push(tokio::spawn(crate::backup::schedule::run(
        state.store.clone(),
        state.backup_schedule.clone(),
        stop.subscribe(),
    )));
    jobs.push(tokio::spawn(mirror::stream::run(
        Arc::new(mirror::MirrorDeps {
            store: state.store.clone(),
            registry: state.registry.clone(),
            distribution: state.distribution.clone(),
            mirror: state.mirror.clone(),
            settings: mirror::PublishedSettings {
                peers_domain: state.config.peers_domain.clone(),
                max_clients: state.config.max_clients,
            },
        }),
        stop.subscribe(),
    )));
    jobs.push(tokio::spawn(jobs::expire_pro(
        state.clone(),
        stop.subscribe(),
    )));
    jobs.push(tokio::spawn(jobs::refresh_views(
        state.clone(),
        stop.subscribe(),
    )));
    if state.edge.varnish_admin.is_some() {
        jobs.push(tokio::spawn(jobs::verify_varnish(
            state.clone(),
            stop.subscribe(),
        )));
    }
    let observed = state.clone();
    jobs.push(tokio::spawn(rebalance::periodic(
        state.fleet.clone(),
        state.rebalance.clone(),
        state.clock.clone(),
        move |plan| observed.metrics.rebalanced(plan),
        stop.subscribe(),
    )));
    jobs
}
