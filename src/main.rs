//! The `proxyfleet` command: parse the CLI, load the config, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use proxyfleet::app::edge::EdgeApp;
use proxyfleet::config::{Limit, LogFormat, RateLimitSettings};
use proxyfleet::mirror::edge::EdgeSettings;
use proxyfleet::{Application, Config};

#[derive(Parser)]
#[command(
    name = "proxyfleet",
    version,
    about = "Control plane of a circumvention proxy network, on one box"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: HTTP API, registry, sweeper, task workers.
    ///
    /// Settings: built-in defaults, then the TOML file, then PROXYFLEET_* environment variables
    /// (PROXYFLEET_LISTEN, PROXYFLEET_DATA_DIR, PROXYFLEET_ADMIN_TOKEN, ... see docs/CONFIG.md).
    Serve {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Serve the read APIs (GET /json, /api/v1/config, /api/v1/config/pubkey) from a Redis
    /// that a primary mirrors into; writes are answered 421. Run many behind a load balancer.
    Edge {
        /// The Redis (or Redis replica) the primary mirrors into.
        #[arg(long, value_name = "URL", env = "PROXYFLEET_REDIS_URL")]
        redis: String,
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// Key prefix the primary writes under.
        #[arg(long, default_value = "proxyfleet:", env = "PROXYFLEET_REDIS_PREFIX")]
        prefix: String,
        /// MaxMind-format city database (the primary's, for identical `/json` answers).
        #[arg(long, value_name = "FILE", env = "PROXYFLEET_GEOIP_DB")]
        geoip: Option<PathBuf>,
        /// The primary's public URL, told to clients that send writes here.
        #[arg(long, value_name = "URL")]
        primary: Option<String>,
        /// Addresses of reverse proxies whose X-Forwarded-For is believed.
        #[arg(long = "trusted-proxy", value_name = "IP")]
        trusted_proxies: Vec<std::net::IpAddr>,
        /// `/json` requests a client address may make per minute (0: no limit), as the
        /// primary's `rate_limits.json.per_ip_per_minute`.
        #[arg(long, value_name = "N", default_value_t = RateLimitSettings::default().json.per_ip_per_minute)]
        json_per_minute: u32,
        /// How many of them may come at once (`rate_limits.json.ip_burst`).
        #[arg(long, value_name = "N", default_value_t = RateLimitSettings::default().json.ip_burst)]
        json_burst: u32,
    },
    /// Manage admin panel accounts. `create` needs the server stopped (the store is opened
    /// here); the others work either way (while it runs, they ask it).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// The tokens the server generated (no admin_token or registry_token configured) are
    /// printed at every start until acknowledged here, once you have put them away.
    Tokens {
        /// Stop printing them.
        #[arg(long, required = true)]
        ack: bool,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check the store's invariants (link indexes, queue) without changing anything; exits 1
    /// when a problem is found. The server must be stopped (the store is opened here).
    Check {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Write a consistent snapshot of the store to FILE (compressed, with a checksum and the
    /// data format). Works while the server runs (it asks the server) and while it is stopped.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Restore a backup FILE, or rebuild from the Redis mirror (`--from-redis URL`), into DIR,
    /// which must be empty or absent; then point `data_dir` at DIR. A corrupt file, one from a
    /// newer proxyfleet, or a Redis without a complete mirror is refused.
    Restore {
        #[arg(value_name = "FILE", required_unless_present = "from_redis")]
        file: Option<PathBuf>,
        /// Rebuild from the mirror in this Redis (`redis://host:port/db`) instead of a file.
        #[arg(long, value_name = "URL", conflicts_with = "file")]
        from_redis: Option<String>,
        /// The mirror's key prefix (`redis_prefix`).
        #[arg(long, value_name = "P", default_value = "proxyfleet:")]
        prefix: String,
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The age identity file of `backup_recipient`, for an encrypted backup.
        #[arg(long, value_name = "FILE", conflicts_with = "from_redis")]
        identity: Option<PathBuf>,
        /// The key file of `redis_encrypt_secrets`, for a replica whose secrets are sealed.
        #[arg(long, value_name = "FILE", requires = "from_redis")]
        secrets_key: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML for config.toml (secrets as masked comments).
    Config {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an account and print its password once (or read one from stdin).
    Create {
        #[arg(long)]
        username: String,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Make a new store when the data directory holds none (a fresh install, before the
        /// server's first start); without it such a directory is refused.
        #[arg(long)]
        create_store: bool,
    },
    /// List the accounts: name, enabled or disabled, second factor.
    List,
    /// Stop an account from signing in; its sessions end.
    Disable { username: String },
    /// Let a disabled account sign in again.
    Enable { username: String },
    /// Remove an account; its sessions end.
    Remove { username: String },
    /// Give an account a new generated password (printed once); its sessions end.
    ResetPassword { username: String },
    /// Turn an account's second factor off (lost phone); its sessions end.
    ResetTotp { username: String },
}

/// glibc's malloc let the resident set creep under steady traffic while the live heap stayed
/// flat (its arenas keep freed memory; docs/PITFALLS.md). jemalloc returns it by itself.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Stores, backups and keys written by any command are private to this user.
    proxyfleet::app::permissions::private_by_default();
    let result = match cli.command {
        // The server's log format is a setting: read the configuration first.
        Command::Serve { config } => match Config::load(config.as_deref()) {
            Ok(config) => {
                proxyfleet::app::logs::init(config.log_format);
                serve(config)
            }
            Err(e) => Err(format!("configuration: {e}")),
        },
        command => {
            proxyfleet::app::logs::init(LogFormat::Text);
            run_command(command)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("proxyfleet: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { .. } => unreachable!("handled in main"),
        Command::Edge {
            redis,
            listen,
            prefix,
            geoip,
            primary,
            trusted_proxies,
            json_per_minute,
            json_burst,
        } => edge(EdgeSettings {
            redis_url: redis,
            listen,
            prefix,
            geoip_db: geoip,
            primary,
            trusted_proxies,
            config_wait_max_secs: Config::default().config_wait_max_secs,
            rate_limits: RateLimitSettings {
                json: Limit::new((json_per_minute, json_burst), (0, 1)),
                ..RateLimitSettings::default()
            },
        }),
        Command::Admin { action, config } => admin(action, config),
        Command::Check { config } => check(config),
        Command::Tokens { ack: _, config } => acknowledge_tokens(config),
        Command::Backup { out, config } => backup(config, out),
        Command::Restore {
            file,
            from_redis,
            prefix,
            data_dir,
            identity,
            secrets_key,
        } => match (file, from_redis) {
            (_, Some(url)) => rebuild(&url, &prefix, secrets_key, data_dir),
            (Some(file), None) => restore(file, data_dir, identity),
            (None, None) => Err("give a backup FILE or --from-redis URL".into()),
        },
        Command::Config { config } => Config::load(config.as_deref())
            .map(|c| print!("{}", proxyfleet::admin::settings::as_toml(&c)))
            .map_err(|e| e.to_string()),
    }
}

fn edge(settings: EdgeSettings) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let app = EdgeApp::build(settings).await.map_err(|e| e.to_string())?;
        println!("proxyfleet edge listening on http://{}", app.address());
        let stopper = app.stopper();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = stopper.send(true);
        });
        app.run().await;
        Ok(())
    })
}

fn admin(action: AdminAction, config_file: Option<PathBuf>) -> Result<(), String> {
    use proxyfleet::admin::accounts::AccountAction;
    use proxyfleet::admin::command::Request;
    let config = Config::load(config_file.as_deref()).map_err(|e| format!("configuration: {e}"))?;
    let request = match action {
        AdminAction::Create {
            username,
            password_stdin,
            create_store,
        } => return create_admin(config, username, password_stdin, create_store),
        AdminAction::List => Request::List,
        AdminAction::Disable { username } => Request::Act {
            username,
            action: AccountAction::Disable,
        },
        AdminAction::Enable { username } => Request::Act {
            username,
            action: AccountAction::Enable,
        },
        AdminAction::Remove { username } => Request::Act {
            username,
            action: AccountAction::Remove,
        },
        AdminAction::ResetPassword { username } => Request::Act {
            username,
            action: AccountAction::ResetPassword,
        },
        AdminAction::ResetTotp { username } => Request::Act {
            username,
            action: AccountAction::ResetTotp,
        },
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let lines = runtime
        .block_on(proxyfleet::admin::command::run(&config, request))
        .map_err(|e| e.to_string())?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn create_admin(
    config: Config,
    username: String,
    password_stdin: bool,
    create_store: bool,
) -> Result<(), String> {
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        (line.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (proxyfleet::admin::accounts::generate_password(), true)
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let store = open_offline(
            &config,
            "create the account with POST /admin/api/accounts and the admin token",
            create_store,
        )?;
        let account = proxyfleet::admin::accounts::create(
            &store,
            &username,
            &password,
            proxyfleet::clock::now_ms(),
        )
        .map_err(|e| e.to_string())?;
        store.flush_now().map_err(|e| e.to_string())?;
        println!("created admin account {:?}", account.username);
        if generated {
            println!("password (shown once, only its argon2 hash is stored): {password}");
        }
        Ok(())
    })
}

fn backup(config_file: Option<PathBuf>, out: PathBuf) -> Result<(), String> {
    let config = Config::load(config_file.as_deref()).map_err(|e| format!("configuration: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let written = runtime
        .block_on(proxyfleet::backup::command::backup(&config, &out))
        .map_err(|e| e.to_string())?;
    println!(
        "backup written: {} ({} records, {} bytes)",
        written.path.display(),
        written.records,
        written.bytes
    );
    Ok(())
}

fn restore(file: PathBuf, data_dir: PathBuf, identity: Option<PathBuf>) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let header = runtime
        .block_on(async { proxyfleet::backup::restore(&file, &data_dir, identity.as_deref()) })
        .map_err(|e| e.to_string())?;
    println!(
        "restored {} records (data format {}, written by {}) into {}",
        header.records,
        header.data_format,
        header.written_by,
        data_dir.display()
    );
    Ok(())
}

fn rebuild(
    url: &str,
    prefix: &str,
    secrets_key: Option<PathBuf>,
    data_dir: PathBuf,
) -> Result<(), String> {
    let sealing = secrets_key
        .as_deref()
        .map(proxyfleet::mirror::sealing::Sealing::from_file)
        .transpose()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let rebuilt = runtime
        .block_on(proxyfleet::mirror::rebuild::from_redis(
            url,
            prefix,
            sealing.as_ref(),
            &data_dir,
        ))
        .map_err(|e| e.to_string())?;
    println!(
        "rebuilt {} records and {} proxies from the mirror at seq {} into {}",
        rebuilt.records,
        rebuilt.proxies,
        rebuilt.seq,
        data_dir.display()
    );
    Ok(())
}

/// Opens the store for a command that runs beside no server (sled allows one process); the
/// error says what to do instead while the server runs. It names the directory it opens, and a
/// directory without a store is refused unless `create` (a command run with the wrong
/// directory would otherwise make an empty store there and report on it).
fn open_offline(
    config: &Config,
    instead: &str,
    create: bool,
) -> Result<proxyfleet::store::Store, String> {
    let dir = if create {
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone())
    } else {
        proxyfleet::admin::command::existing_store(config).map_err(|e| e.to_string())?
    };
    eprintln!("data directory: {}", dir.display());
    let store = proxyfleet::store::Store::open(&dir).map_err(|e| {
        format!(
            "opening {}: {e} (is the server running? stop it, or {instead})",
            dir.display()
        )
    })?;
    // A store made here is of the current data format: stamped before anything is written,
    // so the server's first start does not take it for an old one to migrate.
    use proxyfleet::store::format;
    if format::read(&store).map_err(|e| e.to_string())?.is_none() {
        format::write(&store, format::DATA_FORMAT).map_err(|e| e.to_string())?;
    }
    Ok(store)
}

fn acknowledge_tokens(config_file: Option<PathBuf>) -> Result<(), String> {
    let config = Config::load(config_file.as_deref()).map_err(|e| format!("configuration: {e}"))?;
    let dir = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    eprintln!("data directory: {}", dir.display());
    let had = proxyfleet::app::acknowledge_tokens(&dir).map_err(|e| e.to_string())?;
    if had {
        println!("acknowledged: the generated tokens are no longer printed at start");
    } else {
        println!("no generated tokens were waiting to be acknowledged");
    }
    Ok(())
}

fn check(config_file: Option<PathBuf>) -> Result<(), String> {
    let config = Config::load(config_file.as_deref()).map_err(|e| format!("configuration: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let store = open_offline(&config, "use GET /api/v1/admin/check", false)?;
        let problems =
            proxyfleet::admin::check::store_invariants(&store).map_err(|e| e.to_string())?;
        if problems.is_empty() {
            println!("ok: the link indexes and the task queue are consistent");
            return Ok(());
        }
        for problem in &problems {
            println!("{problem}");
        }
        Err(format!("{} problem(s) found", problems.len()))
    })
}

fn serve(config: Config) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let app = Application::build(config)
            .await
            .map_err(|e| e.to_string())?;
        for (label, token) in app.new_tokens() {
            println!(
                "generated {label} token (only its hash is stored; printed at each start until \
                 `proxyfleet tokens --ack`): {token}"
            );
        }
        println!("proxyfleet listening on http://{}", app.address());
        let mut panel = format!("http://{}/admin/", app.address());
        if let Some(https) = app.https() {
            let kind = if https.self_signed {
                "self-signed certificate"
            } else {
                "certificate"
            };
            println!(
                "proxyfleet listening on https://{} ({kind}, SHA-256 fingerprint {})",
                https.address, https.fingerprint
            );
            panel = format!("https://{}/admin/", https.address);
        }
        if let Some(token) = app.setup_token() {
            println!(
                "no admin account yet: open {panel}setup?token={token} to make the first one \
                 (valid until an account exists; or `proxyfleet admin create` on this machine)"
            );
        }
        // Last of the start-up lines: scripts (and the tests) read up to it.
        println!("admin panel: {panel}");
        let shutdown = app.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.trigger();
        });
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
