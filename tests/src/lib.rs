//! Lab helpers for integration tests and `cargo xtask run`: network namespaces, veth
//! pairs and bpffs pin directories that are removed when dropped, also on test failure.
//!
//! Names carry the creating process id (`bgpt<pid>x<n>`), so parallel tests never
//! collide and leftovers of a killed run are recognised and swept by the next one.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

pub mod agent;
mod bgp_session;
mod bgp_stream;
pub mod bird;
pub mod configs;
pub mod dist;
pub mod fabric;
pub mod feeder;
pub mod flow;
pub mod frames;
pub mod frr;
pub mod peer;
pub mod scenarios;
pub mod scripted_peer;

/// Prefix of every namespace and pin directory the lab creates.
pub const PREFIX: &str = "bgpt";

/// bpffs mount point under which pin directories are made.
pub const BPFFS: &str = "/sys/fs/bpf";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `bgpt<pid>x<n>`.
pub fn unique_name() -> String {
    format!(
        "{PREFIX}{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fails loudly (never skips) when the tests cannot run here.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("integration tests need root (namespaces, XDP, bpffs): run `sudo cargo xtask test`");
    }
    Ok(())
}

/// Fails unless a bpffs is mounted at [`BPFFS`].
pub fn require_bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if !mounts.lines().any(|l| {
        l.split_whitespace().nth(1) == Some(BPFFS) && l.split_whitespace().nth(2) == Some("bpf")
    }) {
        bail!("no bpffs mounted at {BPFFS}: run `cargo xtask setup`");
    }
    Ok(())
}

/// Runs a command; fails with its stderr when it exits non-zero. Returns stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = output(program, args)?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and returns its output whatever its status.
pub fn output(program: &str, args: &[&str]) -> Result<Output> {
    Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run `{program}` (is it installed? `cargo xtask setup`)"))
}

/// Runs `sh -c script`, failing with its stderr.
pub fn sh(script: &str) -> Result<String> {
    run("sh", &["-c", script])
}

/// Makes `cmd`'s child start with no blocked signals: a lab process that waits for
/// Ctrl-C with `sigwait` (`cargo xtask run`) blocks SIGINT and SIGTERM, and children
/// inherit the mask, but daemons must see SIGTERM.
pub(crate) fn unblock_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe, and only touch the
    // child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Whether process `pid` is alive.
fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Pid encoded in a lab name, if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('x').next()?.parse().ok()
}

/// Polls `ready` every `interval` until it returns `Ok(true)`; returns how long that
/// took. Fails when `timeout` has passed (after one last poll) or as soon as `ready`
/// fails: `ready` decides which errors are worth waiting out.
pub fn wait_until(
    timeout: Duration,
    interval: Duration,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let expired = start.elapsed() >= timeout;
        if ready()? {
            return Ok(start.elapsed());
        }
        if expired {
            bail!("not ready after {:.1} s", timeout.as_secs_f64());
        }
        std::thread::sleep(interval.min(timeout.saturating_sub(start.elapsed())));
    }
}

/// Removes namespaces, pin directories, peer daemons and their run directories left by
/// lab processes that no longer run.
pub fn sweep_stale() {
    peer::sweep_stale_daemons();
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner_pid(name).is_some_and(|p| !pid_alive(p)) {
                let _ = output("ip", &["netns", "del", name]);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(BPFFS) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if owner_pid(&name).is_some_and(|p| !pid_alive(p)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A network namespace, deleted on drop (which also removes its interfaces and any XDP
/// program attached to them).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a unique name and brings its loopback up.
    pub fn new() -> Result<Self> {
        Self::named(&unique_name())
    }

    /// Creates a namespace named `name`, which must start with [`PREFIX`] and the pid.
    pub fn named(name: &str) -> Result<Self> {
        run("ip", &["netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> args...`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs a program inside the namespace (`ip netns exec`), failing on non-zero exit.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Like [`Netns::exec`] but returns the output whatever the exit status.
    pub fn exec_output(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        output("ip", &full)
    }

    /// Runs `f` on a thread that has entered this namespace (network only: the mount
    /// namespace, and so bpffs, stay the caller's).
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only; the fd is valid for the call.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(anyhow!(
                        "setns into {}: {}",
                        self.name,
                        std::io::Error::last_os_error()
                    ));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow!("thread in namespace {} panicked", self.name))?
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("lab: could not delete namespace {}: {e:#}", self.name);
        }
    }
}

/// Creates a veth pair `a` in `ns_a` <-> `b` in `ns_b`, both up.
pub fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str) -> Result<()> {
    ns_a.ip(&[
        "link",
        "add",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
    ])?;
    ns_a.ip(&["link", "set", a, "up"])?;
    ns_b.ip(&["link", "set", b, "up"])?;
    Ok(())
}

/// The two-namespace lab of most BGP tests, after checking they can run here (root, a
/// bpffs) and sweeping what dead lab processes left: a node and a leaf joined by a
/// veth, node n0 192.0.2.11/24 and fd00::11/64, leaf l0 192.0.2.1/24 and fd00::1/64.
pub fn node_and_leaf() -> Result<(Netns, Netns)> {
    require_root()?;
    require_bpffs()?;
    sweep_stale();
    let (node, leaf) = (Netns::new()?, Netns::new()?);
    veth(&node, "n0", &leaf, "l0")?;
    node.ip(&["addr", "add", "192.0.2.11/24", "dev", "n0"])?;
    leaf.ip(&["addr", "add", "192.0.2.1/24", "dev", "l0"])?;
    node.ip(&["-6", "addr", "add", "fd00::11/64", "dev", "n0", "nodad"])?;
    leaf.ip(&["-6", "addr", "add", "fd00::1/64", "dev", "l0", "nodad"])?;
    Ok((node, leaf))
}

/// A directory on bpffs, removed with everything pinned in it on drop.
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// Creates `/sys/fs/bpf/<unique name>`.
    pub fn new() -> Result<Self> {
        require_bpffs()?;
        let path = Path::new(BPFFS).join(unique_name());
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("lab: could not remove {}: {e}", self.path.display());
        }
    }
}

/// Facts about an interface inside a namespace.
pub struct Link {
    /// Its ifindex (in its namespace).
    pub ifindex: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
}

impl Netns {
    /// The ifindex and MAC of `dev`.
    pub fn link(&self, dev: &str) -> Result<Link> {
        let json = self.ip(&["-j", "link", "show", "dev", dev])?;
        let field = |name: &str| -> Result<String> {
            let at = json
                .find(&format!("\"{name}\":"))
                .ok_or_else(|| anyhow!("no {name} for {dev}: {json}"))?;
            let rest = json[at + name.len() + 3..].trim_start_matches('"');
            Ok(rest
                .split(['"', ',', '}'])
                .next()
                .unwrap_or_default()
                .to_owned())
        };
        let ifindex = field("ifindex")?.parse()?;
        let mut mac = [0u8; 6];
        for (i, part) in field("address")?.split(':').enumerate().take(6) {
            mac[i] = u8::from_str_radix(part, 16)?;
        }
        Ok(Link { ifindex, mac })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_carry_the_pid_and_never_repeat() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        assert_eq!(owner_pid(&a), Some(std::process::id()));
        assert!(a.len() <= 15, "{a} must fit an interface name");
    }

    #[test]
    fn wait_until_returns_when_ready_and_fails_when_not() {
        let mut n = 0;
        let took = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            Ok(n == 3)
        })
        .unwrap();
        assert_eq!(n, 3);
        assert!(took < Duration::from_secs(5));
        let err = wait_until(Duration::from_millis(30), Duration::from_millis(5), || {
            Ok(false)
        })
        .unwrap_err();
        assert!(err.to_string().contains("not ready"), "{err}");
        let err = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            bail!("broken")
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "broken");
    }

    #[test]
    fn foreign_names_are_not_ours() {
        assert_eq!(owner_pid("xdp-fwd"), None);
        assert_eq!(owner_pid("bgptfoo"), None);
    }
}
