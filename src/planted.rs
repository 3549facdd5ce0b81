//! Bugs planted on purpose, to prove that the simulator and `jepsen/` catch them ("prove the
//! harness bites"). A simulation plants bugs on its own thread ([`plant`]: a thread-local, so
//! one simulation, which runs every host on its test's thread, leaves the simulations of other
//! tests alone). A real process plants them for all its threads from the `KEEL_PLANTED`
//! environment variable at start-up ([`plant_from_env`]), for `jepsen/`'s demonstration run.
//!
//! Only the `planted` feature (which `sim` turns on) has them: in every other build each switch
//! is the constant `false` and the planted code is compiled out, so the broker users run cannot
//! carry a planted bug whatever its environment says.

/// Which bugs are planted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// PUBACK/PUBREC a publish to durable subscribers before its log entry commits.
    pub ack_before_commit: bool,
    /// On resume, resend a QoS 2 PUBLISH whose PUBREC was already received, instead of
    /// the PUBREL ([MQTT-4.3.3-?]: once PUBREC is received the PUBLISH must not be sent again).
    pub resend_publish_after_pubrec: bool,
    /// After a restart, drop every queued message of every durable session.
    pub drop_queue_on_restart: bool,
    /// An MQTT 5 CONNECT with Clean Start 0 and no Session Expiry Interval starts a session
    /// of its own instead of resuming the stored one (the bug of issue 15).
    pub resume_needs_expiry: bool,
    /// A durable connection that never opened releases the QoS 2 messages of its shared
    /// groups that its node's replica shows unacknowledged, and the log moves them even with
    /// their PUBREC committed (jepsen's shared-group duplicates).
    pub release_sent_shared: bool,
    /// A membership change adds any node as asked, as openraft's `add_learner` then
    /// `change_membership` do, without checking that it answers, has caught up or leaves a
    /// reachable majority (issue 16's node-bricking `POST`).
    pub unchecked_joins: bool,
}

impl Bugs {
    const NONE: Bugs = Bugs {
        ack_before_commit: false,
        resend_publish_after_pubrec: false,
        drop_queue_on_restart: false,
        resume_needs_expiry: false,
        release_sent_shared: false,
        unchecked_joins: false,
    };

    /// The bugs a comma-separated list names (`ack_before_commit`,
    /// `resend_publish_after_pubrec`, `drop_queue_on_restart`, `resume_needs_expiry`,
    /// `release_sent_shared`, `unchecked_joins`); `Err` names an unknown one.
    pub fn parse(list: &str) -> Result<Bugs, String> {
        let mut bugs = Bugs::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "ack_before_commit" => bugs.ack_before_commit = true,
                "resend_publish_after_pubrec" => bugs.resend_publish_after_pubrec = true,
                "drop_queue_on_restart" => bugs.drop_queue_on_restart = true,
                "resume_needs_expiry" => bugs.resume_needs_expiry = true,
                "release_sent_shared" => bugs.release_sent_shared = true,
                "unchecked_joins" => bugs.unchecked_joins = true,
                other => return Err(format!("unknown planted bug {other:?}")),
            }
        }
        Ok(bugs)
    }

    #[cfg(feature = "planted")]
    fn or(self, other: Bugs) -> Bugs {
        Bugs {
            ack_before_commit: self.ack_before_commit || other.ack_before_commit,
            resend_publish_after_pubrec: self.resend_publish_after_pubrec
                || other.resend_publish_after_pubrec,
            drop_queue_on_restart: self.drop_queue_on_restart || other.drop_queue_on_restart,
            resume_needs_expiry: self.resume_needs_expiry || other.resume_needs_expiry,
            release_sent_shared: self.release_sent_shared || other.release_sent_shared,
            unchecked_joins: self.unchecked_joins || other.unchecked_joins,
        }
    }
}

#[cfg(feature = "planted")]
mod switch {
    use std::cell::Cell;
    use std::sync::Mutex;

    use super::Bugs;

    thread_local! {
        static THREAD: Cell<Bugs> = const { Cell::new(Bugs::NONE) };
    }

    /// Planted for every thread of the process (set once at start-up).
    static PROCESS: Mutex<Bugs> = Mutex::new(Bugs::NONE);

    /// Plants `bugs` on this thread (all false: none).
    pub fn plant(bugs: Bugs) {
        THREAD.with(|p| p.set(bugs));
    }

    /// Plants the bugs `KEEL_PLANTED` names for the whole process; returns them.
    pub fn plant_from_env() -> Result<Bugs, String> {
        let bugs = match std::env::var("KEEL_PLANTED") {
            Ok(list) => Bugs::parse(&list)?,
            Err(_) => Bugs::NONE,
        };
        *PROCESS.lock().unwrap_or_else(|e| e.into_inner()) = bugs;
        Ok(bugs)
    }

    pub fn planted() -> Bugs {
        let process = *PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        THREAD.with(Cell::get).or(process)
    }
}

#[cfg(feature = "planted")]
pub use switch::{plant, plant_from_env, planted};

/// No bug can be planted in a build without the `planted` feature.
#[cfg(not(feature = "planted"))]
#[inline(always)]
pub const fn planted() -> Bugs {
    Bugs::NONE
}

/// Without the `planted` feature nothing can be planted: `KEEL_PLANTED` is refused rather than
/// ignored, so a demonstration run never believes it planted a bug it did not.
#[cfg(not(feature = "planted"))]
pub fn plant_from_env() -> Result<Bugs, String> {
    match std::env::var("KEEL_PLANTED") {
        Ok(list) if !list.trim().is_empty() => Err(format!(
            "KEEL_PLANTED={list:?}, but this build has no planted bugs (feature `planted`)"
        )),
        _ => Ok(Bugs::NONE),
    }
}

#[cfg(test)]
mod tests {
    use super::Bugs;

    #[test]
    fn a_list_names_the_bugs_and_an_unknown_name_is_refused() {
        let bugs = Bugs::parse("ack_before_commit, drop_queue_on_restart").unwrap();
        assert!(bugs.ack_before_commit && bugs.drop_queue_on_restart);
        assert!(!bugs.resend_publish_after_pubrec);
        assert_eq!(Bugs::parse("").unwrap(), Bugs::default());
        assert!(Bugs::parse("ack_after_lunch").is_err());
    }
}
