//! History operations: JSON patches, reads at a revision, a key's versions, compaction.

use serde_json::{Value as Json, json};
use statemesh_core::Patch;

use super::args::{Args, OpError, OpResult};
use super::ops::{Reply, reply};
use super::wire::{self, WireValue};
use crate::Store;

pub(crate) async fn run(store: &Store, op: &str, mut a: Args) -> OpResult<Reply> {
    match op {
        "patch" => {
            // One of the two RFCs: a merge patch (7386) or a list of operations (6902).
            let patch = match (a.0.remove("merge"), a.0.remove("ops")) {
                (Some(merge), None) => Patch::merge(merge),
                (None, Some(ops)) => Patch::json(ops)?,
                _ => {
                    return Err(OpError::bad_argument(
                        "patch takes exactly one of \"merge\" (RFC 7386) or \"ops\" (RFC 6902)",
                    ));
                }
            };
            let written = store.patch(a.str("key")?, &patch).await?;
            reply(&wire::write_result(&written))
        }
        "get_at" => {
            let found = store.get_at(a.str("key")?, a.u64("revision")?).await?;
            reply(&found.map(|at| {
                json!({
                    "value": to_json(&at.value),
                    "version": at.version,
                    "mod_revision": at.mod_revision,
                })
            }))
        }
        "key_history" => {
            let versions = store.key_history(a.str("key")?).await?;
            let versions: Vec<Json> = versions
                .iter()
                .map(|v| {
                    json!({
                        "revision": v.revision,
                        "at": v.at.as_millis(),
                        "kind": wire::change_kind_name(v.kind),
                        "version": v.version,
                        "value": v.value.as_ref().map(to_json),
                    })
                })
                .collect();
            reply(&versions)
        }
        "compact" => {
            store.compact(a.u64("revision")?).await?;
            reply(&true)
        }
        other => Err(OpError::new("UNKNOWN_OP", format!("unknown op {other:?}"))),
    }
}

fn to_json(value: &statemesh_core::Value) -> Json {
    serde_json::to_value(WireValue(value)).unwrap_or(Json::Null)
}
