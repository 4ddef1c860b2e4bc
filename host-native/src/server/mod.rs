//! The TCP server: one store behind a JSON-lines port and, optionally, a Redis-compatible (RESP2)
//! port.
//!
//! This module owns what both protocols share: binding (loopback unless a token is set), the
//! connection limit, the per-request size limit and idle timeout, and graceful shutdown (stop
//! accepting, let every connection finish the request it is on, flush the log, close the store).
//! Each protocol module only turns one connection's bytes into store calls.

mod config;
pub(crate) mod jsonl;
mod resp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

pub use config::{ServerConfig, ServerError};

/// A value in the JSON form the JSON-lines protocol and `statemesh export` use (docs/protocol.md,
/// "Values"): plain JSON for strings, numbers, booleans and documents, a one-key `$` tag for the
/// rest. Fails only for a kind that has no JSON form.
pub fn value_to_json(value: &crate::Value) -> Result<serde_json::Value, String> {
    serde_json::to_value(jsonl::wire::WireValue(value)).map_err(|e| e.to_string())
}

/// The inverse of [`value_to_json`]: what `statemesh import` and the server accept.
pub fn value_from_json(json: serde_json::Value) -> Result<crate::Value, String> {
    jsonl::wire::value_from_json(json)
}

use crate::Store;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    JsonLines,
    Resp,
}

impl Protocol {
    /// What a client over the connection limit is told before the server closes its socket.
    fn too_many_connections(self) -> &'static [u8] {
        match self {
            Protocol::JsonLines => {
                b"{\"id\":null,\"ok\":false,\"error\":{\"code\":\"TOO_MANY_CONNECTIONS\",\"message\":\"the server is at its connection limit; try again later\"}}\n"
            }
            // Redis's own reply in this situation.
            Protocol::Resp => b"-ERR max number of clients reached\r\n",
        }
    }
}

/// What every connection handler gets: the store, the limits, the shutdown signal.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) store: Store,
    pub(crate) config: Arc<ServerConfig>,
    /// Turns `true` when the server shuts down: finish the current request, then return.
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) peer: SocketAddr,
    /// Shared by every RESP connection: PUBLISH / SUBSCRIBE channels.
    pub(crate) resp_shared: Arc<resp::Shared>,
}

/// A bound server; [`Server::run`] serves until its shutdown future resolves.
#[derive(Debug)]
pub struct Server {
    store: Store,
    config: Arc<ServerConfig>,
    json: TcpListener,
    resp: Option<TcpListener>,
}

impl Server {
    /// Binds the JSON-lines port (and the RESP port when configured). Refuses an address other
    /// than loopback unless the configuration carries an auth token.
    pub async fn bind(store: Store, config: ServerConfig) -> Result<Server, ServerError> {
        config.validate()?;
        let json = bind(config.addr).await?;
        let resp = match config.resp_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Server {
            store,
            config: Arc::new(config),
            json,
            resp,
        })
    }

    /// The JSON-lines port's address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.json.local_addr().map_err(ServerError::Io)
    }

    /// The RESP port's address, when one is open.
    pub fn resp_addr(&self) -> Result<Option<SocketAddr>, ServerError> {
        self.resp
            .as_ref()
            .map(|l| l.local_addr().map_err(ServerError::Io))
            .transpose()
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets open connections finish the
    /// request they are on (up to the configured grace period), flushes the store and closes it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            store,
            config,
            json,
            resp,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let resp_shared = Arc::new(resp::Shared::default());
        let base = Session {
            store: store.clone(),
            config: config.clone(),
            shutdown: stop_rx,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            resp_shared,
        };
        let json_task = tokio::spawn(accept_loop(
            json,
            Protocol::JsonLines,
            base.clone(),
            permits.clone(),
        ));
        let resp_task = resp.map(|listener| {
            tokio::spawn(accept_loop(
                listener,
                Protocol::Resp,
                base.clone(),
                permits.clone(),
            ))
        });
        drop(base);
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = stop_tx.send(true);
        json_task.abort();
        if let Some(t) = &resp_task {
            t.abort();
        }
        // Every connection holds a permit until it ends: taking them all back means every
        // connection has finished.
        let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(config.shutdown_grace, permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?config.shutdown_grace,
                "connections still open after the grace period; closing the store under them"
            );
        }
        let flushed = store.flush().await;
        store.close().await;
        flushed.map_err(ServerError::Store)?;
        tracing::info!("store flushed and closed");
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

async fn accept_loop(
    listener: TcpListener,
    protocol: Protocol,
    base: Session,
    permits: Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, protocol));
            continue;
        };
        let mut session = base.clone();
        session.peer = peer;
        tokio::spawn(async move {
            tracing::debug!(%peer, ?protocol, "connection opened");
            let result = match protocol {
                Protocol::JsonLines => jsonl::serve_connection(stream, session).await,
                Protocol::Resp => resp::serve_connection(stream, session).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Tells a client over the limit why, then closes (never waiting on it for long).
async fn refuse(mut stream: TcpStream, protocol: Protocol) {
    use tokio::io::AsyncWriteExt;
    let write = stream.write_all(protocol.too_many_connections());
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
