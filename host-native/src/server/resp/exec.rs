//! One connection's state and the dispatch of its requests: authentication, MULTI queueing,
//! subscribed mode, then the command itself.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;

use super::multi::{Multi, Watched};
use super::pubsub::Subscriber;
use super::table::{Args, Cmd, Input, Kind};
use super::{Batch, Session, Shared, WRITE_HIGH_WATER, admin, data, reply, send};

/// Most requests run under one hold of the store's lock, so a long pipeline does not keep
/// other connections waiting for long.
const MAX_GROUP: usize = 256;

/// Whether the connection goes on after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// Write the replies so far, then close (QUIT).
    Close,
}

/// A connection's state.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) session: Session,
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    /// False until AUTH succeeds, when the server has a token.
    pub(super) authed: bool,
    pub(super) name: Option<Vec<u8>>,
    pub(super) multi: Option<Multi>,
    /// WATCHed keys.
    pub(super) watched: Vec<Watched>,
    pub(super) sub: Option<Subscriber>,
    /// Commands run since the last report to `shared` (one shared counter update per batch,
    /// not per command: connections on different cores would fight over its cache line).
    pub(super) commands: u64,
}

impl Conn {
    pub(super) fn new(session: Session, shared: Arc<Shared>, id: u64) -> Conn {
        let authed = session
            .config
            .auth_token
            .as_deref()
            .is_none_or(str::is_empty);
        Conn {
            session,
            shared,
            id,
            authed,
            name: None,
            multi: None,
            watched: Vec::new(),
            sub: None,
            commands: 0,
        }
    }

    /// Adds the commands run since the last call to the server-wide count (INFO stats).
    pub(super) fn report_commands(&mut self) {
        let n = std::mem::take(&mut self.commands);
        if n > 0 {
            self.shared.commands.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(super) fn peer(&self) -> SocketAddr {
        self.session.peer
    }

    /// The connection's pub/sub mailbox, once it has subscribed.
    pub(super) fn mailbox(&self) -> Option<Arc<super::pubsub::Mailbox>> {
        self.sub.as_ref().map(|s| s.mailbox.clone())
    }

    pub(super) fn subscribed(&self) -> bool {
        self.sub.as_ref().is_some_and(|s| s.total() > 0)
    }

    /// Waits for the next published message and writes it, with any others already waiting.
    /// False when the subscriber overflowed its buffer and must be disconnected.
    pub(super) async fn next_message(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(sub) = self.sub.as_mut() else {
            return true;
        };
        let Some(message) = sub.rx.recv().await else {
            return false;
        };
        sub.mailbox.taken(&message);
        message.encode(out);
        while out.len() < WRITE_HIGH_WATER {
            let Ok(message) = sub.rx.try_recv() else {
                break;
            };
            sub.mailbox.taken(&message);
            message.encode(out);
        }
        !sub.mailbox.overflowed()
    }

    /// Runs a batch of parsed requests in order. Runs of consecutive plain reads, or of plain
    /// writes, share one hold of the store's lock (and, for writes, one hand-off to the
    /// committer and in CP mode one wait for durability): a pipeline of 16 SETs costs one lock
    /// and one fsync wait, not 16. Replies go out once 64 KiB are waiting.
    pub(super) async fn run(
        &mut self,
        input: Input<'_>,
        batch: &Batch,
        out: &mut Vec<u8>,
        stream: &mut TcpStream,
        idle: Option<Duration>,
    ) -> std::io::Result<Flow> {
        let mut i = 0;
        while i < batch.len() {
            match self.plain(batch.cmd(i), batch.args(input, i)) {
                Some(kind @ (Kind::Read | Kind::Write)) => {
                    let mut j = i + 1;
                    while j < batch.len()
                        && j - i < MAX_GROUP
                        && self.plain(batch.cmd(j), batch.args(input, j)) == Some(kind)
                    {
                        j += 1;
                    }
                    self.commands += (j - i) as u64;
                    if kind == Kind::Read {
                        self.read_group(input, batch, i..j, out).await;
                    } else {
                        self.write_group(input, batch, i..j, out).await;
                    }
                    i = j;
                }
                _ => {
                    if self.dispatch(batch.args(input, i), out).await == Flow::Close {
                        return Ok(Flow::Close);
                    }
                    i += 1;
                }
            }
            if out.len() >= WRITE_HIGH_WATER {
                send(stream, out, idle, self.mailbox().as_deref()).await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// The kind of a request that can run in a group: a known key command with the right
    /// arity, on an authenticated connection outside MULTI and subscribed mode.
    fn plain(&self, cmd: Option<Cmd>, args: Args<'_>) -> Option<Kind> {
        let cmd = cmd?;
        let ok = cmd.arity_ok(args.len())
            && self.authed
            && self.multi.is_none()
            && !self.subscribed()
            && matches!(cmd.kind(), Kind::Read | Kind::Write);
        ok.then(|| cmd.kind())
    }

    /// Consecutive reads under one shared lock. A lone GET takes the store's point read (in
    /// CP mode it waits only for that key's last write to be durable).
    async fn read_group(
        &mut self,
        input: Input<'_>,
        batch: &Batch,
        group: Range<usize>,
        out: &mut Vec<u8>,
    ) {
        if group.len() == 1 {
            let args = batch.args(input, group.start);
            if let Some(cmd) = batch.cmd(group.start) {
                self.read(cmd, args, out).await;
            }
            return;
        }
        let shared = &self.shared;
        let result = self
            .session
            .store
            .read_all(|e, now| {
                let mut reply = Vec::new();
                for i in group.clone() {
                    if let Some(cmd) = batch.cmd(i) {
                        data::read(e, now, cmd, batch.args(input, i), &mut reply, shared);
                    }
                }
                Ok(reply)
            })
            .await;
        match result {
            Ok(reply) => out.extend_from_slice(&reply),
            Err(e) => {
                for _ in group {
                    data::store_error(out, &e);
                }
            }
        }
    }

    /// Consecutive writes under one exclusive lock, acknowledged together (in CP mode once
    /// the last is durable). No other client's command runs between them, which Redis (one
    /// thread) never promises but never contradicts either.
    async fn write_group(
        &mut self,
        input: Input<'_>,
        batch: &Batch,
        group: Range<usize>,
        out: &mut Vec<u8>,
    ) {
        let replies = group.len();
        write_durably(&self.session.store, out, replies, |e, now, out| {
            for i in group {
                if let Some(cmd) = batch.cmd(i) {
                    data::write(e, now, cmd, batch.args(input, i), out);
                }
            }
        })
        .await;
    }

    /// Runs one request (already split into arguments) and writes its reply.
    pub(super) async fn dispatch(&mut self, args: Args<'_>, out: &mut Vec<u8>) -> Flow {
        self.commands += 1;
        let Some(cmd) = Cmd::lookup(args.get(0)) else {
            self.fail_multi();
            reply::unknown_command(out, args.get(0), args.from(1).map(<[u8]>::to_vec));
            return Flow::Continue;
        };
        if !cmd.arity_ok(args.len()) {
            self.refuse(cmd, &reply::arity_text(cmd.name()), out);
            return Flow::Continue;
        }
        if let Some(refusal) = admin::subcommand_refusal(cmd, args) {
            self.refuse(cmd, &refusal, out);
            return Flow::Continue;
        }
        if !self.authed && !matches!(cmd, Cmd::Auth | Cmd::Quit | Cmd::Reset | Cmd::Hello) {
            self.refuse(cmd, "NOAUTH Authentication required.", out);
            return Flow::Continue;
        }
        if self.subscribed()
            && !matches!(
                cmd,
                Cmd::Subscribe
                    | Cmd::PSubscribe
                    | Cmd::Unsubscribe
                    | Cmd::PUnsubscribe
                    | Cmd::Ping
                    | Cmd::Quit
                    | Cmd::Reset
            )
        {
            let refusal = format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                cmd.name()
            );
            self.refuse(cmd, &refusal, out);
            return Flow::Continue;
        }
        if self.multi.is_some()
            && !matches!(
                cmd,
                Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Watch | Cmd::Quit | Cmd::Reset
            )
        {
            self.queue(cmd, args, out);
            return Flow::Continue;
        }
        match cmd.kind() {
            Kind::Read => self.read(cmd, args, out).await,
            Kind::Write => self.write(cmd, args, out).await,
            Kind::Server => {
                let store = self.session.store.clone();
                self.server(cmd, args, out, || store.len());
            }
            Kind::Connection => return self.connection(cmd, args, out).await,
        }
        Flow::Continue
    }

    /// A read outside MULTI. GET takes the store's point read (in CP mode it waits only for
    /// that key's last write to be durable); the others read under the shared lock.
    async fn read(&mut self, cmd: Cmd, args: Args<'_>, out: &mut Vec<u8>) {
        let store = &self.session.store;
        if cmd == Cmd::Get {
            match args.key(1) {
                Err(msg) => reply::error(out, msg),
                Ok(k) => match store.get_stored(k).await {
                    Ok(Some(v)) => data::value_bulk(out, &v),
                    Ok(None) => reply::nil(out),
                    Err(e) => data::store_error(out, &e),
                },
            }
            return;
        }
        let shared = &self.shared;
        let result = store
            .read_all(|e, now| {
                let mut reply = Vec::new();
                data::read(e, now, cmd, args, &mut reply, shared);
                Ok(reply)
            })
            .await;
        match result {
            Ok(reply) => out.extend_from_slice(&reply),
            Err(e) => data::store_error(out, &e),
        }
    }

    /// A write outside MULTI: applied under the exclusive lock, acknowledged once durable in CP
    /// mode. A write that changed nothing (SET NX on an existing key) still waits until what it
    /// saw is durable, so its reply never reflects a write a crash could take back.
    async fn write(&mut self, cmd: Cmd, args: Args<'_>, out: &mut Vec<u8>) {
        write_durably(&self.session.store, out, 1, |e, now, out| {
            data::write(e, now, cmd, args, out);
        })
        .await;
    }

    /// Commands that change the connection's own state.
    async fn connection(&mut self, cmd: Cmd, args: Args<'_>, out: &mut Vec<u8>) -> Flow {
        match cmd {
            Cmd::Quit => {
                reply::ok(out);
                return Flow::Close;
            }
            Cmd::Reset => {
                self.multi = None;
                self.watched.clear();
                self.unsubscribe_all();
                self.name = None;
                self.authed = self
                    .session
                    .config
                    .auth_token
                    .as_deref()
                    .is_none_or(str::is_empty);
                reply::simple(out, b"RESET");
            }
            Cmd::Multi => self.multi(out),
            Cmd::Exec => self.exec(out).await,
            Cmd::Discard => self.discard(out),
            Cmd::Watch => self.watch(args, out).await,
            _ => self.connection_state(cmd, args, out),
        }
        Flow::Continue
    }

    /// The connection commands a transaction may queue (EXEC runs them): they change only this
    /// connection's own state.
    pub(super) fn connection_state(&mut self, cmd: Cmd, args: Args<'_>, out: &mut Vec<u8>) {
        match cmd {
            Cmd::Auth => self.auth(args, out),
            Cmd::Hello => self.hello(args, out),
            Cmd::Unwatch => {
                self.watched.clear();
                reply::ok(out);
            }
            Cmd::Subscribe | Cmd::PSubscribe => {
                let id = self.id;
                let sub = self.sub.get_or_insert_with(|| Subscriber::new(id));
                sub.subscribe(
                    &self.shared.broker,
                    cmd == Cmd::PSubscribe,
                    args.from(1),
                    out,
                );
            }
            Cmd::Unsubscribe | Cmd::PUnsubscribe => {
                let id = self.id;
                let sub = self.sub.get_or_insert_with(|| Subscriber::new(id));
                sub.unsubscribe(
                    &self.shared.broker,
                    cmd == Cmd::PUnsubscribe,
                    args.from(1),
                    out,
                );
            }
            _ => reply::error(out, "ERR internal: not a connection command"),
        }
    }

    /// Refuses a command before it runs or is queued, as Redis does: an open transaction will
    /// abort at EXEC, and a refused EXEC discards the transaction (and the watched keys) at once.
    fn refuse(&mut self, cmd: Cmd, refusal: &str, out: &mut Vec<u8>) {
        if cmd == Cmd::Exec {
            self.multi = None;
            self.watched.clear();
            let reason = refusal.strip_prefix("ERR ").unwrap_or(refusal);
            return reply::error(
                out,
                &format!("EXECABORT Transaction discarded because of: {reason}"),
            );
        }
        self.fail_multi();
        reply::error(out, refusal);
    }

    fn unsubscribe_all(&mut self) {
        if self.sub.take().is_some() {
            self.shared.broker.lock().remove_client(self.id);
        }
    }
}

/// Runs `apply` under the store's exclusive lock, then waits until what it did (or saw) is
/// durable, so that no reply reflects a write a crash could take back. If the store fails, the
/// replies `apply` wrote are replaced by `replies` error replies.
pub(super) async fn write_durably(
    store: &crate::Store,
    out: &mut Vec<u8>,
    replies: usize,
    apply: impl FnOnce(&mut statemesh_core::Engine, statemesh_core::Timestamp, &mut Vec<u8>),
) {
    let mark = out.len();
    let result = store
        .write(|e, now| {
            apply(e, now, &mut *out);
            Ok(e.revision())
        })
        .await;
    let result = match result {
        Ok(revision) => store.wait_visible(revision).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        out.truncate(mark);
        for _ in 0..replies {
            data::store_error(out, &e);
        }
    }
}
