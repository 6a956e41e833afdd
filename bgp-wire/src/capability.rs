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

/// Why a capability could not be decoded.
pub(crate) fn decode_capability(code: u8, value: &[u8]) -> Result<Capability, String> {
    use crate::wire;
    let bad = || format!("capability {code} with a value of {} octets", value.len());
    let family = |v: &[u8]| -> Option<Family> {
        let (v, afi) = wire::u16(v).ok()?;
        let (v, _reserved) = wire::u8(v).ok()?;
        let (v, safi) = wire::u8(v).ok()?;
        v.is_empty().then_some(Family {
            afi: crate::Afi::from(afi),
            safi: crate::Safi::from(safi),
        })
    };
    Ok(match CapabilityCode::from(code) {
        CapabilityCode::MultiProtocol => Capability::MultiProtocol(family(value).ok_or_else(bad)?),
        CapabilityCode::RouteRefresh if value.is_empty() => Capability::RouteRefresh,
        CapabilityCode::ExtendedMessage if value.is_empty() => Capability::ExtendedMessage,
        CapabilityCode::EnhancedRouteRefresh if value.is_empty() => {
            Capability::EnhancedRouteRefresh
        }
        CapabilityCode::FourOctetAs => match wire::u32(value) {
            Ok((&[], asn)) => Capability::FourOctetAs(asn),
            _ => return Err(bad()),
        },
        CapabilityCode::GracefulRestart => {
            let (mut rest, head) = wire::u16(value).map_err(|_| bad())?;
            if rest.len() % 4 != 0 {
                return Err(bad());
            }
            let mut families = Vec::with_capacity(rest.len() / 4);
            while let Ok((r, (afi, safi, flags))) =
                nom::Parser::parse(&mut (wire::u16, wire::u8, wire::u8), rest)
            {
                families.push(GracefulRestartFamily {
                    family: Family {
                        afi: crate::Afi::from(afi),
                        safi: crate::Safi::from(safi),
                    },
                    forwarding_preserved: flags & 0x80 != 0,
                });
                rest = r;
            }
            Capability::GracefulRestart(GracefulRestart {
                restarting: head & 0x8000 != 0,
                notification: head & 0x4000 != 0,
                restart_time: head & 0x0FFF,
                families,
            })
        }
        CapabilityCode::RouteRefresh
        | CapabilityCode::ExtendedMessage
        | CapabilityCode::EnhancedRouteRefresh => return Err(bad()),
        CapabilityCode::Other(code) => Capability::Other {
            code,
            value: Bytes::copy_from_slice(value),
        },
    })
}

impl Capability {
    /// Length of the value on the wire.
    pub(crate) fn value_len(&self) -> usize {
        match self {
            Capability::MultiProtocol(_) | Capability::FourOctetAs(_) => 4,
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => 0,
            Capability::GracefulRestart(gr) => 2 + 4 * gr.families.len(),
            Capability::Other { value, .. } => value.len(),
        }
    }

    /// Writes code, length and value. The caller checks that the value fits 255 octets.
    pub(crate) fn put(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        out.put_u8(self.code().code());
        out.put_u8(self.value_len() as u8);
        match self {
            Capability::MultiProtocol(f) => {
                out.put_u16(f.afi.code());
                out.put_u8(0);
                out.put_u8(f.safi.code());
            }
            Capability::FourOctetAs(asn) => out.put_u32(*asn),
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::GracefulRestart(gr) => {
                let mut head = gr.restart_time & 0x0FFF;
                if gr.restarting {
                    head |= 0x8000;
                }
                if gr.notification {
                    head |= 0x4000;
                }
                out.put_u16(head);
                for f in &gr.families {
                    out.put_u16(f.family.afi.code());
                    out.put_u8(f.family.safi.code());
                    out.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Capability::Other { value, .. } => out.put_slice(value),
        }
    }
}
