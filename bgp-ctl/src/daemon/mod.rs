//! `bgp-ctl daemon`: the node agent. Loads the config, attaches the dataplane, starts the
//! FIB programmer, the speaker, the pod-route watcher and the control socket, and runs
//! until SIGTERM/SIGINT. SIGHUP (or `bgp-ctl reload`) applies the config file's changes.
//! On exit the dataplane stays pinned and forwarding; sessions close without a
//! NOTIFICATION, so graceful-restart peers keep our routes until we are back.

mod fib_task;
mod kernel_routes;
mod memory;
mod pod_links;
mod pods;
mod probe;
mod reload;
mod specs;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    api::{
        Reply, Request,
        protocol::ReloadReport,
        server::{self, Handler, ReplySink},
    },
    bfd::{BfdManager, BfdState},
    bgp::Listener,
    config::{self, schema::AttachMode},
    fib::{self, Dataplane, Fib},
    programmer::LocalTarget,
    speaker::{Command, Speaker},
};
use fib_task::FibQuery;
use reload::Reloader;

/// Work items (chunks of Loc-RIB changes) waiting for the FIB programmer.
const WORK_QUEUE: usize = 8;

/// A reload asked for, and where its outcome goes.
type ReloadRequest = oneshot::Sender<Result<ReloadReport, String>>;
use pod_links::PodLinks;

/// Longest End-of-RIB is held back waiting for the pod routes (normally milliseconds).
const END_OF_RIB_HOLD_MAX: Duration = Duration::from_secs(10);

/// Runs the daemon with the config at `path` until a termination signal.
pub fn run(path: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the daemon needs root (BPF, XDP, netlink, port 179)");
    }
    let loaded = config::load(path)?;
    for w in &loaded.warnings {
        warn!("{}: {w}", path.display());
    }
    let c = loaded.config;
    memory::tune();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(serve(c, path))
}

async fn serve(c: config::Config, path: &Path) -> Result<()> {
    let dp_cfg = c.dataplane.get_ref();
    // The dataplane first: a node that cannot forward must not advertise its pods.
    let mut dp = Dataplane::open(&dp_cfg.pin_dir)?;
    let mode = match dp_cfg.mode {
        AttachMode::Driver => fib::AttachMode::Driver,
        AttachMode::Skb => fib::AttachMode::Skb,
    };
    let mut attached = Vec::new();
    for u in &dp_cfg.uplinks {
        dp.attach(u.get_ref(), mode)
            .with_context(|| format!("attaching xdp-fwd to uplink {}", u.get_ref()))?;
        attached.push((u.get_ref().clone(), mode.to_string()));
    }
    let mut fib = Fib::open(&dp_cfg.pin_dir)?;
    fib.set_forward_fragments(dp_cfg.forward_fragments)?;
    let adopted = fib.route_count();
    info!(
        "dataplane attached to {} ({mode}); adopted {} routes from the pins",
        attached
            .iter()
            .map(|a| a.0.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        fib.route_count()
    );

    // Few and bounded (the speaker sends changes in chunks): when the programmer falls
    // behind, the speaker waits and the sessions stop reading, instead of a table's worth
    // of changes piling up in memory.
    let (work_tx, work_rx) = mpsc::channel(WORK_QUEUE);
    let (query_tx, query_rx) = mpsc::channel(16);
    let resync = Duration::from_secs(u64::from(*c.graceful_restart.restart_time.get_ref()).max(30));
    // Our routes in the kernel FIB: adopted (or, with kernel-fib off, removed) after the
    // same resync period as the maps' routes.
    let kernel = kernel_routes::spawn(dp_cfg.kernel_fib, resync)?;
    fib_task::spawn(fib, work_rx, query_rx, attached.clone(), resync, kernel)?;

    let addrs: Vec<SocketAddr> = c
        .listen
        .addresses
        .iter()
        .map(|a| SocketAddr::new(*a, c.listen.port))
        .collect();
    let listener = Arc::new(Listener::bind(&addrs).map_err(|e| {
        let hint = bind_hint(e.kind(), c.listen.port);
        anyhow::Error::new(e).context(format!("BGP listener{hint}"))
    })?);
    let mut speaker = Speaker::new(specs::speaker_settings(&c), work_tx, Some(listener.clone()));
    if !c.origination.pod_cidrs.is_empty() {
        speaker.defer_end_of_rib();
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    if c.peer.iter().chain(&c.dynamic_neighbors).any(|n| n.bfd) {
        // Its sockets are opened with the first session (errors then name the socket).
        let bfd = BfdManager::spawn().context("BFD")?;
        tokio::spawn(forward_bfd(bfd.subscribe(), cmd_tx.clone()));
        speaker.set_bfd(bfd);
    }
    // Routes adopted from the pins: we restarted with forwarding state preserved, and
    // say so in the first OPENs (RFC 4724 Restart State bit).
    let restarting = adopted > 0;
    for p in specs::peers(&c, restarting)? {
        speaker.add_peer(p)?;
    }
    for d in specs::dynamic(&c, restarting)? {
        speaker.add_dynamic(d)?;
    }
    let speaker_task = tokio::spawn(speaker.run(cmd_rx));

    for prefix in &c.origination.static_routes {
        cmd_tx
            .send(Command::Originate {
                prefix: *prefix,
                target: LocalTarget::Kernel,
            })
            .await?;
    }
    for a in &c.aggregate {
        // The aggregate's uncovered space is dropped: pods inside it have their own routes.
        cmd_tx
            .send(Command::Originate {
                prefix: *a.prefix.get_ref(),
                target: LocalTarget::Blackhole,
            })
            .await?;
    }
    let uplinks: Vec<String> = attached.iter().map(|a| a.0.clone()).collect();
    let pod_links = dp_cfg
        .attach_pods
        .then(|| PodLinks::new(dp, mode, &uplinks));
    let pods = pods::spawn(c.origination.pod_cidrs.clone(), cmd_tx.clone(), pod_links)?;
    if !c.origination.pod_cidrs.is_empty() {
        // End-of-RIB waits for the watcher's first dump, but never forever.
        let cmds = cmd_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(END_OF_RIB_HOLD_MAX).await;
            let _ = cmds.send(Command::LocalSynced).await;
        });
    }

    let socket = server::bind(&c.api.socket)
        .with_context(|| format!("control socket {}", c.api.socket.display()))?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let probe = probe::Probe::new(
        cmd_tx.clone(),
        query_tx.clone(),
        attached.iter().map(|a| (a.0.clone(), mode)).collect(),
        Duration::from_secs(u64::from(c.health.peer_startup_grace)),
    );
    if let Some(listen) = c.http.listen {
        probe.clone().serve_http(listen).await?;
    }
    let handler = Arc::new(Api {
        speaker: cmd_tx.clone(),
        fib: query_tx,
        reload: reload_tx.clone(),
        probe,
    });
    tokio::spawn(server::serve(socket, handler));
    info!(
        "bgp-ctl daemon running: AS {}, router id {}",
        c.asn.get_ref(),
        c.router_id.get_ref()
    );
    let socket_path = c.api.socket.clone();
    // One reload at a time, from SIGHUP or the control socket.
    let mut reloader = Reloader::new(path, c, cmd_tx.clone(), pods);
    tokio::spawn(async move {
        while let Some(done) = reload_rx.recv().await {
            let outcome = reloader.reload().await;
            if let Err(e) = &outcome {
                warn!("reload refused: {e}");
            }
            let _ = done.send(outcome);
        }
    });

    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut hup) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::hangup())?,
    );
    tokio::pin!(speaker_task);
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM: leaving the dataplane pinned and forwarding");
                break;
            }
            _ = tokio::signal::ctrl_c() => {
                info!("SIGINT: leaving the dataplane pinned and forwarding");
                break;
            }
            _ = hup.recv() => {
                info!("SIGHUP: reloading {}", path.display());
                let (tx, _) = oneshot::channel();
                let _ = reload_tx.send(tx).await;
            }
            r = &mut speaker_task => {
                warn!("speaker ended: {r:?}");
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&socket_path);
    drop(listener);
    Ok(())
}

/// What to check when binding `port` failed with `kind`, for the error message.
fn bind_hint(kind: std::io::ErrorKind, port: u16) -> String {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::AddrInUse => format!(" (port {port} is taken by another daemon)"),
        ErrorKind::PermissionDenied => format!(
            " (port {port} needs CAP_NET_BIND_SERVICE: run as root or grant the capability)"
        ),
        ErrorKind::AddrNotAvailable => {
            " (the address is not on this node: check [listen] addresses)".to_owned()
        }
        _ => String::new(),
    }
}

/// Hands BFD's reports to the speaker. A peer that took its end administratively down
/// does not bring the session down (RFC 5882 section 3.2).
async fn forward_bfd(
    mut events: mpsc::UnboundedReceiver<crate::bfd::BfdEvent>,
    cmds: mpsc::Sender<Command>,
) {
    while let Some(ev) = events.recv().await {
        let up = ev.state == BfdState::Up;
        if !up && ev.peer_admin_down {
            info!("BFD: {} went administratively down", ev.peer);
            continue;
        }
        info!(
            "BFD: session with {} {}",
            ev.peer,
            if up { "up" } else { "down" }
        );
        if cmds.send(Command::Bfd { peer: ev.peer, up }).await.is_err() {
            return;
        }
    }
}

/// Routes control API requests to the speaker or the FIB programmer.
struct Api {
    speaker: mpsc::Sender<Command>,
    fib: mpsc::Sender<FibQuery>,
    reload: mpsc::Sender<ReloadRequest>,
    probe: probe::Probe,
}

impl Handler for Api {
    async fn handle(&self, request: Request, out: ReplySink) {
        let sent = match request {
            Request::ShowFib { prefix } => self
                .fib
                .send(FibQuery::Fib(prefix, out.clone()))
                .await
                .is_ok(),
            Request::ShowStats => self.fib.send(FibQuery::Stats(out.clone())).await.is_ok(),
            Request::Health => {
                let view = self.probe.health().await;
                let _ = out.send(Reply::Health(view)).await;
                true
            }
            Request::Reload => {
                let (tx, rx) = oneshot::channel();
                if self.reload.send(tx).await.is_ok()
                    && let Ok(outcome) = rx.await
                {
                    let reply = match outcome {
                        Ok(report) => Reply::Reload(report),
                        Err(message) => Reply::Error { message },
                    };
                    let _ = out.send(reply).await;
                    true
                } else {
                    false
                }
            }
            other => self
                .speaker
                .send(Command::Request(other, out.clone()))
                .await
                .is_ok(),
        };
        if !sent {
            let _ = out
                .send(Reply::Error {
                    message: "the daemon is shutting down".into(),
                })
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr, TcpListener};

    use super::*;

    #[tokio::test]
    async fn a_listener_that_cannot_bind_says_what_to_check() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let e = Listener::bind(&[taken.local_addr().unwrap()])
            .err()
            .expect("the port is taken");
        assert_eq!(
            bind_hint(e.kind(), 179),
            " (port 179 is taken by another daemon)"
        );
        // 192.0.2.1 (TEST-NET-1) is on no interface here.
        let e = Listener::bind(&[SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 0))])
            .err()
            .expect("not our address");
        assert!(bind_hint(e.kind(), 179).contains("not on this node"), "{e}");
        assert_eq!(bind_hint(std::io::ErrorKind::Other, 179), "");
    }
}
