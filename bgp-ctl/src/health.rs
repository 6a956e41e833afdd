//! Liveness and readiness of the agent, computed from a snapshot of its state.
//!
//! Pure: the daemon fills a [`HealthInput`] (config, uplinks, peers, its event loop's
//! last progress, the current time) and [`evaluate`] says whether the agent is live and
//! ready, naming every condition that fails. `bgp-ctl health`, `/healthz` and `/readyz`
//! all print the same [`Health::one_line`], so a probe that says "not ready" says why.

use std::{
    fmt,
    time::{Duration, Instant},
};

use crate::fib::AttachMode;

/// `bgp-ctl health` exit code: ready.
pub const EXIT_READY: u8 = 0;
/// `bgp-ctl health` exit code: the daemon answered, and is not ready (or not live).
pub const EXIT_NOT_READY: u8 = 1;
/// `bgp-ctl health` exit code: the daemon did not answer on its control socket.
pub const EXIT_UNREACHABLE: u8 = 2;

/// Whether the configuration is in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigStatus {
    /// A configuration was loaded and applied.
    Loaded,
    /// None is in force yet; the reason says why (e.g. the parse error of the file).
    NotLoaded(String),
}

/// One configured uplink and its XDP attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkStatus {
    /// Interface name.
    pub name: String,
    /// The mode the configuration asks for.
    pub want: AttachMode,
    /// The mode the program is attached in now, `None` if it is not attached.
    pub attached: Option<AttachMode>,
}

/// One configured peer and its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's configured name (or its address when it has none).
    pub name: String,
    /// The session is in the Established state.
    pub established: bool,
    /// The session's state as shown to people (`Idle`, `Active`, `OpenSent`, ...).
    pub state: String,
    /// Created by a dynamic-neighbor range: never required for readiness.
    pub dynamic: bool,
    /// When the peer was configured (daemon start, or the reload that added it).
    pub configured_at: Instant,
    /// How long after `configured_at` the peer may stay down without making the agent
    /// not ready.
    pub startup_grace: Duration,
}

/// Everything readiness and liveness depend on, at one instant.
#[derive(Clone, Debug)]
pub struct HealthInput {
    /// The configuration.
    pub config: ConfigStatus,
    /// Every configured uplink.
    pub uplinks: Vec<UplinkStatus>,
    /// Every configured peer, dynamic ones included (they are skipped).
    pub peers: Vec<PeerStatus>,
    /// The last time the daemon's event loop made progress.
    pub last_progress: Instant,
    /// How long the event loop may go without progress before the agent is not live.
    pub stall_limit: Duration,
    /// The time of the snapshot.
    pub now: Instant,
}

/// A failing condition. Each has a stable [`name`](Condition::name) that scripts and
/// alerts can match, and a one-line [`Display`](fmt::Display) for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `config-not-loaded`: no configuration is in force.
    ConfigNotLoaded {
        /// Why (e.g. the parse error).
        reason: String,
    },
    /// `uplink-not-attached:<iface>`: the XDP program is not attached to a configured
    /// uplink.
    UplinkNotAttached {
        /// The interface.
        iface: String,
        /// The mode the configuration asks for.
        want: AttachMode,
    },
    /// `uplink-wrong-mode:<iface>`: attached, but not in the configured mode (e.g.
    /// generic XDP where native was asked for: forwarding works, slowly).
    UplinkWrongMode {
        /// The interface.
        iface: String,
        /// The configured mode.
        want: AttachMode,
        /// The mode it is attached in.
        have: AttachMode,
    },
    /// `peer-not-established:<peer>`: a configured, non-dynamic peer has not been
    /// Established for longer than its startup grace.
    PeerNotEstablished {
        /// The peer.
        peer: String,
        /// Its session state.
        state: String,
        /// How long since it was configured.
        down_for: Duration,
        /// Its startup grace.
        grace: Duration,
    },
    /// `event-loop-stalled`: the daemon's event loop made no progress for longer than
    /// the stall limit. The only condition that makes the agent not live.
    EventLoopStalled {
        /// How long since the last progress.
        stalled_for: Duration,
        /// The limit.
        limit: Duration,
    },
}

impl Condition {
    /// The stable name: `config-not-loaded`, `uplink-not-attached:eth0`,
    /// `uplink-wrong-mode:eth0`, `peer-not-established:leaf1`, `event-loop-stalled`.
    pub fn name(&self) -> String {
        match self {
            Self::ConfigNotLoaded { .. } => "config-not-loaded".to_owned(),
            Self::UplinkNotAttached { iface, .. } => format!("uplink-not-attached:{iface}"),
            Self::UplinkWrongMode { iface, .. } => format!("uplink-wrong-mode:{iface}"),
            Self::PeerNotEstablished { peer, .. } => format!("peer-not-established:{peer}"),
            Self::EventLoopStalled { .. } => "event-loop-stalled".to_owned(),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Self::ConfigNotLoaded { reason } => write!(f, "{name} ({})", one_line(reason)),
            Self::UplinkNotAttached { want, .. } => {
                write!(f, "{name} (XDP program not attached, want {want} mode)")
            }
            Self::UplinkWrongMode { want, have, .. } => {
                write!(f, "{name} (attached in {have} mode, want {want})")
            }
            Self::PeerNotEstablished {
                state,
                down_for,
                grace,
                ..
            } => write!(
                f,
                "{name} ({state} for {}s, startup grace {}s)",
                down_for.as_secs(),
                grace.as_secs()
            ),
            Self::EventLoopStalled { stalled_for, limit } => write!(
                f,
                "{name} (no progress for {}s, limit {}s)",
                stalled_for.as_secs(),
                limit.as_secs()
            ),
        }
    }
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The daemon works (its event loop makes progress): a liveness probe passes.
    pub live: bool,
    /// Config loaded, every uplink attached as configured, every required peer up or
    /// still within its grace: a readiness probe passes.
    pub ready: bool,
    /// Every failing condition, in a stable order (config, uplinks, peers, event loop).
    pub failing: Vec<Condition>,
    /// Required peers (non-dynamic) and how many of them are Established.
    pub peers_required: usize,
    /// Of `peers_required`, Established now.
    pub peers_established: usize,
    /// Required peers down but still within their startup grace.
    pub peers_starting: usize,
    /// Configured uplinks.
    pub uplinks: usize,
}

impl Health {
    /// The `bgp-ctl health` exit code: [`EXIT_READY`] or [`EXIT_NOT_READY`].
    pub fn exit_code(&self) -> u8 {
        if self.ready && self.live {
            EXIT_READY
        } else {
            EXIT_NOT_READY
        }
    }

    /// One line for people and probes: `ready: ...` or `not ready: <every failing
    /// condition>`.
    pub fn one_line(&self) -> String {
        if self.failing.is_empty() {
            let mut s = format!(
                "ready: config loaded, {} uplink{} attached, {}/{} peers established",
                self.uplinks,
                plural(self.uplinks),
                self.peers_established,
                self.peers_required
            );
            if self.peers_starting > 0 {
                s.push_str(&format!(", {} within startup grace", self.peers_starting));
            }
            s
        } else {
            let what: Vec<String> = self.failing.iter().map(ToString::to_string).collect();
            let verdict = if self.live { "not ready" } else { "not live" };
            format!("{verdict}: {}", what.join("; "))
        }
    }

    /// The liveness line: `live` or `not live: event-loop-stalled (...)`.
    pub fn live_line(&self) -> String {
        let stalls: Vec<String> = self
            .failing
            .iter()
            .filter(|c| matches!(c, Condition::EventLoopStalled { .. }))
            .map(ToString::to_string)
            .collect();
        if stalls.is_empty() {
            "live".to_owned()
        } else {
            format!("not live: {}", stalls.join("; "))
        }
    }
}

/// Evaluates every condition.
pub fn evaluate(input: &HealthInput) -> Health {
    let mut failing = Vec::new();
    if let ConfigStatus::NotLoaded(reason) = &input.config {
        failing.push(Condition::ConfigNotLoaded {
            reason: reason.clone(),
        });
    }
    for u in &input.uplinks {
        match u.attached {
            None => failing.push(Condition::UplinkNotAttached {
                iface: u.name.clone(),
                want: u.want,
            }),
            Some(have) if have != u.want => failing.push(Condition::UplinkWrongMode {
                iface: u.name.clone(),
                want: u.want,
                have,
            }),
            Some(_) => {}
        }
    }
    let (mut required, mut established, mut starting) = (0, 0, 0);
    for p in input.peers.iter().filter(|p| !p.dynamic) {
        required += 1;
        if p.established {
            established += 1;
            continue;
        }
        // A clock step or a snapshot taken before `configured_at` counts as no time.
        let down_for = input.now.saturating_duration_since(p.configured_at);
        if down_for < p.startup_grace {
            starting += 1;
        } else {
            failing.push(Condition::PeerNotEstablished {
                peer: p.name.clone(),
                state: p.state.clone(),
                down_for,
                grace: p.startup_grace,
            });
        }
    }
    let stalled_for = input.now.saturating_duration_since(input.last_progress);
    let live = stalled_for <= input.stall_limit;
    if !live {
        failing.push(Condition::EventLoopStalled {
            stalled_for,
            limit: input.stall_limit,
        });
    }
    Health {
        live,
        ready: failing.is_empty(),
        failing,
        peers_required: required,
        peers_established: established,
        peers_starting: starting,
        uplinks: input.uplinks.len(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A reason on one line: a multi-line parse error must not break the one-line contract.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    /// A healthy agent: config loaded, eth0 and eth1 attached in driver mode, two
    /// leaves Established, one dynamic peer down, configured 100 s ago.
    fn healthy(t0: Instant) -> HealthInput {
        let peer = |name: &str, established: bool, dynamic: bool| PeerStatus {
            name: name.to_owned(),
            established,
            state: if established { "Established" } else { "Active" }.to_owned(),
            dynamic,
            configured_at: t0,
            startup_grace: GRACE,
        };
        let uplink = |name: &str| UplinkStatus {
            name: name.to_owned(),
            want: AttachMode::Driver,
            attached: Some(AttachMode::Driver),
        };
        HealthInput {
            config: ConfigStatus::Loaded,
            uplinks: vec![uplink("eth0"), uplink("eth1")],
            peers: vec![
                peer("leaf1", true, false),
                peer("leaf2", true, false),
                peer("pod-range", false, true),
            ],
            last_progress: t0 + Duration::from_secs(99),
            stall_limit: Duration::from_secs(10),
            now: t0 + Duration::from_secs(100),
        }
    }

    #[test]
    fn a_healthy_agent_is_ready_and_live() {
        let h = evaluate(&healthy(Instant::now()));
        assert!(h.ready && h.live, "{h:?}");
        assert_eq!(h.exit_code(), EXIT_READY);
        assert_eq!(
            h.one_line(),
            "ready: config loaded, 2 uplinks attached, 2/2 peers established"
        );
        assert_eq!(h.live_line(), "live");
    }

    /// Table: each failing condition alone, its stable name, the verdicts and the exit code.
    #[test]
    fn each_failing_condition_is_named_with_a_non_zero_exit() {
        type Breaker = fn(&mut HealthInput, Instant);
        let table: &[(&str, Breaker, &str, bool)] = &[
            (
                "config not loaded",
                |i, _| {
                    i.config = ConfigStatus::NotLoaded(
                        "/etc/bgp-ctl/bgp-ctl.toml line 3:\n  unknown key `asm`".into(),
                    )
                },
                "config-not-loaded",
                true,
            ),
            (
                "uplink not attached",
                |i, _| i.uplinks[1].attached = None,
                "uplink-not-attached:eth1",
                true,
            ),
            (
                "uplink in generic mode",
                |i, _| i.uplinks[0].attached = Some(AttachMode::Skb),
                "uplink-wrong-mode:eth0",
                true,
            ),
            (
                "peer down past its grace",
                |i, _| {
                    i.peers[0].established = false;
                    i.peers[0].state = "Active".into();
                },
                "peer-not-established:leaf1",
                true,
            ),
            (
                "event loop stalled",
                |i, t0| i.last_progress = t0 + Duration::from_secs(50),
                "event-loop-stalled",
                false,
            ),
        ];
        for (what, breaker, name, still_live) in table {
            let t0 = Instant::now();
            let mut input = healthy(t0);
            breaker(&mut input, t0);
            let h = evaluate(&input);
            let names: Vec<String> = h.failing.iter().map(Condition::name).collect();
            assert_eq!(names, vec![name.to_string()], "{what}");
            assert!(!h.ready, "{what}: ready");
            assert_eq!(h.live, *still_live, "{what}: live");
            assert_ne!(h.exit_code(), EXIT_READY, "{what}: exit code");
            let line = h.one_line();
            assert!(line.contains(name), "{what}: `{line}` names {name}");
            assert!(!line.contains('\n'), "{what}: `{line}` is one line");
            let verdict = if *still_live {
                "not ready: "
            } else {
                "not live: "
            };
            assert!(line.starts_with(verdict), "{what}: `{line}`");
        }
    }

    #[test]
    fn every_failing_condition_is_named_at_once() {
        let t0 = Instant::now();
        let mut input = healthy(t0);
        input.config = ConfigStatus::NotLoaded("no such file".into());
        input.uplinks[0].attached = None;
        input.uplinks[1].attached = Some(AttachMode::Skb);
        input.peers[0].established = false;
        input.peers[0].state = "Idle".into();
        input.peers[1].established = false;
        input.peers[1].state = "OpenSent".into();
        input.last_progress = t0;
        let h = evaluate(&input);
        let names: Vec<String> = h.failing.iter().map(Condition::name).collect();
        assert_eq!(
            names,
            [
                "config-not-loaded",
                "uplink-not-attached:eth0",
                "uplink-wrong-mode:eth1",
                "peer-not-established:leaf1",
                "peer-not-established:leaf2",
                "event-loop-stalled",
            ]
        );
        assert_eq!(
            h.one_line(),
            "not live: config-not-loaded (no such file); \
             uplink-not-attached:eth0 (XDP program not attached, want driver mode); \
             uplink-wrong-mode:eth1 (attached in skb mode, want driver); \
             peer-not-established:leaf1 (Idle for 100s, startup grace 30s); \
             peer-not-established:leaf2 (OpenSent for 100s, startup grace 30s); \
             event-loop-stalled (no progress for 100s, limit 10s)"
        );
        assert_eq!(
            h.live_line(),
            "not live: event-loop-stalled (no progress for 100s, limit 10s)"
        );
    }

    #[test]
    fn a_peer_within_its_startup_grace_does_not_fail_readiness() {
        let t0 = Instant::now();
        let mut input = healthy(t0);
        input.peers[0].established = false;
        // Added by a reload 10 s ago: 20 s of grace left.
        input.peers[0].configured_at = input.now - Duration::from_secs(10);
        let h = evaluate(&input);
        assert!(h.ready, "{h:?}");
        assert_eq!(
            h.one_line(),
            "ready: config loaded, 2 uplinks attached, 1/2 peers established, 1 within startup grace"
        );
        // The grace ends: the same peer now fails readiness.
        input.now = input.peers[0].configured_at + GRACE;
        input.last_progress = input.now;
        let h = evaluate(&input);
        assert!(!h.ready);
        assert_eq!(h.failing.len(), 1);
        assert_eq!(h.failing[0].name(), "peer-not-established:leaf1");
    }

    #[test]
    fn dynamic_peers_never_fail_readiness() {
        // `pod-range` has been down for 100 s, past its grace: only being dynamic
        // keeps it out of readiness.
        let mut input = healthy(Instant::now());
        let h = evaluate(&input);
        assert!(h.ready, "{h:?}");
        assert_eq!(h.peers_required, 2);
        input.peers[2].dynamic = false;
        let h = evaluate(&input);
        assert_eq!(h.failing.len(), 1);
        assert_eq!(h.failing[0].name(), "peer-not-established:pod-range");
    }
}
