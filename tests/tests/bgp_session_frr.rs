//! A first interop check of our session against a real FRR bgpd (Debian's FRR 8.4) in a
//! namespace: eBGP over TCP MD5 with fabric timers, capabilities and hold time as FRR
//! reports them, a route each way, and our administrative shutdown communication as FRR
//! logs it. FRR runs without zebra (`-Z`), so it does not resolve next hops; the routes
//! are checked in its BGP table only.

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use bgp_ctl::bgp::{
    Listener, LocalInfo, PeerConfig, RemoteAs, Session, SessionEvent, SessionHandle,
};
use bgp_wire::{AsPath, Origin, PathAttributes, Update};
use lab::Netns;
use tokio::sync::mpsc;

/// bgpd running as the frr user in a namespace, killed with its run directory on drop.
struct Frr {
    child: Child,
    dir: PathBuf,
}

impl Frr {
    fn start(ns: &Netns, config: &str) -> Result<Frr> {
        let dir = std::env::temp_dir().join(lab::unique_name());
        std::fs::create_dir(&dir)?;
        std::fs::write(dir.join("bgpd.conf"), config)?;
        lab::run("chown", &["-R", "frr:frr", &dir.to_string_lossy()])?;
        let d = dir.to_string_lossy().into_owned();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.name()))
            .args(["/usr/lib/frr/bgpd", "-Z", "-n"])
            .args(["-f", &format!("{d}/bgpd.conf")])
            .args(["-i", &format!("{d}/bgpd.pid")])
            .args(["-z", &format!("{d}/zserv.api")])
            .args(["--vty_socket", &d])
            .args(["--log", &format!("file:{d}/bgpd.log")])
            .spawn()
            .context("starting FRR bgpd (cargo xtask setup installs it)")?;
        let frr = Frr { child, dir };
        let start = Instant::now();
        while frr.vtysh("show version").is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("bgpd did not start: {}", frr.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(frr)
    }

    fn vtysh(&self, command: &str) -> Result<String> {
        lab::run(
            "vtysh",
            &[
                "--vty_socket",
                &self.dir.to_string_lossy(),
                "-d",
                "bgpd",
                "-c",
                command,
            ],
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bgpd.log")).unwrap_or_default()
    }

    /// Polls `command` until its output satisfies `ok`.
    fn wait_for(&self, command: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        let start = Instant::now();
        loop {
            let out = self.vtysh(command)?;
            if ok(&out) {
                return Ok(out);
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!(
                    "`{command}` never matched; last output:\n{out}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const FRR_CONF: &str = "\
frr defaults datacenter
hostname frr
log file bgpd.log debugging
router bgp 65001
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.0.2 remote-as 65002
 neighbor 10.0.0.2 password s3cret-key
 neighbor 10.0.0.2 timers 3 9
 neighbor 10.0.0.2 timers connect 1
 address-family ipv4 unicast
  network 10.10.0.0/24
 exit-address-family
";

/// What our side reports to the test thread.
#[derive(Debug)]
enum Seen {
    Established {
        hold: u16,
        four_octet: bool,
        peer_id: Ipv4Addr,
    },
    Route(String),
    Down(String),
}

#[test]
fn our_session_interoperates_with_frr() -> Result<()> {
    lab::require_root()?;
    lab::sweep_stale();
    let (frr_ns, ours) = (Netns::new()?, Netns::new()?);
    lab::veth(&frr_ns, "f0", &ours, "o0")?;
    frr_ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "f0"])?;
    ours.ip(&["addr", "add", "10.0.0.2/24", "dev", "o0"])?;
    let frr = Frr::start(&frr_ns, FRR_CONF)?;

    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<Seen>();
    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel::<()>();
    std::thread::scope(|s| -> Result<()> {
        let side = s.spawn(|| {
            ours.enter(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = Listener::bind(&["10.0.0.2:179".parse()?])?;
                    let mut c = PeerConfig::new("10.0.0.1".parse()?, RemoteAs::Exact(65001));
                    c.md5_password = Some("s3cret-key".into());
                    c.timers.connect_retry = Duration::from_secs(1);
                    let local = LocalInfo {
                        asn: 65002,
                        router_id: Ipv4Addr::new(10, 0, 0, 2),
                    };
                    let (tx, mut events) = mpsc::channel(64);
                    let handle: SessionHandle = Session::spawn(c, local, tx, true)?;
                    listener.add_peer(
                        "10.0.0.1".parse()?,
                        Some("s3cret-key"),
                        handle.incoming(),
                    )?;
                    let mut stop_asked = false;
                    loop {
                        tokio::select! {
                            e = events.recv() => match e {
                                Some(SessionEvent::Established { negotiated, sender, .. }) => {
                                    let _ = seen_tx.send(Seen::Established {
                                        hold: negotiated.hold_time,
                                        four_octet: negotiated.four_octet_as,
                                        peer_id: negotiated.peer_id,
                                    });
                                    let ours = Update {
                                        attributes: Some(PathAttributes {
                                            origin: Origin::Igp,
                                            as_path: AsPath::from_sequence([65002]),
                                            next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
                                            ..PathAttributes::default()
                                        }),
                                        nlri: vec!["10.20.0.0/24".parse()?],
                                        ..Update::default()
                                    };
                                    sender.send_updates(&[ours]).await?;
                                }
                                Some(SessionEvent::Updates { updates, .. }) => {
                                    for u in updates {
                                        for p in u.nlri {
                                            let _ = seen_tx.send(Seen::Route(p.to_string()));
                                        }
                                    }
                                }
                                Some(SessionEvent::Down { info, .. }) => {
                                    let _ = seen_tx.send(Seen::Down(info.reason.to_string()));
                                    if stop_asked {
                                        break;
                                    }
                                }
                                Some(_) => {}
                                None => break,
                            },
                            _ = stop_rx.recv(), if !stop_asked => {
                                stop_asked = true;
                                handle.disable("maintenance window 42").await?;
                            }
                        }
                    }
                    handle.shutdown().await;
                    Ok(())
                })
            })
        });

        let wait = |what: &str| -> Result<Seen> {
            seen_rx
                .recv_timeout(Duration::from_secs(20))
                .with_context(|| format!("waiting for {what}; FRR log:\n{}", frr.log()))
        };
        match wait("Established")? {
            Seen::Established {
                hold,
                four_octet,
                peer_id,
            } => {
                assert_eq!(hold, 9, "both sides propose 9 s");
                assert!(four_octet);
                assert_eq!(peer_id, Ipv4Addr::new(10, 0, 0, 1));
            }
            other => bail!("expected Established, got {other:?}"),
        }
        match wait("FRR's route")? {
            Seen::Route(p) => assert_eq!(p, "10.10.0.0/24"),
            other => bail!("expected a route, got {other:?}"),
        }
        let json = frr.wait_for("show bgp ipv4 unicast 10.20.0.0/24 json", |o| {
            o.contains("\"10.0.0.2\"") || o.contains("65002")
        })?;
        assert!(
            json.contains("65002"),
            "FRR has our route via AS 65002: {json}"
        );
        let nb = frr.vtysh("show bgp neighbors 10.0.0.2")?;
        assert!(nb.contains("BGP state = Established"), "{nb}");
        assert!(
            nb.contains("4 Byte AS: advertised and received"),
            "FRR sees the 4-octet AS capability: {nb}"
        );
        stop_tx.send(()).ok();
        // FRR also sends our own route back (AS path 65001 65002, for the speaker's loop
        // check to drop): skip routes until the Down.
        loop {
            match wait("Down")? {
                Seen::Route(_) => continue,
                Seen::Down(why) => {
                    assert!(why.contains("Administrative Shutdown"), "{why}");
                    break;
                }
                other => bail!("expected Down, got {other:?}"),
            }
        }
        frr.wait_for("show bgp neighbors 10.0.0.2", |o| {
            o.contains("Notification received (Cease/Administrative Shutdown)")
        })?;
        let log = frr.log();
        assert!(
            log.contains("(Cease/Administrative Shutdown) \"maintenance window 42\""),
            "FRR logs the RFC 9003 communication: {log}"
        );
        side.join()
            .map_err(|_| anyhow::anyhow!("our side panicked"))???;
        Ok(())
    })?;
    Ok(())
}
