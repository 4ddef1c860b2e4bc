//! The README's main job until the server lands: open a store and use every kind of operation.
//!
//! `cargo run --release -p statemesh --example quickstart`

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use statemesh::{ChangeKind, PutOptions, Store, Value};

#[tokio::main(flavor = "current_thread")]
#[allow(clippy::print_stdout)]
async fn main() -> Result<()> {
    let store = Store::builder().open_in_memory().await?;
    let mut feed = store.subscribe()?;

    // Conversation history under one namespace, one key per message.
    for (i, text) in ["hello", "what is statemesh?", "an embeddable state store"]
        .iter()
        .enumerate()
    {
        let msg = serde_json::json!({ "role": if i % 2 == 0 { "user" } else { "assistant" }, "text": text });
        store
            .put(&format!("chat:conv.42.msg.{i:04}"), Value::Json(msg))
            .await?;
    }
    let history = store.get_pattern("chat:conv.42.msg.*").await?;
    println!("conversation 42 has {} messages", history.len());

    // Sessions with a TTL, and optimistic concurrency on a cart.
    store
        .put_with_ttl("sessions:user.7.token", "opaque-token", 200)
        .await?;
    let created = store
        .put_if_version("sessions:user.7.cart", Value::from("1 item"), 0)
        .await?;
    let updated = store
        .put_if_version(
            "sessions:user.7.cart",
            Value::from("2 items"),
            created.version,
        )
        .await?;
    println!(
        "cart at version {} (revision {}, {:?})",
        updated.version, updated.revision, updated.latency
    );
    let stale = store
        .put_if_version(
            "sessions:user.7.cart",
            Value::from("stale"),
            created.version,
        )
        .await;
    println!(
        "stale write refused: {}",
        stale.err().context("expected a conflict")?
    );

    // Agent memory with user metadata.
    let meta = serde_json::from_str(r#"{"source":"quickstart","confidence":0.9}"#)?;
    store
        .put_with(
            "memory:agent.7.fact.1",
            "prefers dark mode",
            &PutOptions::default().metadata(meta),
        )
        .await?;
    let record = store
        .get_record("memory:agent.7.fact.1")
        .await?
        .context("fact exists")?;
    println!(
        "fact v{} metadata {}",
        record.meta.version,
        serde_json::Value::Object(record.meta.user)
    );

    // Counters, scans in pages.
    let (visits, _) = store.increment("stats:visits", 1).await?;
    let page = store.scan("chat:conv.42.", 2, None).await?;
    println!(
        "visits {visits}; first page {:?}, more: {}",
        page.items.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        page.next.is_some()
    );

    // The expiry timer removes the session token and reports its old value.
    let expired = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = feed.recv().await?;
            if event.kind == ChangeKind::Expire {
                return Ok::<_, anyhow::Error>(event);
            }
        }
    })
    .await
    .context("the token should expire within 5 s")??;
    ensure!(store.get("sessions:user.7.token").await?.is_none());
    println!(
        "expired {} (was {:?}) at revision {}",
        expired.key,
        expired.old.map(|v| v.decode()),
        expired.revision
    );
    println!(
        "store holds {} keys at revision {}",
        store.len(),
        store.revision()
    );
    Ok(())
}
