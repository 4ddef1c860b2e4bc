//! Server and connection commands that touch no key: PING, ECHO, PUBLISH, SELECT, CLIENT,
//! COMMAND, CONFIG GET, INFO, AUTH. Enough for redis-cli, redis-benchmark and client libraries
//! to connect and introspect as they do with Redis.

use std::sync::atomic::Ordering;

use super::exec::Conn;
use super::num::parse_i64;
use super::reply;
use super::table::{Args, Cmd, fits_arity};

/// What INFO reports as the Redis version: the Redis 7.0 command set this port follows.
const REDIS_VERSION: &str = "7.0.0";

impl Conn {
    /// Runs a server command; `keys` counts the keys (for INFO), read only when needed.
    pub(super) fn server(
        &mut self,
        cmd: Cmd,
        args: Args<'_>,
        out: &mut Vec<u8>,
        keys: impl FnOnce() -> usize,
    ) {
        match cmd {
            Cmd::Ping => self.ping(args, out),
            Cmd::Echo => reply::bulk(out, args.get(1)),
            Cmd::Publish => {
                let n = self.shared.broker.lock().publish(args.get(1), args.get(2));
                reply::int(out, i64::try_from(n).unwrap_or(i64::MAX));
            }
            Cmd::Select => match parse_i64(args.get(1)) {
                None => reply::not_integer(out),
                Some(0) => reply::ok(out),
                Some(_) => reply::error(out, "ERR DB index is out of range"),
            },
            Cmd::Client => self.client(args, out),
            Cmd::Command => command(args, out),
            Cmd::Config => self.config(args, out),
            Cmd::Info => self.info(args, out, keys()),
            _ => reply::error(out, "ERR internal: not a server command"),
        }
    }

    fn ping(&self, args: Args<'_>, out: &mut Vec<u8>) {
        if args.len() > 2 {
            return reply::arity(out, "ping");
        }
        if self.subscribed() {
            // In subscribed mode Redis answers PING as a push: ["pong", message].
            reply::array(out, 2);
            reply::bulk(out, b"pong");
            reply::bulk(out, args.get(1));
        } else if args.len() == 2 {
            reply::bulk(out, args.get(1));
        } else {
            reply::simple(out, b"PONG");
        }
    }

    /// AUTH [user] password, against the server's token (Redis's requirepass, user `default`).
    pub(super) fn auth(&mut self, args: Args<'_>, out: &mut Vec<u8>) {
        if args.len() > 3 {
            return reply::syntax(out);
        }
        let user_ok = args.len() == 2 || args.get(1) == b"default";
        let token = self
            .session
            .config
            .auth_token
            .as_deref()
            .filter(|t| !t.is_empty());
        match token {
            None if args.len() == 2 => reply::error(
                out,
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ),
            // Without a token the default user needs no password, as in Redis.
            None if user_ok => reply::ok(out),
            Some(token) if user_ok && same(token.as_bytes(), args.get(args.len() - 1)) => {
                self.authed = true;
                reply::ok(out);
            }
            _ => reply::error(
                out,
                "WRONGPASS invalid username-password pair or user is disabled.",
            ),
        }
    }

    /// HELLO [protover [AUTH user password] [SETNAME name]]: RESP2 only. Clients that try
    /// RESP3 first (go-redis, Lettuce) fall back to RESP2 on the NOPROTO error, as they do with
    /// a Redis that lacks RESP3.
    pub(super) fn hello(&mut self, args: Args<'_>, out: &mut Vec<u8>) {
        if args.len() >= 2 {
            match parse_i64(args.get(1)) {
                None => {
                    return reply::error(
                        out,
                        "ERR Protocol version is not an integer or out of range",
                    );
                }
                Some(2) => {}
                Some(_) => {
                    return reply::error(out, "NOPROTO unsupported protocol version");
                }
            }
        }
        let mut i = 2;
        let mut name = None;
        while i < args.len() {
            if args.is(i, "auth") && i + 2 < args.len() {
                let token = self
                    .session
                    .config
                    .auth_token
                    .as_deref()
                    .filter(|t| !t.is_empty());
                let user_ok = args.get(i + 1) == b"default";
                let pass_ok = token.is_none_or(|t| same(t.as_bytes(), args.get(i + 2)));
                if !(user_ok && pass_ok) {
                    return reply::error(
                        out,
                        "WRONGPASS invalid username-password pair or user is disabled.",
                    );
                }
                self.authed = true;
                i += 3;
            } else if args.is(i, "setname") && i + 1 < args.len() {
                name = Some(args.get(i + 1));
                i += 2;
            } else {
                let opt = String::from_utf8_lossy(args.get(i)).into_owned();
                return reply::error(out, &format!("ERR Syntax error in HELLO option '{opt}'"));
            }
        }
        if !self.authed {
            return reply::error(
                out,
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(name) = name {
            self.name = (!name.is_empty()).then(|| name.to_vec());
        }
        reply::array(out, 14);
        for (key, value) in [("server", "redis"), ("version", REDIS_VERSION)] {
            reply::bulk(out, key.as_bytes());
            reply::bulk(out, value.as_bytes());
        }
        reply::bulk(out, b"proto");
        reply::int(out, 2);
        reply::bulk(out, b"id");
        reply::int(out, i64::try_from(self.id).unwrap_or(i64::MAX));
        for (key, value) in [("mode", "standalone"), ("role", "master")] {
            reply::bulk(out, key.as_bytes());
            reply::bulk(out, value.as_bytes());
        }
        reply::bulk(out, b"modules");
        reply::array(out, 0);
    }

    /// CLIENT; the subcommand and its arity were checked before (`subcommand_refusal`).
    fn client(&mut self, args: Args<'_>, out: &mut Vec<u8>) {
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        match sub.as_str() {
            "setname" => {
                let name = args.get(2);
                if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                    return reply::error(
                        out,
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = (!name.is_empty()).then(|| name.to_vec());
                reply::ok(out);
            }
            "getname" => match &self.name {
                Some(name) => reply::bulk(out, name),
                None => reply::nil(out),
            },
            "id" => reply::int(out, i64::try_from(self.id).unwrap_or(i64::MAX)),
            // Client libraries announce themselves (redis-rs, redis-py): accepted, not kept.
            "setinfo" => reply::ok(out),
            // CLIENT LIST's filters (TYPE, ID) are not supported: this port lists one client.
            "list" if args.len() > 2 => reply::syntax(out),
            "info" | "list" => {
                let line = self.client_line();
                reply::bulk(out, line.as_bytes());
            }
            _ => help(Cmd::Client, out),
        }
    }

    /// This connection as one CLIENT LIST line (the fields clients parse most).
    fn client_line(&self) -> String {
        let name = self
            .name
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let flags = if self.multi.is_some() { "x" } else { "N" };
        format!(
            "id={} addr={} name={} db=0 sub={} multi={} flags={}\n",
            self.id,
            self.peer(),
            name,
            usize::from(self.subscribed()),
            if self.multi.is_some() { 0 } else { -1 },
            flags
        )
    }

    /// CONFIG GET for the few settings tools ask about (redis-benchmark reads `save` and
    /// `appendonly`); CONFIG SET is refused.
    fn config(&self, args: Args<'_>, out: &mut Vec<u8>) {
        if !args.is(1, "get") {
            if args.is(1, "resetstat") {
                return reply::ok(out);
            }
            if args.is(1, "help") {
                return help(Cmd::Config, out);
            }
            return reply::error(
                out,
                "ERR statemesh supports only CONFIG GET (settings are command-line options)",
            );
        }
        let config = &self.session.config;
        let settings = [
            ("save", String::new()),
            ("appendonly", "no".to_owned()),
            ("databases", "1".to_owned()),
            ("maxclients", config.max_connections.to_string()),
            (
                "timeout",
                config.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
            ),
            ("proto-max-bulk-len", config.max_request_bytes.to_string()),
        ];
        let found: Vec<&(&str, String)> = settings
            .iter()
            .filter(|(name, _)| {
                args.from(2)
                    .any(|p| super::glob::matches(p, name.as_bytes()))
            })
            .collect();
        reply::array(out, found.len() * 2);
        for (name, value) in found {
            reply::bulk(out, name.as_bytes());
            reply::bulk(out, value.as_bytes());
        }
    }

    /// INFO [section ...]: server, clients, stats, keyspace.
    fn info(&self, args: Args<'_>, out: &mut Vec<u8>, keys: usize) {
        let wants = |section: &str| {
            args.len() == 1
                || args.from(1).any(|a| {
                    a.eq_ignore_ascii_case(section.as_bytes())
                        || a.eq_ignore_ascii_case(b"all")
                        || a.eq_ignore_ascii_case(b"default")
                        || a.eq_ignore_ascii_case(b"everything")
                })
        };
        let shared = &self.shared;
        let uptime = shared.started.elapsed().as_secs();
        let mut text = String::new();
        let mut section = |title: &str, body: String| {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str("# ");
            text.push_str(title);
            text.push_str("\r\n");
            text.push_str(&body);
        };
        if wants("server") {
            let port = self.session.config.resp_addr.map_or(0, |a| a.port());
            section(
                "Server",
                format!(
                    "redis_version:{REDIS_VERSION}\r\nstatemesh_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{port}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    usize::BITS,
                    std::process::id(),
                    uptime / 86_400,
                ),
            );
        }
        if wants("clients") {
            section(
                "Clients",
                format!(
                    "connected_clients:{}\r\nmaxclients:{}\r\n",
                    shared.clients.load(Ordering::Relaxed),
                    self.session.config.max_connections
                ),
            );
        }
        if wants("stats") {
            let (channels, patterns) = shared.broker.lock().counts();
            section(
                "Stats",
                format!(
                    "total_connections_received:{}\r\ntotal_commands_processed:{}\r\npubsub_channels:{channels}\r\npubsub_patterns:{patterns}\r\n",
                    shared.connections.load(Ordering::Relaxed),
                    shared.commands.load(Ordering::Relaxed),
                ),
            );
        }
        if wants("keyspace") {
            let body = if keys > 0 {
                format!("db0:keys={keys},expires=0,avg_ttl=0\r\n")
            } else {
                String::new()
            };
            section("Keyspace", body);
        }
        reply::bulk(out, text.as_bytes());
    }
}

/// COMMAND, COMMAND COUNT, COMMAND LIST, COMMAND INFO name..., COMMAND DOCS (empty: redis-cli
/// then uses its built-in help).
fn command(args: Args<'_>, out: &mut Vec<u8>) {
    if args.len() == 1 {
        reply::array(out, Cmd::ALL.len());
        for cmd in Cmd::ALL {
            command_info(*cmd, out);
        }
        return;
    }
    match String::from_utf8_lossy(args.get(1))
        .to_ascii_lowercase()
        .as_str()
    {
        "count" => reply::int(out, i64::try_from(Cmd::ALL.len()).unwrap_or(0)),
        // COMMAND LIST's FILTERBY is not supported.
        "list" if args.len() > 2 => reply::syntax(out),
        "list" => {
            reply::array(out, Cmd::ALL.len());
            for cmd in Cmd::ALL {
                reply::bulk(out, cmd.name().as_bytes());
            }
        }
        "info" => {
            reply::array(out, args.len() - 2);
            for name in args.from(2) {
                match Cmd::lookup(name) {
                    Some(cmd) => command_info(cmd, out),
                    None => reply::nil(out),
                }
            }
        }
        "docs" => reply::array(out, 0),
        _ => help(Cmd::Command, out),
    }
}

/// The subcommands of CLIENT, COMMAND and CONFIG this port knows, with Redis's arity for each
/// (negative: at least that many arguments, the command's name included).
fn subcommand_arity(cmd: Cmd, sub: &str) -> Option<i64> {
    Some(match (cmd, sub) {
        (Cmd::Client, "setname") => 3,
        (Cmd::Client, "setinfo") => 4,
        (Cmd::Client, "getname" | "id" | "info" | "help") => 2,
        (Cmd::Client, "list") => -2,
        (Cmd::Command, "count" | "help") => 2,
        (Cmd::Command, "list" | "info" | "docs") => -2,
        (Cmd::Config, "get") => -3,
        (Cmd::Config, "set") => -4,
        (Cmd::Config, "resetstat" | "rewrite" | "help") => 2,
        _ => return None,
    })
}

/// Redis's refusal of a subcommand of CLIENT, COMMAND or CONFIG that it does not know or that
/// has the wrong number of arguments. Redis checks this before it runs or queues the command,
/// so inside MULTI such a command makes EXEC abort instead of being queued.
pub(super) fn subcommand_refusal(cmd: Cmd, args: Args<'_>) -> Option<String> {
    if !matches!(cmd, Cmd::Client | Cmd::Command | Cmd::Config) || args.len() < 2 {
        return None;
    }
    let given = args.get(1);
    let sub = String::from_utf8_lossy(given).to_ascii_lowercase();
    match subcommand_arity(cmd, &sub) {
        None => Some(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&given[..given.len().min(128)]),
            cmd.name().to_ascii_uppercase()
        )),
        Some(arity) if !fits_arity(arity, args.len()) => {
            Some(reply::arity_text(&format!("{}|{sub}", cmd.name())))
        }
        Some(_) => None,
    }
}

/// CLIENT HELP, COMMAND HELP, CONFIG HELP: what this port answers.
fn help(cmd: Cmd, out: &mut Vec<u8>) {
    let lines: &[&str] = match cmd {
        Cmd::Client => &[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "LIST",
            "    Return information about the current client connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Accepted and ignored.",
            "HELP",
            "    Print this help.",
        ],
        Cmd::Command => &[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands.",
            "LIST",
            "    Return a list of all command names.",
            "INFO [<command-name> ...]",
            "    Return details about the given commands.",
            "DOCS [<command-name> ...]",
            "    Return an empty array (clients fall back to their built-in help).",
            "HELP",
            "    Print this help.",
        ],
        _ => &[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return the settings matching the glob-like <pattern> and their values.",
            "RESETSTAT",
            "    Accepted; statemesh keeps no resettable statistics.",
            "HELP",
            "    Print this help.",
            "(settings are command-line options of statemesh serve: CONFIG SET is refused)",
        ],
    };
    reply::array(out, lines.len());
    for line in lines {
        reply::simple(out, line.as_bytes());
    }
}

/// One command's entry, in the six-field form every client understands.
fn command_info(cmd: Cmd, out: &mut Vec<u8>) {
    let (flags, first, last, step) = cmd.info();
    reply::array(out, 6);
    reply::bulk(out, cmd.name().as_bytes());
    reply::int(out, cmd.arity());
    reply::array(out, flags.len());
    for flag in flags {
        reply::simple(out, flag.as_bytes());
    }
    reply::int(out, first);
    reply::int(out, last);
    reply::int(out, step);
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
