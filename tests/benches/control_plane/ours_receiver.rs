//! This project's speaker as a receiver: `bgp-ctl daemon --config FILE` (the release
//! binary) in the namespace, asked with `bgp-ctl show neighbors --json --socket PATH`.
//!
//! What it expects of the daemon:
//! - `bgp-ctl daemon --config FILE` runs in the foreground until SIGTERM/SIGKILL, with
//!   the config below (it passes `bgp_ctl::config::parse_str`, which is checked first);
//! - the control socket at `[api] socket` answers `show neighbors --json` with one JSON
//!   line per neighbor, `Envelope { version: 1, Reply::Neighbor(NeighborSummary) }`,
//!   listed whatever the session's state;
//! - the feeder's line (`address` = the feeder) has `accepted` = the routes from it that
//!   are in the Loc-RIB now: it reaches N once all N are in the Loc-RIB, and after the
//!   session went down it falls back to 0 only as the routes are removed from it.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use lab::{
    Netns, PinDir,
    peer::{Daemon, RunDir},
    wait_until,
};

use crate::{
    answers::accepted_of,
    receiver::{PeerSetup, Receiver},
};

/// How long the daemon may take until its control socket answers.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The release binary (`cargo xtask bench control-plane` builds it first).
pub fn binary() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    target.join("release/bgp-ctl")
}

/// Fails, saying why, unless the binary exists and has a `daemon` command: checked
/// before any measurement so that a missing speaker costs seconds, not the whole run.
pub fn preflight() -> Result<()> {
    let bin = binary();
    if !bin.exists() {
        bail!(
            "ours: {} does not exist: build it with `cargo build --release -p bgp-ctl` \
             (`cargo xtask bench control-plane` does), or leave ours out with --only bird,frr",
            bin.display()
        );
    }
    let bin_s = bin.to_string_lossy();
    let out = lab::output(&bin_s, &["daemon", "--help"])?;
    if !out.status.success() {
        bail!(
            "ours: `{bin_s} daemon` is not there yet (the speaker is not finished): {}\n\
             Measure only the others with --only bird,frr; no figure is made up for ours.",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// A `bgp-ctl daemon` receiving the feed.
pub struct OursReceiver {
    daemon: Daemon,
    socket: String,
    feeder: std::net::IpAddr,
    // Last: removed after the daemon is gone.
    _pins: PinDir,
    run: RunDir,
}

impl OursReceiver {
    /// Writes the config, checks it with the project's own parser, starts the daemon in
    /// `ns` and waits until its control socket answers.
    pub fn start(ns: &Netns, setup: &PeerSetup) -> Result<Self> {
        preflight()?;
        let run = RunDir::new("ours", None)?;
        let pins = PinDir::new()?;
        let socket = run.file("bgp-ctl.sock");
        let text = config(setup, pins.path(), &socket);
        bgp_ctl::config::parse_str(&text, "control-plane bench config")
            .map_err(|e| anyhow!("{e}"))
            .context("ours: the bench's config does not pass bgp-ctl's own checks")?;
        let file = run.write("bgp-ctl.toml", &text, None)?;
        let out = run.file("daemon.out");
        let bin = binary();
        let daemon = Daemon::spawn(
            ns.name(),
            &bin.to_string_lossy(),
            &["daemon", "--config", &file],
            &out,
        )?;
        let mut rx = Self {
            daemon,
            socket,
            feeder: setup.feeder.into(),
            _pins: pins,
            run,
        };
        let started = Instant::now();
        let mut last = None;
        wait_until(START_TIMEOUT, Duration::from_millis(50), || {
            rx.daemon.check_running(&out)?;
            match rx.accepted() {
                Ok(_) => Ok(true),
                Err(e) => {
                    last = Some(e);
                    Ok(false)
                }
            }
        })
        .map_err(|e| {
            let why = last.map(|l| format!("{l:#}")).unwrap_or_default();
            e.context(format!(
                "ours: the daemon did not answer `show neighbors --json` within {:.1} s \
                 ({why}); its output: {}",
                started.elapsed().as_secs_f64(),
                rx.run.read("daemon.out").unwrap_or_default().trim()
            ))
        })?;
        Ok(rx)
    }

    /// The feeder's `accepted`, from one `show neighbors --json`.
    fn accepted(&self) -> Result<u64> {
        let bin = binary();
        let bin = bin.to_string_lossy();
        let text = lab::run(
            &bin,
            &["show", "neighbors", "--json", "--socket", &self.socket],
        )?;
        accepted_of(&text, self.feeder)
    }
}

/// The config: the feeder as a passive eBGP peer with the built-in `accept-all` import
/// and `reject-all` export policies (nothing is sent back), IPv4 only, no graceful
/// restart (the feeder's routes go as soon as it dies). The dataplane section is
/// required by the schema: the program goes on the receiver's link in skb mode, with its
/// pins in a directory of its own.
fn config(s: &PeerSetup, pins: &Path, socket: &str) -> String {
    format!(
        r#"router-id = "{local}"
asn = {asn}

[listen]
addresses = ["{local}"]

[dataplane]
uplinks = ["{iface}"]
mode = "skb"
pin-dir = "{pins}"

[graceful-restart]
enabled = false

[api]
socket = "{socket}"

[[peer]]
name = "feeder"
address = "{feeder}"
remote-asn = {feeder_asn}
passive = true
families = ["ipv4-unicast"]
import = "accept-all"
export = "reject-all"
"#,
        local = s.local,
        asn = s.asn,
        iface = s.iface,
        pins = pins.display(),
        feeder = s.feeder,
        feeder_asn = s.feeder_asn,
    )
}

impl Receiver for OursReceiver {
    fn routes(&mut self) -> Result<u64> {
        self.accepted()
    }

    fn pids(&self) -> Result<Vec<u32>> {
        Ok(vec![self.daemon.pid()])
    }
}
