//! Applying a reloaded configuration to the running speaker: only what changed, and
//! without resetting a session whose settings did not change.
//!
//! - A peer added starts its session; a peer removed is shut down (Cease/Peer
//!   De-configured) and its routes withdrawn.
//! - Session settings changed (timers, families, addresses, password, GTSM, graceful
//!   restart, remote AS): the session is reset (Cease/Other Configuration Change) and
//!   comes back with them.
//! - Import policy changed (its name, its definition, or a prefix list it uses): soft
//!   reconfiguration inbound, the Adj-RIB-In is run through the new policy again.
//!   Export policy changed: the Loc-RIB is exported again, sending only the difference.
//!   Neither touches the session.
//! - Max-prefix limit changed: applied from the next UPDATE, no reset.
//! - `disabled` toggled: the session is shut down or started.
//! - Multipath options: the decision runs again over the whole RIB.
//! - Our AS or router id: not applied while running (every session and the whole RIB
//!   depend on them); the report says a restart is needed.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::Duration,
};

use tracing::{info, warn};

use super::{DynamicSpec, PeerSpec, Speaker, SpeakerSettings, peer::Peer};
use crate::{api::protocol::ReloadReport, bgp, policy::RoutingPolicy, programmer::Work};

/// The parts of a reloaded configuration the speaker applies.
#[derive(Debug, Clone)]
pub struct Reconfiguration {
    /// Speaker-wide settings.
    pub settings: SpeakerSettings,
    /// The configured peers.
    pub peers: Vec<PeerSpec>,
    /// The dynamic-neighbor ranges.
    pub dynamic: Vec<DynamicSpec>,
}

/// The session settings that differ, by their config names.
fn session_changes(old: &bgp::PeerConfig, new: &bgp::PeerConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |differs: bool, name| {
        if differs {
            out.push(name);
        }
    };
    check(old.remote_as != new.remote_as, "remote-asn");
    check(old.local_as != new.local_as, "local-asn");
    check(old.local_addr != new.local_addr, "local-address");
    check(old.port != new.port, "port");
    check(old.passive != new.passive, "passive");
    check(old.md5_password != new.md5_password, "password");
    check(old.ttl_security != new.ttl_security, "ttl-security");
    check(old.ebgp_multihop != new.ebgp_multihop, "multihop");
    check(old.timers != new.timers, "timers");
    check(old.families != new.families, "families");
    check(
        old.extended_message != new.extended_message,
        "extended-message",
    );
    // The Restart State bit is the daemon's own state after a restart, not a setting.
    let gr = |c: &bgp::PeerConfig| {
        c.graceful_restart.clone().map(|mut g| {
            g.restarting = false;
            g
        })
    };
    check(gr(old) != gr(new), "graceful-restart");
    out
}

/// Names whose definitions differ between two maps (added, removed or changed).
fn changed_names<T: PartialEq>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
) -> BTreeSet<String> {
    old.keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

/// Whether the policy a peer resolves `name` to behaves differently under `new` than
/// under `old`: another definition, or a prefix list it uses changed.
fn policy_changed(
    old: &RoutingPolicy,
    new: &RoutingPolicy,
    name: Option<&str>,
    ebgp: bool,
    lists: &BTreeSet<String>,
) -> bool {
    match (old.resolve(name, ebgp), new.resolve(name, ebgp)) {
        (Ok(a), Ok(b)) => {
            a != b
                || b.terms.iter().any(|t| {
                    t.conditions
                        .prefix_list
                        .as_ref()
                        .is_some_and(|l| lists.contains(l))
                })
        }
        (Err(_), Err(_)) => false,
        _ => true,
    }
}

/// `added`, `removed` or `changed`: what became of `name` between two maps.
fn how<T>(old: &BTreeMap<String, T>, new: &BTreeMap<String, T>, name: &str) -> &'static str {
    match (old.contains_key(name), new.contains_key(name)) {
        (false, _) => "added",
        (_, false) => "removed",
        _ => "changed",
    }
}

fn describe(name: &str, what: &str) -> String {
    format!("{what} {name}")
}

impl Speaker {
    /// Applies `new`; returns what changed and which sessions were reset.
    pub(super) async fn reconfigure(&mut self, new: Reconfiguration) -> ReloadReport {
        let mut report = ReloadReport {
            changes: Vec::new(),
            sessions_reset: Vec::new(),
        };
        let Reconfiguration {
            settings,
            peers,
            dynamic,
        } = new;

        // Speaker-wide settings.
        if settings.local != self.settings.local {
            report
                .changes
                .push("asn/router-id: changed, not applied (restart the daemon to apply)".into());
        }
        let old_routing = std::mem::replace(&mut self.settings.routing, settings.routing);
        let lists = changed_names(
            &old_routing.prefix_lists,
            &self.settings.routing.prefix_lists,
        );
        let new_routing = &self.settings.routing;
        for l in &lists {
            let how = how(&old_routing.prefix_lists, &new_routing.prefix_lists, l);
            report.changes.push(format!("prefix-list {l}: {how}"));
        }
        for p in changed_names(&old_routing.policies, &new_routing.policies) {
            let how = how(&old_routing.policies, &new_routing.policies, &p);
            report.changes.push(format!("policy {p}: {how}"));
        }
        self.settings.stale_time = settings.stale_time;
        let suppressions_changed = self.settings.suppressions != settings.suppressions;
        if suppressions_changed {
            report
                .changes
                .push("summary-only aggregates: changed (exports applied again)".into());
            self.settings.suppressions = settings.suppressions;
        }
        let (old_mp, new_mp) = (self.rib.config().multipath, settings.rib.multipath);
        if old_mp != new_mp {
            let decision = self.rib.config().decision;
            let changes = self.rib.set_options(decision, new_mp);
            report.changes.push(format!(
                "multipath: max-paths {} -> {}, relax-as-path {} -> {} ({} prefixes changed)",
                old_mp.max_paths,
                new_mp.max_paths,
                old_mp.relax_neighbor_as,
                new_mp.relax_neighbor_as,
                changes.len()
            ));
            self.publish(changes).await;
        }

        // Configured peers, by address.
        let wanted: BTreeMap<IpAddr, PeerSpec> = peers
            .into_iter()
            .map(|p| (p.session.remote_addr, p))
            .collect();
        let configured: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.dynamic.is_none())
            .map(|(a, _)| *a)
            .collect();
        for addr in configured {
            if !wanted.contains_key(&addr)
                && let Some(name) = self.remove_peer(addr).await
            {
                report.changes.push(describe(&name, "peer") + ": removed");
            }
        }
        for (addr, spec) in wanted {
            let name = spec.name.clone();
            match self.peers.get(&addr) {
                None => match self.add_peer(spec) {
                    Ok(()) => report.changes.push(describe(&name, "peer") + ": added"),
                    Err(e) => report.changes.push(format!("peer {name}: not added: {e}")),
                },
                Some(p) if p.dynamic.is_some() => report.changes.push(format!(
                    "peer {name}: not added: {addr} is connected as a dynamic neighbor"
                )),
                Some(_) => {
                    self.update_peer(addr, spec, &old_routing, &lists, &mut report)
                        .await
                }
            }
        }

        if suppressions_changed {
            let established: Vec<IpAddr> = self
                .peers
                .iter()
                .filter(|(_, p)| p.sender.is_some())
                .map(|(a, _)| *a)
                .collect();
            for addr in established {
                self.reexport(addr).await;
            }
        }

        // Dynamic-neighbor ranges, by name: a changed template applies to the sessions
        // accepted from now on.
        self.reconfigure_dynamic(dynamic, &mut report).await;
        for c in &report.changes {
            info!("reload: {c}");
        }
        report
    }

    /// Applies a configured peer's new spec.
    async fn update_peer(
        &mut self,
        addr: IpAddr,
        spec: PeerSpec,
        old_routing: &RoutingPolicy,
        lists: &BTreeSet<String>,
        report: &mut ReloadReport,
    ) {
        let Some(p) = self.peers.get(&addr) else {
            return;
        };
        let old = p.spec.clone();
        let name = spec.name.clone();
        let ebgp = self.rib.is_ebgp(p.id).unwrap_or(true);
        let mut what: Vec<String> = Vec::new();
        if old.name != spec.name {
            what.push(format!("renamed from {}", old.name));
        }

        // Session settings: reset with the new ones. Max-prefix needs no reset.
        let mut old_session = old.session.clone();
        old_session.max_prefix = spec.session.max_prefix;
        let reset = session_changes(&old_session, &spec.session);
        if old.session.max_prefix != spec.session.max_prefix {
            what.push("max-prefix changed".into());
        }
        if let Err(e) = spec.session.validate() {
            report
                .changes
                .push(format!("peer {name}: not changed: {e}"));
            return;
        }
        let remote_asn_changed = old.rib.remote_asn != spec.rib.remote_asn;
        if remote_asn_changed {
            // The RIB keys a peer's identity by address and AS: start it afresh.
            if let Err(e) = self.recreate_rib_peer(addr, &spec).await {
                report.changes.push(format!("peer {name}: {e}"));
                return;
            }
        } else if old.rib != spec.rib
            && let Some(p) = self.peers.get(&addr)
            && let Err(e) = self.rib.update_peer_config(p.id, spec.rib.clone())
        {
            report.changes.push(format!("peer {name}: {e}"));
            return;
        }
        if let Some(l) = &self.listener
            && old.session.md5_password != spec.session.md5_password
            && let Some(p) = self.peers.get(&addr)
            && let Err(e) = l.add_peer(
                addr,
                spec.session.md5_password.as_deref(),
                p.handle.incoming(),
            )
        {
            warn!("peer {name}: listener password: {e}");
        }

        let import_changed = old.policy.import != spec.policy.import
            || old.rib.allowas_in != spec.rib.allowas_in
            || policy_changed(
                old_routing,
                &self.settings.routing,
                spec.policy.import.as_deref(),
                ebgp,
                lists,
            );
        let export_changed = old.policy.export != spec.policy.export
            || old.rib.rr_client != spec.rib.rr_client
            || old.rib.next_hop_self != spec.rib.next_hop_self
            || old.rib.send_med != spec.rib.send_med
            || policy_changed(
                old_routing,
                &self.settings.routing,
                spec.policy.export.as_deref(),
                ebgp,
                lists,
            );
        let enabled_changed = old.enabled != spec.enabled;
        let session_config = spec.session.clone();
        let enabled = spec.enabled;
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        p.spec = spec;
        let sent = if reset.is_empty() && old.session.max_prefix == session_config.max_prefix {
            Ok(())
        } else {
            p.handle
                .reconfigure(session_config, !reset.is_empty())
                .await
        };
        if sent.is_err() {
            warn!("peer {name}: its session task has ended");
        }
        if !reset.is_empty() || (enabled_changed && enabled) {
            // Readiness gives the new session its startup grace again.
            p.configured_at = std::time::Instant::now();
        }
        if !reset.is_empty() {
            what.push(format!("{} changed: session reset", reset.join(", ")));
            report.sessions_reset.push(name.clone());
        }
        if enabled_changed {
            let r = if enabled {
                what.push("enabled".into());
                p.handle.enable().await
            } else {
                what.push("disabled".into());
                p.handle.disable("disabled by configuration").await
            };
            if r.is_err() {
                warn!("peer {name}: its session task has ended");
            }
        }
        // Soft reconfiguration: only on a session that stays up.
        if reset.is_empty() && !remote_asn_changed {
            if import_changed {
                let n = self.reimport(addr).await;
                what.push(format!(
                    "import policy applied again ({n} prefixes changed, no reset)"
                ));
            }
            if export_changed {
                self.reexport(addr).await;
                what.push("export policy applied again (no reset)".into());
            }
        }
        if !what.is_empty() {
            report
                .changes
                .push(format!("peer {name}: {}", what.join("; ")));
        }
    }

    /// Runs a peer's Adj-RIB-In through its (new) import policy; returns the number of
    /// Loc-RIB changes.
    async fn reimport(&mut self, addr: IpAddr) -> usize {
        let Some(p) = self.peers.get(&addr) else {
            return 0;
        };
        let (id, families) = (p.id, p.families());
        let ebgp = self.rib.is_ebgp(id).unwrap_or(true);
        let Some(mut filter) = super::import_filter(&self.settings, p, ebgp) else {
            return 0;
        };
        let mut changes = Vec::new();
        for family in families {
            match self.rib.reimport(id, family, &mut filter) {
                Ok(c) => changes.extend(c),
                Err(e) => warn!("peer {addr}: reimport {family}: {e}"),
            }
        }
        let n = changes.len();
        self.publish(changes).await;
        n
    }

    /// Exports the Loc-RIB to a peer again through its (new) export policy.
    async fn reexport(&mut self, addr: IpAddr) {
        let families = self
            .peers
            .get(&addr)
            .map(Peer::families)
            .unwrap_or_default();
        for family in families {
            self.export_all(addr, family).await;
        }
    }

    /// Replaces a peer's RIB entry (its AS changed): its routes are withdrawn and it
    /// starts with a new id; the session reset that goes with it brings it back.
    async fn recreate_rib_peer(&mut self, addr: IpAddr, spec: &PeerSpec) -> anyhow::Result<()> {
        let Some(p) = self.peers.get(&addr) else {
            return Ok(());
        };
        let old_id = p.id;
        self.fib.push(Work::PeerDown(old_id));
        let changes = self.rib.remove_peer(old_id)?;
        self.publish(changes).await;
        self.by_id.remove(&old_id);
        let id = self.rib.add_peer(spec.rib.clone())?;
        self.by_id.insert(id, addr);
        if let Some(p) = self.peers.get_mut(&addr) {
            p.id = id;
            p.down(&[], Duration::ZERO);
        }
        Ok(())
    }

    /// Removes a peer: its routes go, its session is shut down. Returns its name.
    async fn remove_peer(&mut self, addr: IpAddr) -> Option<String> {
        let p = self.peers.remove(&addr)?;
        self.by_id.remove(&p.id);
        if let Some(l) = &self.listener {
            let _ = l.remove_peer(addr);
        }
        // Its next hops leave the groups first: no per-route map writes.
        self.fib.push(Work::PeerDown(p.id));
        match self.rib.remove_peer(p.id) {
            Ok(changes) => self.publish(changes).await,
            Err(e) => warn!("peer {addr}: {e}"),
        }
        // Not awaited here: the session may be waiting for room in our event queue.
        tokio::spawn(p.handle.shutdown());
        Some(p.spec.name)
    }

    async fn reconfigure_dynamic(&mut self, wanted: Vec<DynamicSpec>, report: &mut ReloadReport) {
        let mut wanted: BTreeMap<String, DynamicSpec> =
            wanted.into_iter().map(|d| (d.name.clone(), d)).collect();
        for i in 0..self.dynamic.len() {
            let Some(current) = self.dynamic[i].clone() else {
                continue;
            };
            // The listener registration: the range and its password.
            let same_range = |d: &DynamicSpec| {
                d.range == current.range
                    && d.template.session.md5_password == current.template.session.md5_password
            };
            match wanted.remove(&current.name) {
                Some(d) if same_range(&d) => {
                    if !session_changes(&current.template.session, &d.template.session).is_empty()
                        || d.template.policy != current.template.policy
                        || d.template.rib != current.template.rib
                        || d.limit != current.limit
                    {
                        report.changes.push(format!(
                            "dynamic-neighbors {}: changed (applies to sessions accepted from now on)",
                            d.name
                        ));
                        self.dynamic[i] = Some(d);
                    }
                }
                other => {
                    // Removed, or its range or password changed: its sessions end.
                    self.remove_dynamic_range(i).await;
                    match other {
                        Some(d) => {
                            report
                                .changes
                                .push(format!("dynamic-neighbors {}: range changed", d.name));
                            wanted.insert(d.name.clone(), d);
                        }
                        None => report
                            .changes
                            .push(format!("dynamic-neighbors {}: removed", current.name)),
                    }
                }
            }
        }
        for (name, d) in wanted {
            match self.add_dynamic(d) {
                Ok(()) => report
                    .changes
                    .push(format!("dynamic-neighbors {name}: added")),
                Err(e) => report
                    .changes
                    .push(format!("dynamic-neighbors {name}: not added: {e}")),
            }
        }
    }

    async fn remove_dynamic_range(&mut self, index: usize) {
        let Some(Some(spec)) = self.dynamic.get_mut(index).map(Option::take) else {
            return;
        };
        if let Some(l) = &self.listener {
            let _ = l.remove_range(spec.range);
        }
        let peers: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.dynamic == Some(index))
            .map(|(a, _)| *a)
            .collect();
        for addr in peers {
            self.remove_peer(addr).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, PrefixList};

    fn routing(list: &str, policy_default: crate::policy::Verdict) -> RoutingPolicy {
        let mut r = RoutingPolicy::default();
        r.prefix_lists.insert(
            "pods".into(),
            toml::from_str::<BTreeMap<String, PrefixList>>(&format!("pods = [\"{list}\"]"))
                .unwrap()
                .remove("pods")
                .unwrap(),
        );
        let mut p: Policy = toml::from_str(
            r#"
default = "reject"
[[terms]]
match = { prefix-list = "pods" }
then = "accept"
"#,
        )
        .unwrap();
        p.default = policy_default;
        r.policies.insert("fabric".into(), p);
        r
    }

    #[test]
    fn a_policy_changes_with_its_definition_or_a_prefix_list_it_uses() {
        use crate::policy::Verdict;
        let old = routing("permit 10.244.0.0/16 le 32", Verdict::Reject);
        let same = old.clone();
        let none = BTreeSet::new();
        assert!(!policy_changed(&old, &same, Some("fabric"), true, &none));
        assert!(!policy_changed(&old, &same, None, true, &none));

        let list = routing("permit 10.245.0.0/16 le 32", Verdict::Reject);
        let lists = changed_names(&old.prefix_lists, &list.prefix_lists);
        assert_eq!(lists, BTreeSet::from(["pods".to_string()]));
        assert!(policy_changed(&old, &list, Some("fabric"), true, &lists));
        // Built-ins use no prefix list.
        assert!(!policy_changed(
            &old,
            &list,
            Some("accept-all"),
            true,
            &lists
        ));

        let verdict = routing("permit 10.244.0.0/16 le 32", Verdict::Accept);
        assert!(policy_changed(&old, &verdict, Some("fabric"), true, &none));
        // A policy that disappears (the reload's validation refuses that first).
        assert!(policy_changed(
            &old,
            &RoutingPolicy::default(),
            Some("fabric"),
            true,
            &none
        ));
    }

    #[test]
    fn session_changes_are_named_as_in_the_config() {
        let a = bgp::PeerConfig::new("192.0.2.1".parse().unwrap(), bgp::RemoteAs::Exact(65001));
        assert!(session_changes(&a, &a.clone()).is_empty());
        let mut b = a.clone();
        b.timers.hold_time = 30;
        b.md5_password = Some("x".into());
        assert_eq!(session_changes(&a, &b), vec!["password", "timers"]);
    }
}
