//! CPU placement and accounting: veth work runs on the CPU that sends, so the generator
//! gets one CPU and the receiving NAPI instances, run as threads, get the other; their
//! CPU time says what a packet costs the receiving side.

use anyhow::{Result, anyhow, bail};

/// CPUs this process may run on.
pub fn online() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    pin(0, cpu)
}

/// Makes the NAPI instances of `dev` (in `ns`) kernel threads and pins them to `cpu`.
/// Returns how many threads were pinned; the NAPI must exist (an XDP program attached,
/// or GRO on), else there is nothing to pin and this fails.
pub fn pin_napi(ns: &lab::Netns, dev: &str, cpu: usize) -> Result<usize> {
    // `ip netns exec` mounts the namespace's own /sys, where `dev` is visible.
    ns.exec(
        "sh",
        &["-c", &format!("echo 1 > /sys/class/net/{dev}/threaded")],
    )?;
    let threads = napi_threads(dev)?;
    if threads.is_empty() {
        bail!(
            "no NAPI thread for {dev} in {}: does it have NAPI (XDP or GRO)?",
            ns.name()
        );
    }
    for &pid in &threads {
        pin(pid, cpu)?;
    }
    Ok(threads.len())
}

/// CPU time so far of the NAPI threads of `dev` (a name unique on the machine), in ns.
/// It includes the softirq work they run on the way, such as the sink's NAPI.
pub fn napi_cpu_ns(dev: &str) -> Result<u64> {
    let mut total = 0;
    for pid in napi_threads(dev)? {
        // The first field of schedstat is the time spent on a CPU, in ns.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))?;
        total += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("unreadable /proc/{pid}/schedstat: {stat}"))?;
    }
    Ok(total)
}

/// The threads of `dev`'s threaded NAPI instances, `napi/<dev>-<id>`.
fn napi_threads(dev: &str) -> Result<Vec<i32>> {
    let prefix = format!("napi/{dev}-");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Kernel threads show their whole name in comm on this kernel.
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&prefix) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn pin(pid: i32, cpu: usize) -> Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        bail!("CPU {cpu} out of range");
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it for
    // cpu < CPU_SETSIZE, checked above.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        let who = if pid == 0 {
            "this thread".to_owned()
        } else {
            format!("pid {pid}")
        };
        bail!(
            "pinning {who} to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
