#!/usr/bin/env python3
"""Extracts the BGP messages of every TCP connection in a pcap (Ethernet, IPv4/IPv6).

Usage: extract.py CAPTURE.pcap OUTDIR
Writes one file per connection direction, named after the session ("ipv4", "ipv6",
"as2": by FRR's address) and direction ("frr-to-bird" / "bird-to-frr"): one message per
line in hex. Reassembly keeps the first copy of each sequence range, in order.
"""
import ipaddress
import struct
import sys

FRR = {"10.0.0.1": "ipv4", "10.0.0.11": "as2", "fd00::1": "ipv6"}


def packets(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def tcp_segments(path):
    for frame in packets(path):
        ethertype = struct.unpack("!H", frame[12:14])[0]
        ip = frame[14:]
        if ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            src, dst = ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
            tcp = ip[ihl:total]
        elif ethertype == 0x86DD:
            plen = struct.unpack("!H", ip[4:6])[0]
            src, dst = ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
            tcp = ip[40:40 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        flags = tcp[13]
        doff = (tcp[12] >> 4) * 4
        yield (str(src), sport, str(dst), dport), seq, flags, tcp[doff:]


def main():
    pcap, outdir = sys.argv[1], sys.argv[2]
    streams = {}
    for key, seq, flags, payload in tcp_segments(pcap):
        s = streams.setdefault(key, {"isn": None, "data": bytearray(), "next": None})
        if flags & 0x02:  # SYN: a new connection on this 4-tuple starts here
            s["isn"] = seq + 1
            s["next"] = seq + 1
            continue
        if s["next"] is None or not payload:
            continue
        if seq == s["next"]:
            s["data"] += payload
            s["next"] = (seq + len(payload)) & 0xFFFFFFFF
        elif (s["next"] - seq) & 0xFFFFFFFF < len(payload):
            skip = (s["next"] - seq) & 0xFFFFFFFF
            s["data"] += payload[skip:]
            s["next"] = (seq + len(payload)) & 0xFFFFFFFF
    files = {}
    for (src, sport, dst, dport), s in streams.items():
        frr_side = src if src in FRR else dst
        session = FRR.get(frr_side)
        if session is None:
            continue
        direction = "frr-to-bird" if src in FRR else "bird-to-frr"
        data, msgs = bytes(s["data"]), []
        while len(data) >= 19:
            length = struct.unpack("!H", data[16:18])[0]
            if length < 19 or len(data) < length:
                break
            msgs.append(data[:length].hex())
            data = data[length:]
        files.setdefault(f"{direction}-{session}.hex", []).extend(msgs)
    for name, msgs in sorted(files.items()):
        with open(f"{outdir}/{name}", "w") as f:
            f.write("\n".join(msgs) + "\n")
        print(f"{name}: {len(msgs)} messages")


main()
