//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts in front
//! of a connection it forwards, naming the client it came from. On a listener with
//! `proxy_protocol = true` every connection must start with one; the address it names
//! replaces the socket's peer for authentication, the HTTP hook, the ACL, traces and logs.
//!
//! [`parse`] is pure: it looks at the bytes read so far and says whether they hold a whole
//! header yet. [`read_header`] reads one from a stream, never past its end (the bytes that
//! follow are the client's MQTT, or its TLS handshake).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The first 12 bytes of a version 2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest version 1 header, CRLF included (the specification's bound).
const V1_LEN_MAX: usize = 107;
/// Longest version 2 header accepted: the 16 fixed bytes and the addresses with room for
/// TLVs (the specification allows 65,535; a load balancer sends a few hundred at most).
const V2_LEN_MAX: usize = 16 + 1024;

/// What the bytes read so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole header yet: at least this many bytes are needed in all.
    Incomplete { needed: usize },
    /// A whole header of `len` bytes; `source` is the client's address (`None` for a
    /// health check from the proxy itself, or an address family it cannot name: the
    /// socket's peer stands).
    Header {
        len: usize,
        source: Option<SocketAddr>,
    },
}

/// Why a connection's PROXY header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("no PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("the connection closed inside its PROXY protocol header")]
    Closed,
}

/// Parses the start of a connection (the bytes read so far).
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { needed: 16 });
    }
    if buf[0] == b'P' {
        return parse_v1(buf);
    }
    if buf[0] == b'\r' {
        return parse_v2(buf);
    }
    Err(ProxyError::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let prefix = &b"PROXY "[..buf.len().min(6)];
    if !b"PROXY ".starts_with(prefix) {
        return Err(ProxyError::Missing);
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_LEN_MAX {
            return Err(ProxyError::Malformed(
                "a version 1 header longer than 107 bytes",
            ));
        }
        return Ok(Parsed::Incomplete {
            needed: buf.len() + 1,
        });
    };
    let len = end + 2;
    if len > V1_LEN_MAX {
        return Err(ProxyError::Malformed(
            "a version 1 header longer than 107 bytes",
        ));
    }
    let line = std::str::from_utf8(&buf[6..end])
        .map_err(|_| ProxyError::Malformed("a version 1 header that is not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["UNKNOWN", ..] => None,
        [family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *family == "TCP4";
            let ip = |text: &str| -> Result<IpAddr, ProxyError> {
                let ip: IpAddr = text
                    .parse()
                    .map_err(|_| ProxyError::Malformed("an address that does not parse"))?;
                if ip.is_ipv4() != v4 {
                    return Err(ProxyError::Malformed("an address of the other family"));
                }
                Ok(ip)
            };
            let port = |text: &str| -> Result<u16, ProxyError> {
                // Decimal without leading zeros, as the specification writes it.
                let leading_zero = text.len() > 1 && text.starts_with('0');
                let valid = !text.is_empty() && !leading_zero;
                text.parse()
                    .ok()
                    .filter(|_| valid)
                    .ok_or(ProxyError::Malformed("a port that is not 0 to 65535"))
            };
            ip(dst)?;
            port(dport)?;
            Some(SocketAddr::new(ip(src)?, port(sport)?))
        }
        _ => return Err(ProxyError::Malformed("a version 1 header of unknown shape")),
    };
    Ok(Parsed::Header { len, source })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let seen = buf.len().min(V2_SIGNATURE.len());
    if buf[..seen] != V2_SIGNATURE[..seen] {
        return Err(ProxyError::Missing);
    }
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete { needed: 16 });
    }
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Err(ProxyError::Malformed(
            "a version 2 signature with another version",
        ));
    }
    let local = match version_command & 0x0F {
        0 => true,
        1 => false,
        _ => {
            return Err(ProxyError::Malformed(
                "a version 2 command other than LOCAL or PROXY",
            ))
        }
    };
    let family = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_LEN_MAX {
        return Err(ProxyError::Malformed(
            "a version 2 header longer than accepted",
        ));
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete { needed: len });
    }
    let addresses = &buf[16..len];
    let source = match (local, family) {
        (true, _) => None,
        // TCP or UDP over IPv4: source, destination, source port, destination port.
        (false, 0x11 | 0x12) => {
            let a = addresses
                .get(..12)
                .ok_or(ProxyError::Malformed("IPv4 addresses cut short"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        (false, 0x21 | 0x22) => {
            let a = addresses
                .get(..36)
                .ok_or(ProxyError::Malformed("IPv6 addresses cut short"))?;
            let octets: [u8; 16] = a[..16].try_into().expect("16 bytes");
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // UNSPEC, or UNIX sockets: no address to give.
        (false, _) => None,
    };
    Ok(Parsed::Header { len, source })
}

/// Reads one PROXY header from `stream` within `timeout`, reading no byte past it; the
/// client's address it names (`None`: keep the socket's).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    let read = async {
        let mut buf = Vec::with_capacity(64);
        loop {
            let needed = match parse(&buf)? {
                Parsed::Header { source, .. } => return Ok(source),
                Parsed::Incomplete { needed } => needed,
            };
            // Version 1 ends at a CRLF whose place is unknown: one byte at a time (at most
            // 107). Version 2 says its length: read exactly that.
            // The first byte tells the version.
            let want = if buf.first().is_none_or(|b| *b == b'P') {
                1
            } else {
                needed - buf.len()
            };
            let start = buf.len();
            buf.resize(start + want, 0);
            match stream.read_exact(&mut buf[start..]).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(ProxyError::Closed)
                }
                Err(_) => return Err(ProxyError::Closed),
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ProxyError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        header.extend_from_slice(addresses);
        header
    }

    #[test]
    fn version_1_names_the_client() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 1883\r\nMQTT";
        let parsed = parse(line).unwrap();
        let source = "192.0.2.7:56324".parse().ok();
        assert_eq!(parsed, Parsed::Header { len: 42, source });
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 1883\r\n";
        let source = "[2001:db8::7]:4000".parse().ok();
        assert_eq!(
            parse(line).unwrap(),
            Parsed::Header {
                len: line.len(),
                source
            }
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(unknown).unwrap(),
            Parsed::Header {
                len: 15,
                source: None
            }
        );
        assert!(matches!(
            parse(b"PROXY TCP4 1.2"),
            Ok(Parsed::Incomplete { .. })
        ));
    }

    #[test]
    fn version_2_names_the_client() {
        let addresses = [192, 0, 2, 7, 10, 0, 0, 1, 0xDC, 0x04, 0x07, 0x5B];
        let header = v2(1, 0x11, &addresses);
        let source = "192.0.2.7:56324".parse().ok();
        assert_eq!(parse(&header).unwrap(), Parsed::Header { len: 28, source });
        // A health check of the proxy itself: no address.
        let local = v2(0, 0x00, &[]);
        assert_eq!(
            parse(&local).unwrap(),
            Parsed::Header {
                len: 16,
                source: None
            }
        );
        // TLVs after the addresses are skipped.
        let mut with_tlv = addresses.to_vec();
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0xAA]);
        let header = v2(1, 0x11, &with_tlv);
        assert!(matches!(parse(&header), Ok(Parsed::Header { len: 32, .. })));
        assert_eq!(parse(&header[..20]), Ok(Parsed::Incomplete { needed: 32 }));
    }

    #[test]
    fn anything_else_is_refused() {
        // An MQTT CONNECT, an HTTP request, TLS: no header.
        for start in [&[0x10u8, 0x0C][..], b"GET / HTTP/1.1", &[0x16, 0x03, 0x01]] {
            assert_eq!(parse(start), Err(ProxyError::Missing), "{start:?}");
        }
        let malformed: [&[u8]; 6] = [
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 1883\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 0123 1883\r\n",
            b"PROXY SCTP 192.0.2.7 10.0.0.1 1 2\r\n",
            &[b'P'; 120],
        ];
        for bytes in malformed {
            assert!(
                matches!(
                    parse(bytes),
                    Err(ProxyError::Malformed(_)) | Err(ProxyError::Missing)
                ),
                "{bytes:?}"
            );
        }
        let wrong_version = {
            let mut header = v2(1, 0x11, &[0; 12]);
            header[12] = 0x11;
            header
        };
        assert!(matches!(
            parse(&wrong_version),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x11, &[0; 4])),
            Err(ProxyError::Malformed(_))
        ));
        let too_long = v2(1, 0x11, &[0; 2000]);
        assert!(matches!(parse(&too_long), Err(ProxyError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_header_is_read_without_taking_the_bytes_after_it() {
        let mut bytes: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 1883\r\n\x10\x0c";
        let source = read_header(&mut bytes, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(source, "192.0.2.7:56324".parse().ok());
        assert_eq!(bytes, b"\x10\x0c");
        let header = v2(1, 0x11, &[192, 0, 2, 7, 10, 0, 0, 1, 0, 1, 0, 2]);
        let mut bytes = [header.as_slice(), b"\x10"].concat();
        let mut reader = bytes.as_slice();
        let source = read_header(&mut reader, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(source, "192.0.2.7:1".parse().ok());
        assert_eq!(reader, b"\x10");
        bytes.truncate(20);
        let mut cut = bytes.as_slice();
        let outcome = read_header(&mut cut, Duration::from_secs(1)).await;
        assert_eq!(outcome, Err(ProxyError::Closed));
    }
}
