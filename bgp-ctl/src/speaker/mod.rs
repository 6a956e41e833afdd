//! The BGP speaker: sessions in, RIB and policy in the middle, UPDATEs and FIB work out.
//!
//! One task owns the RIB, the policies and the peer table. Sessions (one task each)
//! decode UPDATEs and hand them over in batches; the speaker applies import policy,
//! runs the decision process, sends the Loc-RIB changes to the FIB programmer and
//! exports them to every established peer, encoded once per peer. Graceful restart
//! (helper side) keeps a peer's routes stale until its End-of-RIB or the restart timer.

mod export;
mod fib_outbox;
mod peer;
mod reconfigure;
mod show;
mod suppress;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
    time::{Duration, Instant},
};

use bgp_wire::{Family, MpNextHop, Origin, PathAttributes, RouteRefreshSubtype, Update};
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    api::{Reply, Request, protocol::ReloadReport, server::ReplySink},
    bfd::BfdHandle,
    bgp::{self, LocalInfo, Session, SessionEvent, listener::Accepted},
    policy::{PolicyContext, PolicyFilter, RoutingPolicy},
    programmer::{LocalTarget, Work},
    rib::{PeerId, PeerSession, Rib, RibChange, RibConfig, RouteAttrs},
};

use fib_outbox::{FIB_CHUNK, Outbox};
use peer::Peer;
pub use peer::{DynamicSpec, PeerSpec};
pub use reconfigure::Reconfiguration;
use suppress::Suppressing;
pub use suppress::Suppression;

/// Events waiting for the speaker; sessions block (backpressure) when it is full.
const EVENT_QUEUE: usize = 64;

/// What the daemon asks the speaker.
#[derive(Debug)]
pub enum Command {
    /// A control API request the speaker answers (neighbors, routes, neighbor operations,
    /// static routes).
    Request(Request, ReplySink),
    /// Originate a local prefix (a pod route learned from the kernel, or a static route).
    Originate {
        /// The prefix.
        prefix: IpNet,
        /// Where the dataplane sends its traffic.
        target: LocalTarget,
    },
    /// Withdraw a local prefix.
    WithdrawLocal {
        /// The prefix.
        prefix: IpNet,
    },
    /// Apply a reloaded configuration's peers and policies; the report of what changed
    /// goes back on `done`.
    Reconfigure(Box<Reconfiguration>, oneshot::Sender<ReloadReport>),
    /// BFD reported the session with `peer` Up or Down (Down after Up, and not because
    /// the peer took it administratively down).
    Bfd {
        /// The peer's address.
        peer: IpAddr,
        /// Up (true) or Down.
        up: bool,
    },
    /// Every local prefix known at start has been originated (the pod-route watcher's
    /// first dump is done): End-of-RIB may go out (see [`Speaker::defer_end_of_rib`]).
    LocalSynced,
}

/// Speaker-wide settings.
#[derive(Debug, Clone)]
pub struct SpeakerSettings {
    /// Our AS and router id.
    pub local: LocalInfo,
    /// RIB options.
    pub rib: RibConfig,
    /// Prefix lists and policies.
    pub routing: RoutingPolicy,
    /// How long stale routes of a restarted peer are kept without its End-of-RIB.
    pub stale_time: Duration,
    /// Summary-only aggregates: their more specifics are not exported to some peers.
    pub suppressions: Vec<Suppression>,
}

/// The speaker's state; [`Speaker::run`] drives it.
pub struct Speaker {
    settings: SpeakerSettings,
    rib: Rib,
    peers: HashMap<IpAddr, Peer>,
    by_id: HashMap<PeerId, IpAddr>,
    /// Dynamic-neighbor ranges by index (`None`: removed by a reload).
    dynamic: Vec<Option<DynamicSpec>>,
    /// Connections accepted from a dynamic range, with the range's index.
    accepted_tx: mpsc::Sender<(usize, Accepted)>,
    accepted: mpsc::Receiver<(usize, Accepted)>,
    events_tx: mpsc::Sender<SessionEvent>,
    events: mpsc::Receiver<SessionEvent>,
    fib: Outbox,
    listener: Option<Arc<bgp::Listener>>,
    /// Static routes added with `route add` (for `route del` to refuse other prefixes).
    statics: Vec<IpNet>,
    /// End-of-RIB waits for [`Command::LocalSynced`].
    hold_end_of_rib: bool,
    /// Peers Established meanwhile, owed their End-of-RIB.
    end_of_rib_owed: Vec<IpAddr>,
    /// BFD, for peers that run it.
    bfd: Option<BfdHandle>,
}

impl Speaker {
    /// A speaker with no peers. `fib` receives the dataplane work; `listener`, if any,
    /// hands over the connections of configured and dynamic peers.
    pub fn new(
        settings: SpeakerSettings,
        fib: mpsc::Sender<Work>,
        listener: Option<Arc<bgp::Listener>>,
    ) -> Self {
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (accepted_tx, accepted) = mpsc::channel(16);
        let mut rib = Rib::new(settings.rib.clone());
        rib.track_fib_changes();
        Speaker {
            rib,
            settings,
            peers: HashMap::new(),
            by_id: HashMap::new(),
            dynamic: Vec::new(),
            accepted_tx,
            accepted,
            events_tx,
            events,
            fib: Outbox::new(fib),
            listener,
            statics: Vec::new(),
            hold_end_of_rib: false,
            end_of_rib_owed: Vec::new(),
            bfd: None,
        }
    }

    /// The BFD manager that runs the sessions of peers with [`PeerSpec::bfd`]; its
    /// events come back as [`Command::Bfd`].
    pub fn set_bfd(&mut self, bfd: BfdHandle) {
        self.bfd = Some(bfd);
    }

    /// Holds End-of-RIB back until [`Command::LocalSynced`]: after a restart, a peer
    /// that is our graceful-restart helper removes whatever we have not re-advertised
    /// when End-of-RIB arrives, so it must not come before our local routes (pods
    /// learned from the kernel) are all in the RIB.
    pub fn defer_end_of_rib(&mut self) {
        self.hold_end_of_rib = true;
    }

    /// Adds a configured peer and starts its session.
    pub fn add_peer(&mut self, spec: PeerSpec) -> anyhow::Result<()> {
        let addr = spec.session.remote_addr;
        let id = self.rib.add_peer(spec.rib.clone())?;
        let handle = Session::spawn(
            spec.session.clone(),
            self.settings.local,
            self.events_tx.clone(),
            spec.enabled,
        )
        .map_err(|e| anyhow::anyhow!("peer {}: {e}", spec.name))?;
        if let Some(l) = &self.listener {
            l.add_peer(
                addr,
                spec.session.md5_password.as_deref(),
                handle.incoming(),
            )?;
        }
        self.by_id.insert(id, addr);
        self.peers.insert(addr, Peer::new(spec, id, handle));
        Ok(())
    }

    /// Adds a dynamic-neighbor range: connections the listener accepts from it become
    /// peers made from its template. Must run inside the tokio runtime.
    pub fn add_dynamic(&mut self, spec: DynamicSpec) -> anyhow::Result<()> {
        let index = self.dynamic.len();
        if let Some(l) = &self.listener {
            let (tx, mut rx) = mpsc::channel(16);
            l.add_range(
                spec.range,
                spec.template.session.md5_password.as_deref(),
                tx,
            )?;
            let to = self.accepted_tx.clone();
            // Ends when the range is removed from the listener (its sender dropped).
            tokio::spawn(async move {
                while let Some(acc) = rx.recv().await {
                    if to.send((index, acc)).await.is_err() {
                        return;
                    }
                }
            });
        }
        self.dynamic.push(Some(spec));
        Ok(())
    }

    /// Runs until `commands` closes.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let fib = self.fib.sender();
        loop {
            let gr_deadline = self.peers.values().filter_map(|p| p.stale_deadline).min();
            let fib_waiting = self.fib.has_waiting(&self.rib);
            tokio::select! {
                Ok(permit) = fib.reserve(), if fib_waiting => self.fib.send_next(permit, &mut self.rib),
                Some(ev) = self.events.recv() => self.on_session_event(ev).await,
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                Some((range, acc)) = self.accepted.recv() => self.on_dynamic(range, acc).await,
                _ = sleep_until(gr_deadline), if gr_deadline.is_some() => self.on_stale_timer().await,
            }
            // Back to the scheduler after every event. While a table arrives the events
            // are always ready, and tokio would run this task ~128 of them (100 ms and
            // more) before it yields; meanwhile what it woke (the session it took the
            // UPDATEs from, the CLI it answered) waits in this worker's LIFO slot, which
            // no other worker takes from. Yielding lets them run, on either worker.
            tokio::task::yield_now().await;
        }
        for (_, p) in self.peers.drain() {
            p.handle.shutdown().await;
        }
    }

    // ---- sessions ----

    async fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Established {
                peer,
                negotiated,
                sender,
            } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let local = negotiated.local_addr.ip().to_canonical();
                let mut session =
                    PeerSession::new(negotiated.peer_id, local, negotiated.families.clone());
                if let IpAddr::V6(g) = local {
                    session = session.with_ipv6_next_hop(g, None);
                }
                let unpreserved = p.established(
                    negotiated.clone(),
                    sender,
                    session.clone(),
                    self.settings.stale_time,
                );
                let id = p.id;
                // BFD starts with the session: its local address is known now.
                if let (Some(config), Some(bfd)) = (p.spec.bfd, &self.bfd) {
                    let name = p.spec.name.clone();
                    if let Err(e) = bfd.add_session(peer, local, config).await {
                        warn!("peer {name}: BFD session: {e}");
                    }
                }
                if let Err(e) = self.rib.peer_up(id, session) {
                    warn!("peer {peer}: {e}");
                    return;
                }
                for family in unpreserved {
                    info!(
                        "peer {peer}: back without forwarding state for {family}: removing its stale routes"
                    );
                    let changes = self.rib.sweep_stale(id, family).unwrap_or_default();
                    self.publish(changes).await;
                }
                // The initial table, then End-of-RIB for every family (RFC 4724 4.1),
                // unless local routes are still being learned (they follow as updates).
                for family in negotiated.families.clone() {
                    self.export_all(peer, family).await;
                }
                if self.hold_end_of_rib {
                    self.end_of_rib_owed.push(peer);
                } else if let Some(p) = self.peers.get(&peer) {
                    p.send(export::end_of_rib(&negotiated.families, &p.codec()))
                        .await;
                }
            }
            SessionEvent::Updates { peer, updates } => {
                // Published in chunks as they come: a batch of UPDATEs may carry 200,000
                // routes, whose changes need not all sit in memory at once.
                let mut changes = Vec::new();
                for u in updates {
                    append(&mut changes, self.import(peer, u).await);
                    if changes.len() >= FIB_CHUNK {
                        self.publish(std::mem::take(&mut changes)).await;
                    }
                }
                self.check_max_prefix(peer).await;
                self.publish(changes).await;
            }
            SessionEvent::RouteRefresh { peer, refresh } => {
                if refresh.subtype != RouteRefreshSubtype::Request {
                    return;
                }
                let Some(p) = self.peers.get(&peer) else {
                    return;
                };
                let id = p.id;
                match self.rib.resend(id, refresh.family) {
                    Ok(adv) => {
                        if let Some(p) = self.peers.get(&peer) {
                            p.send(export::encode(&adv, &p.families(), &p.codec()))
                                .await;
                            p.send(export::end_of_rib(&[refresh.family], &p.codec()))
                                .await;
                        }
                    }
                    Err(e) => warn!("peer {peer}: route refresh: {e}"),
                }
            }
            SessionEvent::Down { peer, info } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let id = p.id;
                let retained: Vec<Family> = if info.retain_routes() {
                    info.negotiated
                        .as_ref()
                        .and_then(|n| n.peer_graceful_restart.as_ref())
                        .map(|gr| gr.families.iter().map(|f| f.family).collect())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                let restart_time = info
                    .negotiated
                    .as_ref()
                    .and_then(|n| n.peer_graceful_restart.as_ref())
                    .map_or(0, |gr| gr.restart_time);
                p.down(&retained, Duration::from_secs(u64::from(restart_time)));
                if !info.was_established {
                    return;
                }
                if retained.is_empty() {
                    // Shrink the groups before the route changes arrive (no per-route writes).
                    self.fib.push(Work::PeerDown(id));
                } else {
                    info!(
                        "peer {peer}: graceful restart: keeping its routes ({} families) for up to {restart_time} s",
                        retained.len()
                    );
                }
                let started = Instant::now();
                match self.rib.peer_down(id, &retained) {
                    Ok(changes) => {
                        let n = changes.len();
                        self.publish(changes).await;
                        if n > 0 {
                            info!(
                                "peer {peer}: down: {n} Loc-RIB changes in {:.1} ms",
                                started.elapsed().as_secs_f64() * 1e3
                            );
                        }
                    }
                    Err(e) => warn!("peer {peer}: {e}"),
                }
                if self.peers.get(&peer).is_some_and(|p| p.dynamic.is_some()) {
                    self.remove_dynamic_peer(peer).await;
                }
            }
        }
    }

    /// Applies one received UPDATE to the RIB.
    async fn import(&mut self, peer: IpAddr, u: Update) -> Vec<RibChange> {
        let Some(p) = self.peers.get_mut(&peer) else {
            return Vec::new();
        };
        let id = p.id;
        for issue in &u.issues {
            warn!(
                "peer {}: RFC 7606: {:?} {:?}: {}",
                p.spec.name, issue.action, issue.attribute, issue.reason
            );
        }
        if let Some(family) = u.end_of_rib_family() {
            p.end_of_rib(family);
            info!("peer {}: End-of-RIB {family}", p.spec.name);
            return self.rib.sweep_stale(id, family).unwrap_or_default();
        }
        let mut changes = Vec::new();
        let withdraw_all = u.treat_as_withdraw();
        let mut withdrawn: Vec<IpNet> = u.withdrawn.iter().map(|n| IpNet::V4(*n)).collect();
        if let Some(mp) = &u.mp_unreach {
            withdrawn.extend(mp.withdrawn.iter().copied());
        }
        if withdraw_all {
            withdrawn.extend(u.nlri.iter().map(|n| IpNet::V4(*n)));
            if let Some(mp) = &u.mp_reach {
                withdrawn.extend(mp.nlri.iter().copied());
            }
        }
        if !withdrawn.is_empty() {
            append(
                &mut changes,
                self.rib.withdraw(id, &withdrawn).unwrap_or_default(),
            );
        }
        if withdraw_all {
            return changes;
        }
        let Some(attrs) = u.attributes else {
            return changes;
        };
        let ebgp = self.rib.is_ebgp(id).unwrap_or(true);
        let Some(mut filter) = self
            .peers
            .get(&peer)
            .and_then(|p| import_filter(&self.settings, p, ebgp))
        else {
            return changes;
        };
        if !u.nlri.is_empty()
            && let Some(ra) = RouteAttrs::from_ipv4_update(attrs.clone())
        {
            let prefixes: Vec<IpNet> = u.nlri.iter().map(|n| IpNet::V4(*n)).collect();
            append(
                &mut changes,
                self.rib
                    .announce(id, &prefixes, ra, &mut filter)
                    .unwrap_or_default(),
            );
        }
        if let Some(mp) = u.mp_reach
            && !mp.nlri.is_empty()
        {
            let ra = RouteAttrs::new(attrs, mp.next_hop);
            append(
                &mut changes,
                self.rib
                    .announce(id, &mp.nlri, ra, &mut filter)
                    .unwrap_or_default(),
            );
        }
        changes
    }

    async fn check_max_prefix(&mut self, peer: IpAddr) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(mp) = p.spec.session.max_prefix else {
            return;
        };
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let accepted = self.rib.peer_counts(p.id, family).map_or(0, |c| c.accepted);
            let accepted = u32::try_from(accepted).unwrap_or(u32::MAX);
            if accepted > mp.limit {
                warn!(
                    "peer {}: {accepted} {family} prefixes exceed the limit of {}: closing the session (RFC 4486)",
                    p.spec.name, mp.limit
                );
                let _ = p.handle.max_prefix_exceeded(family, mp.limit).await;
                return;
            }
            if accepted >= mp.warning_count() && !p.max_prefix_warned {
                p.max_prefix_warned = true;
                warn!(
                    "peer {}: {accepted} {family} prefixes, {}% of the limit {}",
                    p.spec.name, mp.warning_threshold_pct, mp.limit
                );
            }
        }
    }

    async fn on_stale_timer(&mut self) {
        let now = Instant::now();
        let expired: Vec<(IpAddr, PeerId, Vec<Family>)> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.stale_deadline.is_some_and(|d| d <= now))
            .map(|(a, p)| (*a, p.id, p.take_stale()))
            .collect();
        for (addr, id, families) in expired {
            info!("peer {addr}: graceful restart timer expired: removing its stale routes");
            for f in families {
                let changes = self.rib.sweep_stale(id, f).unwrap_or_default();
                self.publish(changes).await;
            }
        }
    }

    /// Sends changes to the FIB programmer and to every established peer.
    async fn publish(&mut self, changes: Vec<RibChange>) {
        if changes.is_empty() {
            return;
        }
        let targets: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.sender.is_some())
            .map(|(a, _)| *a)
            .collect();
        for addr in targets {
            let Some(p) = self.peers.get(&addr) else {
                continue;
            };
            let (id, ebgp) = (p.id, self.rib.is_ebgp(p.id).unwrap_or(true));
            let Some(mut filter) = export_filter(&self.settings, &self.dynamic, p, ebgp) else {
                continue;
            };
            match self.rib.export(id, &changes, &mut filter) {
                Ok(adv) if !adv.is_empty() => {
                    p.send(export::encode(&adv, &p.families(), &p.codec()))
                        .await;
                }
                Ok(_) => {}
                Err(e) => warn!("peer {addr}: export: {e}"),
            }
        }
        // The RIB has queued the changed prefixes for the programmer.
        self.fib.flush(&mut self.rib);
    }

    async fn export_all(&mut self, addr: IpAddr, family: Family) {
        let Some(p) = self.peers.get(&addr) else {
            return;
        };
        let (id, ebgp) = (p.id, self.rib.is_ebgp(p.id).unwrap_or(true));
        let Some(mut filter) = export_filter(&self.settings, &self.dynamic, p, ebgp) else {
            return;
        };
        match self.rib.export_all(id, family, &mut filter) {
            Ok(adv) => {
                p.send(export::encode(&adv, &p.families(), &p.codec()))
                    .await
            }
            Err(e) => warn!("peer {addr}: export: {e}"),
        }
    }

    // ---- commands ----

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request(req, out) => self.on_request(req, out).await,
            Command::Originate { prefix, target } => self.originate(prefix, target).await,
            Command::WithdrawLocal { prefix } => self.withdraw_local(prefix).await,
            Command::Reconfigure(new, done) => {
                let report = self.reconfigure(*new).await;
                let _ = done.send(report);
            }
            Command::Bfd { peer, up } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                if p.spec.bfd.is_none() {
                    return;
                }
                p.bfd_up = Some(up);
                if !up && p.sender.is_some() {
                    warn!(
                        "peer {}: BFD down: closing the session (RFC 9384)",
                        p.spec.name
                    );
                    let _ = p.handle.bfd_down().await;
                }
            }
            Command::LocalSynced => {
                self.hold_end_of_rib = false;
                for addr in std::mem::take(&mut self.end_of_rib_owed) {
                    if let Some(p) = self.peers.get(&addr) {
                        p.send(export::end_of_rib(&p.families(), &p.codec())).await;
                    }
                }
            }
        }
    }

    async fn originate(&mut self, prefix: IpNet, target: LocalTarget) {
        let prefix = prefix.trunc();
        self.fib.push(Work::LocalTarget(prefix, Some(target)));
        let next_hop = match prefix {
            IpNet::V4(_) => MpNextHop::Ipv4(Ipv4Addr::UNSPECIFIED),
            IpNet::V6(_) => MpNextHop::Ipv6 {
                global: Ipv6Addr::UNSPECIFIED,
                link_local: None,
            },
        };
        let attrs = RouteAttrs::new(
            PathAttributes {
                origin: Origin::Igp,
                ..PathAttributes::default()
            },
            next_hop,
        );
        let changes = self.rib.originate(&[prefix], attrs);
        self.publish(changes).await;
    }

    async fn withdraw_local(&mut self, prefix: IpNet) {
        let prefix = prefix.trunc();
        let changes = self.rib.withdraw_local(&[prefix]);
        self.publish(changes).await;
        self.fib.push(Work::LocalTarget(prefix, None));
    }

    async fn on_dynamic(&mut self, range: usize, acc: Accepted) {
        let Some(Some(spec)) = self.dynamic.get(range) else {
            return;
        };
        let addr = acc.remote.ip().to_canonical();
        if let Some(p) = self.peers.get(&addr) {
            // A known dynamic peer reconnecting: hand the connection to its session.
            let _ = p.handle.incoming().send(acc).await;
            return;
        }
        let active = self
            .peers
            .values()
            .filter(|p| p.dynamic == Some(range))
            .count();
        if active >= spec.limit {
            warn!(
                "dynamic neighbors {}: limit of {} sessions reached, refusing {addr}",
                spec.name, spec.limit
            );
            return;
        }
        let net = spec.range;
        let mut peer = spec.template.clone();
        peer.name = format!("{}-{addr}", spec.name);
        peer.session.remote_addr = addr;
        peer.session.passive = true;
        peer.rib.address = addr;
        let name = peer.name.clone();
        if let Err(e) = self.add_peer(peer) {
            warn!("dynamic neighbor {name}: {e}");
            return;
        }
        if let Some(p) = self.peers.get_mut(&addr) {
            p.dynamic = Some(range);
            info!("dynamic neighbor {name} accepted from range {net}");
            let _ = p.handle.incoming().send(acc).await;
        }
    }

    async fn remove_dynamic_peer(&mut self, addr: IpAddr) {
        let Some(p) = self.peers.remove(&addr) else {
            return;
        };
        self.by_id.remove(&p.id);
        if let Some(l) = &self.listener {
            let _ = l.remove_peer(addr);
        }
        if let Ok(changes) = self.rib.remove_peer(p.id) {
            self.publish(changes).await;
        }
        p.handle.shutdown().await;
    }

    async fn on_request(&mut self, req: Request, out: ReplySink) {
        let reply = |message: String| Reply::Error { message };
        match req {
            Request::ShowNeighbors => {
                let mut list: Vec<&Peer> = self.peers.values().collect();
                list.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
                let views: Vec<Reply> = list
                    .into_iter()
                    .map(|p| Reply::Neighbor(show::summary(p, &self.rib)))
                    .collect();
                stream(out, views);
            }
            Request::ShowNeighbor { neighbor } => match self.find(&neighbor) {
                Some(p) => {
                    let d = show::detail(p, &self.rib, &self.settings);
                    stream(out, vec![Reply::NeighborDetail(Box::new(d))]);
                }
                None => stream(out, vec![reply(format!("no neighbor {neighbor}"))]),
            },
            Request::ShowRoutes { prefix } => {
                let names: HashMap<PeerId, String> = self
                    .peers
                    .values()
                    .map(|p| (p.id, p.spec.name.clone()))
                    .collect();
                let views = show::routes(&self.rib, prefix, &names);
                stream(out, views.into_iter().map(Reply::Route).collect());
            }
            Request::NeighborReset { neighbor, message } => {
                let text = message.unwrap_or_default();
                let r = self.admin(&neighbor, Admin::Reset(&text)).await;
                stream(out, vec![r]);
            }
            Request::NeighborDisable { neighbor, message } => {
                let text = message.unwrap_or_default();
                let r = self.admin(&neighbor, Admin::Disable(&text)).await;
                stream(out, vec![r]);
            }
            Request::NeighborEnable { neighbor } => {
                let r = self.admin(&neighbor, Admin::Enable).await;
                stream(out, vec![r]);
            }
            Request::RouteAdd { prefix } => {
                let prefix = prefix.trunc();
                if !self.statics.contains(&prefix) {
                    self.statics.push(prefix);
                }
                self.originate(prefix, LocalTarget::Kernel).await;
                stream(
                    out,
                    vec![Reply::Done {
                        message: format!("originating {prefix}"),
                    }],
                );
            }
            Request::RouteDel { prefix } => {
                let prefix = prefix.trunc();
                let Some(i) = self.statics.iter().position(|p| *p == prefix) else {
                    stream(
                        out,
                        vec![reply(format!("{prefix} was not added with `route add`"))],
                    );
                    return;
                };
                self.statics.remove(i);
                self.withdraw_local(prefix).await;
                stream(
                    out,
                    vec![Reply::Done {
                        message: format!("withdrew {prefix}"),
                    }],
                );
            }
            other => stream(
                out,
                vec![reply(format!("{other:?}: not handled by the speaker"))],
            ),
        }
    }

    async fn admin(&self, neighbor: &str, op: Admin<'_>) -> Reply {
        let Some(p) = self.find(neighbor) else {
            return Reply::Error {
                message: format!("no neighbor {neighbor}"),
            };
        };
        let name = &p.spec.name;
        let (r, what) = match op {
            Admin::Reset(text) => (p.handle.reset(text, false).await, "reset"),
            Admin::Disable(text) => (p.handle.disable(text).await, "disabled"),
            Admin::Enable => (p.handle.enable().await, "enabled"),
        };
        match r {
            Ok(()) => Reply::Done {
                message: format!("{name}: {what}"),
            },
            Err(e) => Reply::Error {
                message: format!("{name}: {e}"),
            },
        }
    }

    fn find(&self, name_or_addr: &str) -> Option<&Peer> {
        if let Ok(addr) = name_or_addr.parse::<IpAddr>() {
            return self.peers.get(&addr);
        }
        self.peers.values().find(|p| p.spec.name == name_or_addr)
    }
}

/// A peer's export filter: its policy, with the summary-only aggregates that apply to it.
fn export_filter<'a>(
    settings: &'a SpeakerSettings,
    dynamic: &[Option<DynamicSpec>],
    p: &Peer,
    ebgp: bool,
) -> Option<Suppressing<PolicyFilter<'a>>> {
    let filter = policy_filter(settings, p, p.spec.policy.export.as_deref(), ebgp, "export")?;
    let group = p
        .dynamic
        .and_then(|i| dynamic.get(i)?.as_ref().map(|d| d.name.as_str()));
    Some(Suppressing::new(
        filter,
        &settings.suppressions,
        &p.spec.name,
        group,
    ))
}

/// `p`'s import filter.
fn import_filter<'a>(
    settings: &'a SpeakerSettings,
    p: &Peer,
    ebgp: bool,
) -> Option<PolicyFilter<'a>> {
    policy_filter(settings, p, p.spec.policy.import.as_deref(), ebgp, "import")
}

/// The filter of `p`'s policy `name` (for an eBGP or iBGP session: RFC 8212 defaults),
/// or `None`, logged, if it does not resolve (the configuration checks prevent that).
fn policy_filter<'a>(
    settings: &'a SpeakerSettings,
    p: &Peer,
    name: Option<&str>,
    ebgp: bool,
    what: &str,
) -> Option<PolicyFilter<'a>> {
    match settings.routing.resolve(name, ebgp) {
        Ok(policy) => {
            let ctx = PolicyContext::new(settings.local.asn, p.session.as_ref());
            Some(settings.routing.filter(policy, ctx))
        }
        Err(e) => {
            warn!("peer {}: {what} policy: {e}", p.spec.name);
            None
        }
    }
}

/// Sends replies from their own task, so a slow client never stalls the speaker.
fn stream(out: ReplySink, replies: Vec<Reply>) {
    tokio::spawn(async move {
        for r in replies {
            if out.send(r).await.is_err() {
                return;
            }
        }
    });
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Administrative operations on a session.
enum Admin<'a> {
    Reset(&'a str),
    Disable(&'a str),
    Enable,
}

/// Appends `more` to `changes`, without copying when `changes` is empty (an UPDATE's
/// changes mostly come from one RIB call: a thousand of them are not moved twice).
fn append(changes: &mut Vec<RibChange>, more: Vec<RibChange>) {
    if changes.is_empty() {
        *changes = more;
    } else {
        changes.extend(more);
    }
}
