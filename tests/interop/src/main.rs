//! `statemesh-interop write DIR` writes a known set of keys natively (log, a checkpoint, more
//! log); `statemesh-interop dump DIR` prints every key of a store as JSON lines in key order.
//! host-wasm's Node tests use both to check that Node and native read each other's directories.

use std::process::ExitCode;

use statemesh::{PutOptions, Store, Value};

fn json_of(value: &Value) -> serde_json::Value {
    match value {
        Value::String(s) => s.clone().into(),
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Bool(b) => (*b).into(),
        Value::Json(j) => j.clone(),
        Value::Bytes(b) => serde_json::json!({ "bytes": b }),
        other => serde_json::json!({ "other": format!("{other:?}") }),
    }
}

async fn write(dir: &str) -> Result<(), statemesh::Error> {
    let store = Store::open(dir).await?;
    store.put("native:greeting", "hello from rust").await?;
    store.put("native:count", Value::Integer(41)).await?;
    store
        .put(
            "native:doc",
            Value::Json(serde_json::json!({"a": [1, 2], "b": null})),
        )
        .await?;
    store.checkpoint().await?;
    store.increment("native:count", 1).await?;
    store
        .put("native:bytes", Value::Bytes(vec![0, 1, 2, 255]))
        .await?;
    let mut meta = serde_json::Map::new();
    meta.insert("owner".into(), "rust".into());
    store
        .put_with(
            "native:meta",
            "m",
            &PutOptions::default().metadata(meta).ttl_ms(3_600_000),
        )
        .await?;
    store.put("native:gone", "x").await?;
    store.delete("native:gone").await?;
    store.close().await;
    Ok(())
}

async fn dump(dir: &str) -> Result<(), statemesh::Error> {
    let store = Store::open(dir).await?;
    let mut out = String::new();
    for (key, value) in store.get_pattern("*:**").await? {
        let meta = store.get_metadata(&key).await?;
        let line = serde_json::json!({
            "key": key,
            "value": json_of(&value),
            "version": meta.as_ref().map(|m| m.version),
            "user": meta.as_ref().map(|m| serde_json::Value::Object(m.user.clone())),
            "ttl": meta.as_ref().map(|m| m.expires_at.is_some()),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.push_str(&serde_json::json!({ "revision": store.revision() }).to_string());
    out.push('\n');
    store.close().await;
    #[allow(clippy::print_stdout)] // the dump is this tool's output
    {
        print!("{out}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cmd), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: statemesh-interop write|dump DIR");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cmd.as_str() {
            "write" => write(dir).await,
            "dump" => dump(dir).await,
            _ => {
                eprintln!("unknown command {cmd}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{cmd} {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
