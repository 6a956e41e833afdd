//! Per-peer settings: who the peer is, how to reach it, how to secure the transport, which
//! timers and capabilities to use. Plain data, checked once by [`PeerConfig::validate`].

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use bgp_wire::{Family, GracefulRestart};

use super::timers::TimerConfig;

/// The well-known BGP port.
pub const BGP_PORT: u16 = 179;

/// Longest TCP MD5 key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// What the speaker as a whole contributes to every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalInfo {
    /// The speaker's AS (a peer may override it with [`PeerConfig::local_as`]).
    pub asn: u32,
    /// The speaker's BGP identifier (router id).
    pub router_id: Ipv4Addr,
}

/// The AS a peer must announce in its OPEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteAs {
    /// Exactly this AS.
    Exact(u32),
    /// Any AS in `min..=max` (dynamic neighbors: one range of pods, each its own AS).
    Range {
        /// Lowest accepted AS.
        min: u32,
        /// Highest accepted AS.
        max: u32,
    },
}

impl RemoteAs {
    /// Whether `asn` is acceptable.
    pub fn accepts(&self, asn: u32) -> bool {
        match *self {
            RemoteAs::Exact(a) => a == asn,
            RemoteAs::Range { min, max } => (min..=max).contains(&asn),
        }
    }
}

/// Maximum-prefix limit of a peer (RFC 4486 Cease subcode 1 when exceeded); the speaker
/// counts accepted prefixes and asks the session to tear down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPrefix {
    /// Accepted prefixes above which the session is torn down.
    pub limit: u32,
    /// Percentage of `limit` at which the speaker warns (once per crossing).
    pub warning_threshold_pct: u8,
    /// Re-establish by itself after this long; `None`: stay down until an admin reset or
    /// enable.
    pub restart_after: Option<Duration>,
}

impl MaxPrefix {
    /// The count at which the warning fires.
    pub fn warning_count(&self) -> u32 {
        (u64::from(self.limit) * u64::from(self.warning_threshold_pct.min(100)) / 100) as u32
    }
}

/// Everything configured for one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's address (for a dynamic neighbor: the address it connected from).
    pub remote_addr: IpAddr,
    /// The AS the peer must announce.
    pub remote_as: RemoteAs,
    /// Our AS towards this peer, if not the speaker's.
    pub local_as: Option<u32>,
    /// Source address of outgoing connections; `None`: the kernel chooses.
    pub local_addr: Option<IpAddr>,
    /// The peer's TCP port for outgoing connections.
    pub port: u16,
    /// Never connect; only accept the peer's connections.
    pub passive: bool,
    /// TCP MD5 signature key (RFC 2385), at most 80 octets.
    pub md5_password: Option<String>,
    /// GTSM (RFC 5082): the peer is at most this many hops away. We send with TTL 255 and
    /// the kernel drops segments that arrive with a TTL below `256 - hops`.
    pub ttl_security: Option<u8>,
    /// TTL of our packets to an eBGP peer that is not directly connected (without it,
    /// eBGP uses TTL 1, iBGP 255). Exclusive with `ttl_security`.
    pub ebgp_multihop: Option<u8>,
    /// Hold, keepalive, connect-retry and damping timers.
    pub timers: TimerConfig,
    /// Address families to offer (multiprotocol capability for each).
    pub families: Vec<Family>,
    /// Offer the extended message capability (RFC 8654).
    pub extended_message: bool,
    /// The graceful restart capability to send (RFC 4724): advertising it makes us a
    /// helper for a peer that also sends it. `None`: not advertised.
    pub graceful_restart: Option<GracefulRestart>,
    /// Maximum-prefix limit.
    pub max_prefix: Option<MaxPrefix>,
}

impl PeerConfig {
    /// A peer with the defaults of a fabric link: active and passive opens on port 179,
    /// IPv4 and IPv6 unicast, the fabric timers of [`TimerConfig::default`].
    pub fn new(remote_addr: IpAddr, remote_as: RemoteAs) -> Self {
        PeerConfig {
            remote_addr,
            remote_as,
            local_as: None,
            local_addr: None,
            port: BGP_PORT,
            passive: false,
            md5_password: None,
            ttl_security: None,
            ebgp_multihop: None,
            timers: TimerConfig::default(),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            extended_message: true,
            graceful_restart: None,
            max_prefix: None,
        }
    }

    /// Our AS towards this peer.
    pub fn local_as(&self, local: &LocalInfo) -> u32 {
        self.local_as.unwrap_or(local.asn)
    }

    /// Whether the session is expected to be external. Known for sure only from the
    /// peer's OPEN; before that (TTL of the first packets), a range that is exactly our
    /// own AS means internal and anything else external.
    pub fn expects_ebgp(&self, local: &LocalInfo) -> bool {
        let ours = self.local_as(local);
        match self.remote_as {
            RemoteAs::Exact(a) => a != ours,
            RemoteAs::Range { min, max } => !(min == ours && max == ours),
        }
    }

    /// The TTL (hop limit) of our packets: 255 with GTSM, the multihop TTL, 1 for other
    /// eBGP peers (directly connected), 255 for iBGP.
    pub fn send_ttl(&self, local: &LocalInfo) -> u8 {
        if self.ttl_security.is_some() {
            255
        } else if let Some(ttl) = self.ebgp_multihop {
            ttl
        } else if self.expects_ebgp(local) {
            1
        } else {
            255
        }
    }

    /// The lowest TTL accepted from the peer under GTSM (`256 - hops`), if enabled.
    pub fn min_ttl(&self) -> Option<u8> {
        self.ttl_security
            .map(|hops| u8::try_from(256 - u16::from(hops.max(1))).unwrap_or(255))
    }

    /// Checks the settings against each other and against protocol limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timers.validate()?;
        if let RemoteAs::Range { min, max } = self.remote_as
            && min > max
        {
            return Err(ConfigError::AsRange { min, max });
        }
        if matches!(self.remote_as, RemoteAs::Exact(0)) || self.local_as == Some(0) {
            return Err(ConfigError::AsZero);
        }
        if let Some(key) = &self.md5_password
            && (key.is_empty() || key.len() > MD5_MAX_KEY_LEN)
        {
            return Err(ConfigError::Md5KeyLength(key.len()));
        }
        match (self.ttl_security, self.ebgp_multihop) {
            (Some(_), Some(_)) => return Err(ConfigError::GtsmAndMultihop),
            (Some(0), _) | (Some(255..), _) => {
                return Err(ConfigError::GtsmHops(self.ttl_security.unwrap_or(0)));
            }
            (_, Some(0)) => return Err(ConfigError::MultihopTtl),
            _ => {}
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamily);
        }
        if let Some(m) = self.max_prefix
            && (m.limit == 0 || m.warning_threshold_pct > 100)
        {
            return Err(ConfigError::MaxPrefix);
        }
        if let (Some(local), remote) = (self.local_addr, self.remote_addr)
            && local.is_ipv4() != remote.is_ipv4()
        {
            return Err(ConfigError::AddressFamilyMismatch { local, remote });
        }
        Ok(())
    }
}

/// A peer setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Hold time 1 or 2 (RFC 4271 4.2: 0 or at least 3).
    #[error("hold time {0} s is not allowed: use 0 (no keepalives) or at least 3 s")]
    HoldTime(u16),
    /// Keepalive longer than a third of the hold time.
    #[error("keepalive {keepalive} s must be at most a third of the hold time {hold} s")]
    Keepalive {
        /// Configured keepalive.
        keepalive: u16,
        /// Configured hold time.
        hold: u16,
    },
    /// A timer that must be positive is zero.
    #[error("timer `{0}` must be longer than zero")]
    ZeroTimer(&'static str),
    /// Damping bounds out of order.
    #[error("idle hold: the initial delay must not exceed the maximum")]
    IdleHoldBounds,
    /// `min > max` in an AS range.
    #[error("remote AS range {min}-{max} is empty")]
    AsRange {
        /// Lowest.
        min: u32,
        /// Highest.
        max: u32,
    },
    /// AS 0 is reserved (RFC 7607).
    #[error("AS 0 is reserved (RFC 7607)")]
    AsZero,
    /// MD5 key of a length the kernel refuses.
    #[error("TCP MD5 password of {0} octets: it must be 1 to 80 octets")]
    Md5KeyLength(usize),
    /// GTSM and multihop TTL both set.
    #[error("ttl-security and ebgp-multihop are exclusive (GTSM always sends TTL 255)")]
    GtsmAndMultihop,
    /// GTSM hop count out of range.
    #[error("ttl-security hops {0}: it must be 1 to 254")]
    GtsmHops(u8),
    /// Multihop TTL 0.
    #[error("ebgp-multihop TTL must be 1 to 255")]
    MultihopTtl,
    /// No address family offered.
    #[error("at least one address family must be enabled")]
    NoFamily,
    /// A max-prefix limit of 0 or a threshold above 100 %.
    #[error("max-prefix: the limit must be positive and the threshold at most 100 %")]
    MaxPrefix,
    /// Source address of another family than the peer's.
    #[error("local address {local} and remote address {remote} are of different families")]
    AddressFamilyMismatch {
        /// Configured source.
        local: IpAddr,
        /// Peer.
        remote: IpAddr,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalInfo {
        LocalInfo {
            asn: 65000,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    #[test]
    fn ttl_follows_gtsm_then_multihop_then_session_type() {
        let mut p = PeerConfig::new("10.0.0.2".parse().unwrap(), RemoteAs::Exact(65001));
        assert_eq!(p.send_ttl(&local()), 1);
        assert_eq!(p.min_ttl(), None);
        p.ebgp_multihop = Some(3);
        assert_eq!(p.send_ttl(&local()), 3);
        p.ebgp_multihop = None;
        p.ttl_security = Some(1);
        assert_eq!(p.send_ttl(&local()), 255);
        assert_eq!(p.min_ttl(), Some(255));
        p.ttl_security = Some(2);
        assert_eq!(p.min_ttl(), Some(254));
        let ibgp = PeerConfig::new("10.0.0.2".parse().unwrap(), RemoteAs::Exact(65000));
        assert_eq!(ibgp.send_ttl(&local()), 255);
        assert!(!ibgp.expects_ebgp(&local()));
    }

    #[test]
    fn validate_names_what_is_wrong() {
        let base = PeerConfig::new("10.0.0.2".parse().unwrap(), RemoteAs::Exact(65001));
        assert_eq!(base.validate(), Ok(()));
        let mut p = base.clone();
        p.md5_password = Some("x".repeat(81));
        assert_eq!(p.validate(), Err(ConfigError::Md5KeyLength(81)));
        let mut p = base.clone();
        p.ttl_security = Some(1);
        p.ebgp_multihop = Some(2);
        assert_eq!(p.validate(), Err(ConfigError::GtsmAndMultihop));
        let mut p = base.clone();
        p.ttl_security = Some(255);
        assert_eq!(p.validate(), Err(ConfigError::GtsmHops(255)));
        let mut p = base.clone();
        p.remote_as = RemoteAs::Range { min: 10, max: 5 };
        assert_eq!(p.validate(), Err(ConfigError::AsRange { min: 10, max: 5 }));
        let mut p = base.clone();
        p.timers.hold_time = 2;
        assert_eq!(p.validate(), Err(ConfigError::HoldTime(2)));
        let mut p = base.clone();
        p.local_addr = Some("fd00::1".parse().unwrap());
        assert!(matches!(
            p.validate(),
            Err(ConfigError::AddressFamilyMismatch { .. })
        ));
        let mut p = base;
        p.max_prefix = Some(MaxPrefix {
            limit: 0,
            warning_threshold_pct: 80,
            restart_after: None,
        });
        assert_eq!(p.validate(), Err(ConfigError::MaxPrefix));
    }

    #[test]
    fn remote_as_ranges_are_inclusive() {
        let r = RemoteAs::Range {
            min: 64512,
            max: 64520,
        };
        assert!(r.accepts(64512) && r.accepts(64520));
        assert!(!r.accepts(64511) && !r.accepts(64521));
        let m = MaxPrefix {
            limit: 1000,
            warning_threshold_pct: 75,
            restart_after: None,
        };
        assert_eq!(m.warning_count(), 750);
    }
}
