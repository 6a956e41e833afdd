//! One peer as the speaker sees it: its settings, session handle and graceful restart
//! state.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bgp_wire::{CodecContext, Family};
use bytes::BytesMut;
use ipnet::IpNet;

use crate::{
    bgp::{self, Negotiated, SessionHandle, UpdateSender},
    policy::PeerPolicy,
    rib::{self, PeerId, PeerSession},
};

/// A configured peer.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Name for the CLI and logs.
    pub name: String,
    /// Session settings.
    pub session: bgp::PeerConfig,
    /// RIB settings.
    pub rib: rib::PeerConfig,
    /// Import and export policy names.
    pub policy: PeerPolicy,
    /// Start enabled.
    pub enabled: bool,
    /// Run BFD with these timers once the session is Established; BFD Down closes it.
    pub bfd: Option<crate::bfd::SessionConfig>,
}

/// A range of dynamic neighbors: each accepted connection becomes a peer made from
/// `template` (its address set to the connecting one).
#[derive(Debug, Clone)]
pub struct DynamicSpec {
    /// Group name.
    pub name: String,
    /// Accepted source addresses.
    pub range: IpNet,
    /// Settings of each peer (`session.remote_as` is the accepted AS range).
    pub template: PeerSpec,
    /// Most peers at once.
    pub limit: usize,
}

/// A peer's live state.
pub(super) struct Peer {
    pub spec: PeerSpec,
    pub id: PeerId,
    pub handle: SessionHandle,
    /// Set while Established.
    pub sender: Option<UpdateSender>,
    pub negotiated: Option<Arc<Negotiated>>,
    pub session: Option<PeerSession>,
    /// Index of the dynamic range this peer came from.
    pub dynamic: Option<usize>,
    pub max_prefix_warned: bool,
    /// Families whose routes are stale (graceful restart), and until when at most.
    pub stale: Vec<Family>,
    pub stale_deadline: Option<Instant>,
    /// Last BFD state reported (`None` before the first report).
    pub bfd_up: Option<bool>,
    /// When it was configured (added at start or by a reload, or accepted from a
    /// dynamic range): readiness gives it a startup grace from then.
    pub configured_at: Instant,
}

impl Peer {
    pub fn new(spec: PeerSpec, id: PeerId, handle: SessionHandle) -> Self {
        Peer {
            spec,
            id,
            handle,
            sender: None,
            negotiated: None,
            session: None,
            dynamic: None,
            max_prefix_warned: false,
            stale: Vec::new(),
            stale_deadline: None,
            configured_at: Instant::now(),
            bfd_up: None,
        }
    }

    /// The session is Established. Back from a restart, the stale families whose
    /// forwarding state the peer says it kept wait for End-of-RIB, at most `stale_time`
    /// (the speaker's timer enforces it); the others are returned, for the caller to
    /// sweep now (RFC 4724 4.2).
    pub fn established(
        &mut self,
        negotiated: Arc<Negotiated>,
        sender: UpdateSender,
        session: PeerSession,
        stale_time: Duration,
    ) -> Vec<Family> {
        let preserved = |f: &Family| {
            negotiated.peer_graceful_restart.as_ref().is_some_and(|gr| {
                gr.families
                    .iter()
                    .any(|g| g.family == *f && g.forwarding_preserved)
            })
        };
        let (kept, dropped): (Vec<Family>, Vec<Family>) = std::mem::take(&mut self.stale)
            .into_iter()
            .partition(preserved);
        self.stale = kept;
        self.stale_deadline = (!self.stale.is_empty()).then(|| Instant::now() + stale_time);
        self.negotiated = Some(negotiated);
        self.sender = Some(sender);
        self.session = Some(session);
        self.max_prefix_warned = false;
        dropped
    }

    /// The session went down; `retained` families keep their routes (stale) for up to
    /// `restart_time`.
    pub fn down(&mut self, retained: &[Family], restart_time: Duration) {
        self.sender = None;
        self.negotiated = None;
        self.session = None;
        self.stale = retained.to_vec();
        self.stale_deadline = (!retained.is_empty()).then(|| Instant::now() + restart_time);
    }

    /// End-of-RIB received for `family`: its stale routes are swept by the caller.
    pub fn end_of_rib(&mut self, family: Family) {
        self.stale.retain(|f| *f != family);
        if self.stale.is_empty() {
            self.stale_deadline = None;
        }
    }

    /// The stale families, clearing them (timer expired).
    pub fn take_stale(&mut self) -> Vec<Family> {
        self.stale_deadline = None;
        std::mem::take(&mut self.stale)
    }

    pub fn families(&self) -> Vec<Family> {
        self.negotiated
            .as_ref()
            .map(|n| n.families.clone())
            .unwrap_or_default()
    }

    pub fn codec(&self) -> CodecContext {
        self.sender
            .as_ref()
            .map(UpdateSender::codec_context)
            .unwrap_or_default()
    }

    /// Queues encoded messages on the session (dropped if it is not Established).
    pub async fn send(&self, bytes: BytesMut) {
        if bytes.is_empty() {
            return;
        }
        if let Some(s) = &self.sender
            && let Err(e) = s.send_encoded(bytes.freeze()).await
        {
            tracing::debug!("peer {}: send: {e}", self.spec.name);
        }
    }
}
