//! A publisher's QoS 1/2 in-flight window: which packet ids carry which sequence numbers and
//! how far each QoS 2 flow has got. Pure, so the acknowledgement rules are tested alone.

use thiserror::Error;

use keel::codec::PacketId;

/// Where one packet id's flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitAck {
        seq: u64,
    },
    /// QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP. The broker has taken
    /// responsibility for the message.
    AwaitComp {
        seq: u64,
    },
}

/// An acknowledgement that does not match the window: a broker bug worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AckError {
    #[error("{packet} for packet id {id} that is not in flight at that step")]
    Unexpected { packet: &'static str, id: u16 },
}

/// The window of one publisher.
#[derive(Debug, Clone)]
pub struct Inflight {
    /// Indexed by packet id; index 0 is never used because packet ids are never 0.
    slots: Vec<Slot>,
    /// Where the search for a free id starts: ids are handed out in rising order so that a
    /// late acknowledgement never matches a newer message.
    next: PacketId,
    /// Slots not `Free`.
    len: usize,
    /// Most slots in use at once.
    window: usize,
}

impl Inflight {
    /// A window of `window` messages (1 to 65535).
    pub fn new(window: u16) -> Inflight {
        assert!(window > 0, "an in-flight window of 0 would never send");
        Inflight {
            slots: vec![Slot::Free; usize::from(u16::MAX) + 1],
            next: PacketId::MIN,
            len: 0,
            window: usize::from(window),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True while another message may be sent.
    pub fn has_room(&self) -> bool {
        self.len < self.window
    }

    /// Takes a free packet id for message `seq`. Panics when the window is full.
    pub fn start(&mut self, seq: u64) -> PacketId {
        assert!(
            self.has_room(),
            "in-flight window of {} is full",
            self.window
        );
        // The window is at most 65535 of 65535 ids, so a free one exists and the loop ends
        // within one lap.
        let mut id = self.next;
        while self.slots[usize::from(id.get())] != Slot::Free {
            id = id.next();
        }
        self.slots[usize::from(id.get())] = Slot::AwaitAck { seq };
        self.len += 1;
        self.next = id.next();
        id
    }

    /// PUBACK (QoS 1): frees the id and returns the message's sequence number.
    pub fn on_puback(&mut self, id: PacketId) -> Result<u64, AckError> {
        match self.slots[usize::from(id.get())] {
            Slot::AwaitAck { seq } => {
                self.free(id);
                Ok(seq)
            }
            _ => Err(AckError::Unexpected {
                packet: "PUBACK",
                id: id.get(),
            }),
        }
    }

    /// PUBREC (QoS 2): the broker has the message; a PUBREL must be sent. A repeated PUBREC
    /// is answered with PUBREL again, as the spec asks.
    pub fn on_pubrec(&mut self, id: PacketId) -> Result<(), AckError> {
        let slot = &mut self.slots[usize::from(id.get())];
        match *slot {
            Slot::AwaitAck { seq } | Slot::AwaitComp { seq } => {
                *slot = Slot::AwaitComp { seq };
                Ok(())
            }
            Slot::Free => Err(AckError::Unexpected {
                packet: "PUBREC",
                id: id.get(),
            }),
        }
    }

    /// PUBCOMP (QoS 2): frees the id and returns the message's sequence number.
    pub fn on_pubcomp(&mut self, id: PacketId) -> Result<u64, AckError> {
        match self.slots[usize::from(id.get())] {
            Slot::AwaitComp { seq } => {
                self.free(id);
                Ok(seq)
            }
            _ => Err(AckError::Unexpected {
                packet: "PUBCOMP",
                id: id.get(),
            }),
        }
    }

    /// A PUBACK or PUBREC with an error reason code (MQTT 5): the broker refused the message,
    /// so the id is free and the message was never the broker's to deliver.
    pub fn on_refused(&mut self, id: PacketId) -> Option<u64> {
        match self.slots[usize::from(id.get())] {
            Slot::AwaitAck { seq } => {
                self.free(id);
                Some(seq)
            }
            _ => None,
        }
    }

    /// Sequence numbers the broker never acknowledged (still waiting for PUBACK or PUBREC),
    /// in rising order. Messages waiting only for PUBCOMP were acknowledged by PUBREC.
    pub fn unacknowledged(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::AwaitAck { seq } => Some(*seq),
                _ => None,
            })
            .collect();
        seqs.sort_unstable();
        seqs
    }

    fn free(&mut self, id: PacketId) {
        self.slots[usize::from(id.get())] = Slot::Free;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: u16) -> PacketId {
        PacketId::new(value).unwrap()
    }

    #[test]
    fn qos1_window_fills_and_frees() {
        let mut window = Inflight::new(2);
        assert_eq!(window.start(0), id(1));
        assert_eq!(window.start(1), id(2));
        assert!(!window.has_room());
        assert_eq!(window.on_puback(id(2)), Ok(1));
        assert!(window.has_room());
        // Ids keep rising after a free, so a stale ack cannot hit a new message.
        assert_eq!(window.start(2), id(3));
        assert_eq!(window.on_puback(id(1)), Ok(0));
        assert_eq!(window.on_puback(id(3)), Ok(2));
        assert!(window.is_empty());
    }

    #[test]
    fn ids_wrap_past_65535_and_skip_ids_in_use() {
        let mut window = Inflight::new(3);
        window.next = id(u16::MAX);
        assert_eq!(window.start(0), id(u16::MAX));
        assert_eq!(window.start(1), id(1));
        window.next = id(u16::MAX);
        assert_eq!(window.start(2), id(2));
    }

    #[test]
    fn qos2_flow_moves_forward_only() {
        let mut window = Inflight::new(4);
        let first = window.start(7);
        assert_eq!(
            window.on_pubcomp(first),
            Err(AckError::Unexpected {
                packet: "PUBCOMP",
                id: first.get()
            })
        );
        assert_eq!(window.on_pubrec(first), Ok(()));
        // A repeated PUBREC is answered again, and the message stays acknowledged.
        assert_eq!(window.on_pubrec(first), Ok(()));
        assert!(window.unacknowledged().is_empty());
        assert_eq!(window.on_pubcomp(first), Ok(7));
        assert_eq!(
            window.on_pubrec(first),
            Err(AckError::Unexpected {
                packet: "PUBREC",
                id: first.get()
            })
        );
    }

    #[test]
    fn acks_for_ids_never_sent_are_errors() {
        let mut window = Inflight::new(4);
        assert!(window.on_puback(id(9)).is_err());
        assert!(window.on_pubrec(id(9)).is_err());
        assert_eq!(window.on_refused(id(9)), None);
    }

    #[test]
    fn unacknowledged_lists_only_messages_before_puback_or_pubrec() {
        let mut window = Inflight::new(8);
        let ids: Vec<PacketId> = (0..4).map(|seq| window.start(seq)).collect();
        window.on_pubrec(ids[1]).unwrap();
        window.on_puback(ids[2]).unwrap();
        assert_eq!(window.on_refused(ids[3]), Some(3));
        assert_eq!(window.unacknowledged(), vec![0]);
        assert_eq!(window.len(), 2);
    }
}
