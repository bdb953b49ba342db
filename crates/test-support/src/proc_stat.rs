//! CPU time and peak memory from `/proc` (Linux), for load runs that report cores used and RSS
//! per process or thread.

use std::path::Path;

/// Clock ticks per second of the `/proc` counters (`getconf CLK_TCK`, 100 when unknown).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds from a `stat` file (`/proc/<pid>/stat` or a task's); 0 when
/// it cannot be read.
pub fn cpu_seconds(stat: &Path) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the parenthesised name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = text
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / ticks_per_second()
}

/// CPU seconds used by process `pid`.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    cpu_seconds(Path::new(&format!("/proc/{pid}/stat")))
}

/// Field `field` of `/proc/{pid}/status` (a `kB` figure), in bytes; 0 when unknown.
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// The peak resident set size of process `pid` (`VmHWM`), in bytes; 0 when unknown.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// CPU seconds used by this process's threads whose name starts with `prefix`.
pub fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .map(|task| cpu_seconds(&task.path().join("stat")))
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_some_cpu() {
        let burn: u64 = (0..5_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(burn > 0);
        assert!(super::process_cpu_seconds(std::process::id()) > 0.0);
        assert!(super::threads_cpu_seconds("") > 0.0);
        assert!(super::peak_rss_bytes(std::process::id()) > 1 << 20);
    }
}
