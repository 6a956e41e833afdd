//! Summary-only aggregates: towards the peers an aggregate names (all peers when it
//! names none), the routes strictly inside it are not advertised, only the aggregate.
//!
//! The suppression wraps a peer's export policy, so it holds for every way a route
//! leaves: incremental export, the initial table, a route refresh, a reload.

use ipnet::IpNet;

use crate::rib::{Filtered, RouteAttrs, RouteFilter};

/// An aggregate whose more-specific routes are suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The aggregate.
    pub prefix: IpNet,
    /// Peers (or dynamic-neighbor groups) towards which its more specifics are
    /// suppressed; empty: all.
    pub to: Vec<String>,
}

impl Suppression {
    /// Whether it applies to the peer `name` (of dynamic group `group`, if any).
    fn applies_to(&self, name: &str, group: Option<&str>) -> bool {
        self.to.is_empty()
            || self
                .to
                .iter()
                .any(|t| t == name || Some(t.as_str()) == group)
    }
}

/// A peer's export filter with the suppressions that apply to it.
pub struct Suppressing<F> {
    inner: F,
    aggregates: Vec<IpNet>,
}

impl<F: RouteFilter> Suppressing<F> {
    /// Wraps `inner` (the peer's export policy) for the peer `name` of `group`.
    pub fn new(inner: F, all: &[Suppression], name: &str, group: Option<&str>) -> Self {
        Suppressing {
            inner,
            aggregates: all
                .iter()
                .filter(|s| s.applies_to(name, group))
                .map(|s| s.prefix)
                .collect(),
        }
    }
}

impl<F: RouteFilter> RouteFilter for Suppressing<F> {
    fn filter(&mut self, prefix: IpNet, attrs: &RouteAttrs) -> Filtered {
        if self
            .aggregates
            .iter()
            .any(|a| a.prefix_len() < prefix.prefix_len() && a.contains(&prefix))
        {
            return Filtered::Reject;
        }
        self.inner.filter(prefix, attrs)
    }

    fn prefix_independent(&self) -> bool {
        self.aggregates.is_empty() && self.inner.prefix_independent()
    }
}

#[cfg(test)]
mod tests {
    use bgp_wire::{MpNextHop, PathAttributes};

    use super::*;
    use crate::rib::AcceptAll;

    fn attrs() -> RouteAttrs {
        RouteAttrs::new(
            PathAttributes::default(),
            MpNextHop::Ipv4("192.0.2.1".parse().unwrap()),
        )
    }

    #[test]
    fn more_specifics_are_suppressed_towards_the_named_peers_only() {
        let all = [
            Suppression {
                prefix: "10.244.1.0/24".parse().unwrap(),
                to: vec!["leaf1".into(), "racks".into()],
            },
            Suppression {
                prefix: "fd00:10:244:1::/64".parse().unwrap(),
                to: vec![],
            },
        ];
        let a = attrs();
        let mut leaf1 = Suppressing::new(AcceptAll, &all, "leaf1", None);
        assert!(!leaf1.prefix_independent());
        for (p, want) in [
            ("10.244.1.5/32", Filtered::Reject),
            ("10.244.1.0/25", Filtered::Reject),
            ("10.244.1.0/24", Filtered::Accept),
            ("10.244.0.0/16", Filtered::Accept),
            ("10.244.2.5/32", Filtered::Accept),
            ("fd00:10:244:1::5/128", Filtered::Reject),
        ] {
            assert_eq!(leaf1.filter(p.parse().unwrap(), &a), want, "{p}");
        }
        let mut leaf2 = Suppressing::new(AcceptAll, &all, "leaf2", None);
        assert_eq!(
            leaf2.filter("10.244.1.5/32".parse().unwrap(), &a),
            Filtered::Accept
        );
        assert_eq!(
            leaf2.filter("fd00:10:244:1::5/128".parse().unwrap(), &a),
            Filtered::Reject
        );
        // A dynamic neighbor by its group's name.
        let mut rack = Suppressing::new(AcceptAll, &all, "racks-192.0.2.7", Some("racks"));
        assert_eq!(
            rack.filter("10.244.1.5/32".parse().unwrap(), &a),
            Filtered::Reject
        );
        // Nothing to suppress: the inner filter decides alone, per attribute set.
        let none = Suppressing::new(AcceptAll, &[], "leaf1", None);
        assert!(none.prefix_independent());
    }
}
