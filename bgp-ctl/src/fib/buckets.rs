//! Resilient assignment of a group's hash buckets to its members.
//!
//! A flow hashes to one of [`GROUP_BUCKETS`] buckets; each bucket names a member. When
//! the member set changes, buckets of surviving members stay where they are unless a
//! member holds more than its new fair share: removing a member moves only that member's
//! buckets, adding one takes about 1/n of the buckets from the others.

use xdp_fwd_common::GROUP_BUCKETS;

/// Fair shares: `GROUP_BUCKETS / n` each, and the `GROUP_BUCKETS % n` left over to the
/// members that already hold the most (ties to the lower index), so that no bucket moves
/// only because of how the remainder falls.
fn shares(held: &[usize]) -> Vec<usize> {
    let n = held.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(held[i]), i));
    let mut out = vec![GROUP_BUCKETS / n; n];
    for &i in order.iter().take(GROUP_BUCKETS % n) {
        out[i] += 1;
    }
    out
}

/// New bucket table for `new_members` (next-hop ids), given the previous members and
/// table (bucket -> index into `old_members`). Returns bucket -> index into
/// `new_members`. `new_members` must be non-empty, at most 255 long, without duplicates.
pub fn rebalance(
    old_members: &[u32],
    old_buckets: &[u8; GROUP_BUCKETS],
    new_members: &[u32],
) -> [u8; GROUP_BUCKETS] {
    let n = new_members.len();
    assert!((1..=255).contains(&n), "a group has 1..=255 members");
    // bucket -> index into new_members, or None if its member left.
    let mut owner: [Option<u8>; GROUP_BUCKETS] = [None; GROUP_BUCKETS];
    let mut held = vec![0usize; n];
    for (b, &old_idx) in old_buckets.iter().enumerate() {
        let Some(&id) = old_members.get(old_idx as usize) else {
            continue;
        };
        if let Some(new_idx) = new_members.iter().position(|&m| m == id) {
            owner[b] = Some(new_idx as u8);
            held[new_idx] += 1;
        }
    }
    let share = shares(&held);
    // Members above their share give up their highest buckets.
    for b in (0..GROUP_BUCKETS).rev() {
        if let Some(m) = owner[b] {
            let m = m as usize;
            if held[m] > share[m] {
                held[m] -= 1;
                owner[b] = None;
            }
        }
    }
    // Free buckets go to members below their share, in member order.
    let mut next = 0;
    let mut out = [0u8; GROUP_BUCKETS];
    for b in 0..GROUP_BUCKETS {
        out[b] = match owner[b] {
            Some(m) => m,
            None => {
                while held[next] >= share[next] {
                    next += 1;
                }
                held[next] += 1;
                next as u8
            }
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(members: &[u32]) -> [u8; GROUP_BUCKETS] {
        rebalance(&[], &[0; GROUP_BUCKETS], members)
    }

    fn counts(buckets: &[u8; GROUP_BUCKETS], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &b in buckets {
            c[b as usize] += 1;
        }
        c
    }

    #[test]
    fn a_fresh_table_is_even() {
        for n in 1..=16 {
            let members: Vec<u32> = (100..100 + n as u32).collect();
            let c = counts(&fresh(&members), n);
            let (min, max) = (c.iter().min().unwrap(), c.iter().max().unwrap());
            assert!(max - min <= 1, "n={n}: {c:?}");
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_buckets() {
        let members: Vec<u32> = (1..=8).collect();
        let before = fresh(&members);
        let survivors: Vec<u32> = members.iter().copied().filter(|&m| m != 4).collect();
        let after = rebalance(&members, &before, &survivors);
        for b in 0..GROUP_BUCKETS {
            let was = members[before[b] as usize];
            let now = survivors[after[b] as usize];
            if was != 4 {
                assert_eq!(was, now, "bucket {b} moved from a surviving member");
            }
        }
        let c = counts(&after, 7);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn adding_a_member_moves_about_one_nth() {
        let members: Vec<u32> = (1..=7).collect();
        let before = fresh(&members);
        let mut grown = members.clone();
        grown.push(8);
        let after = rebalance(&members, &before, &grown);
        let moved = (0..GROUP_BUCKETS)
            .filter(|&b| members[before[b] as usize] != grown[after[b] as usize])
            .count();
        // Exactly the new member's share moves, all of it to the new member.
        assert_eq!(moved, counts(&after, 8)[7]);
        assert!(moved.abs_diff(GROUP_BUCKETS / 8) <= 1, "moved {moved}");
    }

    #[test]
    fn member_order_changes_do_not_move_flows() {
        let before = fresh(&[1, 2, 3]);
        let after = rebalance(&[1, 2, 3], &before, &[3, 1, 2]);
        for b in 0..GROUP_BUCKETS {
            assert_eq!([1, 2, 3][before[b] as usize], [3, 1, 2][after[b] as usize]);
        }
    }
}
