//! Bugs planted on purpose, to prove that the simulator catches them (issue #5: "prove the
//! harness bites"). Each switch is a thread-local, so one simulation (which runs every host
//! on its test's thread) can plant a bug without touching the simulations of other tests.
//!
//! Only the `sim` feature has them: in every other build each switch is the constant `false`
//! and the planted code is compiled out.

/// Which bugs are planted on this thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// PUBACK/PUBREC a publish to durable subscribers before its log entry commits.
    pub ack_before_commit: bool,
    /// On resume, resend a QoS 2 PUBLISH whose PUBREC was already received, instead of
    /// the PUBREL ([MQTT-4.3.3-?]: once PUBREC is received the PUBLISH must not be sent again).
    pub resend_publish_after_pubrec: bool,
    /// After a restart, drop every queued message of every durable session.
    pub drop_queue_on_restart: bool,
}

#[cfg(feature = "sim")]
mod switch {
    use std::cell::Cell;

    use super::Bugs;

    thread_local! {
        static PLANTED: Cell<Bugs> = const {
            Cell::new(Bugs {
                ack_before_commit: false,
                resend_publish_after_pubrec: false,
                drop_queue_on_restart: false,
            })
        };
    }

    /// Plants `bugs` on this thread (all false: none).
    pub fn plant(bugs: Bugs) {
        PLANTED.with(|p| p.set(bugs));
    }

    pub fn planted() -> Bugs {
        PLANTED.with(Cell::get)
    }
}

#[cfg(feature = "sim")]
pub use switch::{plant, planted};

/// No bug can be planted outside the simulator.
#[cfg(not(feature = "sim"))]
#[inline(always)]
pub const fn planted() -> Bugs {
    Bugs {
        ack_before_commit: false,
        resend_publish_after_pubrec: false,
        drop_queue_on_restart: false,
    }
}
