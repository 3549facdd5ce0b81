//! The PROXY protocol on a listener behind a load balancer.

use super::*;

/// An HTTP authentication service that allows everyone and keeps the `peer_addr` of each
/// request; its address and what it was told.
async fn peer_recorder() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/auth",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let kept = kept.clone();
            async move {
                let peer = body["peer_addr"].as_str().unwrap_or("none").to_owned();
                kept.lock().unwrap().push(peer);
                axum::Json(serde_json::json!({"result": "allow"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// Opens a connection, sends `header` then a CONNECT as `client_id` (with a user name, so
/// the authentication service is asked); the reason code of the CONNACK, `None` when the
/// broker closed the connection instead.
async fn connect_behind(addr: SocketAddr, header: &[u8], client_id: &str) -> Option<ReasonCode> {
    let mut client = RawClient::open(addr, Protocol::V5).await;
    client.send_bytes(header).await;
    let mut connect = raw::connect(Protocol::V5, client_id);
    connect.username = Some(keel::codec::MqttString::new("proxied").unwrap());
    client.send(Packet::Connect(Box::new(connect))).await;
    match client.recv().await {
        Some(Packet::ConnAck(connack)) => Some(connack.reason_code),
        None => None,
        other => panic!("{other:?}"),
    }
}

/// A listener behind a load balancer: the address a PROXY header (v1 or v2) names is the one
/// authentication and traces see; a connection without one, or with a malformed one, is
/// closed and counted.
#[tokio::test]
async fn a_proxy_protocol_header_names_the_client() {
    let (hook, seen) = peer_recorder().await;
    let mut node = KeelProcess::with(Vec::new());
    let config = format!(
        "{}[listeners]\ntcp_proxy_protocol = true\n[auth.http]\nurl = \"http://{hook}/auth\"\n",
        common::process::CONFIG
    );
    std::fs::write(node.config_file(), config).unwrap();
    node.spawn();
    let admin = node.http.unwrap();
    assert!(health_becomes(admin, 200).await, "{}", node.stderr_tail(20));
    let trace = http::request(admin, "POST", "/api/v1/trace/behind-v1", &[], "").await;
    assert_eq!(trace.status, 201, "{trace:?}");

    let v1 = b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 1883\r\n";
    assert_eq!(
        connect_behind(node.addr, v1, "behind-v1").await,
        Some(ReasonCode::Success)
    );
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    v2.extend_from_slice(&[0; 15]);
    v2.push(1);
    v2.extend_from_slice(&4000u16.to_be_bytes());
    v2.extend_from_slice(&1883u16.to_be_bytes());
    assert_eq!(
        connect_behind(node.addr, &v2, "behind-v2").await,
        Some(ReasonCode::Success)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["203.0.113.9:40000", "[2001:db8::7]:4000"]
    );
    let events = http::get(admin, "/api/v1/trace/behind-v1").await.json();
    let peers: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "peer")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(peers, ["203.0.113.9:40000"], "{events}");

    let before = limit_hits(admin, "proxy_protocol").await;
    assert_eq!(connect_behind(node.addr, b"", "no-header").await, None);
    let malformed = b"PROXY TCP4 203.0.113.9 127.0.0.1 99999 1883\r\n";
    assert_eq!(
        connect_behind(node.addr, malformed, "bad-header").await,
        None
    );
    // The node counts a refusal once the connection is closed, so the client can see the
    // close before the count moves.
    let mut hits = limit_hits(admin, "proxy_protocol").await;
    for _ in 0..50 {
        if hits >= before + 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        hits = limit_hits(admin, "proxy_protocol").await;
    }
    assert_eq!(hits, before + 2);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "refused connections reach no one"
    );
}
