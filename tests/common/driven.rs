//! A rumqttc event loop polled by a background task, its events handed to the test through a
//! bounded channel. The same machinery serves MQTT 3.1.1 and 5; [`super::v3`] and
//! [`super::v5`] add the typed helpers (subscribe, publish, expect a publish).
//!
//! The background task keeps polling, so rumqttc answers pings and acknowledgements while the
//! test waits for something else. It stops at the first error instead of letting rumqttc
//! reconnect, so a test sees every connection end and a reconnection is always explicit.

use std::collections::VecDeque;
use std::fmt::{Debug, Display};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::within;

/// Events a test may leave unread before the event loop waits for it. A test reads what it
/// asserts on; this only bounds how far the loop runs ahead.
pub const EVENT_BACKLOG_MAX: usize = 4096;

/// The rumqttc types of one protocol version.
pub trait Flavor: 'static {
    type Event: Debug + Send + 'static;
    type Packet: Debug + Send + 'static;
    type Error: Debug + Display + Send + 'static;
    /// The incoming packet of an event; `None` for an outgoing one.
    fn incoming(event: Self::Event) -> Option<Self::Packet>;
}

/// A connected client whose event loop runs in the background.
pub struct Driven<F: Flavor, C> {
    /// The rumqttc handle, for requests the helpers do not wrap.
    pub client: C,
    events: mpsc::Receiver<Result<F::Event, F::Error>>,
    /// Incoming packets read while waiting for another one, oldest first.
    backlog: VecDeque<F::Packet>,
    /// Set once the event loop reported an error and stopped.
    ended: bool,
    task: JoinHandle<()>,
}

impl<F: Flavor, C> Driven<F, C> {
    /// Wraps a client whose event loop `task` sends its events into `events`.
    pub fn new(
        client: C,
        events: mpsc::Receiver<Result<F::Event, F::Error>>,
        task: JoinHandle<()>,
    ) -> Self {
        Driven {
            client,
            events,
            backlog: VecDeque::new(),
            ended: false,
            task,
        }
    }

    /// The next event of the loop, success or error.
    pub async fn next_event(&mut self) -> Result<F::Event, F::Error> {
        assert!(!self.ended, "the connection already ended");
        let event = within("the next client event", self.events.recv())
            .await
            .expect("event loop task stopped without reporting an error");
        self.ended = event.is_err();
        event
    }

    /// The next incoming packet; fails the test if the connection ends first.
    pub async fn next_incoming(&mut self) -> F::Packet {
        if let Some(packet) = self.backlog.pop_front() {
            return packet;
        }
        loop {
            match self.next_event().await {
                Ok(event) => {
                    if let Some(packet) = F::incoming(event) {
                        return packet;
                    }
                }
                Err(error) => panic!("connection ended while waiting for a packet: {error}"),
            }
        }
    }

    /// The first incoming packet that `pick` accepts, in arrival order; the packets it skips
    /// stay in the backlog for later calls.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&F::Packet) -> Option<T>,
    ) -> T {
        if let Some(i) = self.backlog.iter().position(|p| pick(p).is_some()) {
            let packet = self.backlog.remove(i).expect("index from position");
            return pick(&packet).expect("picked before");
        }
        loop {
            match self.next_event().await {
                Ok(event) => {
                    let Some(packet) = F::incoming(event) else {
                        continue;
                    };
                    match pick(&packet) {
                        Some(found) => return found,
                        None => self.backlog.push_back(packet),
                    }
                }
                Err(error) => panic!(
                    "connection ended while waiting for {what}: {error}; unread: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// Waits for the connection to end and returns why; packets that arrive first go to the
    /// backlog.
    pub async fn closed(&mut self) -> F::Error {
        loop {
            match self.next_event().await {
                Ok(event) => {
                    if let Some(packet) = F::incoming(event) {
                        self.backlog.push_back(packet);
                    }
                }
                Err(error) => return error,
            }
        }
    }

    /// Drops the connection without DISCONNECT, as a crashed client or a broken network
    /// would: the socket is closed once this returns.
    pub async fn kill(self) {
        self.task.abort();
        // Waiting for the aborted task guarantees the event loop, and its socket, is dropped.
        let _ = self.task.await;
    }
}
