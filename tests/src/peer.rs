//! What the FRR and BIRD harnesses share: a run directory per daemon instance, daemon
//! processes started inside a namespace and killed by pid, memory figures, and the
//! address/prefix types their route listings use.
//!
//! Run directories are `/tmp/bgpt<pid>x<n>.<kind>`: the daemons' command lines name
//! them, so [`sweep_stale_daemons`] can tell the daemons of a lab process that died
//! (killed before its drops ran) from everything else on the machine.

use std::{
    collections::BTreeMap,
    fs::File,
    net::IpAddr,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

use crate::{PREFIX, owner_pid, pid_alive, unique_name};

/// Where FRR keeps per-process crash-log buffers (`<daemon>.<pid>/`); it removes them
/// on a clean exit only.
pub const FRR_TMP: &str = "/var/tmp/frr";

/// An address family of unicast routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

/// Prefix (canonical `addr/len` text, see [`canonical_prefix`]) -> next hops of the
/// selected path(s); more than one next hop means multipath. Empty for routes without a
/// gateway (blackhole, locally originated).
pub type Routes = BTreeMap<String, Vec<IpAddr>>;

/// `addr/len` with the address in its canonical (RFC 5952) text, so prefixes printed by
/// different daemons compare equal. Fails on anything that is not a prefix.
pub fn canonical_prefix(text: &str) -> Result<String> {
    let (addr, len) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| anyhow!("not a prefix (no '/'): {text:?}"))?;
    let addr: IpAddr = addr
        .parse()
        .with_context(|| format!("bad address in prefix {text:?}"))?;
    let len: u8 = len
        .parse()
        .with_context(|| format!("bad length in prefix {text:?}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        bail!("prefix length {len} > {max} in {text:?}");
    }
    Ok(format!("{addr}/{len}"))
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// Peak resident memory of process `pid` since it started, in bytes (`VmHWM`, the
/// high-water mark of `VmRSS`).
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmHWM")
}

/// A `<field>: <n> kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    field_bytes(&status, field).with_context(|| format!("{path} (a zombie or kernel thread?)"))
}

/// `field` of a `/proc/<pid>/status` text, in bytes.
fn field_bytes(status: &str, field: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .ok_or_else(|| anyhow!("no {field}"))?;
    let kb: u64 = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("bad {field} line: {line:?}"))?;
    Ok(kb * 1024)
}

/// A directory for one daemon instance's config, sockets, pid and log files, removed
/// with its contents on drop.
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `/tmp/bgpt<pid>x<n>.<kind>`, owned by `owner` (user:group) if given.
    pub fn new(kind: &str, owner: Option<&str>) -> Result<Self> {
        let path = PathBuf::from(format!("/tmp/{}.{kind}", unique_name()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let dir = Self { path };
        if let Some(owner) = owner {
            dir.chown(&dir.path, owner)?;
        }
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/<name>` as a string (daemons take paths as arguments).
    pub fn file(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    /// Writes `<dir>/<name>`, owned by `owner` if given.
    pub fn write(&self, name: &str, contents: &str, owner: Option<&str>) -> Result<String> {
        let file = self.file(name);
        std::fs::write(&file, contents).with_context(|| format!("writing {file}"))?;
        if let Some(owner) = owner {
            self.chown(Path::new(&file), owner)?;
        }
        Ok(file)
    }

    /// Contents of `<dir>/<name>`, empty if it does not exist (yet).
    pub fn read(&self, name: &str) -> Result<String> {
        let file = self.file(name);
        match std::fs::read(&file) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e).with_context(|| format!("reading {file}")),
        }
    }

    fn chown(&self, path: &Path, owner: &str) -> Result<()> {
        crate::run("chown", &[owner, &path.to_string_lossy()]).map(drop)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("lab: could not remove {}: {e}", self.path.display());
        }
    }
}

/// A daemon process running in the foreground inside a namespace, as a child of this
/// process (so its pid is known and it is reaped). Killed on drop.
pub struct Daemon {
    name: String,
    child: Child,
    reaped: bool,
}

impl Daemon {
    /// Starts `program args...` in `ns`'s network namespace, stdin from /dev/null and
    /// stdout+stderr appended to `output`.
    pub fn spawn(netns: &str, program: &str, args: &[&str], output: &str) -> Result<Self> {
        let netns_path = format!("/run/netns/{netns}");
        let ns_file = File::open(&netns_path).with_context(|| format!("opening {netns_path}"))?;
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .with_context(|| format!("opening {output}"))?;
        let err = out.try_clone()?;
        let fd = ns_file.as_raw_fd();
        let mut cmd = Command::new(program);
        // Its own process group: a Ctrl-C meant for the lab process (`cargo xtask run`)
        // does not kill the daemon before the lab tears it down in order.
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: setns is async-signal-safe and only changes the child between fork and
        // exec; the namespace fd stays open (owned by `ns_file`) until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        crate::unblock_signals(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {program} in {netns} (installed?)"))?;
        drop(ns_file);
        let name = Path::new(program)
            .file_name()
            .map_or_else(|| program.to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            name,
            child,
            reaped: false,
        })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the daemon's output if it has exited.
    pub fn check_running(&mut self, output: &str) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.reaped = true;
            let text = std::fs::read_to_string(output).unwrap_or_default();
            bail!("{} exited ({status}): {}", self.name, text.trim());
        }
        Ok(())
    }

    /// SIGKILL (a crash, as far as its peers can tell: the kernel closes its sockets),
    /// reaped, and FRR's crash-log directory of this pid removed.
    pub fn kill(&mut self) -> Result<()> {
        if !self.reaped {
            if self.child.try_wait()?.is_none() {
                self.child
                    .kill()
                    .with_context(|| format!("killing {} ({})", self.name, self.pid()))?;
            }
            self.child.wait()?;
            self.reaped = true;
        }
        remove_frr_tmp(&self.name, self.pid());
        Ok(())
    }

    /// SIGTERM (a clean shutdown), then SIGKILL if it is still there after `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Result<()> {
        if !self.reaped && self.child.try_wait()?.is_none() {
            // SAFETY: kill on our own child, not reaped yet, so its pid is not reused.
            unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && self.child.try_wait()?.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("lab: could not kill {} ({}): {e:#}", self.name, self.pid());
        }
    }
}

/// Removes `/var/tmp/frr/<daemon>.<pid>/` (FRR leaves it behind when killed).
fn remove_frr_tmp(daemon: &str, pid: u32) {
    let dir = Path::new(FRR_TMP).join(format!("{daemon}.{pid}"));
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        eprintln!("lab: could not remove {}: {e}", dir.display());
    }
}

/// Kills daemons whose command line names the run directory of a lab process that no
/// longer runs, and removes such run directories and the daemons' FRR crash-log dirs.
pub(crate) fn sweep_stale_daemons() {
    let stale_owner = |text: &str| -> bool {
        text.split(&format!("/tmp/{PREFIX}"))
            .skip(1)
            .filter_map(|rest| owner_pid(&format!("{PREFIX}{rest}")))
            .any(|p| !pid_alive(p))
    };
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for e in procs.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if stale_owner(&cmdline) {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                // SAFETY: kill by the pid just read; the process is a leftover lab daemon.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                remove_frr_tmp(comm.trim(), pid);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/tmp") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains('.')
                && owner_pid(name.split('.').next().unwrap_or_default())
                    .is_some_and(|p| !pid_alive(p))
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_canonical() {
        assert_eq!(canonical_prefix("192.0.2.0/24").unwrap(), "192.0.2.0/24");
        assert_eq!(
            canonical_prefix("2001:DB8:0:0::/48").unwrap(),
            "2001:db8::/48"
        );
        assert!(canonical_prefix("192.0.2.0").is_err());
        assert!(canonical_prefix("192.0.2.0/33").is_err());
        assert!(canonical_prefix("nonsense/8").is_err());
    }

    #[test]
    fn daemons_of_a_dead_lab_process_are_swept() {
        // A lab process that has exited: its pid names the run directory.
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        assert!(!pid_alive(dead));
        let dir = PathBuf::from(format!("/tmp/{PREFIX}{dead}x0.test"));
        std::fs::create_dir_all(&dir).unwrap();
        // A "daemon" whose command line names that directory, as FRR's and BIRD's do.
        let mut daemon = Command::new("sh")
            .args([
                "-c",
                "sleep 60; true",
                &dir.join("daemon").to_string_lossy(),
            ])
            .spawn()
            .unwrap();
        // spawn() returns when exec has begun, a moment before the kernel publishes the
        // new command line: a sweep in that moment would see none.
        let cmdline = format!("/proc/{}/cmdline", daemon.id());
        let marker = dir.to_string_lossy().into_owned();
        crate::wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            Ok(String::from_utf8_lossy(&std::fs::read(&cmdline)?).contains(&marker))
        })
        .unwrap();
        sweep_stale_daemons();
        let status = daemon.wait().unwrap();
        assert!(!status.success(), "the leftover daemon was not killed");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[test]
    fn own_rss_is_plausible() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 100 * 1024, "{rss}");
        assert!(peak_rss_bytes(std::process::id()).unwrap() > 100 * 1024);
        // From one read: the kernel computes both then (across two reads, memory given
        // back with madvise in between can leave the high-water mark below an earlier
        // VmRSS).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let (rss, peak) = (
            field_bytes(&status, "VmRSS").unwrap(),
            field_bytes(&status, "VmHWM").unwrap(),
        );
        assert!(peak >= rss, "peak {peak} < current {rss}");
        assert!(status_bytes(std::process::id(), "VmNoSuchField").is_err());
    }
}
