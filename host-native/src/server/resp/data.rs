//! The commands that read or write keys, run against the engine under the store's lock: one
//! command at a time outside MULTI, a whole transaction in one go inside EXEC.
//!
//! Every function writes its reply (or its error reply) into `out`; nothing here fails the
//! connection. Values: SET stores a String when the bytes are UTF-8, Bytes otherwise; any stored
//! value reads back as bytes (see [`value_bulk`]).

use statemesh_core::{
    Engine, EngineError, PutOptions, StoredValue, Timestamp, Ttl, Value, ValueKind, WriteOp,
};

use super::Shared;
use super::keyspace;
use super::num::parse_i64;
use super::reply;
use super::table::{Args, Cmd};

/// Runs a read-only command.
pub(super) fn read(
    e: &Engine,
    now: Timestamp,
    cmd: Cmd,
    args: Args<'_>,
    out: &mut Vec<u8>,
    shared: &Shared,
) {
    match cmd {
        Cmd::Get => match args.key(1).map(|k| e.get_stored(now, k)) {
            Ok(Ok(Some(v))) => value_bulk(out, &v),
            Ok(Ok(None)) => reply::nil(out),
            Ok(Err(err)) => engine_error(out, &err),
            Err(msg) => reply::error(out, msg),
        },
        // TOUCH counts the keys it finds, as EXISTS does; there is no access time to update.
        Cmd::Exists | Cmd::Touch => {
            // A key the store refuses cannot exist: it counts 0, as a missing key does.
            let n = args
                .keys(1)
                .filter(|k| k.is_ok_and(|k| e.exists(now, k).unwrap_or(false)))
                .count();
            reply::int(out, count(n));
        }
        Cmd::Type => {
            // Every value reads as a string on this port (see docs/resp.md, Values); a key the
            // store refuses cannot exist, so it is `none`, as a missing key is.
            let exists = args.key(1).is_ok_and(|k| e.exists(now, k).unwrap_or(false));
            reply::simple(out, if exists { b"string" } else { b"none" });
        }
        Cmd::Ttl | Cmd::PTtl | Cmd::ExpireTime | Cmd::PExpireTime => {
            match args.key(1).map(|k| e.get_ttl(now, k)) {
                Ok(Ok(None)) => reply::int(out, -2),
                Ok(Ok(Some(Ttl::Expires { at, remaining_ms }))) => {
                    let absolute = matches!(cmd, Cmd::ExpireTime | Cmd::PExpireTime);
                    let ms = if absolute {
                        at.as_millis()
                    } else {
                        remaining_ms
                    };
                    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
                    reply::int(
                        out,
                        if matches!(cmd, Cmd::Ttl | Cmd::ExpireTime) {
                            nearest_second(ms)
                        } else {
                            ms
                        },
                    );
                }
                Ok(Ok(Some(_))) => reply::int(out, -1),
                Ok(Err(err)) => engine_error(out, &err),
                Err(msg) => reply::error(out, msg),
            }
        }
        Cmd::Strlen => match args.key(1).map(|k| e.get_stored(now, k)) {
            Ok(Ok(Some(v))) => match rendered_len(&v) {
                Ok(n) => reply::int(out, count(n)),
                Err(err) => engine_error(out, &err),
            },
            Ok(Ok(None)) => reply::int(out, 0),
            Ok(Err(err)) => engine_error(out, &err),
            Err(msg) => reply::error(out, msg),
        },
        Cmd::MGet => {
            reply::array(out, args.len() - 1);
            for k in args.keys(1) {
                match k.ok().and_then(|k| e.get_stored(now, k).ok().flatten()) {
                    Some(v) => value_bulk(out, &v),
                    None => reply::nil(out),
                }
            }
        }
        Cmd::Keys => keyspace::keys(e, now, args.get(1), out),
        Cmd::Scan => keyspace::scan(e, now, args, out, shared),
        Cmd::DbSize => reply::int(out, count(e.len())),
        // Only read commands are routed here.
        _ => reply::error(out, "ERR internal: not a read command"),
    }
}

/// Milliseconds (not negative) to the nearest second, as Redis rounds TTL and EXPIRETIME, without
/// overflowing on an expiry at the end of time (`PXAT 9223372036854775807`).
fn nearest_second(ms: i64) -> i64 {
    ms / 1000 + i64::from(ms % 1000 >= 500)
}

/// Runs a command that may write.
pub(super) fn write(e: &mut Engine, now: Timestamp, cmd: Cmd, args: Args<'_>, out: &mut Vec<u8>) {
    let result = match cmd {
        Cmd::Set => set(e, now, args, out),
        Cmd::SetEx | Cmd::PSetEx => {
            let unit = if cmd == Cmd::SetEx { 1000 } else { 1 };
            match expiry_ms(&args, 2, (unit, false), now, cmd, out) {
                None => Ok(()),
                Some(ms) => with_key(args.key(1), |k| {
                    let mode = SetMode {
                        ttl_ms: Some(ms),
                        ..SetMode::default()
                    };
                    set_key(e, now, k, args.get(3), mode)?;
                    reply::ok(out);
                    Ok(())
                }),
            }
        }
        // SET key value NX, answered 1 or 0.
        Cmd::SetNx => with_key(args.key(1), |k| {
            let mode = SetMode {
                nx: true,
                ..SetMode::default()
            };
            let (_, written) = set_key(e, now, k, args.get(2), mode)?;
            reply::int(out, i64::from(written));
            Ok(())
        }),
        // SET key value GET: the key's time to live goes, as in Redis.
        Cmd::GetSet => with_key(args.key(1), |k| {
            let mode = SetMode {
                get: true,
                ..SetMode::default()
            };
            match set_key(e, now, k, args.get(2), mode)? {
                (Some(v), _) => value_bulk(out, &v),
                (None, _) => reply::nil(out),
            }
            Ok(())
        }),
        Cmd::GetEx => getex(e, now, args, out),
        Cmd::GetDel => with_key(args.key(1), |k| {
            let old = e.get_stored(now, k)?;
            if old.is_some() {
                e.delete(now, k)?;
            }
            match old {
                Some(v) => value_bulk(out, &v),
                None => reply::nil(out),
            }
            Ok(())
        }),
        Cmd::Del | Cmd::Unlink => keys_of(args).and_then(|keys| {
            // One revision per store batch; a DEL of more keys than a batch takes several, all
            // under this one hold of the lock.
            let mut deleted = 0;
            for chunk in keys.chunks(e.config().max_batch.max(1)) {
                deleted += e.multi_delete(now, chunk)?.affected;
            }
            reply::int(out, i64::try_from(deleted).unwrap_or(i64::MAX));
            Ok(())
        }),
        Cmd::Expire | Cmd::PExpire => expire(e, now, cmd, args, out),
        Cmd::Persist => with_key(args.key(1), |k| {
            let r = e.remove_ttl(now, k)?;
            reply::int(out, i64::from(r.op != WriteOp::Noop));
            Ok(())
        }),
        Cmd::Incr => incr(e, now, args.key(1), 1, out),
        Cmd::Decr => incr(e, now, args.key(1), -1, out),
        Cmd::IncrBy | Cmd::DecrBy => match parse_i64(args.get(2)) {
            None => {
                reply::not_integer(out);
                Ok(())
            }
            Some(n) if cmd == Cmd::IncrBy => incr(e, now, args.key(1), n, out),
            Some(n) => match n.checked_neg() {
                Some(delta) => incr(e, now, args.key(1), delta, out),
                None => {
                    reply::error(out, "ERR decrement would overflow");
                    Ok(())
                }
            },
        },
        Cmd::Append => append(e, now, args, out),
        Cmd::MSet | Cmd::MSetNx => {
            if !(args.len() - 1).is_multiple_of(2) {
                reply::arity(out, cmd.name());
                return;
            }
            mset(e, now, args, cmd == Cmd::MSetNx, out)
        }
        Cmd::FlushDb | Cmd::FlushAll => {
            if args.len() > 2 || (args.len() == 2 && !args.is(1, "async") && !args.is(1, "sync")) {
                reply::syntax(out);
                return;
            }
            e.delete_pattern(now, "*:**")
                .map(|_| reply::ok(out))
                .map_err(CmdError::from)
        }
        _ => {
            reply::error(out, "ERR internal: not a write command");
            Ok(())
        }
    };
    match result {
        Ok(()) => {}
        Err(CmdError::Engine(err)) => engine_error(out, &err),
        Err(CmdError::Reply(msg)) => reply::error(out, msg),
    }
}

/// An expiry option of SET: (milliseconds per unit, absolute time?).
type ExpiryOption = (i64, bool);

fn expiry_option(args: &Args<'_>, i: usize) -> Option<ExpiryOption> {
    match () {
        () if args.is(i, "ex") => Some((1000, false)),
        () if args.is(i, "px") => Some((1, false)),
        () if args.is(i, "exat") => Some((1000, true)),
        () if args.is(i, "pxat") => Some((1, true)),
        () => None,
    }
}

/// The options of SET and GETEX from argument `start` on: at most one kind of expiry option
/// (EX, PX, EXAT or PXAT and its value; Redis takes the same kind again, the last one counting,
/// never two different ones), and the words `flag` takes. `flag(i, expiry_seen)` answers
/// `Some(blocks_expiry)` for a word it takes (`blocks_expiry`: no expiry option may follow, as
/// after KEEPTTL or PERSIST) and `None` for one it does not. Returns the expiry option (the
/// index of its value, which option), or `None` once a syntax error is written.
fn options(
    args: &Args<'_>,
    start: usize,
    out: &mut Vec<u8>,
    mut flag: impl FnMut(usize, bool) -> Option<bool>,
) -> Option<Option<(usize, ExpiryOption)>> {
    let mut expiry: Option<(usize, ExpiryOption)> = None;
    let mut expiry_blocked = false;
    let mut i = start;
    while i < args.len() {
        let has_next = i + 1 < args.len();
        if let Some(blocks) = flag(i, expiry.is_some()) {
            expiry_blocked |= blocks;
        } else if let Some(kind) = expiry_option(args, i).filter(|&kind| {
            !expiry_blocked && has_next && expiry.is_none_or(|(_, earlier)| earlier == kind)
        }) {
            expiry = Some((i + 1, kind));
            i += 1;
        } else {
            reply::syntax(out);
            return None;
        }
        i += 1;
    }
    Some(expiry)
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]
fn set(e: &mut Engine, now: Timestamp, args: Args<'_>, out: &mut Vec<u8>) -> Result<(), CmdError> {
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let expiry = options(&args, 3, out, |i, expiry_seen| {
        if args.is(i, "nx") && !xx {
            nx = true;
        } else if args.is(i, "xx") && !nx {
            xx = true;
        } else if args.is(i, "get") {
            get = true;
        } else if args.is(i, "keepttl") && !expiry_seen {
            keep_ttl = true;
            return Some(true);
        } else {
            return None;
        }
        Some(false)
    });
    let Some(expiry) = expiry else {
        return Ok(());
    };
    // Milliseconds to live; `Some(0)`: already expired (EXAT in the past), the key goes away.
    let Some(ttl_ms) = ttl_of(&args, expiry, now, Cmd::Set, out) else {
        return Ok(());
    };
    let k = match args.key(1) {
        Ok(k) => k,
        Err(msg) => {
            reply::error(out, msg);
            return Ok(());
        }
    };
    let mode = SetMode {
        nx,
        xx,
        get,
        ttl_ms,
        keep_ttl,
    };
    let (old, written) = set_key(e, now, k, args.get(2), mode)?;
    match (get, old) {
        (true, Some(v)) => value_bulk(out, &v),
        (true, None) => reply::nil(out),
        (false, _) if !written => reply::nil(out),
        (false, _) => reply::ok(out),
    }
    Ok(())
}

/// The milliseconds to live that the expiry option whose value is `args[at]` gives (0: a time
/// already past), or `None` once Redis's error is written: the value is not an integer, not
/// positive, or overflows. `cmd` names the command in the error.
fn expiry_ms(
    args: &Args<'_>,
    at: usize,
    (unit, absolute): ExpiryOption,
    now: Timestamp,
    cmd: Cmd,
    out: &mut Vec<u8>,
) -> Option<u64> {
    let Some(n) = parse_i64(args.get(at)) else {
        reply::not_integer(out);
        return None;
    };
    let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    let ms = n
        .checked_mul(unit)
        .filter(|_| n > 0)
        .filter(|&ms| absolute || now_ms.checked_add(ms).is_some());
    let Some(ms) = ms else {
        let name = cmd.name();
        reply::error(out, &format!("ERR invalid expire time in '{name}' command"));
        return None;
    };
    let left = if absolute {
        ms.saturating_sub(now_ms)
    } else {
        ms
    };
    Some(u64::try_from(left.max(0)).unwrap_or(0))
}

/// The milliseconds to live an optional expiry option gives (see [`expiry_ms`]): `Some(None)`
/// without one, `None` once an error is written.
fn ttl_of(
    args: &Args<'_>,
    expiry: Option<(usize, ExpiryOption)>,
    now: Timestamp,
    cmd: Cmd,
    out: &mut Vec<u8>,
) -> Option<Option<u64>> {
    match expiry {
        None => Some(None),
        Some((at, kind)) => expiry_ms(args, at, kind, now, cmd, out).map(Some),
    }
}

/// How a SET-like command writes: only when the key is absent (`nx`) or present (`xx`),
/// reading the old value first (`get`), with `ttl_ms` to live (`Some(0)`: a time already past),
/// keeping the key's time to live (`keep_ttl`), or with none.
#[derive(Debug, Default, Clone, Copy)]
struct SetMode {
    nx: bool,
    xx: bool,
    get: bool,
    ttl_ms: Option<u64>,
    keep_ttl: bool,
}

/// SET's write, shared by SETEX, PSETEX, SETNX and GETSET: the old value when `mode.get` asked
/// for it, and whether the key was written. Always inlined: out of line, with its options moved
/// in and out, it cost a pipelined SET 30 more instructions (callgrind).
#[inline(always)]
fn set_key(
    e: &mut Engine,
    now: Timestamp,
    k: &str,
    value: &[u8],
    mode: SetMode,
) -> Result<(Option<StoredValue>, bool), CmdError> {
    let old = if mode.get {
        e.get_stored(now, k)?
    } else {
        None
    };
    let present = if mode.get {
        old.is_some()
    } else if mode.nx || mode.xx {
        e.exists(now, k)?
    } else {
        false
    };
    if (mode.nx && present) || (mode.xx && !present) {
        return Ok((old, false));
    }
    let SetMode {
        ttl_ms, keep_ttl, ..
    } = mode;
    if ttl_ms == Some(0) {
        // Already past its expiry: Redis writes the key, which expires at once, and answers
        // OK. Deleting it leaves the same trace; a key that did not exist is written first, so
        // a client WATCHing it sees it change, as with Redis.
        if e.delete(now, k)?.affected == 0 {
            e.put_text_with(now, k, value, &PutOptions::default())?;
            e.delete(now, k)?;
        }
        return Ok((old, true));
    }
    let mut opts = PutOptions::default();
    if let Some(ms) = ttl_ms {
        opts = opts.ttl_ms(ms);
    } else if keep_ttl {
        opts = opts.keep_ttl();
    }
    e.put_text_with(now, k, value, &opts)?;
    Ok((old, true))
}

/// GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]: the value, with its time to live changed.
fn getex(
    e: &mut Engine,
    now: Timestamp,
    args: Args<'_>,
    out: &mut Vec<u8>,
) -> Result<(), CmdError> {
    let mut persist = false;
    let expiry = options(&args, 2, out, |i, expiry_seen| {
        (args.is(i, "persist") && !expiry_seen).then(|| {
            persist = true;
            true
        })
    });
    let Some(expiry) = expiry else {
        return Ok(());
    };
    with_key(args.key(1), |k| {
        // As in Redis, a missing key answers nil before the expiry's value is looked at.
        let Some(v) = e.get_stored(now, k)? else {
            reply::nil(out);
            return Ok(());
        };
        let Some(ttl_ms) = ttl_of(&args, expiry, now, Cmd::GetEx, out) else {
            return Ok(());
        };
        // The change first: a failure then answers only its error.
        match ttl_ms {
            Some(0) => {
                e.delete(now, k)?;
            }
            Some(ms) => {
                e.set_ttl(now, k, ms)?;
            }
            None if persist => {
                e.remove_ttl(now, k)?;
            }
            None => {}
        }
        value_bulk(out, &v);
        Ok(())
    })
}

/// MSET key value [key value ...]: one revision (more pairs than a store batch: several, all
/// under this one hold of the lock). MSETNX (`only_new`) writes nothing, and answers 0, when
/// any of the keys exists.
fn mset(
    e: &mut Engine,
    now: Timestamp,
    args: Args<'_>,
    only_new: bool,
    out: &mut Vec<u8>,
) -> Result<(), CmdError> {
    if only_new {
        for k in args.keys(1).step_by(2) {
            if e.exists(now, k.map_err(CmdError::Reply)?)? {
                reply::int(out, 0);
                return Ok(());
            }
        }
    }
    let mut items = Vec::with_capacity((args.len() - 1) / 2);
    for i in (1..args.len() - 1).step_by(2) {
        items.push((
            args.key(i).map_err(CmdError::Reply)?,
            to_value(args.get(i + 1)),
        ));
    }
    let max_batch = e.config().max_batch.max(1);
    if items.len() > max_batch {
        // Check every key first, so a refused key leaves nothing half written.
        for (k, _) in &items {
            e.config().keys.parse(k).map_err(EngineError::from)?;
        }
    }
    for chunk in items.chunks(max_batch) {
        e.multi_put(now, chunk)?;
    }
    if only_new {
        reply::int(out, 1);
    } else {
        reply::ok(out);
    }
    Ok(())
}

/// EXPIRE / PEXPIRE key time [NX|XX|GT|LT]
fn expire(
    e: &mut Engine,
    now: Timestamp,
    cmd: Cmd,
    args: Args<'_>,
    out: &mut Vec<u8>,
) -> Result<(), CmdError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for i in 3..args.len() {
        match () {
            () if args.is(i, "nx") => nx = true,
            () if args.is(i, "xx") => xx = true,
            () if args.is(i, "gt") => gt = true,
            () if args.is(i, "lt") => lt = true,
            () => {
                let opt = String::from_utf8_lossy(args.get(i)).into_owned();
                reply::error(out, &format!("ERR Unsupported option {opt}"));
                return Ok(());
            }
        }
    }
    if nx && (xx || gt || lt) {
        reply::error(
            out,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        );
        return Ok(());
    }
    if gt && lt {
        reply::error(
            out,
            "ERR GT and LT options at the same time are not compatible",
        );
        return Ok(());
    }
    let Some(n) = parse_i64(args.get(2)) else {
        reply::not_integer(out);
        return Ok(());
    };
    let unit = if cmd == Cmd::Expire { 1000 } else { 1 };
    let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    let Some(ms) = n
        .checked_mul(unit)
        .filter(|ms| now_ms.checked_add(*ms).is_some())
    else {
        reply::error(
            out,
            &format!("ERR invalid expire time in '{}' command", cmd.name()),
        );
        return Ok(());
    };
    with_key(args.key(1), |k| {
        let current = match e.get_ttl(now, k)? {
            None => {
                reply::int(out, 0);
                return Ok(());
            }
            Some(Ttl::Expires { remaining_ms, .. }) => {
                Some(i64::try_from(remaining_ms).unwrap_or(i64::MAX))
            }
            Some(_) => None,
        };
        // A key without TTL counts as expiring never: GT never beats it, LT always does.
        let allowed = match current {
            _ if nx => current.is_none(),
            _ if xx && current.is_none() => false,
            None => !gt,
            Some(left) => (!gt || ms > left) && (!lt || ms < left),
        };
        if !allowed {
            reply::int(out, 0);
            return Ok(());
        }
        if ms <= 0 {
            e.delete(now, k)?;
        } else {
            e.set_ttl(now, k, u64::try_from(ms).unwrap_or(u64::MAX))?;
        }
        reply::int(out, 1);
        Ok(())
    })
}

/// INCR family: integers, and strings holding a decimal integer as Redis writes one.
fn incr(
    e: &mut Engine,
    now: Timestamp,
    k: Result<&str, &'static str>,
    delta: i64,
    out: &mut Vec<u8>,
) -> Result<(), CmdError> {
    with_key(k, |k| {
        // Redis refuses what the engine would increment ("+5", "05"): refused in the engine's
        // own lookup of the key rather than by reading it first.
        let checked = e.increment_checked(now, k, delta, |v| match v.kind() {
            Ok(ValueKind::Integer) => Ok(()),
            Ok(ValueKind::String | ValueKind::Bytes) if parse_i64(v.payload()).is_some() => Ok(()),
            Ok(ValueKind::String | ValueKind::Bytes) => Err(IncrRefusal::NotInteger),
            Ok(_) => Err(IncrRefusal::WrongType),
            Err(err) => Err(IncrRefusal::Value(err)),
        });
        match checked {
            Ok(Ok((n, _))) => reply::int(out, n),
            Ok(Err(IncrRefusal::NotInteger)) => reply::not_integer(out),
            Ok(Err(IncrRefusal::WrongType)) => reply::wrong_type(out),
            Ok(Err(IncrRefusal::Value(err))) => return Err(err.into()),
            Err(EngineError::Overflow { .. }) => {
                reply::error(out, "ERR increment or decrement would overflow")
            }
            // Bytes holding digits: the engine increments only integers and strings.
            Err(EngineError::WrongType { .. }) => reply::not_integer(out),
            Err(err) => return Err(err.into()),
        }
        Ok(())
    })
}

/// Why INCR refused a key's current value before the engine would have.
enum IncrRefusal {
    NotInteger,
    WrongType,
    Value(statemesh_core::ValueError),
}

/// APPEND: strings and bytes grow in place (the engine's append); an integer turns into the
/// string of its digits first, as it would in Redis; other kinds are WRONGTYPE.
fn append(
    e: &mut Engine,
    now: Timestamp,
    args: Args<'_>,
    out: &mut Vec<u8>,
) -> Result<(), CmdError> {
    let suffix = args.get(2);
    with_key(args.key(1), |k| {
        let old = e.get_stored(now, k)?;
        let kind = old.as_ref().map(StoredValue::kind).transpose()?;
        let len = match (kind, std::str::from_utf8(suffix)) {
            (None | Some(ValueKind::String), Ok(s)) => {
                e.append(now, k, &Value::String(s.to_owned()))?.0
            }
            (Some(ValueKind::Bytes), _) => e.append(now, k, &Value::Bytes(suffix.to_vec()))?.0,
            (Some(ValueKind::String | ValueKind::Integer) | None, _) => {
                let mut joined = old.as_ref().map(render).transpose()?.unwrap_or_default();
                joined.extend_from_slice(suffix);
                let len = joined.len();
                e.put_with(
                    now,
                    k,
                    &bytes_value(joined),
                    &PutOptions::default().keep_ttl(),
                )?;
                len
            }
            (Some(_), _) => {
                reply::wrong_type(out);
                return Ok(());
            }
        };
        reply::int(out, count(len));
        Ok(())
    })
}

fn keys_of(args: Args<'_>) -> Result<Vec<&str>, CmdError> {
    args.keys(1).map(|k| k.map_err(CmdError::Reply)).collect()
}

fn with_key<'a>(
    key: Result<&'a str, &'static str>,
    f: impl FnOnce(&'a str) -> Result<(), CmdError>,
) -> Result<(), CmdError> {
    f(key.map_err(CmdError::Reply)?)
}

/// Why a command stopped: the engine refused it, or a reply worded here.
#[derive(Debug)]
enum CmdError {
    Engine(EngineError),
    Reply(&'static str),
}

impl From<EngineError> for CmdError {
    fn from(e: EngineError) -> Self {
        CmdError::Engine(e)
    }
}

impl From<statemesh_core::ValueError> for CmdError {
    fn from(e: statemesh_core::ValueError) -> Self {
        CmdError::Engine(e.into())
    }
}

/// What SET stores: a String when the bytes are UTF-8 text, Bytes otherwise.
pub(super) fn to_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => Value::Bytes(bytes.to_vec()),
    }
}

fn bytes_value(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(s) => Value::String(s),
        Err(e) => Value::Bytes(e.into_bytes()),
    }
}

/// Writes any stored value as a bulk string: text and bytes as they are, integers in decimal,
/// floats and booleans as text, JSON as JSON text, documents and custom values as their data.
pub(super) fn value_bulk(out: &mut Vec<u8>, v: &StoredValue) {
    match v.kind() {
        // The fast paths, without a copy: what SET and INCR store.
        Ok(ValueKind::String | ValueKind::Bytes) => reply::bulk(out, v.payload()),
        Ok(ValueKind::Integer) => match v.decode() {
            Ok(Value::Integer(n)) => reply::bulk_int(out, n),
            _ => reply::error(out, "ERR stored integer is corrupt (CORRUPT)"),
        },
        _ => match render(v) {
            Ok(bytes) => reply::bulk(out, &bytes),
            Err(err) => engine_error(out, &err),
        },
    }
}

/// The bytes a stored value reads as (see [`value_bulk`]).
fn render(v: &StoredValue) -> Result<Vec<u8>, EngineError> {
    Ok(match v.decode()? {
        Value::String(s) => s.into_bytes(),
        Value::Bytes(b) => b,
        Value::Integer(n) => n.to_string().into_bytes(),
        Value::Float(f) => f.to_string().into_bytes(),
        Value::Bool(b) => {
            if b {
                b"true".to_vec()
            } else {
                b"false".to_vec()
            }
        }
        Value::Json(j) => j.to_string().into_bytes(),
        Value::Document { data, .. }
        | Value::Serialized { data, .. }
        | Value::Custom { data, .. } => data,
        // Kinds added later read as their stored payload.
        _ => v.payload().to_vec(),
    })
}

fn rendered_len(v: &StoredValue) -> Result<usize, EngineError> {
    match v.kind()? {
        ValueKind::String | ValueKind::Bytes => Ok(v.payload().len()),
        _ => render(v).map(|b| b.len()),
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An engine error as Redis would word it where Redis has a word for it; otherwise `ERR`, the
/// store's message and its stable code.
pub(super) fn engine_error(out: &mut Vec<u8>, err: &EngineError) {
    match err {
        EngineError::WrongType { .. } => reply::wrong_type(out),
        EngineError::Overflow { .. } => {
            reply::error(out, "ERR increment or decrement would overflow")
        }
        other => reply::error(out, &format!("ERR {other} ({})", other.code())),
    }
}

/// A store error (closed, poisoned by a storage failure, ...).
pub(super) fn store_error(out: &mut Vec<u8>, err: &crate::Error) {
    match err {
        crate::Error::Engine(e) => engine_error(out, e),
        other => reply::error(out, &format!("ERR {other} ({})", other.code())),
    }
}

#[cfg(test)]
mod tests {
    use statemesh_core::{Engine, EngineConfig, Timestamp, Value};

    use super::*;

    /// Runs one command (space-separated words) against the engine and returns its reply.
    fn run(e: &mut Engine, line: &str) -> String {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for word in line.split(' ') {
            let start = buf.len();
            buf.extend_from_slice(word.as_bytes());
            ranges.push(start..buf.len());
        }
        let args = super::super::table::Input::new(&buf).args(&ranges);
        let cmd = Cmd::lookup(args.get(0)).expect("known command");
        let mut out = Vec::new();
        let shared = Shared::default();
        if cmd.kind() == super::super::table::Kind::Write {
            write(e, Timestamp(1_000), cmd, args, &mut out);
        } else {
            read(e, Timestamp(1_000), cmd, args, &mut out, &shared);
        }
        String::from_utf8(out).expect("utf-8 reply")
    }

    #[test]
    fn seconds_round_to_the_nearest_without_overflow() {
        assert_eq!(nearest_second(0), 0);
        assert_eq!(nearest_second(499), 0);
        assert_eq!(nearest_second(500), 1);
        assert_eq!(nearest_second(1_499), 1);
        assert_eq!(nearest_second(i64::MAX), 9_223_372_036_854_776);
    }

    #[test]
    fn values_written_by_other_apis_read_as_bytes() {
        let mut e = Engine::new(EngineConfig::default()).expect("engine");
        let now = Timestamp(1_000);
        e.put(now, "doc:1", &Value::Json(serde_json::json!({"a": [1, 2]})))
            .expect("put json");
        e.put(now, "f", &Value::Float(1.5)).expect("put float");
        e.put(now, "b", &Value::Bool(true)).expect("put bool");
        e.put(now, "n", &Value::Integer(-42)).expect("put int");
        assert_eq!(run(&mut e, "GET doc:1"), "$11\r\n{\"a\":[1,2]}\r\n");
        assert_eq!(run(&mut e, "GET f"), "$3\r\n1.5\r\n");
        assert_eq!(run(&mut e, "GET b"), "$4\r\ntrue\r\n");
        assert_eq!(run(&mut e, "GET n"), "$3\r\n-42\r\n");
        assert_eq!(run(&mut e, "STRLEN doc:1"), ":11\r\n");
        // Kinds Redis would call another type are WRONGTYPE for INCR and APPEND.
        let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        assert_eq!(run(&mut e, "INCR doc:1"), wrongtype);
        assert_eq!(run(&mut e, "APPEND f x"), wrongtype);
        // An integer appended to becomes the string of its digits, as in Redis.
        assert_eq!(run(&mut e, "APPEND n 0"), ":4\r\n");
        assert_eq!(run(&mut e, "GET n"), "$4\r\n-420\r\n");
        assert_eq!(run(&mut e, "INCR n"), ":-419\r\n");
    }

    #[test]
    fn refused_keys_get_an_error_and_change_nothing() {
        let mut e = Engine::new(EngineConfig::default()).expect("engine");
        let reply = run(&mut e, "SET a*b 1");
        assert!(reply.starts_with("-ERR invalid key: "), "{reply}");
        assert!(reply.ends_with("(INVALID_KEY)\r\n"), "{reply}");
        assert!(run(&mut e, "MSET ok 1 bad..key 2").starts_with("-ERR invalid key"));
        assert_eq!(run(&mut e, "EXISTS ok"), ":0\r\n", "nothing half written");
        assert_eq!(run(&mut e, "MGET ok a*b"), "*2\r\n$-1\r\n$-1\r\n");
        assert!(run(&mut e, "GET a*b").starts_with("-ERR invalid key"));
        assert_eq!(run(&mut e, "DBSIZE"), ":0\r\n");
    }
}
