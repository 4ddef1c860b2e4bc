//! The search operations: index declarations, text, exact-value and vector search.

use serde_json::json;
use statemesh_core::search::{TextIndexDef, ValueIndexDef, VectorIndexDef};

use super::args::{Args, OpError, OpResult};
use super::ops::{Reply, parse_language, parse_metric, reply};
use super::wire;
use crate::Store;

pub(crate) async fn run(store: &Store, op: &str, mut a: Args) -> OpResult<Reply> {
    match op {
        "declare_text_index" => {
            let mut def = TextIndexDef::new(a.str("name")?, a.str("pattern")?)
                .language(parse_language(a.opt_str("language")?)?);
            for field in fields(&a)? {
                def = def.field(field);
            }
            store.declare_text_index(def).await?;
            reply(&true)
        }
        "declare_value_index" => {
            let mut def = ValueIndexDef::new(a.str("name")?, a.str("pattern")?);
            for field in fields(&a)? {
                def = def.field(field);
            }
            store.declare_value_index(def).await?;
            reply(&true)
        }
        "declare_vector_index" => {
            let dimension = a.usize_or("dimension", 0)?;
            if dimension == 0 {
                return Err(OpError::bad_argument("\"dimension\" must be at least 1"));
            }
            let metric = parse_metric(a.opt_str("metric")?.unwrap_or("cosine"))?;
            let mut def = VectorIndexDef::new(a.str("name")?, a.str("pattern")?, dimension, metric);
            if let Some(field) = a.opt_str("field")? {
                def = def.field(field);
            }
            store.declare_vector_index(def).await?;
            reply(&true)
        }
        "drop_index" => reply(&store.drop_index(a.str("name")?)),
        "index_stats" => {
            let stats = store.index_stats(a.str("name")?)?;
            reply(&stats.map(|s| json!({"entries": s.entries, "skipped": s.skipped})))
        }
        "index_origin" => {
            let origin = store.index_origin(a.str("name")?)?;
            reply(&origin.map(|o| {
                json!({
                    "restored_from_image": o.restored_from_image,
                    "backfilled": o.backfilled,
                    "rebuilt_from_image_vectors": o.rebuilt_from_image_vectors,
                })
            }))
        }
        "set_vector_search_effort" => {
            let effort = usize::try_from(a.u64("effort")?).unwrap_or(usize::MAX);
            store.set_vector_search_effort(a.str("index")?, effort)?;
            reply(&true)
        }
        "search_text" => {
            let hits = store
                .search_text(
                    a.str("index")?,
                    a.str("query")?,
                    a.opt_str("filter")?,
                    a.usize_or("limit", 10)?,
                )
                .await?;
            let hits: Vec<_> = hits
                .iter()
                .map(|h| json!({"key": h.key, "score": h.score}))
                .collect();
            reply(&hits)
        }
        "search_by_value" => {
            let value = a.json("value")?;
            let keys = store
                .search_by_value(
                    a.str("index")?,
                    a.opt_str("field")?,
                    &value,
                    a.opt_str("filter")?,
                )
                .await?;
            reply(&keys)
        }
        "add_vector" => {
            let vector = a.floats("vector")?;
            let written = store
                .add_vector(a.str("index")?, a.str("key")?, &vector)
                .await?;
            reply(&wire::write_result(&written))
        }
        "vector_search" => {
            let vector = a.floats("vector")?;
            let hits = store
                .vector_search(
                    a.str("index")?,
                    &vector,
                    a.usize_or("top_k", 10)?,
                    a.opt_str("filter")?,
                )
                .await?;
            let hits: Vec<_> = hits
                .iter()
                .map(|h| json!({"key": h.key, "distance": h.distance}))
                .collect();
            reply(&hits)
        }
        other => Err(OpError::new("UNKNOWN_OP", format!("unknown op {other:?}"))),
    }
}

fn fields(a: &Args) -> OpResult<Vec<&str>> {
    match a.opt_str("field")? {
        Some(one) => Ok(vec![one]),
        None if a.0.contains_key("fields") => a.str_list("fields"),
        None => Ok(Vec::new()),
    }
}
