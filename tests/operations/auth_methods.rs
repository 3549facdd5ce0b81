//! Authentication methods beyond the password file, end to end against a node built from its
//! configuration: JWT (HS256 and RS256, tokens made by the `jsonwebtoken` crate), the HTTP
//! authentication hook (an axum service of the test's), the chain of methods in order, TLS
//! client certificates as identities (rustls client, rcgen certificates), and MQTT 5 enhanced
//! authentication with SCRAM-SHA-256 and re-authentication, whose client side is the
//! independent `scram` crate.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::{self, RawClient};
use common::TestBroker;
use keel::codec::{
    Auth, AuthProperties, Connect, Decoder, MqttString, Packet, Protocol, QoS, ReasonCode,
    PACKET_SIZE_LIMIT,
};
use keel::config::{Config, HttpAuthConfig, JwtConfig, JwtFrom};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const SECRET: &str = "the HS256 secret of the test issuer";

fn base_config(dir: &tempfile::TempDir) -> Config {
    let passwd = dir.path().join("passwd");
    keel::cli::set_password(&passwd, "alice", b"s3cret").unwrap();
    keel::cli::set_credential(&passwd, "sally", b"pencil", true).unwrap();
    let mut config = Config::default();
    config.auth.allow_anonymous = false;
    config.auth.password_file = Some(passwd);
    config.durability.store = keel::config::StoreKind::Memory;
    config.mqtt.sys_interval_secs = 0;
    config
}

async fn start(config: &Config) -> TestBroker {
    config.validate().unwrap();
    TestBroker::start(keel::startup::settings(config).unwrap()).await
}

fn jwt_config() -> JwtConfig {
    JwtConfig {
        secret: Some(SECRET.into()),
        public_key_file: None,
        from: JwtFrom::Password,
        leeway_secs: 0,
        issuer: None,
        audience: None,
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn hs256(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A CONNECT of `protocol` with these credentials.
fn connect_with(
    protocol: Protocol,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> Connect {
    let mut connect = raw::connect(protocol, client_id);
    connect.username = username.map(|u| MqttString::new(u).unwrap());
    connect.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    connect
}

/// The CONNACK reason these credentials get, in MQTT 5 and in MQTT 3.1.1 (mapped back to
/// the v5 codes by the codec).
async fn verdicts(
    broker: &TestBroker,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> [ReasonCode; 2] {
    let mut out = [ReasonCode::Success; 2];
    for (i, protocol) in [Protocol::V5, Protocol::V3_1_1].into_iter().enumerate() {
        let connect = connect_with(protocol, client_id, username, password);
        let (_client, connack) = RawClient::connect(broker.addr, connect).await;
        out[i] = connack.reason_code;
    }
    out
}

const OK: [ReasonCode; 2] = [ReasonCode::Success; 2];
const BAD: [ReasonCode; 2] = [ReasonCode::BadUserNameOrPassword; 2];
const NOT_AUTHORIZED: [ReasonCode; 2] = [ReasonCode::NotAuthorized; 2];

#[tokio::test]
async fn jwt_hs256_tokens_are_accepted_when_valid_and_bound_to_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(&dir);
    config.auth.jwt = Some(jwt_config());
    let broker = start(&config).await;

    let token = hs256(json!({"exp": now() + 300, "client_id": "dev-1"}), SECRET);
    assert_eq!(
        verdicts(&broker, "dev-1", Some("any"), Some(&token)).await,
        OK
    );
    // MQTT 5 allows a password without a user name (MQTT 3.1.1 does not).
    let nameless = connect_with(Protocol::V5, "dev-1", None, Some(&token));
    let (_client, connack) = RawClient::connect(broker.addr, nameless).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    // Bound to dev-1.
    let stolen = verdicts(&broker, "dev-2", Some("any"), Some(&token)).await;
    assert_eq!(stolen, NOT_AUTHORIZED);
    let forged = hs256(json!({"exp": now() + 300}), "not the secret");
    assert_eq!(
        verdicts(&broker, "dev-1", Some("any"), Some(&forged)).await,
        BAD
    );
    let expired = hs256(json!({"exp": now() - 300}), SECRET);
    assert_eq!(
        verdicts(&broker, "dev-1", Some("any"), Some(&expired)).await,
        BAD
    );
    // The password file still works first in the chain.
    assert_eq!(
        verdicts(&broker, "a", Some("alice"), Some("s3cret")).await,
        OK
    );
}

#[tokio::test]
async fn jwt_rs256_tokens_verify_with_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(&dir);
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    config.auth.jwt = Some(JwtConfig {
        secret: None,
        public_key_file: Some(data.join("jwt-rs256-test-key.pub.pem")),
        ..jwt_config()
    });
    let broker = start(&config).await;
    let private = std::fs::read(data.join("jwt-rs256-test-key.pem")).unwrap();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(&private).unwrap(),
        )
        .unwrap()
    };
    let token = sign(json!({"exp": now() + 300, "username": "dev"}));
    assert_eq!(verdicts(&broker, "c", Some("dev"), Some(&token)).await, OK);
    assert_eq!(
        verdicts(&broker, "c", Some("eve"), Some(&token)).await,
        NOT_AUTHORIZED
    );
    // An HS256 token signed with the public key's bytes (algorithm confusion) is refused.
    let public = std::fs::read_to_string(data.join("jwt-rs256-test-key.pub.pem")).unwrap();
    let confused = hs256(json!({"exp": now() + 300}), &public);
    assert_eq!(
        verdicts(&broker, "c", Some("dev"), Some(&confused)).await,
        BAD
    );
}

/// What the test's authentication service has been asked, and answers: `hooky`/`pw` allow,
/// `denied` deny, `slow` never in time, `broken` a 500, anyone else ignore.
struct Service {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<serde_json::Value>>,
}

async fn auth_service() -> Service {
    use axum::http::StatusCode;
    use axum::Json;
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(std::sync::Mutex::new(json!(null)));
    let (calls2, last2) = (calls.clone(), last.clone());
    let app = axum::Router::new().route(
        "/auth",
        axum::routing::post(move |Json(body): Json<serde_json::Value>| {
            let (calls, last) = (calls2.clone(), last2.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                *last.lock().unwrap() = body.clone();
                let user = body["username"].as_str().unwrap_or("");
                let password = body["password"].as_str().unwrap_or("");
                match user {
                    "hooky" if password == "pw" => {
                        (StatusCode::OK, Json(json!({"result": "allow"})))
                    }
                    "hooky" | "denied" => (StatusCode::OK, Json(json!({"result": "deny"}))),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        (StatusCode::OK, Json(json!({"result": "allow"})))
                    }
                    "broken" => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({}))),
                    _ => (StatusCode::OK, Json(json!({"result": "ignore"}))),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Service { addr, calls, last }
}

fn http_config(service: &Service) -> HttpAuthConfig {
    HttpAuthConfig {
        url: format!("http://{}/auth", service.addr),
        timeout_ms: 500,
        cache_ttl_secs: 60,
        cache_max: 100,
        headers: Default::default(),
    }
}

#[tokio::test]
async fn the_http_hook_allows_denies_and_fails_closed() {
    let service = auth_service().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(&dir);
    config.auth.http = Some(http_config(&service));
    let broker = start(&config).await;

    assert_eq!(verdicts(&broker, "h1", Some("hooky"), Some("pw")).await, OK);
    let asked = service.last.lock().unwrap().clone();
    assert_eq!(asked["client_id"], "h1");
    assert_eq!(asked["password"], "pw");
    assert!(
        asked["peer_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{asked}"
    );
    assert_eq!(asked["protocol_version"], 5);
    // The MQTT 3.1.1 connection had the same client id, credentials and address: the
    // MQTT 5 one's answer served it from the cache.
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the answer is cached"
    );

    assert_eq!(
        verdicts(&broker, "h1", Some("hooky"), Some("nope")).await,
        NOT_AUTHORIZED
    );
    assert_eq!(
        verdicts(&broker, "h2", Some("denied"), Some("x")).await,
        NOT_AUTHORIZED
    );
    // Ignored by the hook and unknown to the file: nobody vouches for the name.
    assert_eq!(
        verdicts(&broker, "h3", Some("stranger"), Some("x")).await,
        BAD
    );
    // A failing or slow hook never lets anyone in.
    assert_eq!(
        verdicts(&broker, "h4", Some("broken"), Some("x")).await,
        BAD
    );
    let slow = tokio::time::Instant::now();
    assert_eq!(verdicts(&broker, "h5", Some("slow"), Some("x")).await, BAD);
    assert!(
        slow.elapsed() < Duration::from_secs(4),
        "the hook's timeout applies"
    );
    // Both failures (each asked twice: MQTT 5 and 3.1.1; failures are not cached) counted.
    assert!(keel::server::HOOK_ERRORS.load(Ordering::Relaxed) >= 4);
    // The password file comes first in the default chain: alice never reaches the hook.
    let before = service.calls.load(Ordering::SeqCst);
    assert_eq!(
        verdicts(&broker, "a", Some("alice"), Some("s3cret")).await,
        OK
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn the_chain_runs_in_the_configured_order() {
    let service = auth_service().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(&dir);
    config.auth.http = Some(HttpAuthConfig {
        cache_ttl_secs: 0,
        ..http_config(&service)
    });
    config.auth.jwt = Some(jwt_config());
    config.auth.chain = vec![
        keel::config::AuthMethodName::Http,
        keel::config::AuthMethodName::PasswordFile,
    ];
    let broker = start(&config).await;
    // The hook is asked first (and ignores alice), then the file decides.
    assert_eq!(
        verdicts(&broker, "a", Some("alice"), Some("s3cret")).await,
        OK
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
    // JWT is configured but not in the chain: its tokens count for nothing.
    let token = hs256(json!({"exp": now() + 300}), SECRET);
    assert_eq!(verdicts(&broker, "j", Some("jay"), Some(&token)).await, BAD);

    // A chain naming a method that is not configured is refused.
    let mut bad = base_config(&dir);
    bad.auth.chain = vec![keel::config::AuthMethodName::Jwt];
    let error = bad.validate().unwrap_err().to_string();
    assert!(
        error.contains("auth.chain") && error.contains("not configured"),
        "{error}"
    );
}

/// Writes `packet` on any stream and reads the answer with Keel's codec.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    packet: Packet,
) -> Option<Packet> {
    let mut out = BytesMut::new();
    packet.encode(Protocol::V5, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut decoder = Decoder::with_protocol(Protocol::V5, PACKET_SIZE_LIMIT);
    common::within("an answer", async {
        loop {
            if let Some(packet) = decoder.decode(buf).unwrap() {
                return Some(packet);
            }
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_tls_client_certificate_names_the_client() {
    use keel::transport::{tls, ClientAuth, TlsSettings, TransportAcceptor};
    use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, ServerName};

    let dir = tempfile::tempdir().unwrap();
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), server.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        server.signing_key.serialize_pem(),
    )
    .unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "device-7");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
    assert_eq!(
        tls::cert_identity(client_cert.der()).as_deref(),
        Some("device-7")
    );

    let acl = dir.path().join("acl.toml");
    std::fs::write(
        &acl,
        "[[rule]]\npermission = \"allow\"\ntopics = [\"devices/%u/#\"]\n",
    )
    .unwrap();
    let mut config = base_config(&dir);
    config.auth.acl_file = Some(acl);
    config.validate().unwrap();
    let mut settings = keel::startup::settings(&config).unwrap();
    let acceptor = tls::acceptor(&TlsSettings {
        cert_chain_path: dir.path().join("cert.pem"),
        key_path: dir.path().join("key.pem"),
        client_auth: ClientAuth::Optional {
            ca_path: dir.path().join("ca.pem"),
        },
    })
    .unwrap();
    settings.listeners = vec![keel::server::ListenerSpec {
        addr: "127.0.0.1:0".into(),
        acceptor: TransportAcceptor::tls(acceptor, Duration::from_secs(10)),
        connections_max: None,
    }];
    settings.use_identity_as_username = true;
    let broker = TestBroker::start_listening(settings).await;

    let tls_client = |identity| common::tls::connector(server.cert.der(), identity);
    let open = |connector: tokio_rustls::TlsConnector| async move {
        let tcp = tokio::net::TcpStream::connect(broker.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    };

    // With the certificate: in without a password, as user device-7 (claiming another
    // user name changes nothing), and the ACL's %u is device-7.
    let key = PrivateKeyDer::try_from(client_key.serialize_der()).unwrap();
    let mut stream = open(tls_client(Some((client_cert.der().clone(), key)))).await;
    let mut buf = BytesMut::new();
    let connect = connect_with(Protocol::V5, "cert-client", Some("mallory"), None);
    let connack = exchange(&mut stream, &mut buf, Packet::Connect(Box::new(connect))).await;
    assert!(
        matches!(&connack, Some(Packet::ConnAck(c)) if c.reason_code == ReasonCode::Success),
        "{connack:?}"
    );
    for (filter, expected) in [
        ("devices/device-7/cmd", ReasonCode::GrantedQoS1),
        ("devices/mallory/cmd", ReasonCode::NotAuthorized),
    ] {
        let subscribe = Packet::Subscribe(raw::subscribe(1, filter, QoS::AtLeastOnce));
        match exchange(&mut stream, &mut buf, subscribe).await {
            Some(Packet::SubAck(suback)) => assert_eq!(suback.reason_codes, [expected], "{filter}"),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    // Without a certificate the password rules apply as on any listener.
    let mut stream = open(tls_client(None)).await;
    let mut buf = BytesMut::new();
    let connect = connect_with(Protocol::V5, "no-cert", Some("device-7"), None);
    let connack = exchange(&mut stream, &mut buf, Packet::Connect(Box::new(connect))).await;
    assert!(
        matches!(&connack, Some(Packet::ConnAck(c)) if c.reason_code == ReasonCode::BadUserNameOrPassword),
        "{connack:?}"
    );
}

fn scram_connect(client_id: &str, data: &str) -> Connect {
    let mut connect = raw::connect(Protocol::V5, client_id);
    connect.properties.authentication_method = Some(MqttString::new("SCRAM-SHA-256").unwrap());
    connect.properties.authentication_data = Some(Bytes::copy_from_slice(data.as_bytes()));
    connect
}

fn auth(reason_code: ReasonCode, data: &str) -> Packet {
    Packet::Auth(Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(MqttString::new("SCRAM-SHA-256").unwrap()),
            authentication_data: Some(Bytes::copy_from_slice(data.as_bytes())),
            ..AuthProperties::default()
        },
    })
}

/// The Authentication Data of an AUTH or CONNACK, as text.
fn auth_data(packet: &Packet) -> String {
    let data = match packet {
        Packet::Auth(auth) => auth.properties.authentication_data.clone(),
        Packet::ConnAck(connack) => connack.properties.authentication_data.clone(),
        other => panic!("expected AUTH or CONNACK, got {other:?}"),
    };
    String::from_utf8(data.expect("authentication data").to_vec()).unwrap()
}

/// Runs a SCRAM exchange as `user`/`password` up to the broker's last answer, which it
/// returns with the client's check of the server signature.
async fn scram_connect_as(
    broker: &TestBroker,
    user: &str,
    password: &str,
) -> (RawClient, Packet, Option<bool>) {
    let scram = scram::ScramClient::new(user, password, None);
    let (server_first_state, client_first) = scram.client_first();
    let mut client = RawClient::open(broker.addr, Protocol::V5).await;
    client
        .send(Packet::Connect(Box::new(scram_connect(
            "scram-client",
            &client_first,
        ))))
        .await;
    let continue_packet = client.expect_packet().await;
    let Packet::Auth(continued) = &continue_packet else {
        return (client, continue_packet, None);
    };
    assert_eq!(continued.reason_code, ReasonCode::ContinueAuthentication);
    let final_state = server_first_state
        .handle_server_first(&auth_data(&continue_packet))
        .expect("a server-first message the client accepts");
    let (server_final_state, client_final) = final_state.client_final();
    client
        .send(auth(ReasonCode::ContinueAuthentication, &client_final))
        .await;
    let last = client.expect_packet().await;
    let verified = match &last {
        Packet::ConnAck(c) if c.reason_code == ReasonCode::Success => Some(
            server_final_state
                .handle_server_final(&auth_data(&last))
                .is_ok(),
        ),
        _ => None,
    };
    (client, last, verified)
}

#[tokio::test]
async fn scram_sha_256_enhanced_authentication_and_re_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&base_config(&dir)).await;

    let (mut client, connack, verified) = scram_connect_as(&broker, "sally", "pencil").await;
    let Packet::ConnAck(connack) = connack else {
        panic!("expected CONNACK, got {connack:?}")
    };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(
        connack
            .properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some("SCRAM-SHA-256")
    );
    assert_eq!(
        verified,
        Some(true),
        "the client verified the server's signature"
    );

    // Re-authentication: AUTH 0x19 ... AUTH 0x00; the session carries on throughout.
    let scram = scram::ScramClient::new("sally", "pencil", None);
    let (state, client_first) = scram.client_first();
    client
        .send(auth(ReasonCode::ReAuthenticate, &client_first))
        .await;
    let server_first = client.expect_packet().await;
    let state = state
        .handle_server_first(&auth_data(&server_first))
        .unwrap();
    assert_eq!(
        client.subscribe(1, "t", QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
    let (state, client_final) = state.client_final();
    client
        .send(auth(ReasonCode::ContinueAuthentication, &client_final))
        .await;
    let success = client.expect_packet().await;
    assert!(
        matches!(&success, Packet::Auth(a) if a.reason_code == ReasonCode::Success),
        "{success:?}"
    );
    state.handle_server_final(&auth_data(&success)).unwrap();

    // A failed re-authentication ends the connection.
    let scram = scram::ScramClient::new("sally", "wrong", None);
    let (state, client_first) = scram.client_first();
    client
        .send(auth(ReasonCode::ReAuthenticate, &client_first))
        .await;
    let server_first = client.expect_packet().await;
    let (_, client_final) = state
        .handle_server_first(&auth_data(&server_first))
        .unwrap()
        .client_final();
    client
        .send(auth(ReasonCode::ContinueAuthentication, &client_final))
        .await;
    client.expect_disconnect(ReasonCode::NotAuthorized).await;

    // Wrong password, unknown user, a user with only an argon2 hash: CONNACK 0x86.
    for (user, password) in [("sally", "pen"), ("nobody", "pencil"), ("alice", "s3cret")] {
        let (_, last, _) = scram_connect_as(&broker, user, password).await;
        assert!(
            matches!(&last, Packet::ConnAck(c) if c.reason_code == ReasonCode::BadUserNameOrPassword),
            "{user}: {last:?}"
        );
    }
    // A SCRAM user's password also works as a plain password.
    assert_eq!(
        verdicts(&broker, "p", Some("sally"), Some("pencil")).await,
        OK
    );
}

#[tokio::test]
async fn enhanced_authentication_refuses_unknown_methods_and_stray_auth() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&base_config(&dir)).await;
    let mut connect = scram_connect("m", "n,,n=sally,r=abc");
    connect.properties.authentication_method = Some(MqttString::new("KERBEROS").unwrap());
    let (_, connack) = RawClient::connect(broker.addr, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::BadAuthenticationMethod);

    // Anything but AUTH during the exchange.
    let mut client = RawClient::open(broker.addr, Protocol::V5).await;
    client
        .send(Packet::Connect(Box::new(scram_connect(
            "s",
            "n,,n=sally,r=abc",
        ))))
        .await;
    assert!(matches!(client.expect_packet().await, Packet::Auth(_)));
    client.send(Packet::PingReq).await;
    match client.expect_packet().await {
        Packet::ConnAck(connack) => assert_eq!(connack.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    client.expect_closed().await;

    // AUTH from a client that connected without a method.
    let mut plain = RawClient::connect(
        broker.addr,
        connect_with(Protocol::V5, "plain", Some("alice"), Some("s3cret")),
    )
    .await
    .0;
    plain
        .send(auth(ReasonCode::ReAuthenticate, "n,,n=alice,r=abc"))
        .await;
    plain.expect_disconnect(ReasonCode::ProtocolError).await;
}
