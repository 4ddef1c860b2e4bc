//! The history operations of [`Client`]: patches, reads at a revision, a key's versions and
//! compaction, as [`crate::Store`] has them.

use serde_json::Value as Json;
use statemesh_core::{KeyVersion, Patch, Timestamp, ValueAt, WriteResult};

use super::{Client, args, decode};
use crate::error::{Error, Result};
use crate::server::jsonl::wire;

fn protocol(what: &str) -> Error {
    Error::Protocol(format!("the server's reply has no valid {what}"))
}

impl Client {
    /// Applies a JSON merge patch (RFC 7386) or JSON patch (RFC 6902) to `key`'s JSON value.
    pub async fn patch(&self, key: &str, patch: &Patch) -> Result<WriteResult> {
        let field = if patch.is_merge() { "merge" } else { "ops" };
        let reply = self
            .call(
                "patch",
                args([("key", key.into()), (field, patch.to_json())]),
            )
            .await?;
        decode::write_result(&reply)
    }

    /// The value `key` held at `revision`, with its version; `None` when it did not exist.
    pub async fn get_at(&self, key: &str, revision: u64) -> Result<Option<ValueAt>> {
        let mut reply = self
            .call(
                "get_at",
                args([("key", key.into()), ("revision", revision.into())]),
            )
            .await?;
        if reply.is_null() {
            return Ok(None);
        }
        let version = decode::u64_field(&reply, "version")?;
        let mod_revision = decode::u64_field(&reply, "mod_revision")?;
        let value = decode::value(reply.get_mut("value").map(Json::take).unwrap_or(Json::Null))?;
        Ok(Some(ValueAt::new(value, version, mod_revision)))
    }

    /// The kept versions of `key`, oldest first.
    pub async fn key_history(&self, key: &str) -> Result<Vec<KeyVersion>> {
        let reply = self
            .call("key_history", args([("key", key.into())]))
            .await?;
        let Json::Array(items) = reply else {
            return Err(protocol("list of versions"));
        };
        items
            .into_iter()
            .map(|mut item| {
                let kind = item
                    .get("kind")
                    .and_then(Json::as_str)
                    .and_then(wire::change_kind_from_name)
                    .ok_or_else(|| protocol("change kind"))?;
                let value = match item.get_mut("value").map(Json::take) {
                    None | Some(Json::Null) => None,
                    Some(v) => Some(decode::value(v)?),
                };
                Ok(KeyVersion::new(
                    decode::u64_field(&item, "revision")?,
                    Timestamp::from_millis(decode::u64_field(&item, "at")?),
                    kind,
                    decode::u64_field(&item, "version")?,
                    value,
                ))
            })
            .collect()
    }

    /// Drops the history up to and including `revision`.
    pub async fn compact(&self, revision: u64) -> Result<()> {
        self.call("compact", args([("revision", revision.into())]))
            .await?;
        Ok(())
    }
}
