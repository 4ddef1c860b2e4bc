//! How Redis key names map to store keys, and the commands that list keys (KEYS, SCAN).
//!
//! A Redis key is taken as the store's written form: `user:42` is namespace `user`, path `42`;
//! a key without `:` lives in the namespace `default`. Listing reverses that: keys of the
//! `default` namespace come back without the `default:` prefix (unless their path holds a `:`,
//! which would read back as another namespace), every other key as `namespace:path`.
//!
//! Redis patterns (`*` crosses every separator) differ from the store's (`*` stays inside one
//! path segment), so listing walks the store's keys (only one namespace when the pattern's
//! literal start names one) and matches the Redis pattern against each key's Redis name.

use std::collections::{HashMap, VecDeque};

use statemesh_core::key::{DEFAULT_NAMESPACE, split_namespace};
use statemesh_core::{Cursor, Engine, Timestamp};

use super::data::engine_error;
use super::num::parse_i64;
use super::table::Args;
use super::{Shared, glob, reply};

/// The name a store key (`namespace:path`) has on the Redis port.
pub(super) fn redis_name(store_key: &str) -> &str {
    match store_key.split_once(':') {
        Some((DEFAULT_NAMESPACE, path)) if !path.contains(':') => path,
        _ => store_key,
    }
}

/// The store pattern whose matches include every key the Redis pattern can match: the one
/// namespace the pattern starts with, or all of them.
fn candidates(pattern: &[u8]) -> String {
    match only_namespace(pattern) {
        Some(ns) => format!("{ns}:**"),
        None => "*:**".to_owned(),
    }
}

/// The one namespace every match of the Redis pattern lies in, when its literal start names
/// one (other than `default`, whose keys are listed without their prefix).
fn only_namespace(pattern: &[u8]) -> Option<&str> {
    let prefix = glob::literal_prefix(pattern);
    if let Some(colon) = prefix.iter().position(|&b| b == b':') {
        let ns = &prefix[..colon];
        let plain = !ns.is_empty()
            && ns.len() <= statemesh_core::key::MAX_NAMESPACE_LEN
            && ns
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if plain && ns != DEFAULT_NAMESPACE.as_bytes() {
            return std::str::from_utf8(ns).ok();
        }
    }
    None
}

/// KEYS pattern
pub(super) fn keys(e: &Engine, now: Timestamp, pattern: &[u8], out: &mut Vec<u8>) {
    let all = match e.keys(now, &candidates(pattern)) {
        Ok(all) => all,
        Err(err) => return engine_error(out, &err),
    };
    let found: Vec<&str> = all
        .iter()
        .map(|k| redis_name(k))
        .filter(|name| glob::matches(pattern, name.as_bytes()))
        .collect();
    reply::array(out, found.len());
    for name in found {
        reply::bulk(out, name.as_bytes());
    }
}

/// Where a SCAN stopped: the namespace, and the last path returned in it (`None`: the
/// namespace's start).
#[derive(Debug, Clone)]
struct Position {
    namespace: String,
    after: Option<String>,
}

/// SCAN's numeric cursors, shared by every connection (client libraries may send the next SCAN
/// over another pooled connection). Bounded: the oldest cursors are forgotten first, and a
/// forgotten cursor gets `ERR invalid cursor`.
#[derive(Debug, Default)]
pub(super) struct Cursors {
    next: u64,
    positions: HashMap<u64, Position>,
    order: VecDeque<u64>,
}

const MAX_CURSORS: usize = 4096;

impl Cursors {
    fn save(&mut self, position: Position) -> u64 {
        self.next = self.next.wrapping_add(1).max(1);
        let id = self.next;
        if self.order.len() >= MAX_CURSORS
            && let Some(old) = self.order.pop_front()
        {
            self.positions.remove(&old);
        }
        self.positions.insert(id, position);
        self.order.push_back(id);
        id
    }

    fn get(&self, id: u64) -> Option<Position> {
        self.positions.get(&id).cloned()
    }
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
pub(super) fn scan(e: &Engine, now: Timestamp, args: Args<'_>, out: &mut Vec<u8>, shared: &Shared) {
    let cursor = std::str::from_utf8(args.get(1))
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let Some(cursor) = cursor else {
        return reply::error(out, "ERR invalid cursor");
    };
    let (mut pattern, mut count, mut only_strings) = (None, 10usize, true);
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return reply::syntax(out);
        }
        if args.is(i, "match") {
            pattern = Some(args.get(i + 1));
        } else if args.is(i, "count") {
            match parse_i64(args.get(i + 1)) {
                None => return reply::not_integer(out),
                Some(n) if n < 1 => return reply::syntax(out),
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX).min(100_000),
            }
        } else if args.is(i, "type") {
            // Every statemesh value reads as a Redis string.
            only_strings = args.is(i + 1, "string");
        } else {
            return reply::syntax(out);
        }
        i += 2;
    }
    // A MATCH that names a namespace walks only that one.
    let only = pattern.and_then(only_namespace);
    let start = if cursor == 0 {
        let first = match only {
            Some(ns) => e.namespaces().find(|n| *n == ns),
            None => e.namespaces().next(),
        };
        match first {
            Some(ns) => Position {
                namespace: ns.to_owned(),
                after: None,
            },
            None => return scan_reply(out, 0, &[]),
        }
    } else {
        match shared.cursors.lock().get(cursor) {
            Some(p) => p,
            None => return reply::error(out, "ERR invalid cursor"),
        }
    };
    let mut found: Vec<String> = Vec::new();
    let mut examined = 0usize;
    let mut at = Some(start);
    while let Some(pos) = at.take() {
        if examined >= count {
            at = Some(pos);
            break;
        }
        let prefix = format!("{}:", pos.namespace);
        let after = pos.after.clone().map(Cursor::after);
        let page = match e.scan(now, &prefix, count - examined, after.as_ref()) {
            Ok(page) => page,
            Err(err) => return engine_error(out, &err),
        };
        examined += page.items.len();
        let last = page
            .items
            .last()
            .map(|(k, _)| split_namespace(k).1.to_owned());
        for (k, _) in page.items {
            let name = redis_name(&k);
            if only_strings && pattern.is_none_or(|p| glob::matches(p, name.as_bytes())) {
                found.push(name.to_owned());
            }
        }
        at = if page.next.is_some() {
            Some(Position {
                namespace: pos.namespace,
                after: last,
            })
        } else if only.is_some() {
            None
        } else {
            // This namespace is done: the next one in order, from its start.
            e.namespaces()
                .find(|ns| *ns > pos.namespace.as_str())
                .map(|ns| Position {
                    namespace: ns.to_owned(),
                    after: None,
                })
        };
    }
    let next = match at {
        Some(pos) => shared.cursors.lock().save(pos),
        None => 0,
    };
    scan_reply(out, next, &found);
}

fn scan_reply(out: &mut Vec<u8>, next: u64, names: &[String]) {
    reply::array(out, 2);
    reply::bulk(out, next.to_string().as_bytes());
    reply::array(out, names.len());
    for name in names {
        reply::bulk(out, name.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(redis_name("default:foo"), "foo");
        assert_eq!(redis_name("default:a:b"), "default:a:b");
        assert_eq!(redis_name("user:42"), "user:42");
    }

    #[test]
    fn candidates_narrow_to_one_namespace_when_they_can() {
        assert_eq!(candidates(b"user:*"), "user:**");
        assert_eq!(candidates(b"us*"), "*:**");
        assert_eq!(candidates(b"default:*"), "*:**");
        assert_eq!(candidates(b"a b:*"), "*:**");
    }
}
