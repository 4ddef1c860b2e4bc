//! The JSON-lines protocol: one JSON request per line, one JSON response per line.
//! See docs/protocol.md.

use tokio::net::TcpStream;

use super::Session;

/// Serves one connection until the client closes it, idles out, breaks the protocol, or the
/// server shuts down.
pub(crate) async fn serve_connection(stream: TcpStream, session: Session) -> std::io::Result<()> {
    // Skeleton: replaced by the JSON-lines implementation.
    let _ = (stream, session);
    Ok(())
}
