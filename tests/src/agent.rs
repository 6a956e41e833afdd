//! Our own daemon, `bgp-ctl daemon`, run inside a lab namespace with its config, pins and
//! control socket in per-test places; killed and cleaned up on drop.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Netns, PinDir, wait_until};

/// A running `bgp-ctl daemon`.
pub struct Agent {
    child: Option<Child>,
    bin: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    ns: String,
    /// Runs the daemon: `nsenter ... WRAPPER... bgp-ctl daemon --config FILE`.
    wrapper: Vec<String>,
    /// Its pin directory (removed on drop).
    pub pins: PinDir,
}

/// The `bgp-ctl` binary next to the running test (cargo builds it for integration tests
/// of this workspace: `cargo xtask test` builds the binaries first).
pub fn bgp_ctl_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("bgp-ctl"))
        .context("no target directory above the test binary")?;
    if !bin.exists() {
        bail!(
            "{} is missing: build it first (`cargo xtask test` does)",
            bin.display()
        );
    }
    Ok(bin)
}

impl Agent {
    /// Starts the daemon in `ns` with `config`, in which `@PINS@` and `@SOCKET@` are
    /// replaced by this agent's pin directory and control socket. Waits until the
    /// control socket answers.
    pub fn start(ns: &Netns, config: &str) -> Result<Agent> {
        Self::start_wrapped(ns, config, &[])
    }

    /// [`Agent::start`], with the daemon run under `wrapper` (e.g. `setpriv ... --`
    /// or `strace ...`): `nsenter ... WRAPPER... bgp-ctl daemon --config FILE`.
    pub fn start_wrapped(ns: &Netns, config: &str, wrapper: &[&str]) -> Result<Agent> {
        Self::launch(&bgp_ctl_bin()?, ns, config, wrapper)
    }

    /// [`Agent::start`] with the `bgp-ctl` binary at `bin` (for callers that are not
    /// test binaries of this workspace, such as `cargo xtask run`).
    pub fn start_bin(bin: &Path, ns: &Netns, config: &str) -> Result<Agent> {
        Self::launch(bin, ns, config, &[])
    }

    fn launch(bin: &Path, ns: &Netns, config: &str, wrapper: &[&str]) -> Result<Agent> {
        let pins = PinDir::new()?;
        let dir = std::env::temp_dir().join(format!("{}.agent", crate::unique_name()));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("ctl.sock");
        let text = config
            .replace("@PINS@", &pins.path().display().to_string())
            .replace("@SOCKET@", &socket.display().to_string());
        std::fs::write(dir.join("bgp-ctl.toml"), text)?;
        let mut agent = Agent {
            child: None,
            bin: bin.to_path_buf(),
            dir,
            socket,
            ns: ns.name().to_string(),
            wrapper: wrapper.iter().map(|w| (*w).to_owned()).collect(),
            pins,
        };
        agent.spawn()?;
        Ok(agent)
    }

    /// Starts the daemon again with the same config and pins, after [`Agent::kill`]
    /// (a restart: it adopts the pinned dataplane). Waits until the control socket
    /// answers.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the daemon is still running");
        }
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))?;
        // A socket left by a killed run answers nothing: wait for the new one.
        let _ = std::fs::remove_file(&self.socket);
        // nsenter keeps the root bpffs mount (ip netns exec would remount /sys). Its own
        // process group: a Ctrl-C meant for the lab process does not reach it.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.ns))
            .args(&self.wrapper)
            .arg(&self.bin)
            .args(["daemon", "--config"])
            .arg(self.config_path())
            .env("RUST_LOG", "info,bgp_ctl=debug")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .process_group(0);
        crate::unblock_signals(&mut cmd);
        let child = cmd.spawn().context("starting bgp-ctl daemon")?;
        self.child = Some(child);
        let ready = wait_until(Duration::from_secs(30), Duration::from_millis(20), || {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!("the daemon exited ({status}):\n{}", self.log());
            }
            Ok(self.socket.exists() && self.request(&["show", "neighbors"]).is_ok())
        });
        if let Err(e) = ready {
            bail!("{e:#}\ndaemon log:\n{}", self.log());
        }
        Ok(())
    }

    /// Its config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("bgp-ctl.toml")
    }

    /// Replaces the daemon's config file (with `@PINS@` and `@SOCKET@` replaced as in
    /// [`Agent::start`]); the daemon reads it at its next reload.
    pub fn write_config(&self, config: &str) -> Result<()> {
        let text = config
            .replace("@PINS@", &self.pins.path().display().to_string())
            .replace("@SOCKET@", &self.socket.display().to_string());
        std::fs::write(self.dir.join("bgp-ctl.toml"), text)?;
        Ok(())
    }

    /// Sends SIGHUP (reload the config file).
    pub fn sighup(&self) -> Result<()> {
        let pid = self.pid().context("the daemon is not running")?;
        let pid = i32::try_from(pid)?;
        // SAFETY: kill has no memory preconditions; the pid is our child.
        if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
            bail!("kill -HUP {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The `bgp-ctl` binary the daemon runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `bgp-ctl ARGS --socket S --json` and returns the JSON lines.
    pub fn request(&self, args: &[&str]) -> Result<Vec<Value>> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--json")
            .output()?;
        if !out.status.success() {
            bail!(
                "bgp-ctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
            .collect()
    }

    /// Runs `bgp-ctl ARGS --socket S` and returns its table output.
    pub fn table(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()?;
        if !out.status.success() {
            bail!(
                "bgp-ctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The state of neighbor `name` (`Established`, ...).
    pub fn neighbor_state(&self, name: &str) -> Result<String> {
        for n in self.request(&["show", "neighbors"])? {
            if n["name"] == name {
                return Ok(n["state"].as_str().unwrap_or_default().to_string());
            }
        }
        bail!("no neighbor {name}")
    }

    /// Neighbor `name`'s summary line as JSON.
    pub fn neighbor(&self, name: &str) -> Result<Value> {
        self.request(&["show", "neighbors"])?
            .into_iter()
            .find(|n| n["name"] == name)
            .with_context(|| format!("no neighbor {name}"))
    }

    /// Waits until neighbor `name` is Established.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<Duration> {
        wait_until(timeout, Duration::from_millis(100), || {
            Ok(self.neighbor_state(name)? == "Established")
        })
        .with_context(|| {
            format!(
                "neighbor {name} not Established; daemon log:\n{}",
                self.log()
            )
        })
    }

    /// Loc-RIB prefixes with their paths (JSON `route` replies).
    pub fn routes(&self) -> Result<Vec<Value>> {
        self.request(&["show", "routes"])
    }

    /// Kills the daemon with SIGKILL (the dataplane stays pinned).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// The namespace it runs in.
    pub fn netns(&self) -> &str {
        &self.ns
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
