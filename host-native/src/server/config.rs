//! Server settings and their errors.

use std::net::SocketAddr;
use std::time::Duration;

/// How a [`crate::server::Server`] listens and what it allows.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The JSON-lines port. Default `127.0.0.1:9000`.
    pub addr: SocketAddr,
    /// The Redis-compatible port, when wanted. Default none.
    pub resp_addr: Option<SocketAddr>,
    /// Required to bind anything but loopback. JSON-lines clients send it in an `auth`
    /// request; RESP clients with `AUTH` (Redis's `requirepass`).
    pub auth_token: Option<String>,
    /// Most open connections over both ports; the next one is told why and closed. Default 1024.
    pub max_connections: usize,
    /// Largest request (a JSON line, or a RESP command with its arguments), in bytes. A bigger
    /// one gets an error and the connection is closed. Default 32 MiB.
    pub max_request_bytes: usize,
    /// A connection that sends nothing for this long is closed (subscribed connections
    /// excepted). `None` never closes one. Default 300 s.
    pub idle_timeout: Option<Duration>,
    /// How long a shutdown waits for open connections to finish. Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 9000)),
            resp_addr: None,
            auth_token: None,
            max_connections: 1024,
            max_request_bytes: 32 << 20,
            idle_timeout: Some(Duration::from_secs(300)),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Checks the settings without binding anything (`Server::bind` checks them too).
    pub fn validate(&self) -> Result<(), ServerError> {
        let has_token = self.auth_token.as_deref().is_some_and(|t| !t.is_empty());
        for addr in std::iter::once(self.addr).chain(self.resp_addr) {
            if !addr.ip().is_loopback() && !has_token {
                return Err(ServerError::RemoteWithoutAuth { addr });
            }
        }
        if self.max_connections == 0 {
            return Err(ServerError::Config(
                "max_connections must be at least 1".into(),
            ));
        }
        if self.max_request_bytes < 1024 {
            return Err(ServerError::Config(
                "max_request_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr} without an auth token: anyone who can reach it could read \
         and write the store; set one (--auth-token) or bind to 127.0.0.1"
    )]
    RemoteWithoutAuth { addr: SocketAddr },
    #[error("invalid server configuration: {0}")]
    Config(String),
    #[error("io: {0}")]
    Io(std::io::Error),
    #[error("store: {0}")]
    Store(crate::Error),
}
