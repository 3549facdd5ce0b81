//! CPU time and memory of a process, read from Linux's `/proc`: the node's own for the admin
//! API's `/metrics`, and the load generator's and the broker's (by pid), sampled at the start
//! and end of its measured window.

use std::io;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcSample {
    /// User plus system CPU time, in clock ticks (`utime + stime` of `/proc/PID/stat`).
    pub cpu_ticks: u64,
    /// Resident set size now (`VmRSS`).
    pub rss_kb: u64,
    /// Peak resident set size over the process's life (`VmHWM`).
    pub rss_peak_kb: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` for the pid reads this process.
pub fn sample(pid: Option<u32>) -> io::Result<ProcSample> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{dir}: no {what}"));
    Ok(ProcSample {
        cpu_ticks: parse_stat_cpu_ticks(&stat).ok_or_else(|| bad("utime/stime in stat"))?,
        rss_kb: parse_status_kb(&status, "VmRSS").ok_or_else(|| bad("VmRSS in status"))?,
        rss_peak_kb: parse_status_kb(&status, "VmHWM").ok_or_else(|| bad("VmHWM in status"))?,
    })
}

/// Clock ticks per second, the unit of `/proc/PID/stat` CPU times.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has reported 100 for decades; fall back to it if the call fails.
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are counted from the
/// last `)`: after it come state (field 3) ... utime (14) and stime (15).
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The value in kB of a line like `VmRSS:    1234 kB` of `/proc/PID/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// CPU use between two samples as a percentage of one core (200 means two cores busy).
pub fn cpu_percent(start: &ProcSample, end: &ProcSample, wall_ns: u64, ticks_per_sec: u64) -> f64 {
    if wall_ns == 0 || ticks_per_sec == 0 {
        return 0.0;
    }
    let ticks = end.cpu_ticks.saturating_sub(start.cpu_ticks) as f64;
    let cpu_secs = ticks / ticks_per_sec as f64;
    100.0 * cpu_secs / (wall_ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line, with a command name that contains a space and a parenthesis.
    const STAT: &str = "4242 (mos quit)to) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                        731 269 0 0 20 0 1 0 5678 12345678 890 18446744073709551615";

    #[test]
    fn cpu_ticks_are_utime_plus_stime_after_the_name() {
        assert_eq!(parse_stat_cpu_ticks(STAT), Some(731 + 269));
    }

    #[test]
    fn truncated_stat_has_no_cpu_ticks() {
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn status_values_are_read_by_exact_key() {
        let status =
            "Name:\tmosquitto\nVmHWM:\t    9000 kB\nVmRSS:\t    8123 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(8123));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(9000));
        assert_eq!(parse_status_kb(status, "Rss"), None);
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn cpu_percent_is_relative_to_one_core() {
        let start = ProcSample {
            cpu_ticks: 1000,
            ..ProcSample::default()
        };
        let end = ProcSample {
            cpu_ticks: 1150,
            ..ProcSample::default()
        };
        // 150 ticks at 100 Hz = 1.5 s of CPU over 2 s of wall time.
        let percent = cpu_percent(&start, &end, 2_000_000_000, 100);
        assert!((percent - 75.0).abs() < 1e-9, "{percent}");
        assert_eq!(cpu_percent(&start, &end, 0, 100), 0.0);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = sample(None).expect("/proc/self is readable on Linux");
        assert!(sample.rss_kb > 0);
        assert!(sample.rss_peak_kb >= sample.rss_kb);
    }
}
