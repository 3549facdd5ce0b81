//! One publisher task: stamps messages into its connection's write buffer as fast as its
//! limits allow (or on a fixed schedule), answers the QoS 2 flow, and when told to stop,
//! finishes its in-flight flows and hands in what it sent.
//!
//! Three limits keep a full-speed publisher from measuring buffers instead of the broker:
//! the QoS 1/2 in-flight window (`--inflight`, and never more than the broker's Receive
//! Maximum), the bytes waiting in its own write buffer (`--write-buffer`, what holds back
//! QoS 0), and its lead over its subscribers (its share of `--lead-max`: messages sent but
//! not yet delivered, on average over its subscribers).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::{read_into, unexpected, write_ready, Conn, ConnError};
use super::inflight::Inflight;
use super::pacing::Pacer;
use super::payload::PayloadHeader;
use super::run::RunShared;
use super::shared::Phase;
use super::template::PublishTemplate;
use keel::codec::{Packet, PubReply};

/// Messages stamped per pass before the task lets others run.
const FILL_BATCH: usize = 256;

/// With no delivery of its messages for this long while held back by `--lead-max`, a
/// publisher writes its outstanding messages off (they were dropped, as QoS 0 may be) and
/// goes on.
const LEAD_STALL: Duration = Duration::from_secs(2);

/// At a fixed rate, how late a message may go out and still be stamped with the time it went
/// out: tokio's timers fire up to about a millisecond late, and that is the generator's
/// jitter, not the broker's latency. Lateness beyond this (a publisher held back by its
/// window or a full socket) is counted into the message's latency.
const SCHEDULE_SLACK_NS: u64 = 2_000_000;

/// What one publisher is to do.
#[derive(Debug)]
pub struct PublisherPlan {
    /// Its index in the scenario; written into every payload.
    pub index: u32,
    pub template: PublishTemplate,
    /// Subscribers that receive each of its messages.
    pub fanout: u64,
    /// Messages it may be ahead of its subscribers (averaged over them); 0 for no limit.
    /// Its share of `--lead-max`, which bounds what each subscriber may be behind.
    pub lead_max: u64,
    /// Its schedule in `--rate` mode; `None` sends as fast as the limits allow.
    pub pacer: Option<Pacer>,
}

/// What one publisher did.
#[derive(Debug, Clone, Default)]
pub struct PublisherResult {
    pub index: u32,
    /// Messages written, numbered `0..sent`.
    pub sent: u64,
    /// Messages the broker never acknowledged (QoS 1/2 still waiting for PUBACK/PUBREC at the
    /// end): neither expected nor lost.
    pub unacknowledged: Vec<u64>,
    /// Messages the broker refused with an error reason code (MQTT 5): not expected either.
    pub refused: Vec<u64>,
    /// Times the lead limit stalled and outstanding messages were written off.
    pub lead_stalls: u64,
    /// Why the publisher stopped early, if it did.
    pub error: Option<String>,
}

/// Why a pass over the fill loop stopped stamping messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// The pass used its budget: more may be sent right away.
    Budget,
    /// The QoS 1/2 window is full: wait for acknowledgements.
    Window,
    /// The write buffer is at its limit: write it out first.
    WriteBuffer,
    /// The next message is due at this run-clock time.
    Due(u64),
    /// Too far ahead of the subscribers: wait for deliveries.
    Lead,
    /// Stopping: no more messages.
    Stopped,
}

enum Event {
    Phase,
    Read(Result<usize, ConnError>),
    Writable(std::io::Result<()>),
    Timer,
    Delivered,
}

struct Publisher {
    conn: Conn,
    plan: PublisherPlan,
    shared: Arc<RunShared>,
    /// `None` at QoS 0.
    inflight: Option<Inflight>,
    next_seq: u64,
    refused: Vec<u64>,
    /// Deliveries given up on after stalls; counted as delivered for the lead limit only.
    written_off: u64,
    lead_stalls: u64,
    /// Held back by the lead limit: then `(delivered count when last checked, when the stall
    /// check fires)`.
    lead_wait: Option<(u64, Instant)>,
}

/// Runs one publisher until the run stops and its flows are done (or the drain time is up).
pub async fn run_publisher(
    conn: Conn,
    plan: PublisherPlan,
    shared: Arc<RunShared>,
    phase: watch::Receiver<Phase>,
) -> PublisherResult {
    let index = plan.index;
    let inflight = match shared.settings.qos {
        keel::codec::QoS::AtMostOnce => None,
        _ => Some(Inflight::new(
            shared.settings.inflight.min(conn.server_receive_max()),
        )),
    };
    let mut publisher = Publisher {
        conn,
        plan,
        shared,
        inflight,
        next_seq: 0,
        refused: Vec::new(),
        written_off: 0,
        lead_stalls: 0,
        lead_wait: None,
    };
    let outcome = publisher.run(phase).await;
    publisher.link_waiting(false);
    let result = PublisherResult {
        index,
        sent: publisher.next_seq,
        unacknowledged: publisher
            .inflight
            .as_ref()
            .map(Inflight::unacknowledged)
            .unwrap_or_default(),
        refused: std::mem::take(&mut publisher.refused),
        lead_stalls: publisher.lead_stalls,
        error: outcome.err().map(|e| format!("publisher {index}: {e}")),
    };
    publisher.conn.disconnect().await;
    result
}

impl Publisher {
    async fn run(&mut self, mut phase: watch::Receiver<Phase>) -> Result<(), ConnError> {
        let clock = self.shared.clock;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let stopping = drain_deadline.is_some();
            let hold = if stopping {
                Hold::Stopped
            } else {
                self.fill(clock.now_ns())
            };
            let just_blocked = self.track_lead(hold);
            self.conn.try_flush()?;
            if stopping
                && self.inflight.as_ref().is_none_or(Inflight::is_empty)
                && !self.conn.has_pending_writes()
            {
                return Ok(());
            }
            match hold {
                // More can go out at once: let the other tasks run, then fill again.
                Hold::Budget => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Hold::WriteBuffer if self.has_write_room() => {
                    tokio::task::yield_now().await;
                    continue;
                }
                // Check once more now that subscribers know to wake us (see PublisherLink).
                Hold::Lead if just_blocked => continue,
                _ => {}
            }
            let timer = match (hold, drain_deadline, self.lead_wait) {
                (_, Some(deadline), _) => Some(deadline),
                (Hold::Due(at_ns), _, _) => Some(clock.instant_at(at_ns)),
                (Hold::Lead, _, Some((_, stall_at))) => Some(stall_at),
                _ => None,
            };
            let lead_blocked = hold == Hold::Lead;
            let link = &self.shared.links[self.plan.index as usize];
            let event = {
                let mut io = self.conn.io();
                tokio::select! {
                    biased;
                    _ = phase.changed(), if !stopping => Event::Phase,
                    r = read_into(&mut io.read, io.read_buf, io.read_chunk) => Event::Read(r),
                    r = write_ready(&io.write), if io.pending_writes => Event::Writable(r),
                    _ = link.delivered_changed(), if lead_blocked => Event::Delivered,
                    _ = sleep_until(timer), if timer.is_some() => Event::Timer,
                }
            };
            match event {
                Event::Phase => {
                    // A dropped sender means the run is over: stop as well.
                    let now_phase = phase.borrow_and_update().to_owned();
                    if now_phase >= Phase::Stop || phase.has_changed().is_err() {
                        drain_deadline = Some(Instant::now() + self.shared.settings.drain);
                        self.link_waiting(false);
                        self.lead_wait = None;
                    }
                }
                Event::Read(r) => {
                    r?;
                    self.handle_packets()?;
                }
                Event::Writable(r) => r?,
                Event::Delivered => {}
                Event::Timer => {
                    if stopping {
                        // Drain time is up: what is still in flight stays unacknowledged.
                        return Ok(());
                    }
                    if lead_blocked {
                        self.check_lead_stall();
                    }
                }
            }
        }
    }

    /// Stamps messages into the write buffer until a limit holds.
    fn fill(&mut self, now_ns: u64) -> Hold {
        let settings = &self.shared.settings;
        let lead_limit = self.lead_limit();
        for _ in 0..FILL_BATCH {
            match &self.inflight {
                Some(window) if !window.has_room() => return Hold::Window,
                _ => {}
            }
            if self.conn.pending_write_len() >= settings.write_buffer_max {
                return Hold::WriteBuffer;
            }
            if lead_limit.is_some_and(|limit| self.next_seq >= limit) {
                return Hold::Lead;
            }
            let seq = self.next_seq;
            // At a fixed rate a message that goes out late is stamped with the time it was due
            // (less the timer slack), so a broker that holds the publisher back shows up as
            // latency instead of being hidden by it (no coordinated omission).
            let sent_ns = match &self.plan.pacer {
                Some(pacer) => {
                    let due_ns = self
                        .shared
                        .publish_start_ns
                        .saturating_add(pacer.due_at_ns(seq));
                    if due_ns > now_ns {
                        return Hold::Due(due_ns);
                    }
                    now_ns.min(due_ns.saturating_add(SCHEDULE_SLACK_NS))
                }
                None => now_ns,
            };
            let packet_id = self.inflight.as_mut().map(|window| window.start(seq));
            let header = PayloadHeader {
                run_id: self.shared.run_id,
                publisher: self.plan.index,
                seq,
                sent_ns,
            };
            self.plan
                .template
                .write(self.conn.write_buf(), packet_id, &header);
            self.next_seq += 1;
        }
        Hold::Budget
    }

    /// Room left in the write buffer after a flush.
    fn has_write_room(&self) -> bool {
        self.conn.pending_write_len() < self.shared.settings.write_buffer_max
    }

    /// The first sequence number the lead limit does not allow yet; `None` without a limit.
    ///
    /// Outstanding deliveries are `sent × fanout − delivered`; they must stay below
    /// `lead_max × fanout`. Once held back, the publisher waits until they fall to three
    /// quarters of that, so it resumes with a batch rather than one message per delivery.
    fn lead_limit(&self) -> Option<u64> {
        let lead_max = self.plan.lead_max;
        if lead_max == 0 {
            return None;
        }
        let fanout = self.plan.fanout.max(1);
        let cap = lead_max.saturating_mul(fanout);
        let credit = self.credit();
        let outstanding = self.next_seq.saturating_mul(fanout).saturating_sub(credit);
        if self.lead_wait.is_some() && outstanding > cap / 4 * 3 {
            return Some(self.next_seq);
        }
        Some((cap + credit).div_ceil(fanout))
    }

    /// Deliveries counted for the lead limit: real ones plus those written off.
    fn credit(&self) -> u64 {
        self.shared.links[self.plan.index as usize].delivered() + self.written_off
    }

    /// Starts or ends a lead wait; true when one just started.
    fn track_lead(&mut self, hold: Hold) -> bool {
        match (hold, self.lead_wait) {
            (Hold::Lead, None) => {
                self.link_waiting(true);
                self.lead_wait = Some((self.credit(), Instant::now() + LEAD_STALL));
                true
            }
            (Hold::Lead, Some(_)) | (Hold::Stopped, _) => false,
            (_, Some(_)) => {
                self.link_waiting(false);
                self.lead_wait = None;
                false
            }
            (_, None) => false,
        }
    }

    /// Called when the stall timer fires during a lead wait: if nothing was delivered since
    /// the last check, the outstanding messages are written off.
    fn check_lead_stall(&mut self) {
        let credit = self.credit();
        let Some((seen, _)) = self.lead_wait else {
            return;
        };
        if credit == seen {
            let fanout = self.plan.fanout.max(1);
            let outstanding = self.next_seq.saturating_mul(fanout).saturating_sub(credit);
            self.written_off += outstanding;
            self.lead_stalls += 1;
        }
        self.lead_wait = Some((self.credit(), Instant::now() + LEAD_STALL));
    }

    fn link_waiting(&self, waiting: bool) {
        self.shared.links[self.plan.index as usize].set_waiting(waiting);
    }

    /// Handles every whole packet in the read buffer: the broker's acknowledgements.
    fn handle_packets(&mut self) -> Result<(), ConnError> {
        while let Some(packet) = self.conn.next_packet()? {
            let Some(window) = self.inflight.as_mut() else {
                match packet {
                    Packet::PingResp => continue,
                    other => return Err(unexpected("nothing at QoS 0", &other)),
                }
            };
            match packet {
                Packet::PubAck(ack) if ack.reason_code.is_error() => {
                    self.refused.extend(window.on_refused(ack.packet_id));
                }
                Packet::PubAck(ack) => {
                    window.on_puback(ack.packet_id).map_err(protocol_error)?;
                }
                Packet::PubRec(rec) if rec.reason_code.is_error() => {
                    self.refused.extend(window.on_refused(rec.packet_id));
                }
                Packet::PubRec(rec) => {
                    window.on_pubrec(rec.packet_id).map_err(protocol_error)?;
                    self.conn
                        .queue(&Packet::PubRel(PubReply::new(rec.packet_id)))?;
                }
                Packet::PubComp(comp) => {
                    window.on_pubcomp(comp.packet_id).map_err(protocol_error)?;
                }
                Packet::PingResp => {}
                other => return Err(unexpected("PUBACK, PUBREC or PUBCOMP", &other)),
            }
        }
        Ok(())
    }
}

fn protocol_error(error: super::inflight::AckError) -> ConnError {
    ConnError::Protocol(error.to_string())
}

/// Sleeps until `deadline`; never completes for `None`.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
