//! The lab's real BGP peers: FRR (AS 4200000001) and BIRD 2 (AS 65001) in two
//! namespaces joined by a veth, over eBGP with 4-octet ASNs. An IPv4 session carries
//! IPv4 and IPv6 (MP-BGP), an IPv6 session carries IPv6. Each side sees the other's
//! routes with the right next hops, withdrawals propagate, a bgpd crash and restart with
//! graceful restart keeps BIRD's (stale) copy of FRR's routes until FRR's End-of-RIB,
//! TCP MD5 establishes only with matching passwords, and nothing is left behind.
//!
//! The time from start to Established is printed (`--nocapture`) for later tests'
//! timeouts; nothing asserts on it.

use std::{
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use lab::{
    Netns,
    bird::Bird,
    frr::{Frr, FrrOptions},
    peer::{FRR_TMP, Family, Routes},
    wait_until,
};

const FRR_AS: u32 = 4_200_000_001;
const BIRD_AS: u32 = 65001;
const FRR_V4: &str = "192.0.2.1";
const BIRD_V4: &str = "192.0.2.2";
const FRR_V6: &str = "fd00::1";
const BIRD_V6: &str = "fd00::2";
/// Generous: sessions come up in about a second here, but the machine is shared.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
const ROUTES_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

const FRR_NETS4: [&str; 3] = ["100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24"];
const FRR_NETS6: [&str; 2] = ["2001:db8:f1::/48", "2001:db8:f2::/48"];
const BIRD_NETS4: [&str; 3] = ["198.51.100.0/24", "203.0.113.0/25", "203.0.113.128/25"];
const BIRD_NETS6: [&str; 2] = ["2001:db8:b1::/48", "2001:db8:b2::/48"];

/// What differs between the tests' configs.
#[derive(Default, Clone, Copy)]
struct Setup<'a> {
    /// Also an IPv6 session (fd00::1 <-> fd00::2) next to the IPv4 one.
    v6_session: bool,
    /// Graceful restart on both sides (FRR restarting with forwarding state, BIRD helper).
    graceful_restart: bool,
    frr_password: Option<&'a str>,
    bird_password: Option<&'a str>,
    /// bgpd alone (`-Z`): a RIB-only FRR.
    no_zebra: bool,
}

fn frr_config(s: &Setup) -> String {
    // Only FRR's own routes go out, so counts on BIRD's side are exact. The policy comes
    // before `router bgp`: defined after it, FRR 8.4 advertises nothing after a
    // graceful restart.
    let mut c = format!(
        "frr defaults traditional\nhostname frr\n\
         bgp as-path access-list LOCAL seq 5 permit ^$\n\
         route-map LOCAL permit 10\n match as-path LOCAL\nexit\n\
         router bgp {FRR_AS}\n bgp router-id {FRR_V4}\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n"
    );
    if s.graceful_restart {
        c.push_str(" bgp graceful-restart\n bgp graceful-restart preserve-fw-state\n");
    }
    let mut peers = vec![BIRD_V4];
    if s.v6_session {
        peers.push(BIRD_V6);
    }
    for p in &peers {
        c.push_str(&format!(
            " neighbor {p} remote-as {BIRD_AS}\n neighbor {p} timers connect 1\n"
        ));
        if let Some(pw) = s.frr_password {
            c.push_str(&format!(" neighbor {p} password {pw}\n"));
        }
    }
    c.push_str(" address-family ipv4 unicast\n");
    for n in FRR_NETS4 {
        c.push_str(&format!("  network {n}\n"));
    }
    c.push_str(&format!("  neighbor {BIRD_V4} route-map LOCAL out\n"));
    if s.v6_session {
        c.push_str(&format!("  no neighbor {BIRD_V6} activate\n"));
    }
    c.push_str(" exit-address-family\n address-family ipv6 unicast\n");
    for n in FRR_NETS6 {
        c.push_str(&format!("  network {n}\n"));
    }
    for p in &peers {
        c.push_str(&format!(
            "  neighbor {p} activate\n  neighbor {p} route-map LOCAL out\n"
        ));
    }
    c.push_str(" exit-address-family\nexit\n");
    c
}

fn bird_config(s: &Setup, nets4: &[&str], nets6: &[&str]) -> String {
    let statics = |nets: &[&str]| -> String {
        nets.iter()
            .map(|n| format!(" route {n} blackhole;"))
            .collect()
    };
    let mut common =
        String::from("  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n");
    if s.graceful_restart {
        common.push_str("  graceful restart on;\n");
    }
    if let Some(pw) = s.bird_password {
        common.push_str(&format!("  password \"{pw}\";\n"));
    }
    let channel = "{ import all; export where source = RTS_STATIC; }";
    let mut c = format!(
        "router id {BIRD_V4};\nprotocol device {{ }}\n\
         protocol static s4 {{ ipv4;{} }}\nprotocol static s6 {{ ipv6;{} }}\n\
         protocol bgp frr4 {{\n  local {BIRD_V4} as {BIRD_AS};\n  neighbor {FRR_V4} as {FRR_AS};\n\
         {common}  ipv4 {channel};\n  ipv6 {channel};\n}}\n",
        statics(nets4),
        statics(nets6),
    );
    if s.v6_session {
        c.push_str(&format!(
            "protocol bgp frr6 {{\n  local {BIRD_V6} as {BIRD_AS};\n  neighbor {FRR_V6} as {FRR_AS};\n\
             {common}  ipv6 {channel};\n}}\n"
        ));
    }
    c
}

/// FRR and BIRD in two namespaces joined by a veth. Field order is drop order: the
/// daemons go before their namespaces.
struct Pair {
    /// Names the pair in the printed timings (tests run in parallel).
    label: &'static str,
    frr: Frr,
    bird: Bird,
    /// When the later of the two daemons had started.
    started: Instant,
    ns_frr: Netns,
    ns_bird: Netns,
}

impl Pair {
    fn start(label: &'static str, s: &Setup) -> Result<Self> {
        lab::require_root()?;
        lab::sweep_stale();
        let (ns_frr, ns_bird) = (Netns::new()?, Netns::new()?);
        lab::veth(&ns_frr, "f0", &ns_bird, "b0")?;
        ns_frr.ip(&["addr", "add", &format!("{FRR_V4}/24"), "dev", "f0"])?;
        ns_bird.ip(&["addr", "add", &format!("{BIRD_V4}/24"), "dev", "b0"])?;
        // nodad: a tentative address cannot be bound, and DAD takes a second or two.
        ns_frr.ip(&["addr", "add", &format!("{FRR_V6}/64"), "dev", "f0", "nodad"])?;
        ns_bird.ip(&[
            "addr",
            "add",
            &format!("{BIRD_V6}/64"),
            "dev",
            "b0",
            "nodad",
        ])?;

        let t = Instant::now();
        let bird = Bird::start(&ns_bird, &bird_config(s, &BIRD_NETS4, &BIRD_NETS6))?;
        let bird_start = t.elapsed();
        let t = Instant::now();
        let options = FrrOptions {
            zebra: !s.no_zebra,
            ..FrrOptions::default()
        };
        let frr = Frr::start_with(&ns_frr, &frr_config(s), options)?;
        let frr_start = t.elapsed();
        println!(
            "timing [{label}]: Bird::start {:.3} s, Frr::start (until its vtys answer) {:.3} s",
            bird_start.as_secs_f64(),
            frr_start.as_secs_f64()
        );
        Ok(Self {
            label,
            frr,
            bird,
            started: Instant::now(),
            ns_frr,
            ns_bird,
        })
    }

    /// Waits for every session on both sides, printing when each was seen Established.
    fn wait_sessions(&self, s: &Setup) -> Result<()> {
        let mut sessions = vec![(BIRD_V4, "frr4")];
        if s.v6_session {
            sessions.push((BIRD_V6, "frr6"));
        }
        for (addr, proto) in sessions {
            self.frr.wait_established(addr, SESSION_TIMEOUT)?;
            let frr_seen = self.started.elapsed();
            self.bird.wait_established(proto, SESSION_TIMEOUT)?;
            let bird_seen = self.started.elapsed();
            println!(
                "timing [{}]: session {proto} Established {:.3} s (FRR view) / {:.3} s (BIRD view) \
                 after both daemons started",
                self.label,
                frr_seen.as_secs_f64(),
                bird_seen.as_secs_f64()
            );
        }
        Ok(())
    }

    /// Drops everything and checks that no daemon, run directory, FRR crash-log
    /// directory or namespace of this pair is left.
    fn finish(self) -> Result<()> {
        let left = Leftovers::of(&self);
        drop(self);
        left.assert_gone()
    }
}

/// What a pair owned, to check after it is dropped.
struct Leftovers {
    pids: Vec<(String, u32)>,
    dirs: Vec<PathBuf>,
    netns: Vec<String>,
}

impl Leftovers {
    fn of(p: &Pair) -> Self {
        let mut pids = Vec::new();
        pids.extend(p.frr.bgpd_pid().map(|x| ("bgpd".to_owned(), x)));
        pids.extend(p.frr.zebra_pid().map(|x| ("zebra".to_owned(), x)));
        pids.extend(p.bird.pid().map(|x| ("bird".to_owned(), x)));
        Self {
            pids,
            dirs: vec![p.frr.run_dir().to_owned(), p.bird.run_dir().to_owned()],
            netns: vec![p.ns_frr.name().to_owned(), p.ns_bird.name().to_owned()],
        }
    }

    fn assert_gone(&self) -> Result<()> {
        ensure!(!self.pids.is_empty(), "no daemon to check");
        for (name, pid) in &self.pids {
            // The pid may be reused by now, but not by a process of our run directories.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            ensure!(
                !self
                    .dirs
                    .iter()
                    .any(|d| cmdline.contains(&*d.to_string_lossy())),
                "{name} ({pid}) still runs: {cmdline}"
            );
            let tmp = PathBuf::from(FRR_TMP).join(format!("{name}.{pid}"));
            ensure!(!tmp.exists(), "{} left behind", tmp.display());
        }
        for d in &self.dirs {
            ensure!(!d.exists(), "{} left behind", d.display());
        }
        let list = lab::run("ip", &["netns", "list"])?;
        for n in &self.netns {
            ensure!(
                !list.split_whitespace().any(|w| w == n),
                "namespace {n} left behind"
            );
        }
        Ok(())
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// `routes` has exactly the prefixes `nets` (among those of `universe`), each via `hop`.
fn has_exactly(routes: &Routes, universe: &[&str], nets: &[&str], hop: &str) -> bool {
    universe.iter().all(|n| match routes.get(*n) {
        Some(hops) => nets.contains(n) && hops == &vec![ip(hop)],
        None => !nets.contains(n),
    })
}

#[test]
fn frr_and_bird_exchange_ipv4_and_ipv6_routes_and_withdrawals() -> Result<()> {
    let s = Setup {
        v6_session: true,
        ..Setup::default()
    };
    let p = Pair::start("exchange", &s)?;
    p.wait_sessions(&s)?;

    // FRR learns BIRD's statics: IPv4 over the IPv4 session, IPv6 over both.
    let t = Instant::now();
    wait_until(ROUTES_TIMEOUT, POLL, || {
        Ok(has_exactly(
            &p.frr.routes(Family::Ipv4)?,
            &BIRD_NETS4,
            &BIRD_NETS4,
            BIRD_V4,
        ) && has_exactly(
            &p.frr.routes(Family::Ipv6)?,
            &BIRD_NETS6,
            &BIRD_NETS6,
            BIRD_V6,
        ) && p.frr.received_prefixes(Family::Ipv4, BIRD_V4)? == 3
            && p.frr.received_prefixes(Family::Ipv6, BIRD_V4)? == 2
            && p.frr.received_prefixes(Family::Ipv6, BIRD_V6)? == 2)
    })
    .map_err(|e| {
        e.context(format!(
            "FRR's routes: {:?} {:?}",
            p.frr.routes(Family::Ipv4),
            p.frr.routes(Family::Ipv6)
        ))
    })?;
    // zebra put them into the FRR namespace's kernel FIB.
    let fib = p.ns_frr.ip(&["route", "show", "198.51.100.0/24"])?;
    assert!(fib.contains(&format!("via {BIRD_V4}")), "{fib}");
    let fib6 = p.ns_frr.ip(&["-6", "route", "show", "2001:db8:b1::/48"])?;
    assert!(fib6.contains("proto bgp"), "{fib6}");

    // BIRD learns FRR's networks, the IPv6 ones from both sessions.
    wait_until(ROUTES_TIMEOUT, POLL, || {
        Ok(
            has_exactly(&p.bird.routes("master4")?, &FRR_NETS4, &FRR_NETS4, FRR_V4)
                && has_exactly(&p.bird.routes("master6")?, &FRR_NETS6, &FRR_NETS6, FRR_V6)
                && p.bird.route_count_from("master4", "frr4")? == 3
                && p.bird.route_count_from("master6", "frr4")? == 2
                && p.bird.route_count_from("master6", "frr6")? == 2,
        )
    })
    .map_err(|e| {
        e.context(format!(
            "BIRD's routes: {:?}",
            p.bird.route_entries("master6")
        ))
    })?;
    println!(
        "timing [exchange]: both route sets complete {:.3} s after the sessions",
        t.elapsed().as_secs_f64()
    );
    for r in p.bird.route_entries("master6")? {
        if FRR_NETS6.contains(&r.prefix.as_str()) {
            assert_eq!(r.next_hops, vec![ip(FRR_V6)], "{r:?}");
            assert!(!r.stale, "{r:?}");
        }
    }
    assert!(p.bird.route_count("master4")? >= 6);

    let notes_received = p.frr.notifications_received(BIRD_V4)?;
    let notes_sent = p.frr.notifications_sent(BIRD_V4)?;

    // BIRD withdraws one route of each family.
    let (kept4, kept6) = (&BIRD_NETS4[..2], &BIRD_NETS6[..1]);
    p.bird.configure(&bird_config(&s, kept4, kept6))?;
    wait_until(ROUTES_TIMEOUT, POLL, || {
        Ok(
            has_exactly(&p.frr.routes(Family::Ipv4)?, &BIRD_NETS4, kept4, BIRD_V4)
                && has_exactly(&p.frr.routes(Family::Ipv6)?, &BIRD_NETS6, kept6, BIRD_V6),
        )
    })?;
    assert_eq!(p.frr.received_prefixes(Family::Ipv4, BIRD_V4)?, 2);

    // FRR withdraws one network of each family.
    p.frr.configure(&[
        &format!("router bgp {FRR_AS}"),
        "address-family ipv4 unicast",
        &format!("no network {}", FRR_NETS4[2]),
        "exit-address-family",
        "address-family ipv6 unicast",
        &format!("no network {}", FRR_NETS6[1]),
    ])?;
    let (kept4, kept6) = (&FRR_NETS4[..2], &FRR_NETS6[..1]);
    wait_until(ROUTES_TIMEOUT, POLL, || {
        Ok(
            has_exactly(&p.bird.routes("master4")?, &FRR_NETS4, kept4, FRR_V4)
                && has_exactly(&p.bird.routes("master6")?, &FRR_NETS6, kept6, FRR_V6),
        )
    })?;
    // No session was reset on the way. (While bgpd has not learned the interfaces from
    // zebra yet, it may reset BIRD's first connection with 5/0: count from here.)
    assert_eq!(p.frr.notifications_received(BIRD_V4)?, notes_received);
    assert_eq!(p.frr.notifications_sent(BIRD_V4)?, notes_sent);
    println!(
        "rss [exchange]: bgpd {} KiB, zebra {} KiB, bird {} KiB",
        p.frr.rss_bytes()? / 1024,
        p.frr.zebra_rss_bytes()? / 1024,
        p.bird.rss_bytes()? / 1024
    );
    p.finish()
}

#[test]
fn a_bgpd_restart_with_graceful_restart_keeps_bird_copy_until_end_of_rib() -> Result<()> {
    let s = Setup {
        graceful_restart: true,
        ..Setup::default()
    };
    let mut p = Pair::start("gr", &s)?;
    p.wait_sessions(&s)?;
    let from_frr = |p: &Pair| -> Result<Vec<lab::bird::BirdRoute>> {
        Ok(p.bird
            .route_entries("master4")?
            .into_iter()
            .filter(|r| r.protocol == "frr4")
            .collect())
    };
    let prefixes = |r: &[lab::bird::BirdRoute]| -> Vec<String> {
        r.iter().map(|r| r.prefix.clone()).collect()
    };
    wait_until(ROUTES_TIMEOUT, POLL, || {
        Ok(prefixes(&from_frr(&p)?) == FRR_NETS4)
    })
    .context("BIRD learning FRR's routes")?;
    let caps = p.bird.birdc("show protocols all frr4")?;
    assert!(caps.matches("Graceful restart").count() == 2, "{caps}");
    let updates_before = import_updates(&p.bird.birdc("show protocols all frr4")?)?;

    // A crash: no NOTIFICATION, the kernel closes the connection. BIRD enters helper
    // mode and keeps every route.
    p.frr.kill_bgpd()?;
    let killed = Instant::now();
    wait_until(ROUTES_TIMEOUT, POLL, || p.bird.neighbor_restarting("frr4"))
        .context("BIRD noticing FRR's restart")?;
    // The restarted bgpd will no longer announce the last network: BIRD must keep it
    // until FRR's End-of-RIB, then flush it as stale.
    let mut config = frr_config(&s);
    config = config.replace(&format!("  network {}\n", FRR_NETS4[2]), "");
    p.frr.set_config(&config)?;
    let down_for = Duration::from_secs(2);
    while killed.elapsed() < down_for {
        let r = from_frr(&p)?;
        ensure!(
            prefixes(&r) == FRR_NETS4,
            "BIRD dropped routes while FRR was down: {r:?}"
        );
        ensure!(r.iter().all(|r| r.primary), "{r:?}");
        std::thread::sleep(POLL);
    }
    assert_ne!(p.bird.protocol_state("frr4")?, "Established");

    p.frr.start_bgpd()?;
    let restarted = Instant::now();
    wait_until(SESSION_TIMEOUT, Duration::from_millis(20), || {
        let r = from_frr(&p)?;
        let kept = prefixes(&r);
        ensure!(
            kept.iter().any(|k| k == FRR_NETS4[0]) && kept.iter().any(|k| k == FRR_NETS4[1]),
            "BIRD dropped a route FRR still announces during the restart: {r:?}"
        );
        Ok(kept == FRR_NETS4[..2] && !p.bird.neighbor_restarting("frr4")?)
    })
    .with_context(|| format!("BIRD after FRR's restart: {:?}", from_frr(&p)))?;
    println!(
        "timing [gr]: bgpd restarted; BIRD had FRR's End-of-RIB and flushed the stale route \
         {:.3} s after the start",
        restarted.elapsed().as_secs_f64()
    );
    // FRR did re-announce what it kept, and BIRD left helper mode.
    let info = p.bird.birdc("show protocols all frr4")?;
    assert!(import_updates(&info)? >= updates_before + 2, "{info}");
    assert_eq!(p.bird.protocol_state("frr4")?, "Established");
    p.frr.wait_established(BIRD_V4, SESSION_TIMEOUT)?;
    // BIRD never closed the session on FRR: it kept helping through the restart.
    assert!(p.frr.notifications_received(BIRD_V4)?.is_empty());
    // The restarted bgpd relearns BIRD's routes too.
    wait_until(ROUTES_TIMEOUT, POLL, || {
        Ok(has_exactly(
            &p.frr.routes(Family::Ipv4)?,
            &BIRD_NETS4,
            &BIRD_NETS4,
            BIRD_V4,
        ))
    })?;
    p.finish()
}

/// "Import updates: received ..." of `show protocols all <bgp>`.
fn import_updates(info: &str) -> Result<u64> {
    let line = info
        .lines()
        .find(|l| l.trim_start().starts_with("Import updates:"))
        .context("no import stats")?;
    Ok(line
        .split_whitespace()
        .nth(2)
        .context("short import stats")?
        .parse()?)
}

#[test]
fn md5_passwords_must_match() -> Result<()> {
    let good = Setup {
        frr_password: Some("s3cret"),
        bird_password: Some("s3cret"),
        ..Setup::default()
    };
    let p = Pair::start("md5-good", &good)?;
    p.wait_sessions(&good)?;
    p.finish()?;

    let bad = Setup {
        frr_password: Some("s3cret"),
        bird_password: Some("wrong"),
        ..Setup::default()
    };
    let p = Pair::start("md5-bad", &bad)?;
    // Without a matching key the kernel drops every segment: no session, for as long
    // as we care to watch.
    let watch = Duration::from_secs(8);
    let never = wait_until(watch, Duration::from_millis(200), || {
        Ok(p.frr.neighbor_state(BIRD_V4)? == "Established"
            || p.bird.protocol_state("frr4")? == "Established")
    });
    assert!(never.is_err(), "a session with mismatched MD5 keys came up");
    // The same pair establishes once BIRD's password is fixed: the key was the problem.
    p.bird
        .configure(&bird_config(&good, &BIRD_NETS4, &BIRD_NETS6))?;
    let fixed = Instant::now();
    p.frr.wait_established(BIRD_V4, SESSION_TIMEOUT)?;
    p.bird.wait_established("frr4", SESSION_TIMEOUT)?;
    println!(
        "timing [md5-bad]: Established {:.3} s after BIRD's password was fixed",
        fixed.elapsed().as_secs_f64()
    );
    p.finish()
}

#[test]
fn frr_without_zebra_and_the_lifecycle_helpers() -> Result<()> {
    let s = Setup {
        v6_session: true,
        no_zebra: true,
        ..Setup::default()
    };
    let mut p = Pair::start("no-zebra", &s)?;
    assert_eq!(p.frr.zebra_pid(), None);
    p.wait_sessions(&s)?;
    wait_until(ROUTES_TIMEOUT, POLL, || {
        Ok(has_exactly(
            &p.frr.routes(Family::Ipv4)?,
            &BIRD_NETS4,
            &BIRD_NETS4,
            BIRD_V4,
        ) && has_exactly(
            &p.frr.routes(Family::Ipv6)?,
            &BIRD_NETS6,
            &BIRD_NETS6,
            BIRD_V6,
        ) && has_exactly(&p.bird.routes("master4")?, &FRR_NETS4, &FRR_NETS4, FRR_V4)
            && has_exactly(&p.bird.routes("master6")?, &FRR_NETS6, &FRR_NETS6, FRR_V6))
    })
    .map_err(|e| {
        e.context(format!(
            "FRR: {:?} {:?}; BIRD: {:?}",
            p.frr.routes(Family::Ipv4),
            p.frr.routes(Family::Ipv6),
            p.bird.route_entries("master6")
        ))
    })?;
    // Without zebra nothing reaches the kernel.
    let fib = p.ns_frr.ip(&["route", "show", "table", "all"])?;
    assert!(!fib.contains("198.51.100.0"), "{fib}");

    // An administrative shutdown with a message (RFC 8203) shows in FRR's log.
    p.bird.birdc("disable frr4 \"maintenance\"")?;
    wait_until(SESSION_TIMEOUT, POLL, || {
        Ok(p.frr
            .notifications_received(BIRD_V4)?
            .iter()
            .any(|n| n.code == 6 && n.subcode == 2 && n.detail.contains("maintenance")))
    })
    .map_err(|e| e.context(format!("FRR's log:\n{}", p.frr.log().unwrap_or_default())))?;
    assert_ne!(p.frr.neighbor_state(BIRD_V4)?, "Established");
    p.bird.birdc("enable frr4")?;
    p.frr.wait_established(BIRD_V4, SESSION_TIMEOUT)?;

    // BIRD killed and started again: the session comes back.
    let old_bird = p.bird.pid();
    p.bird.restart()?;
    assert_ne!(p.bird.pid(), old_bird);
    let t = Instant::now();
    p.frr.wait_established(BIRD_V4, SESSION_TIMEOUT)?;
    println!(
        "timing [no-zebra]: Established {:.3} s after BIRD's restart",
        t.elapsed().as_secs_f64()
    );

    // bgpd stopped cleanly: BIRD hears a Cease and the session goes down.
    let old_bgpd = p.frr.bgpd_pid().context("bgpd runs")?;
    p.frr.stop_bgpd()?;
    wait_until(SESSION_TIMEOUT, POLL, || {
        Ok(p.bird.protocol_state("frr4")? != "Established")
    })?;
    ensure!(!PathBuf::from(format!("{FRR_TMP}/bgpd.{old_bgpd}")).exists());
    p.frr.start_bgpd()?;
    p.bird.wait_established("frr4", SESSION_TIMEOUT)?;
    // bgpd killed: the kill leaves no crash-log directory behind either.
    let old_bgpd = p.frr.bgpd_pid().context("bgpd runs")?;
    p.frr.kill()?;
    ensure!(p.frr.bgpd_pid().is_none());
    ensure!(!PathBuf::from(format!("{FRR_TMP}/bgpd.{old_bgpd}")).exists());
    wait_until(SESSION_TIMEOUT, POLL, || {
        Ok(p.bird.protocol_state("frr4")? != "Established")
    })?;
    assert!(p.frr.vtysh("show version").is_err());
    p.finish()
}

#[test]
fn a_panicking_test_leaves_no_daemon_or_file_behind() -> Result<()> {
    let s = Setup::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let p = Pair::start("panic", &s).expect("pair starts");
        tx.send(Leftovers::of(&p)).expect("receiver waits");
        panic!("deliberate panic with FRR and BIRD running");
    })
    .join();
    assert!(joined.is_err(), "the thread was meant to panic");
    rx.recv()?.assert_gone()
}

#[test]
fn bad_configs_fail_with_the_daemon_message() -> Result<()> {
    lab::require_root()?;
    let ns = Netns::new()?;
    let err = Frr::start(&ns, "router bgp 65000\n neighbr 192.0.2.9 remote-as 1\n")
        .err()
        .expect("FRR accepted a typo");
    assert!(format!("{err:#}").contains("neighbr"), "{err:#}");
    let err = Bird::start(&ns, "protocol bgp x { nonsense; }\n")
        .err()
        .expect("BIRD accepted nonsense");
    assert!(format!("{err:#}").contains("rejects the config"), "{err:#}");
    let bird = Bird::start(&ns, "router id 192.0.2.9;\nprotocol device { }\n")?;
    let err = bird.birdc("show nonsense").unwrap_err();
    assert!(format!("{err:#}").contains("birdc"), "{err:#}");
    let err = bird.protocol_state("nope").unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");
    Ok(())
}
