//! Config texts that several integration tests start from, for the lab's node (bgp-ctl)
//! at 192.0.2.11 and a leaf at 192.0.2.1 (FRR) on the link between them.

/// The node's AS in these labs (a private 4-octet AS, as in the reference fabric).
pub const NODE_AS: u32 = 4_200_000_001;
/// Leaf1's AS (at 192.0.2.1, [`LEAF1_PEER`]).
pub const LEAF1_AS: u32 = 65001;
/// A second leaf's AS.
pub const LEAF2_AS: u32 = 65002;

/// bgp-ctl's config for the node: router id 192.0.2.11, AS `asn`, the XDP dataplane in
/// skb mode on `uplinks`, pins and the control socket where [`crate::agent::Agent`] puts
/// them (`@PINS@`, `@SOCKET@`), HTTP on a free port, hold time 9 s, keepalive 3 s and
/// connect retry 1 s. `rest` follows: tables only (`[[peer]]`, `[origination]`, ...), as
/// anything else would land in `[timers]`.
pub fn node_config(asn: u32, uplinks: &[&str], rest: &str) -> String {
    let uplinks = uplinks
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
router-id = "192.0.2.11"
asn = {asn}
[dataplane]
uplinks = [{uplinks}]
mode = "skb"
pin-dir = "@PINS@"
[api]
socket = "@SOCKET@"
[http]
listen = "127.0.0.1:0"
[timers]
hold = 9
keepalive = 3
connect-retry = 1
{rest}
"#
    )
}

/// Our `[[peer]]` for leaf1 as the node sees it: at 192.0.2.1, AS 65001, IPv4 unicast,
/// everything accepted and announced. Keys of this peer may follow.
pub const LEAF1_PEER: &str = r#"
[[peer]]
name = "leaf1"
address = "192.0.2.1"
remote-asn = 65001
import = "accept-all"
export = "accept-all"
families = ["ipv4-unicast"]
"#;

/// FRR's config for a leaf named `hostname` (router id 192.0.2.1) of AS `asn`: no RFC
/// 8212 policy requirement, `network` statements announced without a route in the RIB
/// (no import check), and the eBGP neighbor `neighbor` of AS `neighbor_as`, connected to
/// every second. `rest` follows inside `router bgp` (more neighbor lines, address
/// families) and may define route maps after it.
pub fn frr_leaf(hostname: &str, asn: u32, neighbor: &str, neighbor_as: u32, rest: &str) -> String {
    format!(
        "frr defaults traditional\nhostname {hostname}\n\
         router bgp {asn}\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n \
         no bgp network import-check\n\
         neighbor {neighbor} remote-as {neighbor_as}\n neighbor {neighbor} timers connect 1\n\
         {rest}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf1_peer_is_of_leaf1_as() {
        assert!(LEAF1_PEER.contains(&format!("\nremote-asn = {LEAF1_AS}\n")));
    }

    #[test]
    fn the_node_config_lists_the_uplinks_and_ends_with_the_rest() {
        let c = node_config(65000, &["n0", "n1"], "[[peer]]\nname = \"x\"");
        assert!(c.contains("uplinks = [\"n0\", \"n1\"]\n"), "{c}");
        assert!(c.contains("asn = 65000\n"), "{c}");
        assert!(c.trim_end().ends_with("[[peer]]\nname = \"x\""), "{c}");
    }

    #[test]
    fn the_frr_leaf_config_names_the_neighbor_and_ends_with_the_rest() {
        let c = frr_leaf(
            "leaf",
            65001,
            "fd00::11",
            4_200_000_001,
            " neighbor fd00::11 x\n",
        );
        assert!(c.starts_with("frr defaults traditional\nhostname leaf\nrouter bgp 65001\n"));
        assert!(
            c.ends_with(
                "neighbor fd00::11 remote-as 4200000001\n neighbor fd00::11 timers connect 1\n \
                 neighbor fd00::11 x\n"
            ),
            "{c}"
        );
    }
}
