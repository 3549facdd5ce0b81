//! Enhanced authentication (MQTT 5 AUTH) at CONNECT and re-authentication.

use super::*;

/// An enhanced authentication method for the tests: the client must say "one", then "three";
/// the server answers "two", then "four" as user "knocker".
#[derive(Debug)]
struct Knock {
    said_one: bool,
}

impl AuthExchange for Knock {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        match (self.said_one, data) {
            (false, b"one") => {
                self.said_one = true;
                AuthStep::Continue(Bytes::from_static(b"two"))
            }
            (true, b"three") => AuthStep::Success {
                username: "knocker".into(),
                data: Some(Bytes::from_static(b"four")),
            },
            _ => AuthStep::Failure(ReasonCode::NotAuthorized),
        }
    }
}

struct KnockAuth;

impl Authenticator for KnockAuth {
    fn authenticate(&self, _: &Connect) -> Result<(), ReasonCode> {
        Err(ReasonCode::NotAuthorized)
    }

    fn start_exchange(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        (method == "KNOCK").then(|| Box::new(Knock { said_one: false }) as Box<dyn AuthExchange>)
    }
}

fn knock(reason_code: ReasonCode, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(MqttString::new("KNOCK").unwrap()),
            authentication_data: Some(Bytes::from_static(data)),
            ..AuthProperties::default()
        },
    })
}

/// (reason code, authentication data) of an AUTH.
fn auth_of(packets: &[Packet]) -> Vec<(ReasonCode, Option<Bytes>)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Auth(a) => Some((a.reason_code, a.properties.authentication_data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn enhanced_authentication_runs_before_the_connack_and_again_on_re_authentication() {
    let mut hub = Hub::new();
    let mut connect = connect(Protocol::V5, "k");
    connect.properties.authentication_method = Some(MqttString::new("KNOCK").unwrap());
    connect.properties.authentication_data = Some(Bytes::from_static(b"one"));
    let out = hub.send_with(
        ConnId(1),
        Packet::Connect(Box::new(connect.clone())),
        &KnockAuth,
    );
    let two = Some(Bytes::from_static(b"two"));
    assert_eq!(
        auth_of(&out),
        [(ReasonCode::ContinueAuthentication, two.clone())]
    );
    assert_eq!(out.len(), 1, "no CONNACK before the exchange ends: {out:?}");
    assert!(
        hub.broker.state().sessions().next().is_none(),
        "no session yet"
    );

    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ContinueAuthentication, b"three"),
        &KnockAuth,
    );
    let Some(Packet::ConnAck(connack)) = out.first() else {
        panic!("expected CONNACK, got {out:?}");
    };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(
        connack
            .properties
            .authentication_method
            .as_ref()
            .unwrap()
            .as_str(),
        "KNOCK"
    );
    assert_eq!(
        connack.properties.authentication_data,
        Some(Bytes::from_static(b"four"))
    );

    // Re-authentication: the client keeps working while it runs.
    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ReAuthenticate, b"one"),
        &KnockAuth,
    );
    assert_eq!(auth_of(&out), [(ReasonCode::ContinueAuthentication, two)]);
    let out = hub.send_with(ConnId(1), Packet::PingReq, &KnockAuth);
    assert_eq!(out, [Packet::PingResp]);
    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ContinueAuthentication, b"three"),
        &KnockAuth,
    );
    let four = Some(Bytes::from_static(b"four"));
    assert_eq!(auth_of(&out), [(ReasonCode::Success, four)]);
    // Continuing an exchange that is not running is a protocol error.
    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ContinueAuthentication, b"x"),
        &KnockAuth,
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
    assert!(hub.closing(ConnId(1)));

    // A failed exchange refuses the CONNECT; so does an unknown method.
    let out = hub.send_with(
        ConnId(2),
        Packet::Connect(Box::new(connect.clone())),
        &KnockAuth,
    );
    assert_eq!(out.len(), 1);
    let out = hub.send_with(
        ConnId(2),
        knock(ReasonCode::ContinueAuthentication, b"wrong"),
        &KnockAuth,
    );
    assert!(matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::NotAuthorized));
    let mut other = connect.clone();
    other.properties.authentication_method = Some(MqttString::new("OTHER").unwrap());
    let out = hub.send_with(ConnId(3), Packet::Connect(Box::new(other)), &KnockAuth);
    assert!(
        matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::BadAuthenticationMethod)
    );
    assert_eq!(hub.broker.stats().auth_failures, 2);

    // The CONNECT deadline covers the exchange.
    hub.send_with(ConnId(4), Packet::Connect(Box::new(connect)), &KnockAuth);
    let session = hub.sessions.get_mut(&ConnId(4)).unwrap();
    assert_eq!(session.deadline_ms(), Some(1_000 + 10_000));
    session.on_timer(&mut hub.broker, 11_000);
    assert!(session.is_closing());
}
