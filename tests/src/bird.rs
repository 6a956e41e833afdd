//! A real BIRD 2 BGP speaker (Debian's `bird2` package) running inside a lab namespace.
//!
//! `bird` runs in the foreground as a child of the test process, as root (it needs no
//! privilege drop and runs fine so), with its own config file, control socket
//! (`-s <run>/bird.ctl`), pid file and log file in a private run directory. Dropping a
//! [`Bird`] kills it and removes the directory, also when the test panics.
//!
//! Things a BIRD 2.0.12 config usually needs: explicit `import`/`export` filters on eBGP
//! channels (without them BIRD exchanges nothing with an eBGP peer), `connect delay time
//! 1;` (the default delay before connecting is 5 s), `connect retry time 2;` and `error
//! wait time 1, 5;` (after a failed connection or a session error BIRD otherwise waits
//! 120 s or 60 s before trying again), and `protocol device {}` so BIRD knows the
//! interfaces. As a feeder, BIRD sometimes holds back its last routes until its event
//! loop wakes; any `birdc` command wakes it, and the wait helpers poll with `birdc`.
//!
//! Routes BIRD keeps for a neighbor in graceful restart look like any other route in
//! `show route`; [`Bird::neighbor_restarting`] tells whether it is helping one.

use std::{
    net::IpAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

use crate::{
    Netns,
    peer::{self, Daemon, Routes, RunDir},
    require_root, wait_until,
};

const BIRD: &str = "bird";
const BIRDC: &str = "birdc";
/// How long BIRD may take until its control socket answers.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One route of a BIRD table, as `show route` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdRoute {
    /// Canonical `addr/len`.
    pub prefix: String,
    /// `unicast`, `blackhole`, `unreachable`, ...
    pub dest: String,
    /// The protocol that supplied the route.
    pub protocol: String,
    /// Whether it is the selected (primary) route for its prefix.
    pub primary: bool,
    /// Whether it is marked stale by long-lived graceful restart (the `s` after the
    /// preference: BIRD 2.0 flags LLGR_STALE routes only; routes kept through a regular
    /// graceful restart look unchanged, see [`Bird::neighbor_restarting`]).
    pub stale: bool,
    /// Gateways (`via`), several for a multipath route; empty for direct or blackhole.
    pub next_hops: Vec<IpAddr>,
}

/// A BIRD instance in a namespace; see the module documentation.
pub struct Bird {
    netns: String,
    daemon: Option<Daemon>,
    // Last: removed after the daemon is gone.
    run: RunDir,
}

impl Bird {
    /// Starts BIRD in `ns` with `config` (BIRD 2 syntax; a `log` statement to the run
    /// directory is put first) and waits until it answers on its control socket. Fails
    /// with BIRD's parse error if the config is wrong.
    pub fn start(ns: &Netns, config: &str) -> Result<Self> {
        require_root()?;
        let run = RunDir::new("bird", None)?;
        let mut bird = Self {
            netns: ns.name().to_owned(),
            daemon: None,
            run,
        };
        bird.write_config(config)?;
        bird.start_again()?;
        Ok(bird)
    }

    /// The instance's run directory (config, control socket, pid file, log).
    pub fn run_dir(&self) -> &Path {
        self.run.path()
    }

    /// BIRD's pid, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// Resident memory of BIRD, in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        peer::rss_bytes(self.pid().ok_or_else(|| anyhow!("BIRD is not running"))?)
    }

    /// Runs one birdc command and returns its answer without the reply codes; fails
    /// with BIRD's message on an error reply (codes 8xxx runtime, 9xxx parse errors).
    pub fn birdc(&self, cmd: &str) -> Result<String> {
        let ctl = self.run.file("bird.ctl");
        let out = crate::output(BIRDC, &["-v", "-s", &ctl, cmd])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let reply = parse_reply(&text).with_context(|| format!("birdc `{cmd}`"))?;
        if !out.status.success() {
            bail!(
                "birdc `{cmd}` failed ({}): {}{}",
                out.status,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(reply)
    }

    /// The state of protocol `name`: the BGP state (`Established`, `Active`, ...) for a
    /// BGP protocol, else the protocol state (`up`, `down`, ...).
    pub fn protocol_state(&self, name: &str) -> Result<String> {
        let text = self.birdc(&format!("show protocols all {name}"))?;
        if let Some(state) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("BGP state:"))
        {
            return Ok(state.trim().to_owned());
        }
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(3))
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no protocol {name} in BIRD: {}", text.trim()))
    }

    /// Waits until BGP protocol `name` is Established; returns how long that took. The
    /// error on timeout names the state it was stuck in and BIRD's last error.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<Duration> {
        let mut last = String::new();
        wait_until(timeout, Duration::from_millis(50), || {
            last = self.protocol_state(name)?;
            Ok(last == "Established")
        })
        .with_context(|| {
            let why = self
                .birdc(&format!("show protocols all {name}"))
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        l.trim()
                            .strip_prefix("Last error:")
                            .map(str::trim)
                            .map(str::to_owned)
                    })
                })
                .unwrap_or_default();
            format!("BIRD protocol {name} is {last}, not Established (last error: {why})")
        })
    }

    /// Whether BGP protocol `name` is helping its neighbor through a graceful restart
    /// (it keeps the neighbor's routes until their End-of-RIB or the restart timer).
    pub fn neighbor_restarting(&self, name: &str) -> Result<bool> {
        Ok(self
            .birdc(&format!("show protocols all {name}"))?
            .contains("Neighbor graceful restart active"))
    }

    /// Every route of `table` (e.g. `master4`, `master6`), primary and alternatives.
    pub fn route_entries(&self, table: &str) -> Result<Vec<BirdRoute>> {
        parse_routes(&self.birdc(&format!("show route table {table}"))?)
    }

    /// The selected routes of `table`: prefix -> next hops of the primary route.
    pub fn routes(&self, table: &str) -> Result<Routes> {
        Ok(self
            .route_entries(table)?
            .into_iter()
            .filter(|r| r.primary)
            .map(|r| (r.prefix, r.next_hops))
            .collect())
    }

    /// How many routes `table` holds (all of them, not only the primary ones).
    pub fn route_count(&self, table: &str) -> Result<u64> {
        parse_count(&self.birdc(&format!("show route table {table} count"))?)
    }

    /// How many routes of `table` came from protocol `protocol`.
    pub fn route_count_from(&self, table: &str, protocol: &str) -> Result<u64> {
        parse_count(&self.birdc(&format!(
            "show route table {table} protocol {protocol} count"
        ))?)
    }

    /// Replaces the config (same rules as [`Bird::start`]) and reconfigures the running
    /// BIRD with it (`birdc configure`).
    pub fn configure(&self, config: &str) -> Result<()> {
        self.write_config(config)?;
        self.birdc("configure").map(drop)
    }

    /// Kills BIRD with SIGKILL (peers see the TCP session close without a NOTIFICATION).
    /// The run directory stays, so [`Bird::start_again`] and [`Bird::log`] still work.
    pub fn kill(&mut self) -> Result<()> {
        match self.daemon.take() {
            Some(mut d) => d.kill(),
            None => bail!("BIRD is not running"),
        }
    }

    /// Stops BIRD cleanly with SIGTERM (it sends its BGP peers a Cease NOTIFICATION),
    /// waiting up to 10 s before it is killed.
    pub fn stop(&mut self) -> Result<()> {
        match self.daemon.take() {
            Some(mut d) => d.terminate(Duration::from_secs(10)),
            None => bail!("BIRD is not running"),
        }
    }

    /// Starts BIRD (again) with the current config and waits until it answers.
    pub fn start_again(&mut self) -> Result<()> {
        if self.daemon.is_some() {
            bail!("BIRD is already running");
        }
        let (conf, ctl, pid, out) = (
            self.run.file("bird.conf"),
            self.run.file("bird.ctl"),
            self.run.file("bird.pid"),
            self.run.file("bird.out"),
        );
        let args = ["-f", "-c", &conf, "-s", &ctl, "-P", &pid];
        self.daemon = Some(Daemon::spawn(&self.netns, BIRD, &args, &out)?);
        let started = Instant::now();
        wait_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Some(d) = self.daemon.as_mut() {
                d.check_running(&out)?;
            }
            Ok(self
                .birdc("show status")
                .is_ok_and(|s| s.contains("up and running")))
        })
        .with_context(|| {
            format!(
                "BIRD in {} did not answer within {:.1} s",
                self.netns,
                started.elapsed().as_secs_f64()
            )
        })
        .map(drop)
    }

    /// [`Bird::kill`] then [`Bird::start_again`].
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.start_again()
    }

    /// BIRD's log so far.
    pub fn log(&self) -> Result<String> {
        self.run.read("bird.log")
    }

    /// Writes bird.conf (log statement first), checked with `bird -p` before it is used.
    fn write_config(&self, config: &str) -> Result<()> {
        let full = format!("log \"{}\" all;\n{config}", self.run.file("bird.log"));
        let file = self.run.write("bird.conf.new", &full, None)?;
        let check = crate::output(BIRD, &["-p", "-c", &file])?;
        if !check.status.success() {
            bail!(
                "BIRD rejects the config: {}{}\n--- config ---\n{full}",
                String::from_utf8_lossy(&check.stdout).trim(),
                String::from_utf8_lossy(&check.stderr).trim()
            );
        }
        let dest = self.run.file("bird.conf");
        std::fs::rename(&file, &dest).with_context(|| format!("renaming {file} to {dest}"))
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take()
            && let Err(e) = d.kill()
        {
            eprintln!("lab: stopping BIRD in {}: {e:#}", self.netns);
        }
    }
}

/// The text of a `birdc -v` reply: each line starts with a 4-digit code and `-` or ` `,
/// or 5 spaces when it continues the previous code. Fails on error codes (8xxx, 9xxx).
fn parse_reply(raw: &str) -> Result<String> {
    let mut out = String::new();
    let mut errors = Vec::new();
    for line in raw.lines() {
        let (code, text) = match line.get(..5) {
            Some(head) if head.as_bytes()[..4].iter().all(u8::is_ascii_digit) => {
                (head[..4].parse::<u16>().ok(), &line[5..])
            }
            Some("     ") => (None, &line[5..]),
            _ => (None, line),
        };
        match code {
            // The greeting: "0001 BIRD 2.0.12 ready."
            Some(1) => continue,
            Some(c) if c >= 8000 => errors.push(format!("{c} {text}")),
            _ => {}
        }
        out.push_str(text);
        out.push('\n');
    }
    if !errors.is_empty() {
        bail!("BIRD error: {}", errors.join("; "));
    }
    Ok(out)
}

/// Routes from `show route` (without `all`).
fn parse_routes(text: &str) -> Result<Vec<BirdRoute>> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut prefix = String::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("Table ") {
            continue;
        }
        if let Some(hop) = line.strip_prefix('\t') {
            let route = routes
                .last_mut()
                .ok_or_else(|| anyhow!("next hop before any route: {line:?}"))?;
            if let Some(rest) = hop.strip_prefix("via ") {
                let ip = rest.split_whitespace().next().unwrap_or_default();
                route.next_hops.push(
                    ip.parse()
                        .with_context(|| format!("bad gateway in {line:?}"))?,
                );
            }
            continue;
        }
        // `<prefix> <dest> [<proto> <time>...] * (<pref>[s]...) ...`; alternative routes
        // of the same prefix leave the prefix column blank.
        let (head, rest) = line
            .split_once('[')
            .ok_or_else(|| anyhow!("unexpected line in BIRD's routes: {line:?}"))?;
        let mut head = head.split_whitespace();
        let dest = match (head.next(), head.next()) {
            (Some(p), Some(d)) => {
                prefix = peer::canonical_prefix(p)?;
                d
            }
            (Some(d), None) if !prefix.is_empty() => d,
            _ => bail!("unexpected line in BIRD's routes: {line:?}"),
        };
        let (source, info) = rest
            .split_once(']')
            .ok_or_else(|| anyhow!("no ']' in {line:?}"))?;
        let info = info.trim_start();
        let primary = info.starts_with('*') || info.starts_with('!');
        let pref = info
            .split_once('(')
            .and_then(|(_, p)| p.split_once(')'))
            .map_or("", |(p, _)| p);
        let stale = pref
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .contains('s');
        routes.push(BirdRoute {
            prefix: prefix.clone(),
            dest: dest.to_owned(),
            protocol: source
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
            primary,
            stale,
            next_hops: Vec::new(),
        });
    }
    Ok(routes)
}

/// The first number of `N of M routes for K networks in table T`: the routes shown.
fn parse_count(text: &str) -> Result<u64> {
    let line = text
        .lines()
        .find(|l| l.contains(" routes for "))
        .ok_or_else(|| anyhow!("no route count in {:?}", text.trim()))?;
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("bad route count line {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW_ROUTE: &str = "\
0001 BIRD 2.0.12 ready.
1007-Table master6:
     2001:db8:100::/48    blackhole [s6 11:23:00.551] * (200)
1007-2001:db8:1::/48      unicast [frr4 11:24:00.006 from 10.0.0.1] * (100s) [AS4200000001i]
     \tvia fd00::1 on b0
1007-                     unicast [frr6 11:24:00.006] (100) [AS4200000001i]
     \tvia fd00::1 on b0
1007-2001:db8:2::/48      unicast [ecmp 2026-11-21] * (100/?) [i]
     \tvia fd00::3 on b0 weight 1
     \tvia fd00::4 on b1 weight 1
";

    #[test]
    fn show_route_is_parsed_with_alternatives_stale_flags_and_multipath() {
        let text = parse_reply(SHOW_ROUTE).unwrap();
        assert!(text.starts_with("Table master6:\n"), "{text}");
        let r = parse_routes(&text).unwrap();
        assert_eq!(r.len(), 4, "{r:?}");
        assert_eq!(r[0].prefix, "2001:db8:100::/48");
        assert_eq!(r[0].dest, "blackhole");
        assert!(r[0].primary && !r[0].stale && r[0].next_hops.is_empty());
        assert_eq!(r[1].protocol, "frr4");
        assert!(r[1].primary && r[1].stale);
        assert_eq!(r[1].next_hops, vec!["fd00::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(r[2].prefix, "2001:db8:1::/48");
        assert_eq!(r[2].protocol, "frr6");
        assert!(!r[2].primary && !r[2].stale);
        assert_eq!(r[3].next_hops.len(), 2);
        assert!(!r[3].stale);
    }

    #[test]
    fn error_replies_fail_with_bird_message() {
        let err =
            parse_reply("0001 BIRD 2.0.12 ready.\n9001 syntax error, unexpected X\n").unwrap_err();
        assert!(err.to_string().contains("9001 syntax error"), "{err}");
        assert!(parse_reply("0001 BIRD ready.\n8003 No protocols match\n").is_err());
    }

    #[test]
    fn counts_and_garbage() {
        assert_eq!(
            parse_count("3 of 5 routes for 3 networks in table master4\n").unwrap(),
            3
        );
        assert!(parse_count("nothing").is_err());
        assert!(parse_routes("garbage line\n").is_err());
        assert!(parse_routes("\tvia 10.0.0.1 on x\n").is_err());
    }
}
