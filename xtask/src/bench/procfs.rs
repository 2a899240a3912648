//! What the OS says about a process (CPU time, resident memory) and about the machine, from
//! `/proc`.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use xshell::{Shell, cmd};

/// Linux's clock tick (`USER_HZ`) on every common architecture: assumed when `getconf` cannot say.
pub const DEFAULT_CLOCK_TICKS: u64 = 100;

/// The unit of the CPU times in `/proc/<pid>/stat`: `getconf CLK_TCK`, else
/// [`DEFAULT_CLOCK_TICKS`] with a warning.
pub fn clock_ticks(sh: &Shell) -> u64 {
    let asked = cmd!(sh, "getconf CLK_TCK")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0);
    asked.unwrap_or_else(|| {
        eprintln!(
            "warning: getconf CLK_TCK gave no answer: assuming {DEFAULT_CLOCK_TICKS} clock ticks a second"
        );
        DEFAULT_CLOCK_TICKS
    })
}

/// User plus system CPU time of a process so far, in clock ticks (`/proc/<pid>/stat`, fields 14
/// and 15).
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu_ticks(&text).with_context(|| format!("cannot read the cpu times in {path}"))
}

fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .context("too few fields")?
            .parse()
            .with_context(|| format!("field {n} is not a number"))
    };
    Ok(field(14)? + field(15)?)
}

/// The resident set size of a process (`VmRSS` of `/proc/<pid>/status`), in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_rss(&text).with_context(|| format!("no VmRSS in {path}"))
}

fn parse_rss(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS line")?;
    let mut parts = line.split_whitespace();
    let n: u64 = parts.next().context("no value")?.parse()?;
    match parts.next() {
        Some("kB") => Ok(n * 1024),
        other => bail!("unexpected unit {other:?}"),
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            model: model_name(&cpuinfo).unwrap_or_else(|| "unknown".to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
        }
    }
}

fn model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_spaces_in_the_command_name() {
        let stat = "4242 (envoy main (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 100 1000 200 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 287);
        assert!(parse_cpu_ticks("1 (x) S 1 2").is_err());
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tenvoy\nVmPeak:\t  100 kB\nVmRSS:\t   30720 kB\nThreads:\t9\n";
        assert_eq!(parse_rss(status).unwrap(), 30720 * 1024);
        assert!(parse_rss("Name:\tx\n").is_err());
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        cpu_ticks(pid).unwrap();
    }

    #[test]
    fn the_model_name_is_the_first_one() {
        let cpuinfo =
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(model_name(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(model_name("processor\t: 0\n"), None);
    }
}
