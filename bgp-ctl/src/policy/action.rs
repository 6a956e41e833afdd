//! Actions of a policy term: rewrite attributes of an accepted route.

use bgp_wire::{Family, MpNextHop};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::community::CommunityValue;
use crate::rib::{PeerSession, RouteAttrs};

/// Largest prepend count accepted in configuration: longer paths only hurt.
pub const MAX_PREPEND: u8 = 32;

/// AS path prepending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepend {
    /// The AS to prepend; `None`: our own.
    #[serde(default)]
    pub asn: Option<u32>,
    /// How many times (1 to [`MAX_PREPEND`]).
    pub count: u8,
}

/// One attribute rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Set LOCAL_PREF.
    LocalPref(u32),
    /// Set MULTI_EXIT_DISC.
    Med(u32),
    /// Add communities (standard or large) not already present.
    AddCommunities(Vec<CommunityValue>),
    /// Remove these communities.
    RemoveCommunities(Vec<CommunityValue>),
    /// Replace all communities (standard and large) with these.
    ReplaceCommunities(Vec<CommunityValue>),
    /// Prepend an AS to the AS_PATH.
    Prepend(Prepend),
    /// Set the next hop to our own session address.
    NextHopSelf,
}

/// What actions need from the session they run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyContext {
    /// Our AS (for prepending our own AS).
    pub local_asn: u32,
    /// Our next hop for IPv4 routes on this session.
    pub next_hop_v4: Option<MpNextHop>,
    /// Our next hop for IPv6 routes on this session.
    pub next_hop_v6: Option<MpNextHop>,
}

impl PolicyContext {
    /// The context of an established session: our next hops on it. Without a session
    /// (policy evaluated for `show`), next-hop-self leaves the next hop alone.
    pub fn new(local_asn: u32, session: Option<&PeerSession>) -> Self {
        PolicyContext {
            local_asn,
            next_hop_v4: session.and_then(|s| s.next_hop_self(Family::IPV4_UNICAST)),
            next_hop_v6: session.and_then(|s| s.next_hop_self(Family::IPV6_UNICAST)),
        }
    }
}

impl Action {
    /// Applies the action to the attributes of `prefix`.
    pub fn apply(&self, prefix: &IpNet, attrs: &mut RouteAttrs, ctx: &PolicyContext) {
        let path = &mut attrs.path;
        match self {
            Action::LocalPref(v) => path.local_pref = Some(*v),
            Action::Med(v) => path.med = Some(*v),
            Action::AddCommunities(list) => list.iter().for_each(|c| c.add_to(path)),
            Action::RemoveCommunities(list) => {
                path.communities
                    .retain(|c| !list.contains(&CommunityValue::Standard(*c)));
                path.large_communities
                    .retain(|c| !list.contains(&CommunityValue::Large(*c)));
            }
            Action::ReplaceCommunities(list) => {
                path.communities.clear();
                path.large_communities.clear();
                list.iter().for_each(|c| c.add_to(path));
            }
            Action::Prepend(p) => path.as_path.prepend(
                p.asn.unwrap_or(ctx.local_asn),
                usize::from(p.count.min(MAX_PREPEND)),
            ),
            Action::NextHopSelf => {
                let own = match prefix {
                    IpNet::V4(_) => ctx.next_hop_v4,
                    IpNet::V6(_) => ctx.next_hop_v6,
                };
                if let Some(nh) = own {
                    attrs.next_hop = nh;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::{AsPath, PathAttributes};
    use std::net::Ipv4Addr;

    fn ctx() -> PolicyContext {
        let session = PeerSession::new(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(192, 0, 2, 254).into(),
            vec![Family::IPV4_UNICAST],
        );
        PolicyContext::new(64512, Some(&session))
    }

    fn attrs() -> RouteAttrs {
        let mut path = PathAttributes {
            as_path: AsPath::from_sequence([65001]),
            ..PathAttributes::default()
        };
        for c in ["65000:1", "65000:2", "7:8:9"] {
            c.parse::<CommunityValue>().unwrap().add_to(&mut path);
        }
        RouteAttrs::new(path, MpNextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1)))
    }

    fn apply(action: &str, prefix: &str) -> RouteAttrs {
        let a: Action = serde_json::from_str(action).unwrap();
        let mut r = attrs();
        a.apply(&prefix.parse().unwrap(), &mut r, &ctx());
        r
    }

    fn comms(r: &RouteAttrs) -> Vec<String> {
        r.path
            .communities
            .iter()
            .map(|c| c.to_string())
            .chain(r.path.large_communities.iter().map(|c| c.to_string()))
            .collect()
    }

    #[test]
    fn set_local_pref_and_med() {
        assert_eq!(
            apply(r#"{"local-pref": 300}"#, "10.0.0.0/8")
                .path
                .local_pref,
            Some(300)
        );
        assert_eq!(apply(r#"{"med": 7}"#, "10.0.0.0/8").path.med, Some(7));
    }

    #[test]
    fn community_add_remove_replace() {
        let r = apply(
            r#"{"add-communities": ["65000:1", "65000:3", "1:1:1"]}"#,
            "10.0.0.0/8",
        );
        assert_eq!(
            comms(&r),
            ["65000:1", "65000:2", "65000:3", "7:8:9", "1:1:1"]
        );
        let r = apply(
            r#"{"remove-communities": ["65000:1", "7:8:9"]}"#,
            "10.0.0.0/8",
        );
        assert_eq!(comms(&r), ["65000:2"]);
        let r = apply(r#"{"replace-communities": ["no-export"]}"#, "10.0.0.0/8");
        assert_eq!(comms(&r), ["no-export"]);
    }

    #[test]
    fn prepend_own_or_given_as() {
        let r = apply(r#"{"prepend": {"count": 2}}"#, "10.0.0.0/8");
        assert_eq!(r.path.as_path.to_string(), "64512 64512 65001");
        let r = apply(r#"{"prepend": {"asn": 65099, "count": 1}}"#, "10.0.0.0/8");
        assert_eq!(r.path.as_path.to_string(), "65099 65001");
    }

    #[test]
    fn next_hop_self_uses_the_family_address() {
        let r = apply(r#""next-hop-self""#, "10.0.0.0/8");
        assert_eq!(r.next_hop, MpNextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 254)));
        // No IPv6 session address known: unchanged.
        let r = apply(r#""next-hop-self""#, "2001:db8::/32");
        assert_eq!(r.next_hop, attrs().next_hop);
    }
}
