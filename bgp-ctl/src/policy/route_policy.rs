//! Policies: ordered terms (conditions -> actions -> accept, reject or next) with a
//! default verdict, the named definitions they refer to, the RFC 8212 defaults for
//! peers without policy, and the [`RouteFilter`] the RIB calls.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    action::{Action, MAX_PREPEND, PolicyContext},
    matcher::Conditions,
    prefix_list::PrefixList,
};
use crate::rib::{Filtered, RouteAttrs, RouteFilter};

/// Final verdict on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The route passes, with the actions applied so far.
    Accept,
    /// The route is dropped.
    Reject,
}

/// What a matching term does after its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Then {
    /// Stop: the route passes.
    Accept,
    /// Stop: the route is dropped.
    Reject,
    /// Go on with the next term, keeping the actions' changes.
    Next,
}

/// One term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// A name for logs and `show` output.
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions, all of which must hold (none: every route).
    #[serde(default, rename = "match")]
    pub conditions: Conditions,
    /// Actions applied, in order, when the conditions hold.
    #[serde(default, rename = "set")]
    pub actions: Vec<Action>,
    /// What follows the actions.
    pub then: Then,
}

/// A policy: terms tried in order, then the default verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The terms.
    #[serde(default)]
    pub terms: Vec<Term>,
    /// The verdict when no term stopped evaluation.
    pub default: Verdict,
}

/// Accepts every route unchanged.
pub static ACCEPT_ALL: Policy = Policy {
    terms: Vec::new(),
    default: Verdict::Accept,
};

/// Rejects every route: what RFC 8212 requires for an eBGP peer without policy.
pub static REJECT_ALL: Policy = Policy {
    terms: Vec::new(),
    default: Verdict::Reject,
};

impl Policy {
    /// A policy that accepts everything unchanged (the name `accept-all`).
    pub fn accept_all() -> Self {
        ACCEPT_ALL.clone()
    }

    /// A policy that rejects everything (the name `reject-all`; the RFC 8212 default of
    /// eBGP peers).
    pub fn reject_all() -> Self {
        REJECT_ALL.clone()
    }

    /// Whether some term looks at the prefix (then the RIB evaluates per route, else once
    /// per attribute set).
    pub fn uses_prefix(&self) -> bool {
        self.terms
            .iter()
            .any(|t| t.conditions.prefix_list.is_some())
    }

    /// Evaluates the policy for a route. `lists` holds the prefix lists by name.
    pub fn evaluate(
        &self,
        prefix: &IpNet,
        attrs: &RouteAttrs,
        ctx: &PolicyContext,
        lists: &BTreeMap<String, PrefixList>,
    ) -> Filtered {
        let mut changed: Option<RouteAttrs> = None;
        for term in &self.terms {
            let current = changed.as_ref().unwrap_or(attrs);
            if !term.conditions.matches(prefix, &current.path, lists) {
                continue;
            }
            if !term.actions.is_empty() {
                let a = changed.get_or_insert_with(|| attrs.clone());
                for action in &term.actions {
                    action.apply(prefix, a, ctx);
                }
            }
            match term.then {
                Then::Accept => return accepted(changed, attrs),
                Then::Reject => return Filtered::Reject,
                Then::Next => {}
            }
        }
        match self.default {
            Verdict::Accept => accepted(changed, attrs),
            Verdict::Reject => Filtered::Reject,
        }
    }
}

fn accepted(changed: Option<RouteAttrs>, original: &RouteAttrs) -> Filtered {
    match changed {
        Some(a) if a != *original => Filtered::Replace(a),
        _ => Filtered::Accept,
    }
}

/// Names reserved for the built-in policies.
pub const BUILT_IN: [&str; 2] = ["accept-all", "reject-all"];

/// A configuration error in policy definitions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A term refers to a prefix list that is not defined.
    #[error("policy `{policy}`, term {term}: prefix list `{list}` is not defined")]
    UnknownPrefixList {
        /// The policy.
        policy: String,
        /// The term (name, or position from 1).
        term: String,
        /// The missing list.
        list: String,
    },
    /// A peer refers to a policy that is not defined.
    #[error("policy `{0}` is not defined (built-in ones: accept-all, reject-all)")]
    UnknownPolicy(String),
    /// A definition uses a built-in name.
    #[error("`{0}` is a built-in policy and cannot be redefined")]
    ReservedName(String),
    /// A prepend count out of range.
    #[error("policy `{policy}`, term {term}: prepend count {count} must be 1 to {MAX_PREPEND}")]
    BadPrepend {
        /// The policy.
        policy: String,
        /// The term (name, or position from 1).
        term: String,
        /// The count given.
        count: u8,
    },
}

/// Named prefix lists and policies, as configuration holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RoutingPolicy {
    /// Prefix lists by name.
    pub prefix_lists: BTreeMap<String, PrefixList>,
    /// Policies by name.
    pub policies: BTreeMap<String, Policy>,
}

/// A peer's policy names; `None` is the RFC 8212 default ([`RoutingPolicy::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerPolicy {
    /// Import policy name.
    pub import: Option<String>,
    /// Export policy name.
    pub export: Option<String>,
}

impl RoutingPolicy {
    /// Checks that every referenced prefix list exists, no built-in name is redefined and
    /// every prepend count is in range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (name, policy) in &self.policies {
            if BUILT_IN.contains(&name.as_str()) {
                return Err(PolicyError::ReservedName(name.clone()));
            }
            for (i, term) in policy.terms.iter().enumerate() {
                let term_name = || term.name.clone().unwrap_or_else(|| (i + 1).to_string());
                if let Some(list) = &term.conditions.prefix_list
                    && !self.prefix_lists.contains_key(list)
                {
                    return Err(PolicyError::UnknownPrefixList {
                        policy: name.clone(),
                        term: term_name(),
                        list: list.clone(),
                    });
                }
                for a in &term.actions {
                    if let Action::Prepend(p) = a
                        && (p.count == 0 || p.count > MAX_PREPEND)
                    {
                        return Err(PolicyError::BadPrepend {
                            policy: name.clone(),
                            term: term_name(),
                            count: p.count,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The policy called `name`, or the default when `None`: RFC 8212 — an eBGP peer
    /// without an explicit policy imports and exports nothing ([`REJECT_ALL`]); an iBGP
    /// peer accepts everything ([`ACCEPT_ALL`]).
    pub fn resolve(&self, name: Option<&str>, ebgp: bool) -> Result<&Policy, PolicyError> {
        match name {
            None if ebgp => Ok(&REJECT_ALL),
            None => Ok(&ACCEPT_ALL),
            Some("accept-all") => Ok(&ACCEPT_ALL),
            Some("reject-all") => Ok(&REJECT_ALL),
            Some(n) => self
                .policies
                .get(n)
                .ok_or_else(|| PolicyError::UnknownPolicy(n.to_owned())),
        }
    }

    /// The prefix list called `name`.
    pub fn prefix_list(&self, name: &str) -> Option<&PrefixList> {
        self.prefix_lists.get(name)
    }

    /// A filter that runs `policy` for the RIB.
    pub fn filter<'a>(&'a self, policy: &'a Policy, ctx: PolicyContext) -> PolicyFilter<'a> {
        PolicyFilter {
            definitions: self,
            policy,
            ctx,
        }
    }
}

/// A policy bound to its definitions and session context: the RIB's import or export hook.
#[derive(Debug, Clone, Copy)]
pub struct PolicyFilter<'a> {
    definitions: &'a RoutingPolicy,
    policy: &'a Policy,
    ctx: PolicyContext,
}

impl RouteFilter for PolicyFilter<'_> {
    fn filter(&mut self, prefix: IpNet, attrs: &RouteAttrs) -> Filtered {
        self.policy
            .evaluate(&prefix, attrs, &self.ctx, &self.definitions.prefix_lists)
    }

    fn prefix_independent(&self) -> bool {
        // Next-hop-self depends on the prefix's family.
        !self.policy.uses_prefix()
            && !self
                .policy
                .terms
                .iter()
                .any(|t| t.actions.contains(&Action::NextHopSelf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::{AsPath, MpNextHop, PathAttributes};
    use std::net::Ipv4Addr;

    const CTX: PolicyContext = PolicyContext {
        local_asn: 64512,
        next_hop_v4: None,
        next_hop_v6: None,
    };

    fn attrs(asns: &[u32]) -> RouteAttrs {
        RouteAttrs::new(
            PathAttributes {
                as_path: AsPath::from_sequence(asns.iter().copied()),
                ..PathAttributes::default()
            },
            MpNextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1)),
        )
    }

    fn defs() -> RoutingPolicy {
        serde_json::from_str(
            r#"{
            "prefix-lists": {
                "pods": ["10.244.0.0/16 le 32"],
                "any": ["0.0.0.0/0 le 32", "::/0 le 128"]
            },
            "policies": {
                "from-tor": {
                    "terms": [
                        {"name": "no-long-paths", "match": {"as-path": {"length": {"min": 5}}}, "then": "reject"},
                        {"name": "tag", "match": {"as-path": {"origin": 65010}},
                         "set": [{"add-communities": ["65000:10"]}], "then": "next"},
                        {"name": "pods", "match": {"prefix-list": "pods"},
                         "set": [{"local-pref": 200}], "then": "accept"}
                    ],
                    "default": "reject"
                }
            }
        }"#,
        )
        .unwrap()
    }

    fn run(d: &RoutingPolicy, name: &str, prefix: &str, a: &RouteAttrs) -> Filtered {
        let p = d.resolve(Some(name), true).unwrap();
        d.filter(p, CTX).filter(prefix.parse().unwrap(), a)
    }

    #[test]
    fn terms_run_in_order_with_next_carrying_changes() {
        let d = defs();
        d.validate().unwrap();
        // Matches "tag" (next) then "pods" (accept): both changes are kept.
        let Filtered::Replace(r) = run(&d, "from-tor", "10.244.1.1/32", &attrs(&[65001, 65010]))
        else {
            panic!("expected a rewrite");
        };
        assert_eq!(r.path.local_pref, Some(200));
        assert_eq!(r.path.communities.len(), 1);
        // Not a pod prefix: "tag" matched but the default rejects.
        assert_eq!(
            run(&d, "from-tor", "192.0.2.0/24", &attrs(&[65001, 65010])),
            Filtered::Reject
        );
        // The first matching stop wins: a long path is rejected even for pods.
        assert_eq!(
            run(&d, "from-tor", "10.244.1.1/32", &attrs(&[1, 2, 3, 4, 5])),
            Filtered::Reject
        );
    }

    #[test]
    fn accept_without_changes_is_plain_accept() {
        let p = Policy {
            terms: vec![Term {
                name: None,
                conditions: Conditions::default(),
                actions: vec![Action::LocalPref(100)],
                then: Then::Accept,
            }],
            default: Verdict::Reject,
        };
        let mut a = attrs(&[1]);
        a.path.local_pref = Some(100);
        assert_eq!(
            p.evaluate(&"10.0.0.0/8".parse().unwrap(), &a, &CTX, &BTreeMap::new()),
            Filtered::Accept
        );
    }

    #[test]
    fn rfc8212_defaults_reject_for_ebgp_and_accept_for_ibgp() {
        let d = RoutingPolicy::default();
        let a = attrs(&[1]);
        let p: IpNet = "10.0.0.0/8".parse().unwrap();
        let ebgp = d.resolve(None, true).unwrap();
        assert_eq!(d.filter(ebgp, CTX).filter(p, &a), Filtered::Reject);
        let ibgp = d.resolve(None, false).unwrap();
        assert_eq!(d.filter(ibgp, CTX).filter(p, &a), Filtered::Accept);
        assert_eq!(
            d.resolve(Some("reject-all"), false).unwrap(),
            &Policy::reject_all()
        );
        assert_eq!(
            d.resolve(Some("accept-all"), true).unwrap(),
            &Policy::accept_all()
        );
        assert_eq!(
            d.resolve(Some("nope"), true).unwrap_err().to_string(),
            "policy `nope` is not defined (built-in ones: accept-all, reject-all)"
        );
        let peer: PeerPolicy = serde_json::from_str(r#"{"import": "accept-all"}"#).unwrap();
        assert_eq!(peer.import.as_deref(), Some("accept-all"));
        assert_eq!(peer.export, None, "export stays the RFC 8212 default");
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let mut d = defs();
        d.prefix_lists.remove("pods");
        assert_eq!(
            d.validate().unwrap_err().to_string(),
            "policy `from-tor`, term pods: prefix list `pods` is not defined"
        );
        let mut d = defs();
        d.policies.insert("reject-all".into(), Policy::accept_all());
        assert!(matches!(d.validate(), Err(PolicyError::ReservedName(_))));
        let d: RoutingPolicy = serde_json::from_str(
            r#"{"policies": {"p": {"terms": [{"set": [{"prepend": {"count": 0}}], "then": "accept"}], "default": "accept"}}}"#,
        )
        .unwrap();
        assert_eq!(
            d.validate().unwrap_err().to_string(),
            "policy `p`, term 1: prepend count 0 must be 1 to 32"
        );
    }

    #[test]
    fn prefix_independence_is_reported_to_the_rib() {
        let d = defs();
        let p = d.resolve(Some("from-tor"), true).unwrap();
        assert!(!d.filter(p, CTX).prefix_independent());
        assert!(d.filter(&ACCEPT_ALL, CTX).prefix_independent());
    }

    #[test]
    fn definitions_round_trip_through_serde() {
        let d = defs();
        let text = serde_json::to_string(&d).unwrap();
        let back: RoutingPolicy = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
        assert!(text.contains(r#""then":"next""#), "{text}");
        assert!(serde_json::from_str::<RoutingPolicy>(r#"{"policys": {}}"#).is_err());
    }

    /// The example of the module documentation, in TOML as the configuration writes it.
    const TOML: &str = r#"
[prefix-lists]
pods = ["10.244.0.0/16 le 32", "deny 0.0.0.0/0 le 32"]

[policies.from-tor]
default = "reject"
[[policies.from-tor.terms]]
name = "pods"
match = { prefix-list = "pods", community = { any = ["65000:100"] }, as-path = { pattern = "65001 *" } }
set = [{ local-pref = 200 }, { add-communities = ["65000:1:2"] }, { prepend = { count = 2 } }, "next-hop-self"]
then = "accept"
"#;

    #[test]
    fn the_documented_toml_parses() {
        let d: RoutingPolicy = toml::from_str(TOML).unwrap();
        d.validate().unwrap();
        let p = &d.policies["from-tor"];
        assert_eq!(p.default, Verdict::Reject);
        assert_eq!(p.terms[0].actions.len(), 4);
        assert_eq!(p.terms[0].actions[3], Action::NextHopSelf);
        assert_eq!(d.prefix_lists["pods"].entries.len(), 2);
        let bad = toml::from_str::<RoutingPolicy>("[prefix-lists]\nx = [\"10.0.0.0/8 le 40\"]")
            .unwrap_err();
        assert!(bad.to_string().contains("length must be 0 to 32"), "{bad}");
    }

    #[test]
    fn a_policy_change_re_evaluates_the_adj_rib_in() {
        use crate::rib::{PeerConfig, PeerSession, Rib, RibConfig};
        use bgp_wire::{Community, Family, LargeCommunity};

        let v4 = Family::IPV4_UNICAST;
        let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(10, 255, 0, 1)));
        let peer = rib
            .add_peer(PeerConfig::new(Ipv4Addr::new(10, 0, 0, 1).into(), 65001))
            .unwrap();
        let session = PeerSession::new(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2).into(),
            vec![v4],
        );
        rib.peer_up(peer, session.clone()).unwrap();
        let ctx = PolicyContext::new(64512, Some(&session));
        let mut received = attrs(&[65001, 65010]);
        received.path.communities.push(Community::new(65000, 100));
        let prefixes: Vec<IpNet> = ["10.244.1.0/24", "192.0.2.0/24"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        // No policy configured for this eBGP peer: RFC 8212, nothing is accepted.
        let defs = RoutingPolicy::default();
        let none = defs.resolve(None, true).unwrap();
        let ch = rib
            .announce(peer, &prefixes, received, &mut defs.filter(none, ctx))
            .unwrap();
        assert!(ch.is_empty());
        let counts = rib.peer_counts(peer, v4).unwrap();
        assert_eq!((counts.received, counts.accepted), (2, 0));
        // The policy arrives: the routes are re-evaluated from the Adj-RIB-In.
        let defs: RoutingPolicy = toml::from_str(TOML).unwrap();
        let p = defs.resolve(Some("from-tor"), true).unwrap();
        let ch = rib.reimport(peer, v4, &mut defs.filter(p, ctx)).unwrap();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].prefix, prefixes[0]);
        let best = ch[0].best.as_ref().unwrap();
        assert_eq!(best.attrs.path.local_pref, Some(200));
        assert_eq!(
            best.attrs.path.large_communities,
            vec![LargeCommunity {
                global: 65000,
                local1: 1,
                local2: 2
            }]
        );
        assert_eq!(
            best.attrs.path.as_path.to_string(),
            "64512 64512 65001 65010"
        );
        assert_eq!(
            best.attrs.next_hop,
            MpNextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 2))
        );
        assert_eq!(rib.peer_counts(peer, v4).unwrap().accepted, 1);
    }
}
