//! OPEN capabilities (RFC 5492) this speaker understands; others are kept raw.

use bytes::Bytes;

use crate::Family;

/// Capability codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CapabilityCode {
    /// Multiprotocol extensions (1, RFC 4760).
    MultiProtocol,
    /// Route refresh (2, RFC 2918).
    RouteRefresh,
    /// Extended message (6, RFC 8654).
    ExtendedMessage,
    /// Graceful restart (64, RFC 4724).
    GracefulRestart,
    /// 4-octet AS numbers (65, RFC 6793).
    FourOctetAs,
    /// Enhanced route refresh (70, RFC 7313).
    EnhancedRouteRefresh,
    /// Any other code.
    Other(u8),
}

impl CapabilityCode {
    /// Wire value.
    pub fn code(self) -> u8 {
        match self {
            CapabilityCode::MultiProtocol => 1,
            CapabilityCode::RouteRefresh => 2,
            CapabilityCode::ExtendedMessage => 6,
            CapabilityCode::GracefulRestart => 64,
            CapabilityCode::FourOctetAs => 65,
            CapabilityCode::EnhancedRouteRefresh => 70,
            CapabilityCode::Other(v) => v,
        }
    }
}

impl From<u8> for CapabilityCode {
    fn from(v: u8) -> Self {
        match v {
            1 => CapabilityCode::MultiProtocol,
            2 => CapabilityCode::RouteRefresh,
            6 => CapabilityCode::ExtendedMessage,
            64 => CapabilityCode::GracefulRestart,
            65 => CapabilityCode::FourOctetAs,
            70 => CapabilityCode::EnhancedRouteRefresh,
            v => CapabilityCode::Other(v),
        }
    }
}

/// One family in the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// F bit: forwarding state for this family was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// Graceful restart capability (RFC 4724, N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted (its peer must not wait for its End-of-RIB forever).
    pub restarting: bool,
    /// N bit (RFC 8538): graceful restart also applies to NOTIFICATIONs other than Hard Reset.
    pub notification: bool,
    /// Restart time in seconds (12 bits on the wire).
    pub restart_time: u16,
    /// Families whose routes the peer should retain.
    pub families: Vec<GracefulRestartFamily>,
}

/// An OPEN capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for one family.
    MultiProtocol(Family),
    /// Route refresh.
    RouteRefresh,
    /// Extended messages up to 65535 octets.
    ExtendedMessage,
    /// Graceful restart.
    GracefulRestart(GracefulRestart),
    /// 4-octet AS numbers, with the speaker's real AS.
    FourOctetAs(u32),
    /// Enhanced route refresh.
    EnhancedRouteRefresh,
    /// A capability this speaker does not use, kept as received.
    Other {
        /// Capability code.
        code: u8,
        /// Value, without code and length.
        value: Bytes,
    },
}

impl Capability {
    /// This capability's code.
    pub fn code(&self) -> CapabilityCode {
        match self {
            Capability::MultiProtocol(_) => CapabilityCode::MultiProtocol,
            Capability::RouteRefresh => CapabilityCode::RouteRefresh,
            Capability::ExtendedMessage => CapabilityCode::ExtendedMessage,
            Capability::GracefulRestart(_) => CapabilityCode::GracefulRestart,
            Capability::FourOctetAs(_) => CapabilityCode::FourOctetAs,
            Capability::EnhancedRouteRefresh => CapabilityCode::EnhancedRouteRefresh,
            Capability::Other { code, .. } => CapabilityCode::from(*code),
        }
    }
}
