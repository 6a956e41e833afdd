//! The decision process (RFC 4271 9.1) over the eligible paths of one prefix.
//!
//! It is done as RFC 4271 9.1.2.2 describes it, by elimination: each step keeps the
//! paths that are best on one criterion among those still in. Unlike a pairwise
//! comparison, this is independent of the order paths arrived in, also for MED, which
//! is compared only between paths from the same neighbor AS (RFC 4271 9.1.2.2 c) and so
//! is not a total order.
//!
//! Steps, in order (FRR's; BIRD and RFC 4456 section 9 put the router id before the
//! CLUSTER_LIST length):
//! 1. locally originated paths beat learned ones (like FRR's weight 32768 / BIRD's
//!    preference for its own routes);
//! 2. highest LOCAL_PREF (missing: the configured default, 100);
//! 3. shortest AS_PATH (an AS_SET counts as one, confederation segments as none);
//! 4. lowest ORIGIN;
//! 5. lowest MED (missing: 0), between paths from the same neighbor AS unless
//!    always-compare-med;
//! 6. eBGP over iBGP;
//!    (RFC 4271 e), the IGP metric to the next hop, is skipped: this speaker has no IGP);
//! 7. fresh over stale (graceful restart), among paths equal so far: our choice, so that
//!    a multipath set never mixes stale paths with fresh ones;
//!
//!    The paths still in after step 7 are the multipath candidates ([`super::multipath`]).
//! 8. shortest CLUSTER_LIST;
//! 9. lowest router id (ORIGINATOR_ID if present, RFC 4456 9);
//! 10. lowest peer address.
//!
//! Paths whose next hop is unreachable, that import policy rejected, or that failed the
//! loop checks are not eligible (RFC 4271 9.1.2.1) and never reach this module.

use std::net::{IpAddr, Ipv4Addr};

use bgp_wire::Origin;
use serde::{Deserialize, Serialize};

/// What the decision process compares, for one eligible path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Position of the path in the prefix's path list.
    pub index: usize,
    pub local: bool,
    pub local_pref: u32,
    pub as_path_len: usize,
    pub origin: Origin,
    pub med: u32,
    /// First AS of the AS_PATH, or the local AS for a path without one.
    pub neighbor_as: u32,
    pub ebgp: bool,
    pub stale: bool,
    pub cluster_list_len: usize,
    /// ORIGINATOR_ID if present, else the peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// `None` for local paths.
    pub peer_address: Option<IpAddr>,
}

/// Options of the decision process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DecisionOptions {
    /// Compare MED between paths from different neighbor ASes too.
    pub always_compare_med: bool,
}

/// Keeps only the candidates whose key is the minimum.
fn keep_min<K: Ord>(c: &mut Vec<Candidate>, key: impl Fn(&Candidate) -> K) {
    if let Some(min) = c.iter().map(&key).min() {
        c.retain(|x| key(x) == min);
    }
}

/// Steps 1 to 7: reduces `c` to the paths equal to the best through the eBGP/iBGP and
/// stale steps: the multipath candidates. Empty input stays empty.
pub(crate) fn eliminate_to_multipath_pool(c: &mut Vec<Candidate>, opts: DecisionOptions) {
    keep_min(c, |x| !x.local);
    keep_min(c, |x| std::cmp::Reverse(x.local_pref));
    keep_min(c, |x| x.as_path_len);
    keep_min(c, |x| x.origin);
    if opts.always_compare_med {
        keep_min(c, |x| x.med);
    } else {
        // Remove a path when another one from the same neighbor AS has a lower MED. The
        // lowest of each AS is never removed, so removing one by one gives the result of
        // removing all at once.
        let mut i = 0;
        while let Some(x) = c.get(i) {
            let (asn, med) = (x.neighbor_as, x.med);
            if c.iter().any(|y| y.neighbor_as == asn && y.med < med) {
                c.remove(i);
            } else {
                i += 1;
            }
        }
    }
    keep_min(c, |x| !x.ebgp);
    keep_min(c, |x| x.stale);
}

/// The order of steps 8 to 10: lower is better. A total order, so a sort by it is safe.
pub(crate) fn tie_break_key(x: &Candidate) -> (usize, Ipv4Addr, Option<IpAddr>, usize) {
    (x.cluster_list_len, x.router_id, x.peer_address, x.index)
}

/// The best of `candidates` (the index of the path in its list), `None` if empty. The RIB
/// gets it as the head of [`super::multipath::select`]'s set.
#[cfg(test)]
pub(crate) fn best_path(candidates: &[Candidate], opts: DecisionOptions) -> Option<usize> {
    let mut c = candidates.to_vec();
    eliminate_to_multipath_pool(&mut c, opts);
    c.iter().min_by_key(|x| tie_break_key(x)).map(|x| x.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: DecisionOptions = DecisionOptions {
        always_compare_med: false,
    };

    /// Two iBGP paths equal in everything but what a test changes; path 1 wins the last
    /// tie-breaker (peer address) unless the step under test decides otherwise.
    fn pair() -> (Candidate, Candidate) {
        let base = Candidate {
            index: 0,
            local: false,
            local_pref: 100,
            as_path_len: 2,
            origin: Origin::Igp,
            med: 0,
            neighbor_as: 65001,
            ebgp: false,
            stale: false,
            cluster_list_len: 0,
            router_id: Ipv4Addr::new(1, 1, 1, 1),
            peer_address: Some(IpAddr::from([10, 0, 0, 2])),
        };
        let first = Candidate {
            index: 1,
            peer_address: Some(IpAddr::from([10, 0, 0, 1])),
            ..base.clone()
        };
        (base, first)
    }

    /// Asserts that with `change` applied to path 0 it wins, and that without it path 1
    /// wins: so the step under test is what decides.
    fn decides(change: impl Fn(&mut Candidate)) {
        let (mut a, b) = pair();
        assert_eq!(best_path(&[a.clone(), b.clone()], OPTS), Some(1));
        change(&mut a);
        assert_eq!(best_path(&[a.clone(), b.clone()], OPTS), Some(0));
        assert_eq!(best_path(&[b, a], OPTS), Some(0), "order independent");
    }

    #[test]
    fn local_origin_wins_over_everything_else() {
        decides(|a| {
            a.local = true;
            a.peer_address = None;
            a.local_pref = 1;
            a.as_path_len = 9;
        });
    }

    #[test]
    fn highest_local_pref_wins() {
        decides(|a| {
            a.local_pref = 200;
            a.as_path_len = 5;
        });
    }

    #[test]
    fn shortest_as_path_wins() {
        decides(|a| {
            a.as_path_len = 1;
            a.origin = Origin::Incomplete;
        });
    }

    #[test]
    fn lowest_origin_wins() {
        let (_, mut b) = pair();
        b.origin = Origin::Egp;
        let (mut a, _) = pair();
        a.origin = Origin::Igp;
        a.med = 50;
        assert_eq!(best_path(&[a, b], OPTS), Some(0));
    }

    #[test]
    fn lowest_med_wins_within_the_same_neighbor_as() {
        let (mut a, mut b) = pair();
        a.med = 10;
        b.med = 20;
        a.ebgp = false;
        assert_eq!(best_path(&[a.clone(), b.clone()], OPTS), Some(0));
        // From different neighbor ASes MED is not compared: the peer address decides.
        a.neighbor_as = 65002;
        assert_eq!(best_path(&[a.clone(), b.clone()], OPTS), Some(1));
        // ... unless always-compare-med.
        let always = DecisionOptions {
            always_compare_med: true,
        };
        assert_eq!(best_path(&[a, b], always), Some(0));
    }

    #[test]
    fn med_elimination_is_order_independent() {
        // The classic non-transitive triple: A(AS1, MED 10), B(AS2, MED 0), C(AS1, MED 5).
        // Pairwise comparison in arrival order gives different winners; elimination
        // removes A (C has a lower MED in AS1), then B and C go to the tie-breakers.
        let (base, _) = pair();
        let a = Candidate {
            index: 0,
            neighbor_as: 1,
            med: 10,
            router_id: Ipv4Addr::new(1, 0, 0, 1),
            ..base.clone()
        };
        let b = Candidate {
            index: 1,
            neighbor_as: 2,
            med: 0,
            router_id: Ipv4Addr::new(1, 0, 0, 3),
            ..base.clone()
        };
        let c = Candidate {
            index: 2,
            neighbor_as: 1,
            med: 5,
            router_id: Ipv4Addr::new(1, 0, 0, 2),
            ..base
        };
        let perms = [
            [a.clone(), b.clone(), c.clone()],
            [b.clone(), c.clone(), a.clone()],
            [c.clone(), a.clone(), b.clone()],
            [c, b, a],
        ];
        for p in perms {
            assert_eq!(best_path(&p, OPTS), Some(2));
        }
    }

    #[test]
    fn ebgp_wins_over_ibgp() {
        decides(|a| {
            a.ebgp = true;
            a.cluster_list_len = 3;
        });
    }

    #[test]
    fn fresh_wins_over_stale_among_equals() {
        let (a, mut b) = pair();
        b.stale = true;
        assert_eq!(best_path(&[a, b], OPTS), Some(0));
    }

    #[test]
    fn shortest_cluster_list_wins() {
        let (mut a, mut b) = pair();
        b.cluster_list_len = 2;
        a.cluster_list_len = 1;
        a.router_id = Ipv4Addr::new(9, 9, 9, 9);
        assert_eq!(best_path(&[a, b], OPTS), Some(0));
    }

    #[test]
    fn lowest_router_id_wins() {
        decides(|a| a.router_id = Ipv4Addr::new(0, 0, 0, 1));
    }

    #[test]
    fn lowest_peer_address_wins() {
        let (a, b) = pair();
        assert_eq!(best_path(&[a.clone(), b.clone()], OPTS), Some(1));
        assert_eq!(best_path(&[b, a], OPTS), Some(1));
    }

    #[test]
    fn no_candidate_no_best() {
        assert_eq!(best_path(&[], OPTS), None);
    }
}
