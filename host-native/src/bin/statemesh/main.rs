//! `statemesh`: the server and the operator's tools.
//!
//! `statemesh serve` runs a durable store behind the JSON-lines port (and optionally the
//! Redis-compatible port). The other commands work on a data directory directly (when no
//! server holds it) or on a running server (`--server HOST:PORT`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backend;
mod exit;
mod load;
mod ops;
mod serve;
mod transfer;

/// mimalloc rather than the system allocator: on the write path, log records are built by the
/// writers and freed by the committer thread, and the history frees what other threads
/// allocated; glibc's malloc spent a fifth of the server's CPU there
/// (docs/resp-performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An embeddable state store for sessions, conversation history and agent memory.
#[derive(Debug, Parser)]
#[command(name = "statemesh", version, about, propagate_version = true)]
struct Cli {
    /// Log filter (tracing's EnvFilter syntax, e.g. `info`, `statemesh=debug`); also from
    /// RUST_LOG.
    #[arg(long, global = true, env = "STATEMESH_LOG", default_value = "info")]
    log: String,
    /// Threads that run connections and commands. Default: one less than the CPUs (at least
    /// one), leaving a CPU to the log's committer thread; on two CPUs this made pipelined
    /// writes 15% faster than two threads fighting over the store's lock
    /// (docs/resp-performance.md).
    #[arg(long, global = true, env = "STATEMESH_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

/// Where an operator command runs: on a data directory, or on a running server.
#[derive(Debug, Clone, clap::Args)]
struct Target {
    /// Data directory to open directly (fails if a running server holds it: use --server).
    #[arg(long, default_value = serve::DEFAULT_DATA_DIR, conflicts_with = "server")]
    data_dir: PathBuf,
    /// A running server's JSON-lines address, e.g. 127.0.0.1:9000.
    #[arg(long)]
    server: Option<String>,
    /// Auth token for a server that requires one.
    #[arg(long, env = "STATEMESH_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: a durable store on a data directory behind a JSON-lines TCP port.
    Serve(serve::ServeArgs),
    /// Print a key's value.
    Get(ops::GetArgs),
    /// Write a key.
    Set(ops::SetArgs),
    /// Delete keys.
    Del(ops::DelArgs),
    /// List the keys matching a glob pattern.
    Keys(ops::KeysArgs),
    /// List keys and values under a prefix, in key order.
    Scan(ops::ScanArgs),
    /// Print a key's remaining time to live in milliseconds.
    Ttl(ops::TtlArgs),
    /// Load JSON lines ({"key": ..., "value": ...}) from a file or stdin.
    Import(ops::ImportArgs),
    /// Write keys matching a pattern as JSON lines to a file or stdout.
    Export(ops::ExportArgs),
    /// Write a snapshot now, so recovery replays less log.
    Snapshot(ops::TargetOnly),
    /// Write a snapshot and drop the log it covers (same as snapshot; kept for operators used
    /// to the word).
    Compact(ops::TargetOnly),
    /// Print store statistics.
    Stats(ops::TargetOnly),
    /// A write/read load generator: prints ops/s and latency percentiles.
    Bench(ops::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let workers = cli.worker_threads.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1)
        },
        usize::from,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("statemesh: cannot start the async runtime: {e}");
            return exit::software();
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Get(args) => ops::get(args).await,
            Command::Set(args) => ops::set(args).await,
            Command::Del(args) => ops::del(args).await,
            Command::Keys(args) => ops::keys(args).await,
            Command::Scan(args) => ops::scan(args).await,
            Command::Ttl(args) => ops::ttl(args).await,
            Command::Import(args) => ops::import(args).await,
            Command::Export(args) => ops::export(args).await,
            Command::Snapshot(args) | Command::Compact(args) => ops::snapshot(args).await,
            Command::Stats(args) => ops::stats(args).await,
            Command::Bench(args) => ops::bench(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("statemesh: {}", exit::describe(&e));
            exit::code_for(&e)
        }
    }
}

fn init_tracing(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Logs go to stderr so that stdout carries only command output (pipes stay clean).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap's own consistency checks: every conflict and requirement names a real argument,
    /// no two arguments share a name or a short flag.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--help` explains every command and every argument it lists.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    let id = arg.get_id();
                    missing.push(if arg.is_positional() {
                        format!("{path} <{id}>")
                    } else {
                        format!("{path} --{id}")
                    });
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "statemesh", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }
}
