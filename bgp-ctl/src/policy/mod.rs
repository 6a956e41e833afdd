//! Routing policy: named prefix lists, match conditions (prefix list, communities,
//! AS path), actions (accept, reject, communities, LOCAL_PREF, MED, prepend, next hop
//! self) and ordered-term policies with a default verdict.
//!
//! Policy sits above the RIB: the speaker binds a [`Policy`] to a peer's session with
//! [`RoutingPolicy::filter`] and hands the resulting [`PolicyFilter`] to the RIB's import
//! and export operations. RFC 8212 is explicit in [`RoutingPolicy::resolve`]: an eBGP peer
//! without a configured policy gets [`REJECT_ALL`] both ways.
//!
//! Every type is `serde`-ready for the configuration file; in TOML:
//! ```toml
//! [prefix-lists]
//! pods = ["10.244.0.0/16 le 32", "deny 0.0.0.0/0 le 32"]
//!
//! [policies.from-tor]
//! default = "reject"
//! [[policies.from-tor.terms]]
//! name = "pods"
//! match = { prefix-list = "pods", community = { any = ["65000:100"] }, as-path = { pattern = "65001 *" } }
//! set = [{ local-pref = 200 }, { add-communities = ["65000:1:2"] }, { prepend = { count = 2 } }, "next-hop-self"]
//! then = "accept"
//! ```

mod action;
mod community;
mod matcher;
mod prefix_list;
mod route_policy;

pub use action::{Action, MAX_PREPEND, PolicyContext, Prepend};
pub use community::{CommunityError, CommunityValue};
pub use matcher::{
    AsPathMatch, AsPathPattern, CommunityMatch, Conditions, LengthRange, PatternError, PatternWord,
};
pub use prefix_list::{ListAction, PrefixList, PrefixListEntry, PrefixListError};
pub use route_policy::{
    ACCEPT_ALL, BUILT_IN, PeerPolicy, Policy, PolicyError, PolicyFilter, REJECT_ALL, RoutingPolicy,
    Term, Then, Verdict,
};
