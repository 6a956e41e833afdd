//! A real FRR BGP speaker (Debian's `frr` package) running inside a lab namespace.
//!
//! `zebra` (unless [`FrrOptions::zebra`] is off) and `bgpd` run in the foreground as
//! children of the test process. They start as root and drop to the `frr` user
//! themselves (started as `-u root` they fail: "privs_init: user(root) is not part of
//! vty group"), so the run directory belongs to frr:frr. Every path is private to the
//! instance: config files, `zserv.api`, the vty sockets (`--vty_socket`), pid files and
//! logs; the TCP vty is off (`-P 0`). Dropping an [`Frr`] kills both daemons and removes
//! the run directory and the `/var/tmp/frr/<daemon>.<pid>/` crash-log buffers FRR leaves
//! behind when killed, also when the test panics.
//!
//! With zebra, bgpd behaves like a real router: it learns interfaces and addresses,
//! tracks next hops, and installs its best routes into the namespace's kernel FIB.
//! Without zebra (`bgpd -Z`), next hops count as reachable and nothing is installed: a
//! RIB-only speaker for benchmarks. It then knows no interface address, so it sends no
//! IPv6 routes over an IPv4 session (it has no IPv6 next hop to put in them); an IPv6
//! session works.
//!
//! With [`FrrOptions::bfdd`], `bfdd` runs too (started after zebra, before bgpd), with
//! its control socket in the run directory (`--bfdctl`) so instances do not collide. Its
//! config starts empty: configure it with [`Frr::configure_bfdd`] (`bfd` / `peer X ...`)
//! and read it with [`Frr::bfdd_json`] (`show bfd peers json`). bfdd needs zebra to know
//! the interfaces a `peer ... interface` line names.
//!
//! Configs are written for FRR 8.4 (Debian 12). Things a config usually needs:
//! `no bgp ebgp-requires-policy` (or route-maps: eBGP sends and accepts nothing without
//! policy, RFC 8212), `no bgp network import-check` for `network` statements whose
//! prefix is in no table, `neighbor X timers connect 1` (the default connect-retry is
//! 120 s), and `address-family ipv6 unicast` / `neighbor X activate` for IPv6.
//!
//! Quirks seen with FRR 8.4 here:
//! - In its first second, before zebra has told it the interface addresses, bgpd resets
//!   an incoming connection (`nexthop_set failed`, with a NOTIFICATION 5/0 on IPv4); the
//!   session comes up at the next attempt, ~1 s later with `timers connect 1`.
//! - Define route-maps and lists before `router bgp`: when a `neighbor ... route-map
//!   ... out` names one defined further down, a bgpd restarted with graceful restart
//!   advertises nothing to that neighbor (only End-of-RIB).

use std::{
    net::IpAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::{
    Netns,
    peer::{self, Daemon, Family, Routes, RunDir},
    require_root, wait_until,
};

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";
const BFDD: &str = "/usr/lib/frr/bfdd";
const VTYSH: &str = "vtysh";
/// FRR's daemons run as this user and need their files to belong to it.
const OWNER: &str = "frr:frr";
/// How long a daemon may take until its vty answers.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How to run FRR.
#[derive(Debug, Clone, Copy)]
pub struct FrrOptions {
    /// Run zebra next to bgpd (default): routes go into the namespace's kernel FIB.
    /// Without it bgpd runs with `-Z`.
    pub zebra: bool,
    /// Also run bfdd (default off).
    pub bfdd: bool,
}

impl Default for FrrOptions {
    fn default() -> Self {
        Self {
            zebra: true,
            bfdd: false,
        }
    }
}

/// A NOTIFICATION that bgpd logged as received from or sent to a neighbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// It came as a Cease/Hard Reset (RFC 8538, between speakers with the graceful
    /// restart N-bit); `code` and `subcode` are then those of the NOTIFICATION it carries.
    pub hard_reset: bool,
    /// Error code (RFC 4271 section 4.5).
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// FRR's names for them, e.g. `Cease/Administrative Reset`.
    pub description: String,
    /// The rest of the log line: `<n> bytes <hex data>`, or a quoted shutdown message.
    pub detail: String,
}

/// An FRR instance (zebra + bgpd) in a namespace; see the module documentation.
pub struct Frr {
    netns: String,
    options: FrrOptions,
    bgpd: Option<Daemon>,
    bfdd: Option<Daemon>,
    zebra: Option<Daemon>,
    // Last: removed after the daemons are gone.
    run: RunDir,
}

impl Frr {
    /// Starts zebra and bgpd in `ns` with `config` (bgpd's config, FRR syntax) and waits
    /// until their vtys answer. Fails, naming the lines, if FRR rejects the config.
    pub fn start(ns: &Netns, config: &str) -> Result<Self> {
        Self::start_with(ns, config, FrrOptions::default())
    }

    /// [`Frr::start`] with options.
    pub fn start_with(ns: &Netns, config: &str, options: FrrOptions) -> Result<Self> {
        require_root()?;
        let run = RunDir::new("frr", Some(OWNER))?;
        let zebra_conf = format!(
            "log file {} debugging\nlog timestamp precision 3\n",
            run.file("zebra.log")
        );
        run.write("zebra.conf", &zebra_conf, Some(OWNER))?;
        let mut frr = Self {
            netns: ns.name().to_owned(),
            options,
            bgpd: None,
            bfdd: None,
            zebra: None,
            run,
        };
        frr.set_config(config)?;
        if options.zebra {
            frr.start_zebra()?;
        }
        if options.bfdd {
            frr.start_bfdd()?;
        }
        frr.start_bgpd()?;
        Ok(frr)
    }

    /// Replaces bgpd's config file, for the next [`Frr::start_bgpd`] (the running bgpd
    /// is not told: see [`Frr::configure`] for that). Fails, naming the lines, if FRR
    /// rejects the config.
    pub fn set_config(&self, config: &str) -> Result<()> {
        let full = bgpd_config(self.run.path(), config);
        let file = self.run.write("bgpd.conf.new", &full, Some(OWNER))?;
        // vtysh's dry run fails with the offending lines; bgpd itself only logs them.
        let check = crate::output(VTYSH, &["--dryrun", "-f", &file])?;
        if !check.status.success() {
            bail!(
                "FRR rejects the config: {}{}\n--- config ---\n{full}",
                String::from_utf8_lossy(&check.stdout).trim(),
                String::from_utf8_lossy(&check.stderr).trim()
            );
        }
        let dest = self.run.file("bgpd.conf");
        std::fs::rename(&file, &dest).with_context(|| format!("renaming {file} to {dest}"))
    }

    /// The instance's run directory (configs, sockets, pid files, logs).
    pub fn run_dir(&self) -> &Path {
        self.run.path()
    }

    /// bgpd's pid, if it runs.
    pub fn bgpd_pid(&self) -> Option<u32> {
        self.bgpd.as_ref().map(Daemon::pid)
    }

    /// zebra's pid, if it runs.
    pub fn zebra_pid(&self) -> Option<u32> {
        self.zebra.as_ref().map(Daemon::pid)
    }

    /// Resident memory of bgpd, in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        peer::rss_bytes(
            self.bgpd_pid()
                .ok_or_else(|| anyhow!("bgpd is not running"))?,
        )
    }

    /// Resident memory of zebra, in bytes.
    pub fn zebra_rss_bytes(&self) -> Result<u64> {
        peer::rss_bytes(
            self.zebra_pid()
                .ok_or_else(|| anyhow!("zebra is not running"))?,
        )
    }

    /// Runs one vtysh command against bgpd; fails with FRR's message if it is rejected.
    pub fn vtysh(&self, cmd: &str) -> Result<String> {
        self.vtysh_to("bgpd", &[cmd])
    }

    /// Runs a vtysh `... json` command against bgpd and parses the answer.
    pub fn vtysh_json(&self, cmd: &str) -> Result<Value> {
        self.vtysh_json_to("bgpd", cmd)
    }

    /// Changes bgpd's running config: `lines` are entered after `configure terminal`,
    /// as in an interactive session (`router bgp <asn>` first to enter that node).
    pub fn configure(&self, lines: &[&str]) -> Result<()> {
        self.configure_daemon("bgpd", lines)
            .with_context(|| format!("configuring FRR with {lines:?}"))
    }

    /// The BGP FSM state of neighbor `addr` (as configured), e.g. `Established`.
    pub fn neighbor_state(&self, addr: &str) -> Result<String> {
        let json = self.vtysh_json(&format!("show bgp neighbors {addr} json"))?;
        neighbor_field(&json, addr, "bgpState")?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("bgpState of {addr} is not a string"))
    }

    /// Waits until neighbor `addr` is Established; returns how long that took. The error
    /// on timeout names the state it was stuck in and why FRR last reset it.
    pub fn wait_established(&self, addr: &str, timeout: Duration) -> Result<Duration> {
        let mut last = String::new();
        wait_until(timeout, Duration::from_millis(50), || {
            last = self.neighbor_state(addr)?;
            Ok(last == "Established")
        })
        .with_context(|| {
            let why = self
                .vtysh_json(&format!("show bgp neighbors {addr} json"))
                .ok()
                .and_then(|j| neighbor_field(&j, addr, "lastResetDueTo").ok().cloned())
                .unwrap_or(Value::Null);
            format!("FRR neighbor {addr} is {last}, not Established (last reset: {why})")
        })
    }

    /// Prefixes of `family` received from neighbor `addr` and accepted (`pfxRcd`).
    pub fn received_prefixes(&self, family: Family, addr: &str) -> Result<u64> {
        let json = self.vtysh_json(&format!("show bgp {} unicast summary json", afi(family)))?;
        let peer = json
            .get("peers")
            .and_then(|p| p.as_object())
            .and_then(|p| p.iter().find(|(k, _)| same_host(k, addr)).map(|(_, v)| v))
            .ok_or_else(|| {
                anyhow!(
                    "{addr} is no {} neighbor: {}",
                    afi(family),
                    excerpt(&json.to_string())
                )
            })?;
        peer.get("pfxRcd")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("no pfxRcd for {addr} (not Established?)"))
    }

    /// bgpd's selected routes of `family`: prefix -> next hops of the best path and its
    /// multipath siblings. An IPv6 next hop is the global address when the path has one,
    /// else the link-local one; locally originated routes have none.
    pub fn routes(&self, family: Family) -> Result<Routes> {
        let json = self.vtysh_json(&format!("show bgp {} unicast json", afi(family)))?;
        parse_routes(&json)
    }

    /// The NOTIFICATIONs bgpd logged as received from neighbor `addr`, oldest first.
    pub fn notifications_received(&self, addr: &str) -> Result<Vec<Notification>> {
        Ok(parse_notifications(&self.log()?, "received from", addr))
    }

    /// The NOTIFICATIONs bgpd logged as sent to neighbor `addr`, oldest first.
    pub fn notifications_sent(&self, addr: &str) -> Result<Vec<Notification>> {
        Ok(parse_notifications(&self.log()?, "sent to", addr))
    }

    /// bgpd's log (`debugging` level with `debug bgp neighbor-events`), so far.
    pub fn log(&self) -> Result<String> {
        self.run.read("bgpd.log")
    }

    /// Changes bfdd's running config, like [`Frr::configure`] does bgpd's.
    pub fn configure_bfdd(&self, lines: &[&str]) -> Result<()> {
        self.configure_daemon("bfdd", lines)
            .with_context(|| format!("configuring FRR bfdd with {lines:?}"))
    }

    /// Runs a vtysh `... json` command against bfdd and parses the answer.
    pub fn bfdd_json(&self, cmd: &str) -> Result<Value> {
        self.vtysh_json_to("bfdd", cmd)
    }

    /// bfdd's log (`debug bfd peer` and `debug bfd network`), so far.
    pub fn bfdd_log(&self) -> Result<String> {
        self.run.read("bfdd.log")
    }

    /// zebra's log, so far.
    pub fn zebra_log(&self) -> Result<String> {
        self.run.read("zebra.log")
    }

    /// Kills bgpd with SIGKILL (peers see the TCP session close without a NOTIFICATION,
    /// as after a crash: what graceful restart is for). zebra keeps running.
    pub fn kill_bgpd(&mut self) -> Result<()> {
        match self.bgpd.take() {
            Some(mut d) => d.kill(),
            None => bail!("bgpd is not running"),
        }
    }

    /// Stops bgpd cleanly with SIGTERM (it sends its peers a Cease NOTIFICATION), waiting
    /// up to 10 s before it is killed.
    pub fn stop_bgpd(&mut self) -> Result<()> {
        match self.bgpd.take() {
            Some(mut d) => d.terminate(Duration::from_secs(10)),
            None => bail!("bgpd is not running"),
        }
    }

    /// Starts bgpd again with the same config (after [`Frr::kill_bgpd`] or
    /// [`Frr::stop_bgpd`]) and waits until its vty answers.
    pub fn start_bgpd(&mut self) -> Result<()> {
        if self.bgpd.is_some() {
            bail!("bgpd is already running");
        }
        let zserv = self.run.file("zserv.api");
        let zebra = if self.options.zebra {
            vec!["-z", &zserv]
        } else {
            vec!["-Z"]
        };
        self.start_daemon("bgpd", &zebra)
    }

    /// [`Frr::kill_bgpd`] then [`Frr::start_bgpd`]: a bgpd crash and restart with the
    /// same config, for graceful-restart tests.
    pub fn restart_bgpd(&mut self) -> Result<()> {
        self.kill_bgpd()?;
        self.start_bgpd()
    }

    /// Kills bgpd and zebra with SIGKILL (the whole router dies). Their files stay until
    /// drop, so the logs remain readable.
    pub fn kill(&mut self) -> Result<()> {
        let bgpd = self.bgpd.take().map_or(Ok(()), |mut d| d.kill());
        let bfdd = self.bfdd.take().map_or(Ok(()), |mut d| d.kill());
        let zebra = self.zebra.take().map_or(Ok(()), |mut d| d.kill());
        bgpd.and(bfdd).and(zebra)
    }

    fn start_bfdd(&mut self) -> Result<()> {
        let conf = format!(
            "log file {} debugging\nlog timestamp precision 3\ndebug bfd peer\ndebug bfd network\n",
            self.run.file("bfdd.log")
        );
        self.run.write("bfdd.conf", &conf, Some(OWNER))?;
        let (zserv, ctl) = (self.run.file("zserv.api"), self.run.file("bfdd.sock"));
        self.start_daemon("bfdd", &["-z", &zserv, "--bfdctl", &ctl])
    }

    fn start_zebra(&mut self) -> Result<()> {
        let zserv = self.run.file("zserv.api");
        self.start_daemon("zebra", &["-z", &zserv])
    }

    /// Where `daemon` (`bgpd`, `bfdd` or `zebra`) is kept while it runs.
    fn slot(&mut self, daemon: &str) -> &mut Option<Daemon> {
        match daemon {
            "bgpd" => &mut self.bgpd,
            "bfdd" => &mut self.bfdd,
            _ => &mut self.zebra,
        }
    }

    /// Starts `daemon` with its config, pid file, vty socket and output in the run
    /// directory, no vty port, and `extra` arguments; waits until its vty answers.
    fn start_daemon(&mut self, daemon: &str, extra: &[&str]) -> Result<()> {
        let program = match daemon {
            "bgpd" => BGPD,
            "bfdd" => BFDD,
            _ => ZEBRA,
        };
        let (conf, pid, run) = (
            self.run.file(&format!("{daemon}.conf")),
            self.run.file(&format!("{daemon}.pid")),
            self.run.file(""),
        );
        let mut args = vec!["-f", &conf, "-i", &pid, "--vty_socket", &run, "-P", "0"];
        args.extend_from_slice(extra);
        let output = self.run.file(&format!("{daemon}.out"));
        *self.slot(daemon) = Some(Daemon::spawn(&self.netns, program, &args, &output)?);
        self.wait_vty(daemon)
    }

    /// Waits until `daemon`'s vty answers, failing early with its output if it exits.
    fn wait_vty(&mut self, daemon: &str) -> Result<()> {
        let output = self.run.file(&format!("{daemon}.out"));
        let started = Instant::now();
        wait_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Some(d) = self.slot(daemon).as_mut() {
                d.check_running(&output)?;
            }
            // vtysh takes ~0.1 s to start: only ask once the socket is there.
            Ok(Path::new(&self.run.file(&format!("{daemon}.vty"))).exists()
                && self.vtysh_to(daemon, &["show version"]).is_ok())
        })
        .with_context(|| {
            format!(
                "FRR {daemon} in {} did not answer on its vty within {:.1} s",
                self.netns,
                started.elapsed().as_secs_f64()
            )
        })
        .map(drop)
    }

    /// Enters `lines` after `configure terminal` in `daemon`'s vty.
    fn configure_daemon(&self, daemon: &str, lines: &[&str]) -> Result<()> {
        let mut cmds = vec!["configure terminal"];
        cmds.extend_from_slice(lines);
        self.vtysh_to(daemon, &cmds).map(drop)
    }

    /// Runs a vtysh `... json` command against `daemon` and parses the answer.
    fn vtysh_json_to(&self, daemon: &str, cmd: &str) -> Result<Value> {
        let text = self.vtysh_to(daemon, &[cmd])?;
        serde_json::from_str(&text)
            .with_context(|| format!("`{cmd}` did not answer JSON: {}", excerpt(&text)))
    }

    fn vtysh_to(&self, daemon: &str, cmds: &[&str]) -> Result<String> {
        let run = self.run.file("");
        let mut args = vec!["--vty_socket", &run, "-d", daemon];
        for c in cmds {
            args.extend_from_slice(&["-c", c]);
        }
        let out = crate::output(VTYSH, &args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "vtysh -d {daemon} {cmds:?} failed ({}): {}{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("lab: stopping FRR in {}: {e:#}", self.netns);
        }
    }
}

/// bgpd's config: logging to the run directory, with neighbor events (and so the
/// NOTIFICATIONs) logged, then the caller's config. `frr defaults` must stay first.
fn bgpd_config(run: &Path, config: &str) -> String {
    let log = format!(
        "log file {} debugging\nlog timestamp precision 3\ndebug bgp neighbor-events\n",
        run.join("bgpd.log").display()
    );
    let (defaults, rest): (Vec<&str>, Vec<&str>) = config
        .lines()
        .partition(|l| l.trim_start().starts_with("frr defaults"));
    let mut out = String::new();
    for l in defaults {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&log);
    for l in rest {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn afi(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

/// Whether FRR's name for a peer is `addr` (addresses compare as addresses).
fn same_host(host: &str, addr: &str) -> bool {
    match (host.parse::<IpAddr>(), addr.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => host == addr,
    }
}

/// `field` of the one neighbor in a `show bgp neighbors <addr> json` answer.
fn neighbor_field<'a>(json: &'a Value, addr: &str, field: &str) -> Result<&'a Value> {
    if json.get("bgpNoSuchNeighbor").is_some() {
        bail!("FRR has no neighbor {addr}");
    }
    json.as_object()
        .and_then(|o| o.iter().find(|(k, _)| same_host(k, addr)).map(|(_, v)| v))
        .and_then(|n| n.get(field))
        .ok_or_else(|| anyhow!("no {field} for {addr} in {}", excerpt(&json.to_string())))
}

/// Selected routes from `show bgp <afi> unicast json`.
fn parse_routes(json: &Value) -> Result<Routes> {
    let mut out = Routes::new();
    let Some(routes) = json.get("routes").and_then(Value::as_object) else {
        // An empty table answers `{}` in FRR 8.4.
        return Ok(out);
    };
    for (prefix, paths) in routes {
        let paths = paths
            .as_array()
            .ok_or_else(|| anyhow!("paths of {prefix} are not a list"))?;
        let selected: Vec<&Value> = paths
            .iter()
            .filter(|p| flag(p, "bestpath") || flag(p, "multipath"))
            .collect();
        if selected.is_empty() {
            continue;
        }
        let mut hops = Vec::new();
        for path in selected {
            if let Some(hop) = path_next_hop(path)?
                && !hops.contains(&hop)
            {
                hops.push(hop);
            }
        }
        out.insert(peer::canonical_prefix(prefix)?, hops);
    }
    Ok(out)
}

fn flag(v: &Value, name: &str) -> bool {
    v.get(name).and_then(Value::as_bool) == Some(true)
}

/// The path's next hop: the global address if there is one, else the link-local one;
/// none for the unspecified address (a locally originated route).
fn path_next_hop(path: &Value) -> Result<Option<IpAddr>> {
    let hops = path
        .get("nexthops")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pick = hops
        .iter()
        .find(|h| h.get("scope").and_then(Value::as_str) != Some("link-local"))
        .or_else(|| hops.first());
    let Some(ip) = pick.and_then(|h| h.get("ip")).and_then(Value::as_str) else {
        return Ok(None);
    };
    let ip: IpAddr = ip
        .parse()
        .with_context(|| format!("bad next hop {ip:?} in FRR's JSON"))?;
    Ok((!ip.is_unspecified()).then_some(ip))
}

/// NOTIFICATIONs in bgpd's log. FRR 8.4 logs them (bgp_notify_print) as
/// `%NOTIFICATION: received from neighbor <host> <code>/<subcode> (<names>) <detail>`,
/// `sent to` for the other direction; a Hard Reset (RFC 8538) as
/// `%NOTIFICATION(Hard Reset): ...` with the code and subcode it carries.
fn parse_notifications(log: &str, direction: &str, addr: &str) -> Vec<Notification> {
    const MARKER: &str = "%NOTIFICATION";
    const HARD_RESET: &str = "(Hard Reset)";
    let dir = format!(": {direction} neighbor ");
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(MARKER)? + MARKER.len()..];
            let (hard_reset, rest) = match rest.strip_prefix(HARD_RESET) {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let rest = rest.strip_prefix(dir.as_str())?;
            let (host, rest) = rest.split_once(' ')?;
            if !same_host(host, addr) {
                return None;
            }
            let (codes, rest) = rest.split_once(' ')?;
            let (code, subcode) = codes.split_once('/')?;
            let rest = rest.strip_prefix('(')?;
            let (description, detail) = rest.split_once(')')?;
            Some(Notification {
                hard_reset,
                code: code.parse().ok()?,
                subcode: subcode.parse().ok()?,
                description: description.to_owned(),
                detail: detail.trim().to_owned(),
            })
        })
        .collect()
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frr_defaults_stays_first_and_logging_comes_next() {
        let c = bgpd_config(
            Path::new("/tmp/r"),
            "router bgp 1\n neighbor 1.1.1.1 remote-as 2\nfrr defaults datacenter\n",
        );
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[0], "frr defaults datacenter");
        assert_eq!(lines[1], "log file /tmp/r/bgpd.log debugging");
        assert!(lines.contains(&"debug bgp neighbor-events"));
        assert_eq!(lines[lines.len() - 2], "router bgp 1");
    }

    #[test]
    fn notifications_are_parsed_from_frr_log_lines() {
        let log = "\
2026/11/21 11:23:20.123 BGP: [HZN6M-XRM1G] %NOTIFICATION: received from neighbor 10.0.0.2 6/2 (Cease/Administrative Shutdown) \"bye\"
2026/11/21 11:23:21.000 BGP: [HZN6M-XRM1G] %NOTIFICATION: sent to neighbor 10.0.0.2 2/2 (OPEN Message Error/Bad Peer AS) 2 bytes fd e9
2026/11/21 11:23:22.000 BGP: [HZN6M-XRM1G] %NOTIFICATION: received from neighbor fd00::2 4/0 (Hold Timer Expired) 0 bytes 
2026/11/21 11:23:23.000 BGP: [HZN6M-XRM1G] %NOTIFICATION: received from neighbor 10.0.0.22 6/4 (Cease/Administrative Reset) 0 bytes 
2026/11/21 11:23:24.000 BGP: [HZN6M-XRM1G] %NOTIFICATION(Hard Reset): received from neighbor 10.0.0.2 6/1 (Cease/Maximum Number of Prefixes Reached) 7 bytes 00 01 01 00 00 00 03";
        let got = parse_notifications(log, "received from", "10.0.0.2");
        assert_eq!(
            got,
            vec![
                Notification {
                    hard_reset: false,
                    code: 6,
                    subcode: 2,
                    description: "Cease/Administrative Shutdown".into(),
                    detail: "\"bye\"".into(),
                },
                Notification {
                    hard_reset: true,
                    code: 6,
                    subcode: 1,
                    description: "Cease/Maximum Number of Prefixes Reached".into(),
                    detail: "7 bytes 00 01 01 00 00 00 03".into(),
                }
            ]
        );
        let sent = parse_notifications(log, "sent to", "10.0.0.2");
        assert_eq!((sent[0].code, sent[0].subcode), (2, 2));
        assert_eq!(sent[0].detail, "2 bytes fd e9");
        let v6 = parse_notifications(log, "received from", "fd00:0::2");
        assert_eq!((v6[0].code, v6[0].subcode), (4, 0));
        assert!(
            parse_notifications(
                "garbage %NOTIFICATION: received from neighbor",
                "received from",
                "10.0.0.2"
            )
            .is_empty()
        );
    }

    #[test]
    fn routes_take_best_and_multipath_with_global_next_hops() {
        let json: Value = serde_json::from_str(
            r#"{"routes": {
              "2001:db8:100::/48": [
                {"valid":true,"nexthops":[{"ip":"fd00::3","afi":"ipv6","scope":"global"}]},
                {"valid":true,"bestpath":true,"nexthops":[{"ip":"fd00::2","afi":"ipv6","scope":"global"},{"ip":"fe80::1","afi":"ipv6","scope":"link-local","used":true}]},
                {"valid":true,"multipath":true,"nexthops":[{"ip":"fe80::4","afi":"ipv6","scope":"link-local"}]}],
              "2001:db8:1::/48": [{"valid":true,"bestpath":true,"nexthops":[{"ip":"::","afi":"ipv6","scope":"global"}]}],
              "2001:db8:2::/48": [{"valid":true,"nexthops":[{"ip":"fd00::9","afi":"ipv6"}]}]
            }}"#,
        )
        .unwrap();
        let r = parse_routes(&json).unwrap();
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(
            r["2001:db8:100::/48"],
            vec![
                "fd00::2".parse::<IpAddr>().unwrap(),
                "fe80::4".parse().unwrap()
            ]
        );
        assert!(r["2001:db8:1::/48"].is_empty());
        assert!(parse_routes(&serde_json::json!({})).unwrap().is_empty());
        assert!(parse_routes(&serde_json::json!({"routes": {"x": [{"bestpath": true}]}})).is_err());
    }
}
