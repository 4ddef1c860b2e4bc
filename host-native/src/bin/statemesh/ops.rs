//! The operator commands: get, set, del, keys, scan, ttl, import, export, snapshot, stats, bench.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::Target;

#[derive(Debug, clap::Args)]
pub(crate) struct TargetOnly {
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// The key, e.g. `sessions:user.42.cart`.
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SetArgs {
    pub(crate) key: String,
    /// The value: stored as a string unless --json is given.
    pub(crate) value: String,
    /// Parse the value as JSON (numbers become integers or floats, objects JSON documents).
    #[arg(long)]
    pub(crate) json: bool,
    /// Expire the key after this many milliseconds.
    #[arg(long)]
    pub(crate) ttl_ms: Option<u64>,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DelArgs {
    #[arg(required = true)]
    pub(crate) keys: Vec<String>,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    /// A glob pattern: `*` one segment, `**` any number, `?`, `[abc]`, `{a,b}`.
    #[arg(default_value = "**")]
    pub(crate) pattern: String,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ScanArgs {
    /// Key prefix, e.g. `sessions:user.` (empty: the default namespace).
    pub(crate) prefix: String,
    /// Most entries to print.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TtlArgs {
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// JSON-lines file to read (`-` for stdin).
    #[arg(default_value = "-")]
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Keys to export (a glob pattern).
    #[arg(default_value = "**")]
    pub(crate) pattern: String,
    /// File to write (default stdout).
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Operations in total.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) ops: u64,
    /// Concurrent clients (tasks).
    #[arg(long, default_value_t = 8)]
    pub(crate) clients: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub(crate) value_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) keyspace: u64,
    /// Share of operations that are reads, in percent.
    #[arg(long, default_value_t = 50)]
    pub(crate) read_percent: u8,
    #[command(flatten)]
    pub(crate) target: Target,
}

fn later() -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}

pub(crate) async fn get(_args: GetArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn set(_args: SetArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn del(_args: DelArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn keys(_args: KeysArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn scan(_args: ScanArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn ttl(_args: TtlArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn import(_args: ImportArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn export(_args: ExportArgs) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn snapshot(_args: TargetOnly) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn stats(_args: TargetOnly) -> anyhow::Result<ExitCode> {
    later()
}
pub(crate) async fn bench(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    later()
}
