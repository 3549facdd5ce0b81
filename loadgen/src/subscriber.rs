//! One subscriber task: reads deliveries, acknowledges them at their QoS, accounts for every
//! message per publisher and measures its latency from the timestamp in the payload.

use std::ops::Range;
use std::sync::Arc;

use tokio::sync::watch;

use super::conn::{read_into, unexpected, write_ready, Conn, ConnError};
use super::payload::PayloadHeader;
use super::run::RunShared;
use super::shared::Phase;
use super::tally::{Arrival, SeqTally};
use keel::codec::{Packet, PubReply, Publish, QosPid};

/// What one subscriber is to do.
#[derive(Debug, Clone)]
pub struct SubscriberPlan {
    /// Its index in the scenario.
    pub index: usize,
    /// The publishers whose messages it expects; anything else is counted as foreign.
    pub publishers: Range<u32>,
}

/// What one subscriber saw.
#[derive(Debug, Clone, Default)]
pub struct SubscriberResult {
    pub index: usize,
    /// First publisher of `tallies[0]`; `tallies[i]` is publisher `first_publisher + i`.
    pub first_publisher: u32,
    pub tallies: Vec<SeqTally>,
    /// Distinct deliveries inside the measured window.
    pub delivered_in_window: u64,
    /// Messages that were not this run's benchmark messages, or came from a publisher this
    /// subscriber should not hear from.
    pub foreign: u64,
    /// Why the subscriber stopped early, if it did.
    pub error: Option<String>,
}

enum Event {
    Phase,
    Read(Result<usize, ConnError>),
    Writable(std::io::Result<()>),
}

struct Subscriber {
    conn: Conn,
    plan: SubscriberPlan,
    shared: Arc<RunShared>,
    tallies: Vec<SeqTally>,
    delivered_in_window: u64,
    foreign: u64,
    /// Latencies of the current read, recorded into the shared histogram in one go.
    latencies_ns: Vec<u64>,
    /// New deliveries of one publisher not yet added to its link: consecutive messages from
    /// the same publisher are counted with one atomic add.
    pending_delivered: Option<(u32, u64)>,
}

/// Runs one subscriber until the run closes.
pub async fn run_subscriber(
    conn: Conn,
    plan: SubscriberPlan,
    shared: Arc<RunShared>,
    phase: watch::Receiver<Phase>,
) -> SubscriberResult {
    let publishers = plan.publishers.len();
    let mut subscriber = Subscriber {
        conn,
        plan,
        shared,
        tallies: vec![SeqTally::new(); publishers],
        delivered_in_window: 0,
        foreign: 0,
        latencies_ns: Vec::with_capacity(1024),
        pending_delivered: None,
    };
    let outcome = subscriber.run(phase).await;
    subscriber.flush_delivered();
    let Subscriber {
        conn,
        plan,
        tallies,
        delivered_in_window,
        foreign,
        ..
    } = subscriber;
    conn.disconnect().await;
    SubscriberResult {
        index: plan.index,
        first_publisher: plan.publishers.start,
        tallies,
        delivered_in_window,
        foreign,
        error: outcome
            .err()
            .map(|e| format!("subscriber {}: {e}", plan.index)),
    }
}

impl Subscriber {
    async fn run(&mut self, mut phase: watch::Receiver<Phase>) -> Result<(), ConnError> {
        loop {
            let event = {
                let mut io = self.conn.io();
                tokio::select! {
                    biased;
                    _ = phase.changed() => Event::Phase,
                    r = read_into(&mut io.read, io.read_buf, io.read_chunk) => Event::Read(r),
                    r = write_ready(&io.write), if io.pending_writes => Event::Writable(r),
                }
            };
            match event {
                Event::Phase => {
                    let now_phase = *phase.borrow_and_update();
                    if now_phase == Phase::Close || phase.has_changed().is_err() {
                        return Ok(());
                    }
                }
                Event::Read(r) => {
                    r?;
                    self.handle_packets()?;
                    self.conn.try_flush()?;
                }
                Event::Writable(r) => {
                    r?;
                    self.conn.try_flush()?;
                }
            }
        }
    }

    /// Handles every whole packet in the read buffer. They arrived in one read, so they share
    /// one receive time.
    fn handle_packets(&mut self) -> Result<(), ConnError> {
        let now_ns = self.shared.clock.now_ns();
        let in_window = self.shared.window.contains(now_ns);
        while let Some(packet) = self.conn.next_packet()? {
            match packet {
                Packet::Publish(publish) => {
                    self.on_publish(&publish, now_ns, in_window);
                    match publish.qos_pid {
                        QosPid::AtMostOnce => {}
                        QosPid::AtLeastOnce(id) => {
                            self.conn.queue(&Packet::PubAck(PubReply::new(id)))?
                        }
                        QosPid::ExactlyOnce(id) => {
                            self.conn.queue(&Packet::PubRec(PubReply::new(id)))?
                        }
                    }
                }
                Packet::PubRel(rel) => self
                    .conn
                    .queue(&Packet::PubComp(PubReply::new(rel.packet_id)))?,
                Packet::PingResp => {}
                other => return Err(unexpected("PUBLISH or PUBREL", &other)),
            }
        }
        self.flush_delivered();
        self.shared
            .latencies
            .record(self.plan.index, &self.latencies_ns);
        self.latencies_ns.clear();
        Ok(())
    }

    /// Accounts for one delivery. A QoS 2 message is counted when its PUBLISH arrives (the
    /// spec's method A): a second PUBLISH of it is a duplicate whatever its packet id.
    fn on_publish(&mut self, publish: &Publish, now_ns: u64, in_window: bool) {
        let header = match PayloadHeader::read(&publish.payload) {
            Ok(header) if header.run_id == self.shared.run_id => header,
            _ => {
                self.foreign += 1;
                return;
            }
        };
        let Some(tally) = header
            .publisher
            .checked_sub(self.plan.publishers.start)
            .and_then(|offset| self.tallies.get_mut(offset as usize))
        else {
            self.foreign += 1;
            return;
        };
        match tally.record(header.seq) {
            Arrival::InOrder | Arrival::OutOfOrder => {}
            Arrival::Duplicate => return,
            Arrival::OutOfRange => {
                self.foreign += 1;
                return;
            }
        }
        if in_window {
            self.delivered_in_window += 1;
            self.latencies_ns
                .push(now_ns.saturating_sub(header.sent_ns));
        }
        match &mut self.pending_delivered {
            Some((publisher, count)) if *publisher == header.publisher => *count += 1,
            _ => {
                self.flush_delivered();
                self.pending_delivered = Some((header.publisher, 1));
            }
        }
    }

    fn flush_delivered(&mut self) {
        if let Some((publisher, count)) = self.pending_delivered.take() {
            self.shared.links[publisher as usize].add_delivered(count);
        }
    }
}
