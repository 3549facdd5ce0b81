//! Whether an accepted connection may stay: the node's `connections_max` over all listeners,
//! and the cap of the listener it came in on. Counted with atomics on the accept path; the
//! [`Slot`] a connection's task holds gives its places back however the task ends.
//!
//! MQTT has nothing to say "busy" with before a CONNECT is read, and reading one costs what
//! the caps are there to save, so a refused connection is closed as soon as it is accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Open connections under an optional bound.
#[derive(Debug, Default)]
pub struct Cap {
    open: AtomicUsize,
    /// `None`: no bound of its own.
    max: Option<usize>,
}

impl Cap {
    pub fn new(max: Option<usize>) -> Cap {
        Cap {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Connections holding a place now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> Option<usize> {
        self.max
    }

    /// Takes a place, unless all are taken. Two accepts racing for the last place cannot
    /// both get it: each counts itself in before looking.
    fn take(&self) -> bool {
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        if self.max.is_some_and(|max| before >= max) {
            self.give_back();
            return false;
        }
        true
    }

    fn give_back(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One MQTT listener's connections, for its cap and its metrics.
#[derive(Debug)]
pub struct ListenerStats {
    /// The transport (`tcp`, `ws`, `tls`, `wss`): the `listener` label of its metrics.
    pub transport: &'static str,
    /// Where it listens: the `addr` label, which tells two listeners of one transport apart.
    pub addr: Option<SocketAddr>,
    pub cap: Cap,
    /// Connections closed as accepted because the listener had its cap open.
    pub refused: AtomicU64,
}

impl ListenerStats {
    pub fn new(
        transport: &'static str,
        addr: Option<SocketAddr>,
        max: Option<usize>,
    ) -> ListenerStats {
        ListenerStats {
            transport,
            addr,
            cap: Cap::new(max),
            refused: AtomicU64::new(0),
        }
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener's own `connections_max`.
    Listener,
    /// The node's `connections_max`, over all listeners.
    Node,
}

/// A connection's places under both caps, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    node: Arc<Cap>,
    listener: Arc<ListenerStats>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.listener.cap.give_back();
        self.node.give_back();
    }
}

/// A place for a connection accepted on `listener`, or the cap that refuses it. The
/// listener's cap is asked first: it is the narrower one, and the one an operator set for
/// this listener in particular.
pub fn admit(node: &Arc<Cap>, listener: &Arc<ListenerStats>) -> Result<Slot, Refusal> {
    if !listener.cap.take() {
        return Err(Refusal::Listener);
    }
    if !node.take() {
        listener.cap.give_back();
        return Err(Refusal::Node);
    }
    Ok(Slot {
        node: node.clone(),
        listener: listener.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(max: Option<usize>) -> Arc<ListenerStats> {
        Arc::new(ListenerStats::new("tcp", None, max))
    }

    #[test]
    fn a_listener_cap_refuses_beyond_it_and_leaves_other_listeners_alone() {
        let node = Arc::new(Cap::new(Some(10)));
        let (capped, other) = (listener(Some(2)), listener(None));
        let held: Vec<Slot> = (0..2).map(|_| admit(&node, &capped).unwrap()).collect();
        assert_eq!(admit(&node, &capped).unwrap_err(), Refusal::Listener);
        let _elsewhere = admit(&node, &other).unwrap();
        assert_eq!(
            (capped.cap.open(), other.cap.open(), node.open()),
            (2, 1, 3)
        );
        drop(held);
        assert_eq!((capped.cap.open(), node.open()), (0, 1));
        assert!(admit(&node, &capped).is_ok(), "places come back");
    }

    #[test]
    fn the_node_cap_refuses_without_keeping_the_listener_place() {
        let node = Arc::new(Cap::new(Some(1)));
        let (a, b) = (listener(Some(5)), listener(Some(5)));
        let _first = admit(&node, &a).unwrap();
        assert_eq!(admit(&node, &b).unwrap_err(), Refusal::Node);
        assert_eq!((b.cap.open(), node.open()), (0, 1));
    }
}
