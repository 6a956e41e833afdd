//! UPDATE message (RFC 4271 4.3, RFC 4760) and the RFC 7606 findings of its decoding.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::{AttributeType, Family, PathAttributes};

/// Next hop of MP_REACH_NLRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MpNextHop {
    /// An IPv4 next hop (4 octets).
    Ipv4(Ipv4Addr),
    /// An IPv6 next hop: global, and link-local when 32 octets were sent (RFC 2545).
    Ipv6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, if present.
        link_local: Option<Ipv6Addr>,
    },
}

/// MP_REACH_NLRI (RFC 4760), for the unicast families this speaker handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    /// The family of `nlri`.
    pub family: Family,
    /// Next hop for all of `nlri`.
    pub next_hop: MpNextHop,
    /// Reachable prefixes.
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI (RFC 4760).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    /// The family of `withdrawn`.
    pub family: Family,
    /// Withdrawn prefixes (empty: End-of-RIB for the family, RFC 4724).
    pub withdrawn: Vec<IpNet>,
}

/// What RFC 7606 assigns to a malformed attribute that does not reset the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RfcAction {
    /// The attribute is dropped; the rest of the UPDATE is used (RFC 7606 2, "attribute discard").
    AttributeDiscard,
    /// Every prefix the UPDATE announces is handled as withdrawn (RFC 7606 2).
    TreatAsWithdraw,
}

/// One RFC 7606 finding from decoding an UPDATE, for the log and for counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttributeIssue {
    /// The attribute at fault.
    pub attribute: AttributeType,
    /// What was done about it.
    pub action: RfcAction,
    /// Why, in a few words ("ORIGIN value 7", "length 3, expected 4").
    pub reason: String,
}

/// An UPDATE message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes, `None` when the UPDATE carries none (a pure withdrawal or IPv4
    /// End-of-RIB).
    pub attributes: Option<PathAttributes>,
    /// IPv4 unicast NLRI.
    pub nlri: Vec<Ipv4Net>,
    /// MP_REACH_NLRI, if present.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI, if present.
    pub mp_unreach: Option<MpUnreach>,
    /// RFC 7606 findings of decoding (always empty for UPDATEs built locally).
    pub issues: Vec<AttributeIssue>,
}

impl Update {
    /// Prefixes announced and withdrawn, in every family.
    pub fn prefix_count(&self) -> usize {
        self.withdrawn.len()
            + self.nlri.len()
            + self.mp_reach.as_ref().map_or(0, |r| r.nlri.len())
            + self.mp_unreach.as_ref().map_or(0, |u| u.withdrawn.len())
    }

    /// The End-of-RIB marker for `family` (RFC 4724 2): an empty UPDATE for IPv4 unicast,
    /// an empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(family: Family) -> Self {
        if family == Family::IPV4_UNICAST {
            Update::default()
        } else {
            Update {
                mp_unreach: Some(MpUnreach {
                    family,
                    withdrawn: Vec::new(),
                }),
                ..Update::default()
            }
        }
    }

    /// The family this UPDATE marks End-of-RIB for, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || self.mp_reach.is_some() {
            return None;
        }
        match (&self.attributes, &self.mp_unreach) {
            (None, None) => Some(Family::IPV4_UNICAST),
            (_, Some(u)) if u.withdrawn.is_empty() => Some(u.family),
            _ => None,
        }
    }

    /// Whether RFC 7606 turned this UPDATE into a withdrawal of everything it announces.
    pub fn treat_as_withdraw(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.action == RfcAction::TreatAsWithdraw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_rib_markers_are_recognised_per_family() {
        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            assert_eq!(Update::end_of_rib(f).end_of_rib_family(), Some(f));
        }
        let withdraw = Update {
            withdrawn: vec!["10.0.0.0/8".parse().unwrap()],
            ..Update::default()
        };
        assert_eq!(withdraw.end_of_rib_family(), None);
    }
}
