//! File descriptors shared out so that a flood on one listener cannot starve the others.
//!
//! Every open connection holds one descriptor, and the process has `RLIMIT_NOFILE` of them.
//! The admin listener holds at most `admin.connections_max` (it closes its longest-idle
//! connection to make room for a new one); the storage, the cluster's peers, log files and
//! the descriptors an accept needs before a cap can refuse it are kept back
//! ([`FD_RESERVE`]); the MQTT listeners together get the rest at most. A configured
//! `mqtt.connections_max` above that is lowered at start-up, with a warning, so that a flood
//! of MQTT clients runs into the cap, not into "too many open files" that would refuse the
//! admin API, the peers and the storage as well.

/// Descriptors kept back from the connection caps: RocksDB's open table files (256) and its
/// WAL and log, the cluster's peer connections, the process's own files, and headroom for
/// connections accepted only to be closed at a cap.
pub const FD_RESERVE: usize = 512;

/// The most MQTT connections the node may hold with `limit` descriptors, `wanted` configured
/// and `admin` kept for the admin listener: never below 1.
pub fn mqtt_connections_max(limit: usize, wanted: usize, admin: usize) -> usize {
    wanted.min(limit.saturating_sub(FD_RESERVE + admin)).max(1)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as servers do at start-up, and returns
/// the soft limit then in force (`None` where it cannot be read).
#[cfg(unix)]
pub fn raise_nofile_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
pub fn raise_nofile_limit() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_connections_get_what_the_others_leave() {
        // This machine's limit: 20,000 descriptors, 256 for the admin API.
        assert_eq!(
            mqtt_connections_max(20_000, 100_000, 256),
            20_000 - 512 - 256
        );
        assert_eq!(mqtt_connections_max(20_000, 5_000, 256), 5_000);
        assert_eq!(mqtt_connections_max(600, 100_000, 256), 1);
        assert_eq!(mqtt_connections_max(1_048_576, 100_000, 256), 100_000);
    }
}
