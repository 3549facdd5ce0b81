//! The bounded queue of what other tasks hand to one connection task.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::broker::{Broker, Completion, Delivery, Ticket};
use crate::codec::ReasonCode;
use crate::session::Session;

/// Something for a connection task to do.
#[derive(Debug)]
pub enum Outgoing {
    Deliver(Delivery),
    /// The broker completed a request of the connection (the reply may now go out).
    Reply(Ticket, Completion),
    /// Close with this reason (session taken over, server shutting down).
    Disconnect(ReasonCode),
}

impl Outgoing {
    /// Hands this to the connection's session (the connection task's, the hub's for the
    /// connection that is acting, or a loopback client's).
    pub fn hand_to(self, session: &mut Session, broker: &mut Broker, now_ms: u64) {
        match self {
            Outgoing::Deliver(delivery) => session.deliver(delivery, broker, now_ms),
            Outgoing::Disconnect(reason) => session.kick(reason),
            Outgoing::Reply(ticket, completion) => session.on_reply(ticket, completion),
        }
    }
}

/// A connection's inbox. Bounded: QoS 1/2 deliveries are bounded by the broker's in-flight
/// window, and QoS 0 deliveries beyond `qos0_max` waiting are dropped (a slow consumer loses
/// QoS 0 messages, as MQTT allows, instead of growing broker memory). Allocates nothing
/// while idle.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<VecDeque<Outgoing>>,
    notify: Notify,
    qos0_max: usize,
}

impl Outbox {
    pub fn new(qos0_max: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            qos0_max,
        }
    }

    /// Queues an item; returns false when a QoS 0 delivery was dropped for lack of room.
    pub fn push(&self, item: Outgoing) -> bool {
        let is_qos0 = matches!(
            &item,
            Outgoing::Deliver(Delivery::Publish {
                packet_id: None,
                ..
            })
        );
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if is_qos0 && queue.len() >= self.qos0_max {
                return false;
            }
            queue.push_back(item);
        }
        self.notify.notify_one();
        true
    }

    /// Moves everything queued into `into`.
    pub fn drain_into(&self, into: &mut Vec<Outgoing>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        into.extend(queue.drain(..));
        if queue.capacity() > 64 {
            // Give back the memory a burst took, so idle connections stay small.
            queue.shrink_to(16);
        }
    }

    /// Waits until something may have been queued.
    pub async fn ready(&self) {
        self.notify.notified().await;
    }
}
