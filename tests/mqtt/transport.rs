//! Transports end to end over loopback: TLS with rustls, WebSocket and WSS with an independent
//! client (tokio-tungstenite's client side, tokio-rustls's client side), certificates made by
//! rcgen.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel::net::{BoxStream, Listener, Net, TokioListener, TokioNet};
use keel::transport::tls::{self, TlsFile};
use keel::transport::{
    Accepted, ClientAuth, TlsConfigError, TlsSettings, Transport, TransportAcceptor, WsConfig,
};
use rcgen::{CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Long enough for any handshake on a loaded 2-core machine; tests that want a timeout use
/// their own.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An MQTT 3.1.1 CONNECT (client id "abc", clean session, keep-alive 60 s): 17 bytes.
const CONNECT: [u8; 17] = [
    0x10, 0x0f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03, b'a', b'b',
    b'c',
];
const PINGREQ: [u8; 2] = [0xc0, 0x00];
const DISCONNECT: [u8; 2] = [0xe0, 0x00];
const CONNACK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
const PINGRESP: [u8; 2] = [0xd0, 0x00];

/// A server certificate for `localhost` written as PEM files into a temporary directory (also
/// the certificate of the whole node in [`super::every_transport`]).
pub(crate) struct ServerPki {
    dir: tempfile::TempDir,
    cert_der: CertificateDer<'static>,
}

impl ServerPki {
    pub(crate) fn self_signed() -> ServerPki {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .unwrap();
        ServerPki {
            cert_der: certified.cert.der().clone(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert_chain_path: self.path("cert.pem"),
            key_path: self.path("key.pem"),
            client_auth,
        }
    }

    pub(crate) fn acceptor(&self) -> tls::TlsAcceptor {
        tls::acceptor(&self.settings(ClientAuth::Off)).unwrap()
    }

    /// A client that trusts only this server certificate, optionally presenting its own.
    pub(crate) fn connector(
        &self,
        client_identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> TlsConnector {
        crate::common::tls::connector(&self.cert_der, client_identity)
    }
}

/// A CA written to `dir/ca.pem`, and a client certificate it signed.
fn client_ca_and_cert(dir: &Path) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["client-1".to_string()]).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
    let key = PrivateKeyDer::try_from(client_key.serialize_der()).unwrap();
    (client_cert.der().clone(), key)
}

async fn listen() -> (TokioListener, String) {
    let listener = TokioNet.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// Accepts one connection and runs `acceptor`'s handshakes on it.
async fn accept_one(
    mut listener: TokioListener,
    acceptor: TransportAcceptor,
) -> std::io::Result<Accepted> {
    let (stream, _peer) = listener.accept().await?;
    acceptor.accept(stream).await
}

async fn tls_connect(connector: &TlsConnector, addr: &str) -> std::io::Result<BoxStream> {
    let tcp = TokioNet.connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await?;
    Ok(Box::new(stream))
}

/// Reads exactly `len` bytes.
async fn read_n(stream: &mut (impl AsyncRead + Unpin), len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await.unwrap();
    buf
}

async fn write_flush(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
}

// ---------------------------------------------------------------- TLS

#[tokio::test]
async fn tls_handshake_then_bytes_flow_both_ways() {
    let pki = ServerPki::self_signed();
    let (listener, addr) = listen().await;
    let acceptor = TransportAcceptor::tls(pki.acceptor(), HANDSHAKE_TIMEOUT);
    assert_eq!(acceptor.transport(), Transport::Tls);
    let server = tokio::spawn(async move {
        let mut accepted = accept_one(listener, acceptor).await.unwrap();
        assert!(accepted.client_cert.is_none());
        let received = read_n(&mut accepted.stream, CONNECT.len()).await;
        write_flush(&mut accepted.stream, &CONNACK).await;
        received
    });

    let mut client = tls_connect(&pki.connector(None), &addr).await.unwrap();
    write_flush(&mut client, &CONNECT).await;
    assert_eq!(read_n(&mut client, CONNACK.len()).await, CONNACK);
    assert_eq!(server.await.unwrap(), CONNECT);
}

#[tokio::test]
async fn tls_client_that_does_not_trust_the_server_fails_the_handshake() {
    let pki = ServerPki::self_signed();
    let stranger = ServerPki::self_signed();
    let (listener, addr) = listen().await;
    let acceptor = TransportAcceptor::tls(pki.acceptor(), HANDSHAKE_TIMEOUT);
    let server = tokio::spawn(accept_one(listener, acceptor));

    let client = tls_connect(&stranger.connector(None), &addr).await;
    assert!(client.is_err(), "client must reject an unknown certificate");
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn tls_handshake_times_out_when_the_client_stays_silent() {
    let pki = ServerPki::self_signed();
    let (listener, addr) = listen().await;
    let acceptor = TransportAcceptor::tls(pki.acceptor(), Duration::from_millis(200));
    let server = tokio::spawn(accept_one(listener, acceptor));

    let _silent = TokioNet.connect(&addr).await.unwrap();
    let error = server.await.unwrap().err().unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test]
async fn required_client_cert_is_verified_and_returned() {
    let pki = ServerPki::self_signed();
    let (client_cert, client_key) = client_ca_and_cert(pki.dir.path());
    let settings = pki.settings(ClientAuth::Required {
        ca_path: pki.path("ca.pem"),
    });
    let acceptor = TransportAcceptor::tls(tls::acceptor(&settings).unwrap(), HANDSHAKE_TIMEOUT);

    // With the certificate: accepted, and the server sees which one.
    let (listener, addr) = listen().await;
    let server = tokio::spawn(accept_one(listener, acceptor.clone()));
    let identity = Some((client_cert.clone(), client_key));
    let mut client = tls_connect(&pki.connector(identity), &addr).await.unwrap();
    let mut accepted = server.await.unwrap().unwrap();
    assert_eq!(accepted.client_cert, Some(client_cert));
    write_flush(&mut client, &PINGREQ).await;
    assert_eq!(read_n(&mut accepted.stream, 2).await, PINGREQ);

    // Without one: refused.
    let (listener, addr) = listen().await;
    let server = tokio::spawn(accept_one(listener, acceptor));
    let mut client = tls_connect(&pki.connector(None), &addr).await.unwrap();
    // In TLS 1.3 the client finishes first; the server's refusal arrives as an alert.
    let _ = client.write_all(&PINGREQ).await;
    let _ = client.flush().await;
    assert!(server.await.unwrap().is_err());
    let mut buf = [0u8; 1];
    assert!(!matches!(client.read(&mut buf).await, Ok(1)));
}

#[tokio::test]
async fn optional_client_cert_admits_anonymous_clients() {
    let pki = ServerPki::self_signed();
    let _ = client_ca_and_cert(pki.dir.path());
    let settings = pki.settings(ClientAuth::Optional {
        ca_path: pki.path("ca.pem"),
    });
    let acceptor = TransportAcceptor::tls(tls::acceptor(&settings).unwrap(), HANDSHAKE_TIMEOUT);
    let (listener, addr) = listen().await;
    let server = tokio::spawn(accept_one(listener, acceptor));
    let mut client = tls_connect(&pki.connector(None), &addr).await.unwrap();
    write_flush(&mut client, &PINGREQ).await;
    let mut accepted = server.await.unwrap().unwrap();
    assert!(accepted.client_cert.is_none());
    assert_eq!(read_n(&mut accepted.stream, 2).await, PINGREQ);
}

#[test]
fn missing_cert_file_error_names_the_file_and_the_path() {
    let pki = ServerPki::self_signed();
    let mut settings = pki.settings(ClientAuth::Off);
    settings.cert_chain_path = pki.path("nope.pem");
    let error = tls::acceptor(&settings).err().unwrap();
    assert!(matches!(
        error,
        TlsConfigError::Read {
            file: TlsFile::CertChain,
            ..
        }
    ));
    let message = error.to_string();
    assert!(
        message.starts_with("cannot read certificate chain file ")
            && message.contains(&pki.path("nope.pem").display().to_string()),
        "{message}"
    );
}

#[test]
fn missing_key_and_ca_files_are_named() {
    let pki = ServerPki::self_signed();
    let mut settings = pki.settings(ClientAuth::Off);
    settings.key_path = pki.path("no-key.pem");
    let message = tls::acceptor(&settings).err().unwrap().to_string();
    assert!(
        message.starts_with("cannot read private key file "),
        "{message}"
    );
    assert!(message.contains("no-key.pem"), "{message}");

    let settings = pki.settings(ClientAuth::Required {
        ca_path: pki.path("no-ca.pem"),
    });
    let message = tls::acceptor(&settings).err().unwrap().to_string();
    assert!(
        message.starts_with("cannot read client CA file "),
        "{message}"
    );
}

#[test]
fn malformed_pem_and_swapped_files_are_explained() {
    let pki = ServerPki::self_signed();
    // A PEM section that never ends.
    std::fs::write(
        pki.path("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
    )
    .unwrap();
    let mut settings = pki.settings(ClientAuth::Off);
    settings.cert_chain_path = pki.path("broken.pem");
    let error = tls::acceptor(&settings).err().unwrap();
    assert!(matches!(error, TlsConfigError::Pem { .. }), "{error}");
    assert!(error.to_string().contains("is not valid PEM"), "{error}");

    // Key and certificate swapped: neither file holds what it should.
    let mut settings = pki.settings(ClientAuth::Off);
    settings.cert_chain_path = pki.path("key.pem");
    let message = tls::acceptor(&settings).err().unwrap().to_string();
    assert!(message.contains("contains no certificate"), "{message}");
    let mut settings = pki.settings(ClientAuth::Off);
    settings.key_path = pki.path("cert.pem");
    let message = tls::acceptor(&settings).err().unwrap().to_string();
    assert!(message.contains("contains no private key"), "{message}");
}

#[test]
fn key_of_another_certificate_is_refused() {
    let pki = ServerPki::self_signed();
    let other = ServerPki::self_signed();
    let mut settings = pki.settings(ClientAuth::Off);
    settings.key_path = other.path("key.pem");
    let error = tls::acceptor(&settings).err().unwrap();
    assert!(matches!(error, TlsConfigError::CertKey { .. }), "{error}");
    assert!(
        error.to_string().contains("cannot be used together"),
        "{error}"
    );
}

// ---------------------------------------------------------------- WebSocket

type WsClient = WebSocketStream<BoxStream>;

async fn ws_client_on(
    stream: BoxStream,
    path: &str,
    subprotocol: Option<&str>,
) -> Result<WsClient, WsError> {
    let mut request = format!("ws://localhost{path}").into_client_request()?;
    if let Some(subprotocol) = subprotocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", subprotocol.parse().unwrap());
    }
    let (client, response) = tokio_tungstenite::client_async(request, stream).await?;
    let chosen = response.headers().get("Sec-WebSocket-Protocol");
    assert_eq!(chosen.map(|v| v.to_str().unwrap()), subprotocol);
    Ok(client)
}

async fn ws_client(addr: &str, path: &str, subprotocol: Option<&str>) -> Result<WsClient, WsError> {
    let tcp = TokioNet.connect(addr).await.unwrap();
    ws_client_on(tcp, path, subprotocol).await
}

/// Starts a WS server accepting one connection; returns its address and the accept task.
async fn ws_server(
    config: WsConfig,
) -> (String, tokio::task::JoinHandle<std::io::Result<Accepted>>) {
    let (listener, addr) = listen().await;
    let acceptor = TransportAcceptor::ws(config, HANDSHAKE_TIMEOUT);
    assert_eq!(acceptor.transport(), Transport::Ws);
    (addr, tokio::spawn(accept_one(listener, acceptor)))
}

/// The next binary message the client receives.
async fn next_binary(client: &mut WsClient) -> Vec<u8> {
    match client.next().await {
        Some(Ok(Message::Binary(payload))) => payload.to_vec(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

#[tokio::test]
async fn ws_reader_sees_the_exact_byte_stream_across_and_within_frames() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();
    assert!(server.client_cert.is_none());

    // One packet split across two frames.
    client
        .send(Message::binary(CONNECT[..5].to_vec()))
        .await
        .unwrap();
    client
        .send(Message::binary(CONNECT[5..].to_vec()))
        .await
        .unwrap();
    // Two packets in one frame.
    let two = [PINGREQ, DISCONNECT].concat();
    client.send(Message::binary(two.clone())).await.unwrap();
    // One packet in a fragmented message: a binary frame and a continuation frame.
    let first = Frame::message(PINGREQ[..1].to_vec(), OpCode::Data(Data::Binary), false);
    let rest = Frame::message(PINGREQ[1..].to_vec(), OpCode::Data(Data::Continue), true);
    client.send(Message::Frame(first)).await.unwrap();
    client.send(Message::Frame(rest)).await.unwrap();

    let expected = [CONNECT.as_slice(), &two, &PINGREQ].concat();
    assert_eq!(read_n(&mut server.stream, expected.len()).await, expected);
}

#[tokio::test]
async fn ws_reads_deliver_partial_payloads_to_small_buffers() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();
    client
        .send(Message::binary(CONNECT.to_vec()))
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut byte = [0u8; 3];
    while received.len() < CONNECT.len() {
        let n = server.stream.read(&mut byte).await.unwrap();
        assert!(n > 0);
        received.extend_from_slice(&byte[..n]);
    }
    assert_eq!(received, CONNECT);
}

#[tokio::test]
async fn ws_writes_arrive_as_binary_frames() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();

    write_flush(&mut server.stream, &CONNACK).await;
    assert_eq!(next_binary(&mut client).await, CONNACK);
    write_flush(&mut server.stream, &PINGRESP).await;
    assert_eq!(next_binary(&mut client).await, PINGRESP);
}

#[tokio::test]
async fn ws_large_write_is_cut_at_the_message_size_limit() {
    let config = WsConfig {
        message_size_max: 1000,
        ..WsConfig::default()
    };
    let (addr, server) = ws_server(config).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();

    let payload: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    write_flush(&mut server.stream, &payload).await;
    let mut received = Vec::new();
    while received.len() < payload.len() {
        let message = next_binary(&mut client).await;
        assert!(message.len() <= 1000);
        received.extend_from_slice(&message);
    }
    assert_eq!(received, payload);
}

#[tokio::test]
async fn ws_accepts_mqttv31_and_no_subprotocol() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let _client = ws_client(&addr, "/mqtt", Some("mqttv3.1")).await.unwrap();
    server.await.unwrap().unwrap();

    let (addr, server) = ws_server(WsConfig::default()).await;
    let _client = ws_client(&addr, "/mqtt", None).await.unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn ws_wrong_path_is_rejected_with_404() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let error = ws_client(&addr, "/chat", Some("mqtt")).await.err().unwrap();
    match error {
        WsError::Http(response) => assert_eq!(response.status(), 404),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    let server_error = server.await.unwrap().err().unwrap();
    assert_eq!(server_error.kind(), std::io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn ws_foreign_subprotocol_is_rejected() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let error = ws_client(&addr, "/mqtt", Some("chat")).await.err().unwrap();
    match error {
        WsError::Http(response) => assert_eq!(response.status(), 400),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn ws_text_frame_closes_the_connection_with_1003() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();

    client.send(Message::text("hello")).await.unwrap();
    let mut buf = [0u8; 16];
    let error = server.stream.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("MQTT-6.0.0-1"), "{error}");
    match client.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Unsupported),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn ws_message_over_the_limit_fails_the_read() {
    let config = WsConfig {
        message_size_max: 64,
        ..WsConfig::default()
    };
    let (addr, server) = ws_server(config).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();

    client.send(Message::binary(vec![0u8; 65])).await.unwrap();
    let mut buf = [0u8; 128];
    assert!(server.stream.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn ws_client_close_reads_as_end_of_stream_and_ping_is_answered() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();

    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        server.stream.read_to_end(&mut all).await.unwrap();
        all
    });
    client
        .send(Message::Ping(b"hi".to_vec().into()))
        .await
        .unwrap();
    match client.next().await {
        Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"hi"),
        other => panic!("expected a pong, got {other:?}"),
    }
    client
        .send(Message::binary(PINGREQ.to_vec()))
        .await
        .unwrap();
    client.close(None).await.unwrap();
    assert_eq!(reader.await.unwrap(), PINGREQ);
    // The server answered the close, so the client's stream ends cleanly.
    assert!(matches!(client.next().await, Some(Ok(Message::Close(_)))));
    assert!(client.next().await.is_none());
}

#[tokio::test]
async fn ws_server_shutdown_sends_a_close_frame() {
    let (addr, server) = ws_server(WsConfig::default()).await;
    let mut client = ws_client(&addr, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();

    server.stream.write_all(&PINGRESP).await.unwrap();
    server.stream.shutdown().await.unwrap();
    assert_eq!(next_binary(&mut client).await, PINGRESP);
    assert!(matches!(client.next().await, Some(Ok(Message::Close(_)))));
}

#[tokio::test]
async fn ws_upgrade_times_out_when_the_client_stays_silent() {
    let (listener, addr) = listen().await;
    let acceptor = TransportAcceptor::ws(WsConfig::default(), Duration::from_millis(200));
    let server = tokio::spawn(accept_one(listener, acceptor));
    let _silent = TokioNet.connect(&addr).await.unwrap();
    let error = server.await.unwrap().err().unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
}

// ---------------------------------------------------------------- WSS and TCP

#[tokio::test]
async fn wss_end_to_end() {
    let pki = ServerPki::self_signed();
    let (listener, addr) = listen().await;
    let acceptor = TransportAcceptor::wss(pki.acceptor(), WsConfig::default(), HANDSHAKE_TIMEOUT);
    assert_eq!(acceptor.transport(), Transport::Wss);
    let server = tokio::spawn(accept_one(listener, acceptor));

    let tls = tls_connect(&pki.connector(None), &addr).await.unwrap();
    let mut client = ws_client_on(tls, "/mqtt", Some("mqtt")).await.unwrap();
    let mut server = server.await.unwrap().unwrap();

    client
        .send(Message::binary(CONNECT[..3].to_vec()))
        .await
        .unwrap();
    client
        .send(Message::binary(CONNECT[3..].to_vec()))
        .await
        .unwrap();
    assert_eq!(read_n(&mut server.stream, CONNECT.len()).await, CONNECT);
    write_flush(&mut server.stream, &CONNACK).await;
    assert_eq!(next_binary(&mut client).await, CONNACK);
}

#[tokio::test]
async fn tcp_acceptor_passes_the_stream_through() {
    let (listener, addr) = listen().await;
    let acceptor = TransportAcceptor::tcp();
    assert_eq!(acceptor.transport(), Transport::Tcp);
    let server = tokio::spawn(accept_one(listener, acceptor));
    let mut client = TokioNet.connect(&addr).await.unwrap();
    let mut server = server.await.unwrap().unwrap();
    write_flush(&mut client, &CONNECT).await;
    assert_eq!(read_n(&mut server.stream, CONNECT.len()).await, CONNECT);
}
