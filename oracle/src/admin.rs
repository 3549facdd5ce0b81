//! Requests to a node's admin HTTP API, as an operator's script would make them: the
//! simulator's operator changes the membership with them and `jepsen/` asks the nodes who
//! leads. One HTTP/1.1 request per connection (`connection: close`), with a deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use keel::net::Net;

/// Sends `method path` with `headers` (credentials, say) and a JSON `body` (empty for none)
/// to `addr` (`host:port`); the status and body of the response, or `None` when there was
/// none within `timeout`.
pub async fn request<N: Net>(
    net: &N,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = net.connect(addr).await.ok()?;
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let extra: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8(response).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        Some((status, body.to_string()))
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}
