//! The operator commands: get, set, del, keys, scan, ttl, import, export, snapshot, stats, bench.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use statemesh::Value;

use crate::Target;
use crate::backend::{Access, Backend};
use crate::exit;

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
    /// The key, e.g. `sessions:user.42.cart`.
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
    /// The keys to delete (one or more).
    #[arg(required = true)]
    pub(crate) keys: Vec<String>,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    /// A glob pattern (`*` one segment, `**` any number, `?`, `[abc]`, `{a,b}`; a pattern
    /// without a namespace is in the default one). Default: every key in every namespace.
    pub(crate) pattern: Option<String>,
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
    /// The key, e.g. `sessions:user.42.cart`.
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
    /// Keys to export (a glob pattern, e.g. `sessions:**`); default: every key in every
    /// namespace.
    pub(crate) pattern: Option<String>,
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
    /// Data directory to load (keys `bench:key.*` are written into it). Default: a fresh
    /// temporary directory, removed afterwards.
    #[arg(long, conflicts_with = "server")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A running server to load instead (keys `bench:key.*` are written on it).
    #[arg(long)]
    pub(crate) server: Option<String>,
    /// Auth token for a server that requires one.
    #[arg(long, env = "STATEMESH_AUTH_TOKEN", hide_env_values = true)]
    pub(crate) auth_token: Option<String>,
}

pub(crate) async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, Access::Read).await?;
    let value = backend.get(&args.key).await;
    backend.close().await?;
    let Some(value) = value? else {
        return Ok(exit::not_found());
    };
    let mut out = std::io::stdout().lock();
    write_value(&mut out, &value)?;
    out.write_all(b"\n")?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let value = if args.json {
        let json: serde_json::Value = serde_json::from_str(&args.value)
            .map_err(|e| anyhow::anyhow!("--json: the value is not JSON: {e}"))?;
        json_to_value(json)
    } else {
        Value::String(args.value)
    };
    let backend = Backend::open(&args.target, Access::Write).await?;
    let written = backend.put(&args.key, value, args.ttl_ms).await;
    backend.close().await?;
    let written = written?;
    writeln!(
        std::io::stdout(),
        "version {} revision {}",
        written.version,
        written.revision
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn del(args: DelArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, Access::Read).await?;
    let mut deleted = 0u64;
    let mut failure = None;
    for key in &args.keys {
        match backend.delete(key).await {
            Ok(w) => deleted += w.affected,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    backend.close().await?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    writeln!(std::io::stdout(), "{deleted}")?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, Access::Read).await?;
    let keys = list_keys(&backend, args.pattern.as_deref()).await;
    backend.close().await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for key in keys? {
        writeln!(out, "{key}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The keys matching `pattern`, or every key of every namespace, namespace by namespace.
async fn list_keys(backend: &Backend, pattern: Option<&str>) -> statemesh::Result<Vec<String>> {
    let mut keys = Vec::new();
    for pattern in backend.patterns_or_every_key(pattern).await? {
        keys.extend(backend.keys(&pattern).await?);
    }
    Ok(keys)
}

pub(crate) async fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, Access::Read).await?;
    let page = backend.scan(&args.prefix, args.limit.max(1), None).await;
    backend.close().await?;
    let page = page?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (key, value) in &page.items {
        write!(out, "{key}\t")?;
        write_value(&mut out, value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if page.next.is_some() {
        eprintln!("(more keys follow; raise --limit to see them)");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn ttl(args: TtlArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, Access::Read).await?;
    let ttl = backend.get_ttl(&args.key).await;
    backend.close().await?;
    let Some(ttl) = ttl? else {
        return Ok(exit::not_found());
    };
    let mut out = std::io::stdout().lock();
    match ttl {
        statemesh::Ttl::Expires { remaining_ms, .. } => writeln!(out, "{remaining_ms}")?,
        _ => writeln!(out, "none")?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn snapshot(args: TargetOnly) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, Access::Read).await?;
    let done = backend.checkpoint().await;
    let stats = backend.stats().await;
    backend.close().await?;
    done?;
    let stats = stats?;
    writeln!(
        std::io::stdout(),
        "snapshot written at revision {} ({} keys)",
        stats.revision,
        stats.keys
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn stats(args: TargetOnly) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, Access::Read).await?;
    let stats = backend.stats().await;
    backend.close().await?;
    let stats = stats?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "keys {}", stats.keys)?;
    writeln!(out, "revision {}", stats.revision)?;
    writeln!(out, "history_floor {}", stats.history_floor)?;
    writeln!(out, "open_transactions {}", stats.open_transactions)?;
    writeln!(
        out,
        "index_build_ms {:.3}",
        stats.index_build_time.as_secs_f64() * 1000.0
    )?;
    for repair in &stats.repairs {
        writeln!(out, "repair {repair}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    crate::transfer::import(args).await
}

pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    crate::transfer::export(args).await
}

pub(crate) async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    crate::load::run(args).await
}

/// A value as `get` and `scan` print it: text as is, numbers and booleans as text, JSON as
/// compact JSON, bytes (and the byte payloads of other kinds) raw.
fn write_value(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    match value {
        Value::String(s) => out.write_all(s.as_bytes()),
        Value::Integer(i) => write!(out, "{i}"),
        Value::Float(f) => write!(out, "{f}"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Json(j) => serde_json::to_writer(&mut *out, j).map_err(std::io::Error::other),
        Value::Bytes(b) => out.write_all(b),
        Value::Document { data, .. }
        | Value::Serialized { data, .. }
        | Value::Custom { data, .. } => out.write_all(data),
        _ => out.write_all(b"<a value of a kind this tool cannot print>"),
    }
}

/// `set --json`: JSON scalars become the store's scalar kinds; arrays and objects documents.
fn json_to_value(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, Some(f)) => Value::Float(f),
            (None, None) => Value::Json(serde_json::Value::Number(n)),
        },
        other => Value::Json(other),
    }
}
