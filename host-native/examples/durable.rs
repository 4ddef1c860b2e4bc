//! A durable store on disk: write, close, reopen, and find everything again.
//!
//! `cargo run --release -p statemesh --example durable -- [DATA_DIR]` (default: a temp dir)

use anyhow::{Context, Result, ensure};
use statemesh::{Store, Value};

#[tokio::main(flavor = "current_thread")]
#[allow(clippy::print_stdout)]
async fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("statemesh-example-{}", std::process::id()))
        });

    // CP by default: each write returns once it is on disk.
    let store = Store::open(&dir)
        .await
        .with_context(|| format!("opening {}", dir.display()))?;
    let start = store.revision();
    for i in 0..1_000i64 {
        store
            .put(
                &format!("history:conv.1.msg.{i:05}"),
                format!("message {i}"),
            )
            .await?;
    }
    store.increment("stats:opens", 1).await?;
    // A second opener is refused while this store holds the directory.
    ensure!(
        Store::open(&dir).await.is_err(),
        "the directory lock must refuse a second opener"
    );
    store.checkpoint().await?; // snapshot + drop the log it covers
    store
        .put("history:conv.1.title", "after the checkpoint")
        .await?;
    store.close().await;

    let reopened = Store::open(&dir).await?;
    ensure!(
        reopened.revision() == start + 1_002,
        "revision after reopen: {}",
        reopened.revision()
    );
    ensure!(reopened.get("history:conv.1.msg.00999").await? == Some(Value::from("message 999")));
    ensure!(
        reopened.get("history:conv.1.title").await? == Some(Value::from("after the checkpoint"))
    );
    let opens = reopened.get("stats:opens").await?;
    println!(
        "{}: {} keys at revision {} (opened {:?} times)",
        dir.display(),
        reopened.len(),
        reopened.revision(),
        opens
    );
    reopened.close().await;
    if std::env::args().nth(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
