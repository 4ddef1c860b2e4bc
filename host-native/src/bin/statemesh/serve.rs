//! `statemesh serve`: the main job.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use statemesh::server::{Server, ServerConfig};
use statemesh::{Durability, Store, SyncPolicy};

/// Where `serve` and the operator commands keep data unless told otherwise.
pub(crate) const DEFAULT_DATA_DIR: &str = "./statemesh-data";

/// The fsync period of `--mode ap` unless `--fsync` says otherwise.
const AP_FSYNC_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Acknowledge a write only once it is on disk (fsync); reads never see a write a crash
    /// could take back.
    Cp,
    /// Acknowledge at once and persist in the background; a crash may lose the latest writes.
    Ap,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Anything but loopback needs --auth-token.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// JSON-lines port (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Also open the Redis-compatible (RESP2) port.
    #[arg(long)]
    resp_port: Option<u16>,
    /// Data directory (created if missing; locked while the server runs).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Keep everything in memory only (nothing survives a restart).
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// When writes are acknowledged.
    #[arg(long, value_enum, default_value_t = Mode::Cp)]
    mode: Mode,
    /// When the log is fsynced: `always` (every group of writes, before CP acknowledges it),
    /// a period in milliseconds (like Redis's `appendfsync everysec` with `1000`: a machine
    /// crash may lose up to about that much acknowledged data), or `never` (only snapshots and
    /// shutdown). [default: `always` with --mode cp, `1000` with --mode ap]
    #[arg(long, value_parser = parse_fsync)]
    fsync: Option<SyncPolicy>,
    /// Write a snapshot (and drop the log it covers) after this many log records; fewer means
    /// faster restarts and more snapshot writing.
    #[arg(long, default_value_t = 100_000)]
    checkpoint_every: u64,
    /// Evict least recently used keys beyond this many (caches; meant for --mode ap).
    #[arg(long)]
    max_entries: Option<u64>,
    /// Evict least recently used keys beyond this many bytes of keys and values.
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Changes kept in memory for reads at earlier revisions, key histories and subscriptions
    /// that start in the past, and up to a sixteenth more (the oldest go in blocks); 0 keeps
    /// none. Each holds its key and its old and new values.
    #[arg(long, default_value_t = statemesh::core::EngineConfig::default().history_limit)]
    history_limit: usize,
    /// Token clients must present (JSON-lines `auth`, RESP `AUTH`). Required off loopback.
    #[arg(long, env = "STATEMESH_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Most open connections over both ports.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Largest request in bytes (a JSON line or a RESP command).
    #[arg(long, default_value_t = 32 << 20)]
    max_request_bytes: usize,
    /// Close connections idle for this many seconds (0: never).
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Seconds a shutdown waits for open connections to finish their request.
    #[arg(long, default_value_t = 10)]
    shutdown_grace: u64,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (durability, fsync) = match args.mode {
        Mode::Cp => (Durability::Cp, args.fsync.unwrap_or(SyncPolicy::Always)),
        // Nobody waits for an AP write's fsync, so by default AP syncs as Redis's
        // `appendfsync everysec` does; the log is still written every round (about 1 ms), so a
        // killed process loses no more than before, only a machine crash can.
        Mode::Ap => (
            Durability::Ap,
            args.fsync.unwrap_or(SyncPolicy::EveryMillis(AP_FSYNC_MS)),
        ),
    };
    let config = ServerConfig {
        addr: SocketAddr::new(args.host, args.port),
        resp_addr: args.resp_port.map(|p| SocketAddr::new(args.host, p)),
        auth_token: args.auth_token,
        max_connections: args.max_connections,
        max_request_bytes: args.max_request_bytes,
        idle_timeout: (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    // Refuse bad settings before creating or locking the data directory.
    config.validate()?;
    let builder = Store::builder()
        .durability(durability)
        .sync_policy(fsync)
        .checkpoint_every(args.checkpoint_every)
        .memory_limits(args.max_entries, args.max_bytes)
        .history_limit(args.history_limit);
    let store = if args.in_memory {
        builder.open_in_memory().await?
    } else {
        builder
            .open(&args.data_dir)
            .await
            .with_context(|| format!("opening data directory {}", args.data_dir.display()))?
    };
    for repair in store.recovery_repairs() {
        tracing::warn!(%repair, "storage repaired at open");
    }
    let server = match Server::bind(store.clone(), config).await {
        Ok(server) => server,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let json = server.local_addr()?;
    let resp = server.resp_addr()?;
    tracing::info!(%json, ?resp, keys = store.len(), mode = ?args.mode, ?fsync, "listening");
    // One machine-readable line on stdout, so scripts (and tests using --port 0) learn the ports.
    let mut out = std::io::stdout().lock();
    match resp {
        Some(resp) => writeln!(out, "listening json={json} resp={resp}")?,
        None => writeln!(out, "listening json={json}")?,
    }
    out.flush()?;
    drop(out);
    server.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn parse_fsync(text: &str) -> Result<SyncPolicy, String> {
    match text {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        ms => match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(SyncPolicy::EveryMillis(ms)),
            _ => Err(format!(
                "expected `always`, `never` or a period in milliseconds, not {ms:?}"
            )),
        },
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
