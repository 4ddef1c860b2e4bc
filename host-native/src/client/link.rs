//! Which connection a [`crate::Client`] uses, and dialing a new one when it broke.
//!
//! There is no background reconnect loop: the first call after a break dials again (same
//! address, same token). Requests in flight when the connection broke are never resent, since
//! a write among them may or may not have been applied; they fail, and later calls go out on
//! the new connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::conn::{Args, Connection};
use crate::error::{Error, Result};

pub(crate) struct Link {
    addr: String,
    token: Option<String>,
    current: Mutex<Arc<Connection>>,
    /// Held while dialing, so the callers that find the connection broken at once dial it
    /// once between them rather than once each.
    dialing: tokio::sync::Mutex<()>,
    /// Set by [`Link::close`]: no more dialing, every call fails with [`Error::Closed`].
    closed: AtomicBool,
}

impl Link {
    /// Dials `addr` (and authenticates with `token`), failing if either fails.
    pub(crate) async fn open(addr: &str, token: Option<&str>) -> Result<Link> {
        let conn = dial(addr, token).await?;
        Ok(Link {
            addr: addr.to_owned(),
            token: token.map(str::to_owned),
            current: Mutex::new(Arc::new(conn)),
            dialing: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        })
    }

    /// The connection to send on: the current one while it lives, else a new one.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>> {
        if let Some(conn) = self.live()? {
            return Ok(conn);
        }
        let _dialing = self.dialing.lock().await;
        // Another caller may have dialed while this one waited for the lock.
        if let Some(conn) = self.live()? {
            return Ok(conn);
        }
        let conn = Arc::new(dial(&self.addr, self.token.as_deref()).await?);
        let mut current = self.current.lock();
        if self.closed.load(Ordering::Acquire) {
            // close() ran while this dial was under way.
            conn.close();
            return Err(Error::Closed);
        }
        *current = conn.clone();
        Ok(conn)
    }

    fn live(&self) -> Result<Option<Arc<Connection>>> {
        let current = self.current.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok((!current.is_closed()).then(|| current.clone()))
    }

    /// Ends the connection for good (see [`crate::Client::close`]).
    pub(crate) fn close(&self) {
        let current = self.current.lock();
        self.closed.store(true, Ordering::Release);
        current.close();
    }
}

async fn dial(addr: &str, token: Option<&str>) -> Result<Connection> {
    let conn = Connection::open(addr).await?;
    if let Some(token) = token {
        conn.call("auth", Args::new().with("token", token)).await?;
    }
    Ok(conn)
}
