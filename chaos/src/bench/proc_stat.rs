//! CPU time and memory of processes, threads and the machine, from /proc.

/// Clock ticks per second, the unit of the CPU times in /proc (`getconf CLK_TCK`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The state and the CPU time (utime + stime, in clock ticks) of a
/// `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat` line.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name (field 2) may hold spaces and parentheses; the fields
    // after its closing parenthesis start with the state (field 3).
    let rest = &text[text.rfind(") ")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((state, utime + stime))
}

/// CPU time of a process so far, in clock ticks; `None` when it is gone or a
/// zombie (exited, not yet reaped).
pub fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    match parse_stat(&text)? {
        ('Z', _) => None,
        (_, ticks) => Some(ticks),
    }
}

/// The CPU time of one thread so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadTicks {
    pub tid: u32,
    pub name: String,
    pub ticks: u64,
}

/// Every thread of a process with its CPU time so far.
pub fn thread_ticks(pid: u32) -> Vec<ThreadTicks> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut threads = Vec::new();
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Some((_, ticks)) = std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        else {
            continue;
        };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        threads.push(ThreadTicks {
            tid,
            name: name.trim_end().to_string(),
            ticks,
        });
    }
    threads
}

/// Per thread, the CPU seconds spent between two readings, as "name (tid)",
/// those of at least `at_least` seconds, busiest first. A thread that is new
/// in `after` counts all its time.
pub fn thread_seconds(
    before: &[ThreadTicks],
    after: &[ThreadTicks],
    clock_ticks: u64,
    at_least: f64,
) -> Vec<(String, f64)> {
    let mut threads: Vec<(String, f64)> = after
        .iter()
        .map(|thread| {
            let earlier = before
                .iter()
                .find(|b| b.tid == thread.tid)
                .map_or(0, |b| b.ticks);
            let seconds = (thread.ticks as f64 - earlier as f64) / clock_ticks as f64;
            (format!("{} ({})", thread.name, thread.tid), seconds)
        })
        .filter(|(_, seconds)| *seconds >= at_least)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    threads
}

/// Busy CPU time of the whole machine (every core) in the text of /proc/stat:
/// user + nice + system + irq + softirq + steal, in clock ticks.
pub fn parse_machine_ticks(text: &str) -> Option<u64> {
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = fields[..] else {
        return None;
    };
    Some(user + nice + system + irq + softirq + steal)
}

/// Busy CPU time of the whole machine so far, in clock ticks.
pub fn machine_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| parse_machine_ticks(&text))
        .unwrap_or(0)
}

/// The load average over 1 minute, and those over 1, 5 and 15, as
/// /proc/loadavg writes them.
pub fn load_average() -> (String, String) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (
        fields.first().copied().unwrap_or("?").to_string(),
        fields.join(" "),
    )
}

/// The model name of the machine's first CPU (/proc/cpuinfo).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            Some(
                line.strip_prefix("model name")?
                    .split_once(": ")?
                    .1
                    .to_string(),
            )
        })
        .unwrap_or_default()
}

/// Peak resident memory of a process (`VmHWM`), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<u64> {
    crate::processes::peak_rss_of(pid).map(|bytes| (bytes as f64 / 1048576.0).round() as u64)
}

/// How many CPUs this process may run on (`nproc`).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The machine's memory in GiB (`MemTotal`), rounded.
pub fn memory_gib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |kib| (kib / 1048576.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_state_and_user_plus_system_time() {
        let line = "4242 (rdk:broker 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    350 120 0 0 20 0 31 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 470)));
        // A name with ") " in it: the last one ends it.
        let odd = "7 (a) b) Z 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(odd), Some(('Z', 11)));
        assert_eq!(parse_stat("7 (short) S 1 2"), None);
    }

    #[test]
    fn the_machine_is_busy_outside_idle_and_iowait() {
        let text = "cpu  100 5 50 9000 40 3 7 2 0 0\ncpu0 50 2 25 4500 20 1 3 1 0 0\n";
        assert_eq!(parse_machine_ticks(text), Some(100 + 5 + 50 + 3 + 7 + 2));
        assert_eq!(parse_machine_ticks("cpu 1 2 3\n"), None);
    }

    #[test]
    fn thread_seconds_are_the_busy_ones_between_two_readings() {
        let thread = |tid, name: &str, ticks| ThreadTicks {
            tid,
            name: name.into(),
            ticks,
        };
        let before = [thread(1, "correlator", 100), thread(2, "rdk:main", 10)];
        let after = [
            thread(1, "correlator", 600),
            thread(2, "rdk:main", 12),
            thread(3, "rdk:broker1", 80),
        ];
        assert_eq!(
            thread_seconds(&before, &after, 100, 0.05),
            vec![
                ("correlator (1)".to_string(), 5.0),
                ("rdk:broker1 (3)".to_string(), 0.8)
            ]
        );
    }
}
