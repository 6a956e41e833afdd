#!/bin/bash
# Captures real BGP sessions between FRR (bgpd, AS 4200000001) and BIRD 2
# (AS 4200000002; and AS 65002 without the 4-octet AS capability, to which FRR
# presents itself as AS 65001) in two network
# namespaces joined by a veth pair, with tcpdump in FRR's namespace. Writes
# frr-bird.pcap into the directory given as $1 (default: a temporary directory) and
# prints it. Needs root, frr, bird2 and tcpdump. Everything is removed on exit.
set -euo pipefail
out=${1:-$(mktemp -d)}
tag=cap$$
run=$(mktemp -d /tmp/bgpcap.XXXXXX)
chown frr:frr "$run"
nsa=${tag}a nsb=${tag}b
cleanup() {
    set +e
    [ -f "$run/tcpdump.pid" ] && kill "$(cat "$run/tcpdump.pid")" 2>/dev/null
    [ -f "$run/bgpd.pid" ] && kill "$(cat "$run/bgpd.pid")" 2>/dev/null
    [ -S "$run/bird.ctl" ] && birdc -s "$run/bird.ctl" down >/dev/null 2>&1
    sleep 0.5
    ip netns del "$nsa" 2>/dev/null
    ip netns del "$nsb" 2>/dev/null
    rm -rf "$run"
}
trap cleanup EXIT

ip netns add "$nsa"
ip netns add "$nsb"
ip link add "${tag}va" type veth peer name "${tag}vb"
ip link set "${tag}va" netns "$nsa"
ip link set "${tag}vb" netns "$nsb"
ip -n "$nsa" link set lo up
ip -n "$nsb" link set lo up
ip -n "$nsa" addr add 10.0.0.1/24 dev "${tag}va"
ip -n "$nsa" addr add 10.0.0.11/24 dev "${tag}va"
ip -n "$nsa" addr add fd00::1/64 dev "${tag}va" nodad
ip -n "$nsb" addr add 10.0.0.2/24 dev "${tag}vb"
ip -n "$nsb" addr add 10.0.0.12/24 dev "${tag}vb"
ip -n "$nsb" addr add fd00::2/64 dev "${tag}vb" nodad
ip -n "$nsa" link set "${tag}va" up
ip -n "$nsb" link set "${tag}vb" up

ip netns exec "$nsa" tcpdump -i "${tag}va" -U -s 0 -w "$run/frr-bird.pcap" 'tcp port 179' \
    >"$run/tcpdump.log" 2>&1 &
echo $! >"$run/tcpdump.pid"

cat >"$run/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-a
!
route-map TAG permit 10
 set community 65000:100 65000:101
 set large-community 4200000001:1:2 4200000001:3:4
 set metric 50
!
router bgp 4200000001
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor 10.0.0.2 remote-as 4200000002
 neighbor fd00::2 remote-as 4200000002
 neighbor 10.0.0.12 remote-as 65002
 neighbor 10.0.0.12 update-source 10.0.0.11
 neighbor 10.0.0.12 local-as 65001 no-prepend replace-as
 address-family ipv4 unicast
  network 192.0.2.0/24 route-map TAG
  network 198.51.100.0/25
  network 198.51.100.128/25
  neighbor 10.0.0.2 activate
  neighbor 10.0.0.12 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:1::/48 route-map TAG
  network 2001:db8:1:8000::/49
  neighbor fd00::2 activate
 exit-address-family
!
CONF
chown frr:frr "$run/bgpd.conf"

cat >"$run/bird.conf" <<CONF
router id 10.0.0.2;
protocol device {}
protocol static s4 {
    ipv4;
    route 203.0.113.0/24 blackhole { bgp_community.add((65000, 200)); bgp_large_community.add((4200000002, 5, 6)); };
    route 203.0.113.128/25 blackhole;
}
protocol static s6 {
    ipv6;
    route 2001:db8:2::/48 blackhole { bgp_community.add((65000, 300)); bgp_large_community.add((4200000002, 7, 8)); };
}
protocol bgp frr4 {
    local 10.0.0.2 as 4200000002;
    neighbor 10.0.0.1 as 4200000001;
    connect delay time 1;
    hold time 9;
    # BIRD drops MED towards eBGP peers unless the export filter sets it.
    ipv4 { import all; export filter { if net = 203.0.113.0/24 then bgp_med = 70; accept; }; };
}
protocol bgp frr6 {
    local fd00::2 as 4200000002;
    neighbor fd00::1 as 4200000001;
    connect delay time 1;
    hold time 9;
    ipv6 { import all; export all; };
}
protocol bgp old {
    local 10.0.0.12 as 65002;
    neighbor 10.0.0.11 as 65001;
    enable as4 off;
    connect delay time 1;
    hold time 9;
    ipv4 { import all; export all; };
}
CONF

ip netns exec "$nsa" /usr/lib/frr/bgpd -d -u frr -g frr -Z -n -f "$run/bgpd.conf" \
    -i "$run/bgpd.pid" --vty_socket "$run" -z "$run/zserv.api" --log "file:$run/bgpd.log"
ip netns exec "$nsb" bird -c "$run/bird.conf" -s "$run/bird.ctl" -P "$run/bird.pid"

# Wait (bounded) until FRR has exchanged routes on all three sessions.
for _ in $(seq 1 60); do
    up=$(vtysh --vty_socket "$run" -d bgpd -c 'show bgp summary' 2>/dev/null \
        | awk '$1 ~ /^(10\.0\.0\.2|10\.0\.0\.12|fd00::2)$/ && $10 ~ /^[0-9]+$/' \
        | wc -l)
    [ "$up" -ge 3 ] && break
    sleep 1
done
sleep 3 # the initial UPDATEs and End-of-RIBs
vtysh --vty_socket "$run" -d bgpd -c 'show bgp summary' || true
vtysh --vty_socket "$run" -d bgpd -c 'show bgp ipv6 unicast' || true
birdc -s "$run/bird.ctl" show route all || true
birdc -s "$run/bird.ctl" show protocols || true
# A route refresh each way, then a clean shutdown (NOTIFICATION Cease).
vtysh --vty_socket "$run" -d bgpd -c 'clear bgp 10.0.0.2 soft in' || true
birdc -s "$run/bird.ctl" reload in frr6 >/dev/null || true
sleep 2
vtysh --vty_socket "$run" -d bgpd -c 'show bgp ipv4 unicast' || true
birdc -s "$run/bird.ctl" disable frr4 >/dev/null || true
sleep 2
kill "$(cat "$run/tcpdump.pid")"
rm "$run/tcpdump.pid"
sleep 0.5
cp "$run/frr-bird.pcap" "$out/"
echo "$out/frr-bird.pcap"
