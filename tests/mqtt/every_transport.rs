//! A whole node serving MQTT over each of its transports: TCP, TLS, WebSocket (path `/mqtt`,
//! subprotocol `mqtt`) and WebSocket over TLS, with messages crossing between them.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use keel::codec::*;
use keel::net::{BoxStream, Net, Rng, SystemClock, TokioNet};
use keel::server::{ListenerSpec, Server, ServerSettings};
use keel::transport::{TransportAcceptor, WsConfig};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::transport::ServerPki;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A client's byte pipe: a plain/TLS stream or a WebSocket carrying binary frames.
enum Pipe {
    Stream(BoxStream),
    Ws(Box<tokio_tungstenite::WebSocketStream<BoxStream>>),
}

struct Client {
    pipe: Pipe,
    decoder: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn send(&mut self, packet: Packet) {
        let mut bytes = BytesMut::new();
        packet.encode(Protocol::V5, &mut bytes).unwrap();
        match &mut self.pipe {
            Pipe::Stream(s) => {
                s.write_all(&bytes).await.unwrap();
                s.flush().await.unwrap();
            }
            Pipe::Ws(ws) => ws.send(Message::Binary(bytes.freeze())).await.unwrap(),
        }
    }

    async fn recv(&mut self) -> Packet {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                    return packet;
                }
                match &mut self.pipe {
                    Pipe::Stream(s) => assert!(s.read_buf(&mut self.buf).await.unwrap() > 0),
                    Pipe::Ws(ws) => match ws.next().await.unwrap().unwrap() {
                        Message::Binary(data) => self.buf.extend_from_slice(&data),
                        other => panic!("unexpected WebSocket message {other:?}"),
                    },
                }
            }
        })
        .await
        .expect("a packet in time")
    }

    /// CONNECT, then SUBSCRIBE to `topic` at QoS 1.
    async fn open(pipe: Pipe, client_id: &str, topic: &str) -> Client {
        let mut client = Client {
            pipe,
            decoder: Decoder::with_protocol(Protocol::V5, PACKET_SIZE_LIMIT),
            buf: BytesMut::new(),
        };
        client
            .send(Packet::Connect(Box::new(Connect {
                protocol: Protocol::V5,
                clean_start: true,
                keep_alive: 30,
                properties: ConnectProperties::default(),
                client_id: MqttString::new(client_id).unwrap(),
                will: None,
                username: None,
                password: None,
            })))
            .await;
        assert!(
            matches!(client.recv().await, Packet::ConnAck(a) if a.reason_code == ReasonCode::Success)
        );
        client
            .send(Packet::Subscribe(Subscribe {
                packet_id: PacketId::new(1).unwrap(),
                properties: SubscribeProperties::default(),
                filters: vec![(
                    TopicFilter::new(topic).unwrap(),
                    SubscriptionOptions::new(QoS::AtLeastOnce),
                )],
            }))
            .await;
        assert!(matches!(client.recv().await, Packet::SubAck(_)));
        client
    }

    async fn publish(&mut self, topic: &str, payload: &'static [u8]) {
        self.send(Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(PacketId::new(2).unwrap()),
            retain: false,
            topic: TopicName::new(topic).unwrap(),
            properties: PublishProperties::default(),
            payload: Bytes::from_static(payload),
        }))
        .await;
    }

    /// The next PUBLISH, acknowledged; PUBACKs for our own publishes are skipped.
    async fn next_publish(&mut self) -> (String, Bytes) {
        loop {
            match self.recv().await {
                Packet::Publish(p) => {
                    self.send(Packet::PubAck(PubReply::new(p.packet_id().unwrap())))
                        .await;
                    return (p.topic.to_string(), p.payload);
                }
                Packet::PubAck(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

async fn ws_pipe(stream: BoxStream) -> Pipe {
    let mut request = "ws://localhost/mqtt".into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "mqtt");
    Pipe::Ws(Box::new(ws))
}

async fn tls_stream(connector: &TlsConnector, addr: std::net::SocketAddr) -> BoxStream {
    let tcp = TokioNet.connect(&addr.to_string()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    Box::new(connector.connect(name, tcp).await.unwrap())
}

#[tokio::test]
async fn messages_cross_between_tcp_tls_websocket_and_wss_clients() {
    // A self-signed certificate for localhost, trusted by the clients.
    let pki = ServerPki::self_signed();
    let acceptor = pki.acceptor();
    let connector = pki.connector(None);

    let timeout = Duration::from_secs(5);
    let listener = |acceptor| ListenerSpec {
        addr: "127.0.0.1:0".into(),
        acceptor,
        connections_max: None,
    };
    let settings = ServerSettings {
        listeners: vec![
            listener(TransportAcceptor::tcp()),
            listener(TransportAcceptor::tls(acceptor.clone(), timeout)),
            listener(TransportAcceptor::ws(WsConfig::default(), timeout)),
            listener(TransportAcceptor::wss(
                acceptor,
                WsConfig::default(),
                timeout,
            )),
        ],
        ..ServerSettings::default()
    };
    let server = Server::bind(&TokioNet, settings, Arc::new(SystemClock))
        .await
        .unwrap();
    let addrs = server.local_addrs().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(Rng::from_seed(3), async {
        let _ = stopped.await;
    }));

    let tcp = TokioNet.connect(&addrs[0].to_string()).await.unwrap();
    let mut tcp = Client::open(Pipe::Stream(tcp), "over-tcp", "to/tcp").await;
    let mut tls = Client::open(
        Pipe::Stream(tls_stream(&connector, addrs[1]).await),
        "over-tls",
        "to/tls",
    )
    .await;
    let ws = TokioNet.connect(&addrs[2].to_string()).await.unwrap();
    let mut ws = Client::open(ws_pipe(ws).await, "over-ws", "to/ws").await;
    let mut wss = Client::open(
        ws_pipe(tls_stream(&connector, addrs[3]).await).await,
        "over-wss",
        "to/wss",
    )
    .await;

    // A ring: each client publishes to the next one.
    tcp.publish("to/tls", b"from tcp").await;
    tls.publish("to/ws", b"from tls").await;
    ws.publish("to/wss", b"from ws").await;
    wss.publish("to/tcp", b"from wss").await;
    assert_eq!(
        tls.next_publish().await,
        ("to/tls".into(), Bytes::from_static(b"from tcp"))
    );
    assert_eq!(
        ws.next_publish().await,
        ("to/ws".into(), Bytes::from_static(b"from tls"))
    );
    assert_eq!(
        wss.next_publish().await,
        ("to/wss".into(), Bytes::from_static(b"from ws"))
    );
    assert_eq!(
        tcp.next_publish().await,
        ("to/tcp".into(), Bytes::from_static(b"from wss"))
    );
    let _ = stop.send(());
}
