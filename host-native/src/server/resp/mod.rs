//! The Redis-compatible port (RESP2). See docs/resp.md.

use tokio::net::TcpStream;

use super::Session;

/// State every RESP connection shares (PUBLISH / SUBSCRIBE channels).
#[derive(Debug, Default)]
pub(crate) struct Shared {}

/// Serves one connection until the client closes it (QUIT), idles out, breaks the protocol, or
/// the server shuts down.
pub(crate) async fn serve_connection(stream: TcpStream, session: Session) -> std::io::Result<()> {
    // Skeleton: replaced by the RESP implementation.
    let _ = (stream, session);
    Ok(())
}
