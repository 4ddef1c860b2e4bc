//! Targeted engine tests: integrity, formats and configuration edges that a random model run
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! rarely reaches.

use statemesh_core::{
    ChangeKind, Engine, EngineConfig, EngineError, FormatError, LogOp, LogRecord, PutOptions,
    Timestamp, Ttl, Value, ValueError, WriteOp,
};

const T: Timestamp = Timestamp(1_000);

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).unwrap()
}

#[test]
fn a_flipped_value_byte_in_a_snapshot_is_caught() {
    let mut e = engine();
    e.put(T, "a:k", &Value::from("a long enough value to find"))
        .unwrap();
    let snap = e.snapshot().unwrap();
    let at = snap.windows(4).position(|w| w == b"long").unwrap();
    let mut bad = snap.clone();
    bad[at] ^= 0x20;
    let err = Engine::restore(EngineConfig::default(), &bad).unwrap_err();
    assert_eq!(err, FormatError::Corrupt { key: "a:k".into() });
    // And every truncation is refused, never silently accepted.
    for len in 0..snap.len() {
        assert!(
            Engine::restore(EngineConfig::default(), &snap[..len]).is_err(),
            "len {len}"
        );
    }
    let mut long = snap.clone();
    long.push(0);
    assert!(matches!(
        Engine::restore(EngineConfig::default(), &long),
        Err(FormatError::TrailingBytes { .. })
    ));
}

#[test]
fn log_records_roundtrip_and_reject_garbage() {
    let mut e = engine();
    e.put_with_ttl(T, "a:k", &Value::Integer(5), 10).unwrap();
    let rec = e.poll_log().unwrap();
    let bytes = rec.encode().unwrap();
    assert_eq!(LogRecord::decode(&bytes).unwrap(), rec);
    assert_eq!(LogRecord::decode(&[]), Err(FormatError::Empty));
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(
        LogRecord::decode(&v2),
        Err(FormatError::UnknownVersion {
            what: "log record",
            version: 2
        })
    );
    let mut trailing = bytes.clone();
    trailing.push(9);
    assert!(matches!(
        LogRecord::decode(&trailing),
        Err(FormatError::TrailingBytes { .. })
    ));
    assert!(LogRecord::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn replay_skips_old_records_refuses_gaps_and_checks_checksums() {
    let mut e = engine();
    for i in 0..3 {
        e.put(T, &format!("a:k{i}"), &Value::Integer(i)).unwrap();
    }
    let recs: Vec<LogRecord> = std::iter::from_fn(|| e.poll_log()).collect();
    let mut r = engine();
    assert_eq!(
        r.replay(&recs[1]),
        Err(FormatError::RevisionGap {
            current: 0,
            found: 2
        })
    );
    assert!(r.replay(&recs[0]).unwrap());
    assert!(!r.replay(&recs[0]).unwrap(), "already applied");
    let mut tampered = recs[1].clone();
    if let statemesh_core::LogOp::Put { entry, .. } = &mut tampered.ops[0] {
        entry.checksum ^= 1;
    }
    assert_eq!(
        r.replay(&tampered),
        Err(FormatError::Corrupt { key: "a:k1".into() })
    );
    assert_eq!(r.revision(), 1, "a refused record changes nothing");
    assert!(r.replay(&recs[1]).unwrap());
    assert!(r.replay(&recs[2]).unwrap());
    assert_eq!(r.snapshot().unwrap(), e.snapshot().unwrap());
}

/// A write that replaces an existing entry by the usual rule is logged without the fields
/// replay derives (`LogOp::Update`), a third or more smaller than the whole entry; replay
/// rebuilds the entry exactly, and refuses a value that does not match its checksum.
#[test]
fn updates_are_logged_without_derivable_fields_and_replay_rebuilds_them() {
    let mut e = engine();
    let mut meta = serde_json::Map::new();
    meta.insert("owner".into(), "ana".into());
    let with_meta = PutOptions::default().ttl_ms(60_000).metadata(meta);
    e.put_with(Timestamp(1_000), "a:n", &Value::Integer(1), &with_meta)
        .unwrap();
    e.increment(Timestamp(2_000), "a:n", 41).unwrap();
    e.put(Timestamp(3_000), "a:n", &Value::Integer(7)).unwrap();
    let recs: Vec<LogRecord> = std::iter::from_fn(|| e.poll_log()).collect();
    assert!(matches!(recs[0].ops[0], LogOp::Put { .. }), "a create");
    assert!(
        matches!(recs[1].ops[0], LogOp::Update { .. }),
        "an increment"
    );
    assert!(
        matches!(recs[2].ops[0], LogOp::Update { .. }),
        "a put over it"
    );
    let (create, update) = (recs[0].encode().unwrap(), recs[1].encode().unwrap());
    assert!(
        update.len() * 3 < create.len() * 2,
        "update record {} B, create record {} B",
        update.len(),
        create.len()
    );

    let mut r = engine();
    let mut tampered = recs[1].clone();
    if let LogOp::Update { checksum, .. } = &mut tampered.ops[0] {
        *checksum ^= 1;
    }
    assert!(r.replay(&recs[0]).unwrap());
    assert_eq!(
        r.replay(&tampered),
        Err(FormatError::Corrupt { key: "a:n".into() })
    );
    assert_eq!(r.revision(), 1, "a refused record changes nothing");
    for rec in &recs[1..] {
        assert!(r.replay_bytes(&rec.encode().unwrap()).unwrap());
    }
    assert_eq!(r.snapshot().unwrap(), e.snapshot().unwrap());
    let record = r.get_record(Timestamp(3_000), "a:n").unwrap().unwrap();
    assert_eq!(record.meta.version, 3);
    assert_eq!(record.meta.created_at, Timestamp(1_000));
    assert_eq!(record.meta.updated_at, Timestamp(3_000));
    assert_eq!(
        record.meta.user.get("owner"),
        Some(&serde_json::json!("ana"))
    );
}

#[test]
fn snapshot_refuses_other_key_settings() {
    let mut e = engine();
    e.put(T, "a:x", &Value::Bool(true)).unwrap();
    let snap = e.snapshot().unwrap();
    let other = EngineConfig::default().with_separator('/');
    assert!(matches!(
        Engine::restore(other, &snap),
        Err(FormatError::ConfigMismatch { .. })
    ));
    let folded = EngineConfig::default().with_case_insensitive_keys(true);
    assert!(matches!(
        Engine::restore(folded, &snap),
        Err(FormatError::ConfigMismatch { .. })
    ));
}

#[test]
fn value_size_limit_is_enforced_on_put_and_append() {
    let mut e = Engine::new(EngineConfig::default().with_max_value_size(10)).unwrap();
    assert!(e.put(T, "a:k", &Value::from("12345678")).is_ok());
    assert_eq!(
        e.put(T, "a:k", &Value::from("123456789")),
        Err(EngineError::Value(ValueError::TooLarge {
            size: 11,
            limit: 10
        }))
    );
    assert_eq!(
        e.append(T, "a:k", &Value::from("9")),
        Err(EngineError::Value(ValueError::TooLarge {
            size: 11,
            limit: 10
        }))
    );
    assert_eq!(e.get(T, "a:k").unwrap(), Some(Value::from("12345678")));
}

#[test]
fn multi_put_is_all_or_nothing() {
    let mut e = engine();
    let items = vec![
        ("a:ok", Value::Integer(1)),
        ("a:bad..key", Value::Integer(2)),
    ];
    assert!(matches!(e.multi_put(T, &items), Err(EngineError::Key(_))));
    assert_eq!(e.revision(), 0);
    assert!(e.is_empty());
    assert!(e.poll_log().is_none() && e.poll_event().is_none());
}

#[test]
fn case_insensitive_store_folds_keys_and_patterns() {
    let mut e = Engine::new(EngineConfig::default().with_case_insensitive_keys(true)).unwrap();
    e.put(T, "Users:Alice.Profile", &Value::from("x")).unwrap();
    assert_eq!(
        e.get(T, "users:alice.profile").unwrap(),
        Some(Value::from("x"))
    );
    assert_eq!(
        e.keys(T, "USERS:ALICE.*").unwrap(),
        vec!["users:alice.profile".to_string()]
    );
    let r = e.put(T, "users:ALICE.profile", &Value::from("y")).unwrap();
    assert_eq!((r.op, r.version), (WriteOp::Update, 2));
}

#[test]
fn namespace_globs_and_custom_separators() {
    let mut e = Engine::new(EngineConfig::default().with_separator('/')).unwrap();
    for k in ["t1:a/b", "t2:a/b", "t2:a/c/d", "x:a/b", "t3:a.b"] {
        e.put(T, k, &Value::Bool(true)).unwrap();
    }
    assert_eq!(e.keys(T, "t*:a/b").unwrap(), vec!["t1:a/b", "t2:a/b"]);
    assert_eq!(e.keys(T, "t2:a/**").unwrap(), vec!["t2:a/b", "t2:a/c/d"]);
    assert_eq!(e.keys(T, "{t1,x}:*/b").unwrap(), vec!["t1:a/b", "x:a/b"]);
    assert_eq!(
        e.keys(T, "t3:a.b").unwrap(),
        vec!["t3:a.b"],
        "'.' is an ordinary char here"
    );
    let r = e.delete_pattern(T, "t?:a/**").unwrap();
    assert_eq!((r.op, r.affected, r.revision), (WriteOp::Batch, 3, 6));
    assert_eq!(e.keys(T, "*:**").unwrap(), vec!["t3:a.b", "x:a/b"]);
}

#[test]
fn expiry_sweep_is_one_revision_with_an_event_per_key() {
    let mut e = engine();
    e.put_with_ttl(T, "s:a", &Value::from("1"), 10).unwrap();
    e.put_with_ttl(T, "s:b", &Value::from("2"), 20).unwrap();
    e.put_with_ttl(T, "s:c", &Value::from("3"), 30).unwrap();
    while e.poll_event().is_some() {}
    assert_eq!(e.poll_timeout(), Some(Timestamp(1_010)));
    assert_eq!(e.handle_timeout(Timestamp(1_020)), 2);
    let evs: Vec<_> = std::iter::from_fn(|| e.poll_event()).collect();
    assert_eq!(evs.len(), 2);
    assert!(
        evs.iter()
            .all(|ev| ev.kind == ChangeKind::Expire && ev.revision == 4)
    );
    assert_eq!(
        evs[0].old.as_ref().unwrap().decode().unwrap(),
        Value::from("1")
    );
    assert_eq!(e.poll_timeout(), Some(Timestamp(1_030)));
    assert_eq!(e.handle_timeout(Timestamp(1_020)), 0, "nothing else is due");
}

#[test]
fn cursors_reject_tampering_and_foreign_prefixes() {
    let mut e = engine();
    for i in 0..5 {
        e.put(T, &format!("a:p.{i}"), &Value::Integer(i)).unwrap();
    }
    let page = e.scan(T, "a:p.", 2, None).unwrap();
    let cursor = page.next.unwrap();
    let text = cursor.encode();
    let back = statemesh_core::Cursor::decode(&text).unwrap();
    assert_eq!(back, cursor);
    assert!(statemesh_core::Cursor::decode("zz").is_err());
    assert!(statemesh_core::Cursor::decode(&format!("{text}0")).is_err());
    assert!(matches!(
        e.scan(T, "a:q", 2, Some(&cursor)),
        Err(EngineError::InvalidCursor(_))
    ));
    assert_eq!(e.scan(T, "a:p.", 0, None), Err(EngineError::InvalidLimit));
    // A cursor made from a known key resumes right after it.
    let resumed = e
        .scan(T, "a:p.", 10, Some(&statemesh_core::Cursor::after("p.2")))
        .unwrap();
    let keys: Vec<_> = resumed.items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!((keys, resumed.next), (vec!["a:p.3", "a:p.4"], None));
}

#[test]
fn batch_limit_is_enforced() {
    let mut cfg = EngineConfig::default();
    cfg.max_batch = 2;
    let mut e = Engine::new(cfg).unwrap();
    let keys = ["a:1", "a:2", "a:3"];
    assert_eq!(
        e.multi_get(T, &keys),
        Err(EngineError::BatchTooLarge { count: 3, limit: 2 })
    );
    assert_eq!(
        e.multi_delete(T, &keys),
        Err(EngineError::BatchTooLarge { count: 3, limit: 2 })
    );
}

#[test]
fn a_snapshot_with_entries_out_of_order_is_refused() {
    let mut e = engine();
    e.put(T, "a:x", &Value::from("1")).unwrap();
    e.put(T, "a:y", &Value::from("2")).unwrap();
    let snap = e.snapshot().unwrap();
    let encoded = |k: &str, path: &str| {
        postcard::to_allocvec(&("a", path, e.entry(T, k).unwrap().unwrap())).unwrap()
    };
    let (x, y) = (encoded("a:x", "x"), encoded("a:y", "y"));
    let header = &snap[..snap.len() - x.len() - y.len()];
    assert_eq!(
        [header, &x, &y].concat(),
        snap,
        "the layout is header, then entries in order"
    );
    let swapped = [header, &y, &x].concat();
    assert!(matches!(
        Engine::restore(EngineConfig::default(), &swapped),
        Err(FormatError::Decode {
            what: "snapshot",
            ..
        })
    ));
    let repeated = [header, &x, &x].concat();
    assert!(Engine::restore(EngineConfig::default(), &repeated).is_err());
}

#[test]
fn an_absolute_expiry_is_kept_exactly_and_must_be_in_the_future() {
    let mut e = engine();
    let at = Timestamp(T.0 + 5_000);
    e.put_with(
        T,
        "r:k",
        &Value::from("v"),
        &PutOptions::default().expires_at(at),
    )
    .unwrap();
    assert_eq!(
        e.get_record(T, "r:k").unwrap().unwrap().meta.expires_at,
        Some(at)
    );
    // It wins over a relative TTL given with it.
    let opts = PutOptions::default().ttl_ms(10).expires_at(at);
    e.put_with(T, "r:k2", &Value::from("v"), &opts).unwrap();
    assert_eq!(
        e.get_record(T, "r:k2").unwrap().unwrap().meta.expires_at,
        Some(at)
    );
    // Now or earlier is refused and writes nothing.
    for past in [T, Timestamp(T.0 - 1)] {
        let opts = PutOptions::default().expires_at(past);
        assert_eq!(
            e.put_with(T, "r:late", &Value::from("v"), &opts),
            Err(EngineError::InvalidTtl)
        );
    }
    assert_eq!(e.get(T, "r:late").unwrap(), None);
    assert_eq!(
        e.get(Timestamp(at.0 - 1), "r:k").unwrap(),
        Some(Value::from("v"))
    );
    assert_eq!(e.get(at, "r:k").unwrap(), None);
}

/// `increment_checked`: the check sees the current value; a refusal changes nothing (no
/// revision, no log record, the TTL and value untouched); an accepted one increments as
/// `increment` does and keeps the TTL.
#[test]
fn increment_checked_refuses_without_writing_and_keeps_the_ttl_when_it_accepts() {
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    e.put_with_ttl(T, "c:n", &Value::from("+5"), 60_000)
        .unwrap();
    while e.poll_log().is_some() {}
    let revision = e.revision();
    let refused = e
        .increment_checked(T, "c:n", 1, |v| {
            if v.payload().first() == Some(&b'+') {
                Err("plus sign")
            } else {
                Ok(())
            }
        })
        .unwrap();
    assert_eq!(refused.err(), Some("plus sign"));
    assert_eq!(e.revision(), revision);
    assert!(e.poll_log().is_none());
    assert_eq!(e.get(T, "c:n").unwrap(), Some(Value::from("+5")));

    let (n, _) = e
        .increment_checked(T, "c:n", 2, |_| Ok::<(), ()>(()))
        .unwrap()
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!(e.get(T, "c:n").unwrap(), Some(Value::Integer(7)));
    assert_eq!(e.revision(), revision + 1);
    assert_eq!(
        e.get_ttl(T, "c:n").unwrap(),
        Some(Ttl::Expires {
            at: Timestamp(T.0 + 60_000),
            remaining_ms: 60_000
        }),
        "the TTL is kept"
    );
    // A missing key is not checked: it counts as 0.
    let (m, _) = e
        .increment_checked(T, "c:new", 3, |_| Err("called"))
        .unwrap()
        .unwrap();
    assert_eq!(m, 3);
}

/// `put_text_with` stores what `put_with` stores for the same text (a string, or bytes when it
/// is not UTF-8), with the same options, limits and key checks, and logs the same ops.
#[test]
fn put_text_is_put_of_the_text_value() {
    let cases: [&[u8]; 4] = [b"", b"xxx", "h\u{e9}llo".as_bytes(), &[0xff, 0, 7]];
    for text in cases {
        let value = match std::str::from_utf8(text) {
            Ok(s) => Value::from(s),
            Err(_) => Value::Bytes(text.to_vec()),
        };
        let opts = PutOptions::default().ttl_ms(5_000);
        let (mut by_text, mut by_value) = (engine(), engine());
        let a = by_text.put_text_with(T, "a:k", text, &opts).unwrap();
        let b = by_value.put_with(T, "a:k", &value, &opts).unwrap();
        assert_eq!((a.op, a.version), (b.op, b.version));
        assert_eq!(by_text.get(T, "a:k").unwrap(), Some(value.clone()));
        let logged = |e: &mut Engine| std::iter::from_fn(|| e.poll_log()).collect::<Vec<_>>();
        assert_eq!(logged(&mut by_text), logged(&mut by_value));
    }
    let mut small = Engine::new(EngineConfig::default().with_max_value_size(10)).unwrap();
    assert!(
        small
            .put_text_with(T, "a:k", b"12345678", &PutOptions::default())
            .is_ok()
    );
    assert_eq!(
        small.put_text_with(T, "a:k", b"123456789", &PutOptions::default()),
        Err(EngineError::Value(ValueError::TooLarge {
            size: 11,
            limit: 10
        }))
    );
    assert!(matches!(
        small.put_text_with(T, "a:k*", b"x", &PutOptions::default()),
        Err(EngineError::Key(_))
    ));
    assert_eq!(
        small.put_text_with(T, "a:k", b"x", &PutOptions::default().ttl_ms(0)),
        Err(EngineError::InvalidTtl)
    );
}

#[test]
fn the_history_drops_its_oldest_revisions_in_blocks_past_its_bound() {
    let config = EngineConfig::default().with_history_limit(32);
    assert_eq!(config.history_bound(), 34);
    let mut e = Engine::new(config).unwrap();
    let put = |e: &mut Engine, i: u64| {
        e.put(T, &format!("a:k{}", i % 5), &Value::from(i as i64))
            .unwrap();
    };
    for i in 1..=34 {
        put(&mut e, i);
    }
    // Up to the bound, nothing is dropped: every revision can still be read.
    assert_eq!((e.history_len(), e.history_floor()), (34, 0));
    assert_eq!(
        e.get_at(T, "a:k1", 1).unwrap().unwrap().value,
        Value::from(1i64)
    );
    // One past it, the oldest go until the limit remains.
    put(&mut e, 35);
    assert_eq!((e.history_len(), e.history_floor()), (32, 3));
    assert!(matches!(
        e.get_at(T, "a:k1", 2),
        Err(EngineError::Compacted { floor: 3, .. })
    ));
    assert_eq!(
        e.get_at(T, "a:k3", 3).unwrap().unwrap().value,
        Value::from(3i64)
    );
    // A revision of several changes goes whole: revision 36 puts 3 keys.
    e.multi_put(
        T,
        &[
            ("b:x".to_string(), Value::from(1i64)),
            ("b:y".to_string(), Value::from(2i64)),
            ("b:z".to_string(), Value::from(3i64)),
        ],
    )
    .unwrap();
    assert_eq!((e.history_len(), e.history_floor()), (32, 6));
    for i in 37..=63 {
        put(&mut e, i);
    }
    // Every third write drops three revisions; revision 36 is now third in line.
    assert_eq!((e.history_len(), e.history_floor()), (32, 33));
    put(&mut e, 64);
    put(&mut e, 65);
    assert_eq!((e.history_len(), e.history_floor()), (34, 33));
    // The block that leaves 32 ends inside revision 36: all three of its changes go too.
    put(&mut e, 66);
    assert_eq!((e.history_len(), e.history_floor()), (30, 36));
    let kept = e.changes_since(36, usize::MAX).unwrap();
    assert_eq!(kept.len(), 30);
    assert_eq!(kept.first().map(|c| c.revision), Some(37));
}

#[test]
fn the_keys_changed_after_a_revision_come_newest_first_until_the_history_is_cut() {
    let mut e = Engine::new(EngineConfig::default().with_history_limit(2)).unwrap();
    e.put(T, "a:x", &Value::from(1i64)).unwrap(); // revision 1
    e.put(T, "a:y", &Value::from(2i64)).unwrap(); // 2
    e.delete(T, "a:x").unwrap(); // 3: a key created and deleted reads as absent again
    assert!(e.entry(T, "a:x").unwrap().is_none());
    let after = |e: &Engine, revision| {
        e.keys_changed_after(revision)
            .map(|changes| changes.map(|(k, r)| (k.to_owned(), r)).collect::<Vec<_>>())
    };
    assert_eq!(
        after(&e, 1),
        Some(vec![("a:x".to_owned(), 3), ("a:y".to_owned(), 2)])
    );
    assert_eq!(after(&e, 3), Some(vec![]));
    // Revision 1 is no longer kept (limit 2): what changed after 0 is unknown, not "nothing".
    assert_eq!(e.history_floor(), 1);
    assert_eq!(after(&e, 0), None);
}
