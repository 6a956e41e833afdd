//! A first interop check of our session against a real FRR bgpd (Debian's FRR 8.4) in a
//! namespace: eBGP over TCP MD5 with fabric timers, capabilities and hold time as FRR
//! reports them, a route each way, and our administrative shutdown communication as FRR
//! logs it.

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result, bail};
use bgp_ctl::bgp::{
    Listener, LocalInfo, PeerConfig, RemoteAs, Session, SessionEvent, SessionHandle,
};
use bgp_wire::{AsPath, Origin, PathAttributes, Update};
use lab::{Netns, frr::Frr, peer::Family, wait_until};
use tokio::sync::mpsc;

const FRR_CONF: &str = "\
frr defaults datacenter
hostname frr
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
                .with_context(|| {
                    format!(
                        "waiting for {what}; FRR log:\n{}",
                        frr.log().unwrap_or_default()
                    )
                })
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
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            Ok(frr.routes(Family::Ipv4)?.get("10.20.0.0/24") == Some(&vec!["10.0.0.2".parse()?]))
        })
        .context("FRR never selected our route 10.20.0.0/24 via 10.0.0.2")?;
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
        let mut shutdown = None;
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            shutdown = frr
                .notifications_received("10.0.0.2")?
                .into_iter()
                .find(|n| (n.code, n.subcode) == (6, 2));
            Ok(shutdown.is_some())
        })
        .context("FRR logged no Cease/Administrative Shutdown from us")?;
        let detail = shutdown.map(|n| n.detail).unwrap_or_default();
        assert!(
            detail.contains("maintenance window 42"),
            "FRR reads the RFC 9003 communication: {detail}"
        );
        side.join()
            .map_err(|_| anyhow::anyhow!("our side panicked"))???;
        Ok(())
    })?;
    Ok(())
}
