//! CPU placement: veth work runs on the CPU that sends, so the generator gets one CPU and
//! the receiving NAPI instances, run as threads, get the other.

use anyhow::{Result, bail};

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
    let prefix = format!("napi/{dev}-");
    let mut pinned = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Kernel threads show their whole name in comm on this kernel.
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&prefix) {
            pin(pid, cpu)?;
            pinned += 1;
        }
    }
    if pinned == 0 {
        bail!(
            "no NAPI thread for {dev} in {}: does it have NAPI (XDP or GRO)?",
            ns.name()
        );
    }
    Ok(pinned)
}

fn pin(pid: i32, cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it for
    // cpu < CPU_SETSIZE, which the check guarantees.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            bail!("CPU {cpu} out of range");
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "pinning {} to CPU {cpu}: {}",
                if pid == 0 {
                    "this thread".to_owned()
                } else {
                    format!("pid {pid}")
                },
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}
