//! OPEN message (RFC 4271 4.2, capabilities per RFC 5492).

use std::net::Ipv4Addr;

use crate::{AS_TRANS, Capability, Family, GracefulRestart};

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// BGP version: 4.
    pub version: u8,
    /// My Autonomous System as sent: the real AS if it fits in 16 bits, else AS_TRANS.
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order received (all capability optional parameters flattened).
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn` (4-octet capable: AS_TRANS in `my_as` when it does not fit) with
    /// the given capabilities; the 4-octet AS capability is added if missing.
    pub fn new(
        asn: u32,
        hold_time: u16,
        bgp_id: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> Self {
        if !capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
        {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The speaker's AS: from the 4-octet AS capability if present (RFC 6793), else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the 4-octet AS capability is present.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    /// Families announced with the multiprotocol capability. RFC 4760: a speaker that
    /// announces none supports IPv4 unicast only.
    pub fn families(&self) -> Vec<Family> {
        let fams: Vec<Family> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::MultiProtocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if fams.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            fams
        }
    }

    /// Whether a capability without value (route refresh, extended message, ...) is present.
    pub fn has(&self, cap: &Capability) -> bool {
        self.capabilities.contains(cap)
    }

    /// The graceful restart capability, if present.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }
}
