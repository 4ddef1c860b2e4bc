//! Capacity hints: room reserved ahead of a bulk load or a replay.
//!
//! Growing a namespace's hash table rehashes every entry into fresh memory; across a load of a
//! million keys that was a fifth of the time. A caller that knows how many keys are coming says
//! so, and the table is sized once. Hints change no state: replies, log records and snapshots
//! are the same with or without them.

use compact_str::CompactString;

use super::Engine;
use crate::keyspace::Keyspace;

/// More room than this is never reserved from a hint, whatever the caller says.
const MAX_RESERVE: usize = 1 << 26;

/// Room for the next namespace created: a named one, or whichever comes first.
#[derive(Debug)]
pub(super) struct Reservation {
    namespace: Option<CompactString>,
    additional: usize,
}

/// Applies a pending reservation meant for `ns` (or for whichever namespace is written first)
/// to its keyspace, before the write that triggered it lands there.
pub(super) fn apply(reserve: &mut Option<Reservation>, ns: &str, keyspace: &mut Keyspace) {
    let matches = reserve
        .as_ref()
        .is_some_and(|r| r.namespace.as_deref().is_none_or(|n| n == ns));
    if matches && let Some(r) = reserve.take() {
        keyspace.reserve(r.additional);
    }
}

impl Engine {
    /// Room for `additional` more keys in `namespace` (in the namespace written next when
    /// `None`, as a replay does before it knows the names), so that a bulk load or a replay
    /// sizes its hash table once instead of growing it step by step. A hint only: it changes no
    /// reply, record or snapshot. At most 2^26 keys are reserved; give back what a generous
    /// hint left unused with [`Engine::shrink_to_fit`].
    pub fn reserve(&mut self, namespace: Option<&str>, additional: usize) {
        let additional = additional.min(MAX_RESERVE);
        match namespace.and_then(|ns| self.namespaces.get_mut(ns)) {
            Some(keyspace) => keyspace.reserve(additional),
            None => {
                self.reserve_next = Some(Reservation {
                    namespace: namespace.map(CompactString::from),
                    additional,
                });
            }
        }
    }

    /// [`Engine::reserve`] in the namespace of `key`; nothing when `key` is not valid.
    pub fn reserve_for_key(&mut self, key: &str, additional: usize) {
        if let Ok(key) = self.config.keys.parse(key) {
            let namespace = CompactString::from(key.namespace.as_ref());
            self.reserve(Some(&namespace), additional);
        }
    }

    /// Gives back hash-table room far beyond what each namespace holds, and drops a
    /// reservation that no namespace used.
    pub fn shrink_to_fit(&mut self) {
        self.reserve_next = None;
        for keyspace in self.namespaces.values_mut() {
            keyspace.shrink_if_sparse();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, EngineConfig, Timestamp, Value};

    /// The same writes through an engine with and without hints: every reply, log record and
    /// snapshot agrees, and a reservation for a namespace never written is dropped.
    #[test]
    fn hints_change_no_output() {
        let run = |hint: &dyn Fn(&mut Engine)| {
            let mut engine = Engine::new(EngineConfig::default()).unwrap();
            engine.set_capture_log(true);
            hint(&mut engine);
            let mut out = Vec::new();
            for i in 0..3000u32 {
                let now = Timestamp::from_millis(u64::from(i));
                // Out of order and in order, two namespaces, overwrites and deletes.
                let key = format!(
                    "{}:k.{:05}",
                    ["a", "b"][(i % 2) as usize],
                    (i * 7919) % 2000
                );
                let reply = if i % 5 == 4 {
                    engine.delete(now, &key).unwrap().revision
                } else {
                    engine
                        .put(now, &key, &Value::from(i64::from(i)))
                        .unwrap()
                        .revision
                };
                out.push(reply);
            }
            engine.shrink_to_fit();
            let log: Vec<Vec<u8>> = std::iter::from_fn(|| engine.poll_log())
                .map(|r| r.encode().unwrap())
                .collect();
            (out, log, engine.snapshot().unwrap(), engine.len())
        };
        let plain = run(&|_| {});
        assert!(plain.3 > 1000, "the workload leaves keys behind");
        assert_eq!(run(&|e| e.reserve(Some("a"), 5000)), plain);
        assert_eq!(run(&|e| e.reserve(None, 100_000)), plain);
        assert_eq!(run(&|e| e.reserve(Some("never"), 10)), plain);
        assert_eq!(run(&|e| e.reserve_for_key("b:x", 1 << 30)), plain);
        assert_eq!(run(&|e| e.reserve_for_key("not a key", 10)), plain);
    }

    #[test]
    fn peeked_op_counts_match_decoded_records() {
        let mut engine = Engine::new(EngineConfig::default()).unwrap();
        engine.set_capture_log(true);
        let now = Timestamp::from_millis(1);
        let items: Vec<(String, Value)> = (0..300)
            .map(|i| (format!("n:k{i}"), Value::from(i)))
            .collect();
        engine.multi_put(now, &items).unwrap();
        engine.put(now, "n:one", &Value::from("x")).unwrap();
        engine.delete(now, "n:k1").unwrap();
        let mut seen = 0;
        while let Some(record) = engine.poll_log() {
            let bytes = record.encode().unwrap();
            assert_eq!(
                crate::LogRecord::peek_op_count(&bytes),
                Some(record.ops.len())
            );
            seen += 1;
        }
        assert_eq!(seen, 3);
        assert_eq!(crate::LogRecord::peek_op_count(&[]), None);
        assert_eq!(crate::LogRecord::peek_op_count(&[9, 1, 1, 1]), None);
        assert_eq!(crate::LogRecord::peek_op_count(&[1, 0xff]), None);
    }
}
