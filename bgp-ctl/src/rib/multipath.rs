//! Multipath (ECMP) sets: which paths forward traffic together with the best one.
//!
//! A path joins the best path's set when it is equal to it through the decision steps
//! up to eBGP-over-iBGP (LOCAL_PREF, AS_PATH length, ORIGIN, MED as compared, peer type)
//! and the fresh-over-stale step, and, by default, came from the same neighbor AS. With
//! `relax_neighbor_as` (FRR's `bestpath as-path multipath-relax`) an equal AS_PATH
//! length is enough.
//!
//! Graceful restart: a set is all fresh or all stale, never mixed. A stale path is one
//! whose session is gone; its forwarding state may survive (that is the point of GR),
//! but while a fresh equal path exists we send traffic there (GoBGP once kept an
//! LLGR-stale path in its ECMP set: issue 3652). When only stale paths are left they
//! form the set, so forwarding continues through the restart.

use serde::{Deserialize, Serialize};

use super::best_path::{Candidate, DecisionOptions, eliminate_to_multipath_pool, tie_break_key};

/// Multipath options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MultipathOptions {
    /// Largest set, the best path included (1 disables multipath). Default 16, the size
    /// of a dataplane next-hop group.
    pub max_paths: u8,
    /// Accept paths from different neighbor ASes when their AS_PATH length is equal.
    pub relax_neighbor_as: bool,
}

impl Default for MultipathOptions {
    fn default() -> Self {
        MultipathOptions {
            max_paths: 16,
            relax_neighbor_as: false,
        }
    }
}

/// Runs the decision process and selects the multipath set: fills `out` with indices
/// (into the prefix's path list) of the set, the best path first, then the others in
/// tie-breaker order. `out` is empty when no candidate is eligible. `candidates` is
/// consumed as scratch space.
pub(crate) fn select(
    candidates: &mut Vec<Candidate>,
    decision: DecisionOptions,
    multipath: MultipathOptions,
    out: &mut Vec<usize>,
) {
    out.clear();
    eliminate_to_multipath_pool(candidates, decision);
    candidates.sort_by_key(tie_break_key);
    let Some(best) = candidates.first() else {
        return;
    };
    let best_as = best.neighbor_as;
    let max = usize::from(multipath.max_paths.max(1));
    out.extend(
        candidates
            .iter()
            .filter(|c| multipath.relax_neighbor_as || c.neighbor_as == best_as)
            .take(max)
            .map(|c| c.index),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::Origin;
    use std::net::{IpAddr, Ipv4Addr};

    const DECISION: DecisionOptions = DecisionOptions {
        always_compare_med: false,
    };

    fn cand(index: usize, neighbor_as: u32, as_path_len: usize) -> Candidate {
        Candidate {
            index,
            local: false,
            local_pref: 100,
            as_path_len,
            origin: Origin::Igp,
            med: 0,
            neighbor_as,
            ebgp: true,
            stale: false,
            cluster_list_len: 0,
            router_id: Ipv4Addr::new(1, 1, 1, index as u8),
            peer_address: Some(IpAddr::from([10, 0, 0, index as u8])),
        }
    }

    fn run(c: &[Candidate], mp: MultipathOptions) -> Vec<usize> {
        let mut out = Vec::new();
        select(&mut c.to_vec(), DECISION, mp, &mut out);
        out
    }

    #[test]
    fn same_neighbor_as_paths_share_the_set_best_first() {
        let c = [cand(0, 65001, 2), cand(1, 65001, 2), cand(2, 65002, 2)];
        assert_eq!(run(&c, MultipathOptions::default()), vec![0, 1]);
        // A longer path never joins.
        let c = [cand(0, 65001, 2), cand(1, 65001, 3)];
        assert_eq!(run(&c, MultipathOptions::default()), vec![0]);
    }

    #[test]
    fn relax_accepts_other_neighbor_ases_of_equal_length() {
        let relax = MultipathOptions {
            relax_neighbor_as: true,
            ..MultipathOptions::default()
        };
        let c = [cand(2, 65002, 2), cand(0, 65001, 2), cand(1, 65003, 3)];
        assert_eq!(run(&c, relax), vec![0, 2]);
    }

    #[test]
    fn max_paths_caps_the_set_and_one_disables_multipath() {
        let c: Vec<Candidate> = (0..20).map(|i| cand(i, 65001, 1)).collect();
        assert_eq!(run(&c, MultipathOptions::default()).len(), 16);
        let one = MultipathOptions {
            max_paths: 1,
            ..MultipathOptions::default()
        };
        assert_eq!(run(&c, one), vec![0]);
    }

    #[test]
    fn ebgp_and_ibgp_paths_never_mix() {
        let mut ibgp = cand(0, 65001, 2);
        ibgp.ebgp = false;
        let c = [ibgp, cand(1, 65001, 2)];
        assert_eq!(run(&c, MultipathOptions::default()), vec![1]);
    }

    #[test]
    fn stale_paths_join_only_a_stale_set() {
        let mut stale = cand(0, 65001, 2);
        stale.stale = true;
        let c = [stale.clone(), cand(1, 65001, 2), cand(2, 65001, 2)];
        assert_eq!(run(&c, MultipathOptions::default()), vec![1, 2]);
        let mut stale2 = cand(1, 65001, 2);
        stale2.stale = true;
        assert_eq!(
            run(&[stale, stale2], MultipathOptions::default()),
            vec![0, 1]
        );
    }

    #[test]
    fn nothing_eligible_gives_an_empty_set() {
        assert!(run(&[], MultipathOptions::default()).is_empty());
    }
}
