//! A cluster of three real `keel` processes on loopback (issue 6's acceptance): a persistent
//! subscriber on node 3, QoS 1 and QoS 2 publishers on node 1; node 3 is killed with SIGKILL
//! (and started again, so that the next loss leaves a majority), then the leader is. The
//! subscriber resumes its session on a surviving node and must get every acknowledged message
//! (QoS 2 exactly once, each stream in order); a new leader must be elected within a few
//! seconds, and the majority must keep acknowledging.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use keel::codec::{
    Connect, ConnectProperties, Packet, Protocol, PubReply, Publish, PublishProperties, QoS,
    QosPid, ReasonCode, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use common::link::{Link, Recv};
use common::process::{free_port, KeelProcess};
use common::raw;

const NODES: usize = 3;
/// Messages per stream (one QoS 1 stream, one QoS 2 stream).
const PER_STREAM: u32 = 300;
/// The longest a leader election may take after the leader is killed.
const ELECTION_MAX: Duration = Duration::from_secs(10);
/// How long the subscriber may take to resume its session on a surviving node.
const RESUME_MAX: Duration = Duration::from_secs(30);
/// How long one read of the subscriber waits.
const QUIET: Duration = Duration::from_millis(20);

/// Three nodes forming one cluster; returns them started.
async fn start_cluster() -> Vec<KeelProcess> {
    let cluster: Vec<SocketAddr> = (0..NODES).map(|_| free_port()).collect();
    let peers = cluster
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("{}@{addr}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<KeelProcess> = cluster
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            KeelProcess::with(vec![
                "--node-id".into(),
                (i + 1).to_string(),
                "--cluster-listen".into(),
                addr.to_string(),
                "--peers".into(),
                peers.clone(),
                "--cluster-insecure".into(),
            ])
        })
        .collect();
    for node in &mut nodes {
        node.spawn();
    }
    for node in &mut nodes {
        node.wait_ready().await;
    }
    nodes
}

/// `GET path` on a node's admin API; the JSON body, or `None` if it does not answer.
async fn admin_get(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8(response).ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// The leader the running nodes agree on, if any.
async fn leader(nodes: &mut [KeelProcess]) -> Option<u64> {
    let mut seen = BTreeSet::new();
    for node in nodes.iter_mut() {
        if !node.is_running() {
            continue;
        }
        let cluster = admin_get(node.http?, "/api/v1/cluster").await?;
        seen.insert(cluster["leader"].as_u64()?);
    }
    (seen.len() == 1).then(|| *seen.first().expect("one"))
}

fn persistent(client_id: &str) -> Connect {
    let mut connect = raw::connect(Protocol::V3_1_1, client_id);
    connect.clean_start = false;
    connect.properties = ConnectProperties::default();
    connect
}

/// The subscriber's view: deliveries by (stream, seq), in order of arrival.
#[derive(Default)]
struct Received {
    deliveries: Vec<(u8, u32, QoS)>,
    /// QoS 2 packet ids received and not yet released (the receiver side of [MQTT-4.3.3]).
    pending: BTreeSet<u16>,
}

/// Reads one connection of the subscriber until it closes or stays quiet for `idle`.
async fn receive(link: &mut Link, got: &mut Received, idle: Duration) -> bool {
    let mut quiet_since = Instant::now();
    loop {
        match link.recv(QUIET).await {
            Recv::Packet(Packet::Publish(publish)) => {
                quiet_since = Instant::now();
                let stream = publish.topic.as_str().as_bytes()[2] - b'0';
                let seq: u32 = std::str::from_utf8(&publish.payload)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .expect("a numbered payload");
                match publish.qos_pid {
                    QosPid::AtLeastOnce(id) => {
                        got.deliveries.push((stream, seq, QoS::AtLeastOnce));
                        link.send(&Packet::PubAck(PubReply::new(id))).await;
                    }
                    QosPid::ExactlyOnce(id) => {
                        if got.pending.insert(id.get()) {
                            got.deliveries.push((stream, seq, QoS::ExactlyOnce));
                        }
                        link.send(&Packet::PubRec(PubReply::new(id))).await;
                    }
                    QosPid::AtMostOnce => got.deliveries.push((stream, seq, QoS::AtMostOnce)),
                }
            }
            Recv::Packet(Packet::PubRel(rel)) => {
                quiet_since = Instant::now();
                got.pending.remove(&rel.packet_id.get());
                link.send(&Packet::PubComp(PubReply::new(rel.packet_id)))
                    .await;
            }
            Recv::Packet(_) => {}
            Recv::Closed => return false,
            Recv::Quiet => {
                if quiet_since.elapsed() >= idle {
                    return true;
                }
                link.send(&Packet::PingReq).await;
            }
        }
    }
}

/// Sends one numbered message and waits for its acknowledgement (PUBACK, or PUBREC then
/// PUBCOMP). `Ok(true)`: acknowledged; `Ok(false)`: refused; `Err`: the connection failed, the
/// outcome unknown.
async fn publish_one(link: &mut Link, stream: u8, seq: u32, packet_id: u16) -> Result<bool, ()> {
    let qos = if stream == 1 {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    };
    let id = raw::pid(packet_id);
    let publish = Publish {
        dup: false,
        qos_pid: QosPid::new(qos, Some(id)).expect("QoS 1/2 with an id"),
        retain: false,
        topic: TopicName::new(&format!("c/{stream}")).expect("topic"),
        properties: PublishProperties::default(),
        payload: Bytes::from(seq.to_string()),
    };
    if !link.send(&Packet::Publish(publish)).await {
        return Err(());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if Instant::now() >= deadline {
            return Err(());
        }
        match link.recv(Duration::from_secs(1)).await {
            Recv::Packet(Packet::PubAck(ack)) if ack.packet_id == id => {
                return Ok(!ack.reason_code.is_error())
            }
            Recv::Packet(Packet::PubRec(rec)) if rec.packet_id == id => {
                if rec.reason_code.is_error() {
                    return Ok(false);
                }
                // Acknowledged from here: the broker has it (PUBREC is the acknowledgement).
                link.send(&Packet::PubRel(PubReply::new(id))).await;
                return Ok(true);
            }
            Recv::Packet(_) | Recv::Quiet => {}
            Recv::Closed => return Err(()),
        }
    }
}

/// The publisher: connected to one live node at a time, moving on when its node dies.
struct Publisher {
    node: usize,
    link: Option<Link>,
    packet_id: u16,
}

impl Publisher {
    /// Publishes `seq` on `stream` until acknowledged, ten attempts at most (a fresh packet id
    /// after a failure). True when acknowledged.
    async fn publish(
        &mut self,
        nodes: &[KeelProcess],
        killed: &[usize],
        stream: u8,
        seq: u32,
    ) -> bool {
        for _attempt in 0..10 {
            if self.link.is_none() {
                while killed.contains(&self.node) {
                    self.node = (self.node + 1) % NODES;
                }
                let connect = raw::connect(Protocol::V3_1_1, "pub");
                match Link::connect(nodes[self.node].addr, connect).await {
                    Ok((link, ack)) if ack.reason_code == ReasonCode::Success => {
                        self.link = Some(link)
                    }
                    _ => {
                        self.node = (self.node + 1) % NODES;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
            }
            self.packet_id = self.packet_id % 60_000 + 1;
            let link = self.link.as_mut().expect("connected");
            match publish_one(link, stream, seq, self.packet_id).await {
                Ok(true) => return true,
                Ok(false) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(()) => {
                    self.link = None;
                    self.node = (self.node + 1) % NODES;
                }
            }
        }
        false
    }
}

/// Connects the persistent subscriber to the first live node, until it is let in with its
/// session (for [`RESUME_MAX`] at most).
async fn resume_subscriber(nodes: &[KeelProcess], killed: &[usize]) -> Link {
    let survivor = (0..NODES)
        .find(|i| !killed.contains(i))
        .expect("a survivor");
    let since = Instant::now();
    loop {
        assert!(
            since.elapsed() < RESUME_MAX,
            "the subscriber could not resume its session on node {} in {RESUME_MAX:?}",
            survivor + 1
        );
        match Link::connect(nodes[survivor].addr, persistent("sub")).await {
            Ok((link, ack)) if ack.reason_code == ReasonCode::Success => {
                assert!(ack.session_present, "the session survived its node");
                return link;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The leader's death and its successor's election.
#[derive(Clone, Copy)]
struct Election {
    killed: u64,
    killed_at: Instant,
    elected: u64,
    elected_in: Duration,
}

/// Kills the leader and waits for the survivors to elect another.
async fn kill_leader(nodes: &mut [KeelProcess], killed: &mut Vec<usize>) -> Election {
    let old = leader(nodes).await.expect("a leader before the kill");
    let index = old as usize - 1;
    nodes[index].kill();
    killed.push(index);
    let at = Instant::now();
    loop {
        if let Some(new) = leader(nodes).await.filter(|new| *new != old) {
            return Election {
                killed: old,
                killed_at: at,
                elected: new,
                elected_in: at.elapsed(),
            };
        }
        assert!(
            at.elapsed() < ELECTION_MAX,
            "no new leader after {ELECTION_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the subscriber got wrong: an acknowledged message missing, a QoS 2 one twice, a
/// stream out of order.
fn problems(acked: &BTreeSet<(u8, u32)>, got: &Received) -> Vec<String> {
    let mut problems = Vec::new();
    for (stream, seq) in acked {
        let copies = got
            .deliveries
            .iter()
            .filter(|(s, q, _)| (s, q) == (stream, seq))
            .count();
        if copies == 0 {
            problems.push(format!("acknowledged c/{stream} #{seq} never arrived"));
        }
        if *stream == 2 && copies > 1 {
            problems.push(format!("QoS 2 c/2 #{seq} arrived {copies} times"));
        }
    }
    for stream in [1u8, 2] {
        let mut seen = BTreeSet::new();
        let firsts: Vec<u32> = got
            .deliveries
            .iter()
            .filter(|(s, _, _)| *s == stream)
            .filter(|(_, q, _)| seen.insert(*q))
            .map(|(_, q, _)| *q)
            .collect();
        if firsts.windows(2).any(|w| w[0] > w[1]) {
            problems.push(format!("c/{stream} out of order: {firsts:?}"));
        }
    }
    problems
}

#[tokio::test]
async fn a_cluster_loses_nothing_acknowledged_when_a_node_and_the_leader_die() {
    let mut nodes = start_cluster().await;
    let first_leader = leader(&mut nodes).await.expect("an elected leader");

    // The persistent subscriber, on node 3.
    let (mut sub, connack) = Link::connect(nodes[2].addr, persistent("sub"))
        .await
        .expect("subscriber connects");
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let subscribe = raw::subscribe(1, "c/#", QoS::ExactlyOnce);
    assert!(sub.send(&Packet::Subscribe(subscribe)).await);
    match sub.recv(Duration::from_secs(5)).await {
        Recv::Packet(Packet::SubAck(ack)) => {
            assert_eq!(ack.reason_codes, [ReasonCode::GrantedQoS2])
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let mut got = Received::default();

    // The publisher, on node 1 (another node when its node dies).
    let mut publisher = Publisher {
        node: 0,
        link: None,
        packet_id: 0,
    };
    let mut acked = BTreeSet::new();
    let mut killed: Vec<usize> = Vec::new();
    let mut first_ack_after_leader: Option<Duration> = None;
    let mut election = None;
    for seq in 1..=PER_STREAM {
        if seq == PER_STREAM / 4 {
            nodes[2].kill();
            killed.push(2);
        }
        if seq == PER_STREAM / 2 {
            // Back on its data directory, so that the cluster survives the next loss too.
            nodes[2].restart().await;
            killed.retain(|i| *i != 2);
        }
        if seq == 2 * PER_STREAM / 3 {
            election = Some(kill_leader(&mut nodes, &mut killed).await);
        }
        for stream in [1u8, 2] {
            if publisher.publish(&nodes, &killed, stream, seq).await {
                acked.insert((stream, seq));
                if let (Some(election), None) = (election, first_ack_after_leader) {
                    first_ack_after_leader = Some(election.killed_at.elapsed());
                }
            }
        }
        // The subscriber reads what has come meanwhile; when its node died, it resumes its
        // session on a surviving node.
        if !receive(&mut sub, &mut got, Duration::ZERO).await {
            sub = resume_subscriber(&nodes, &killed).await;
        }
    }

    // Everything acknowledged arrives, on whichever node the subscriber is now.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = acked
            .iter()
            .all(|key| got.deliveries.iter().any(|(s, q, _)| (*s, *q) == *key));
        if all || Instant::now() >= deadline {
            break;
        }
        if !receive(&mut sub, &mut got, Duration::from_secs(1)).await {
            sub = resume_subscriber(&nodes, &killed).await;
        }
    }

    let problems = problems(&acked, &got);
    let total = acked.len();
    let election = election.expect("the leader was killed");
    eprintln!(
        "cluster: {total} acknowledged of {} sent, {} delivered; node 3 killed and restarted; \
         leader {} killed (first leader {first_leader}), node {} elected in {:?}; first \
         acknowledgement {:?} after the kill",
        2 * PER_STREAM,
        got.deliveries.len(),
        election.killed,
        election.elected,
        election.elected_in,
        first_ack_after_leader.unwrap_or_default(),
    );
    for node in &nodes {
        if !problems.is_empty() {
            eprintln!("{}", node.stderr_tail(30));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        total >= 2 * PER_STREAM as usize * 9 / 10,
        "the majority kept acknowledging: {total} of {}",
        2 * PER_STREAM
    );
}
