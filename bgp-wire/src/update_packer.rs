//! Packing many prefixes that share one set of path attributes into as few UPDATEs as
//! the message size allows: the path of advertising a full table.
//!
//! The attributes are encoded once per call; each message is then written in place in
//! the output buffer, its length fields patched at the end. Nothing is allocated per
//! prefix or per message (beyond growing the output buffer).

use bytes::{BufMut, BytesMut};
use ipnet::IpNet;

use crate::{
    AttributeFlags as F, AttributeType as T, CodecContext, EncodeError, Family, MessageType,
    MpNextHop, PathAttributes,
    message::{HEADER_LEN, MARKER},
    nlri,
    update_encode::{next_hop_len, put_mp_reach_head, put_path_attributes},
    wire::patch_u16,
};

/// Largest prefix of a family, on the wire.
fn largest_prefix(family: Family) -> usize {
    if family == Family::IPV4_UNICAST {
        5
    } else {
        17
    }
}

fn check_family(family: Family) -> Result<(), EncodeError> {
    if family == Family::IPV4_UNICAST || family == Family::IPV6_UNICAST {
        Ok(())
    } else {
        Err(EncodeError::UnsupportedFamily(family))
    }
}

fn belongs(family: Family, net: &IpNet) -> Result<(), EncodeError> {
    match (net, family == Family::IPV4_UNICAST) {
        (IpNet::V4(_), true) | (IpNet::V6(_), false) => Ok(()),
        _ => Err(EncodeError::FamilyMismatch {
            family,
            prefix: *net,
        }),
    }
}

/// Starts an UPDATE: header with a zero length, to be patched.
fn start_message(out: &mut BytesMut) {
    out.put_slice(&MARKER);
    out.put_u16(0);
    out.put_u8(MessageType::Update.code());
}

/// Writes prefixes from `rest` while they fit before `end`; returns how many.
fn pack(
    out: &mut BytesMut,
    family: Family,
    rest: &[IpNet],
    end: usize,
) -> Result<usize, EncodeError> {
    let mut n = 0;
    for net in rest {
        belongs(family, net)?;
        if out.len() + nlri::net_size(net) > end {
            break;
        }
        nlri::put_net(out, net);
        n += 1;
    }
    Ok(n)
}

/// Encodes UPDATEs announcing `prefixes` (all of `family`) with `attrs`, as many per
/// message as fit in `ctx.max_message_len()`; returns the number of messages written.
///
/// IPv4 unicast routes go in the NLRI field with NEXT_HOP `next_hop` (an
/// [`MpNextHop::Ipv4`]) or, when `None`, `attrs.next_hop`. IPv6 unicast routes go in
/// MP_REACH_NLRI (the first attribute, RFC 7606 5.1) with `next_hop`, which must be
/// [`MpNextHop::Ipv6`]; `attrs.next_hop` is not sent with them. On error nothing is
/// left in `out`.
pub fn encode_updates(
    attrs: &PathAttributes,
    family: Family,
    next_hop: Option<MpNextHop>,
    prefixes: &[IpNet],
    ctx: &CodecContext,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    check_family(family)?;
    let v4 = family == Family::IPV4_UNICAST;
    let mut block = BytesMut::with_capacity(128);
    let mp_next_hop = if v4 {
        let nh = match next_hop {
            Some(MpNextHop::Ipv4(a)) => Some(a),
            Some(MpNextHop::Ipv6 { .. }) => None,
            None => attrs.next_hop,
        };
        let nh = nh.ok_or(EncodeError::MissingNextHop(family))?;
        put_path_attributes(attrs, Some(nh), ctx, &mut block)?;
        None
    } else {
        let Some(nh @ MpNextHop::Ipv6 { .. }) = next_hop else {
            return Err(EncodeError::MissingNextHop(family));
        };
        put_path_attributes(attrs, None, ctx, &mut block)?;
        Some(nh)
    };
    let max = ctx.max_message_len();
    // Header, Withdrawn Routes Length, Total Path Attribute Length, attributes, and for
    // IPv6 the MP_REACH_NLRI header (always with a 2-octet length) and fixed fields.
    let mp_fixed = mp_next_hop
        .as_ref()
        .map_or(0, |nh| 4 + 5 + next_hop_len(nh));
    let fixed = HEADER_LEN + 4 + block.len() + mp_fixed;
    if fixed + largest_prefix(family) > max {
        return Err(EncodeError::TooLong {
            kind: MessageType::Update,
            len: fixed + largest_prefix(family),
            max,
        });
    }
    let begin = out.len();
    let mut rest = prefixes;
    let mut messages = 0;
    while !rest.is_empty() {
        let start = out.len();
        out.reserve(max);
        start_message(out);
        out.put_u16(0); // no withdrawn routes
        let alen_pos = out.len();
        out.put_u16(0);
        let packed = if let Some(nh) = &mp_next_hop {
            out.put_u8(F::OPTIONAL | F::EXTENDED_LENGTH);
            out.put_u8(T::MpReachNlri.code());
            let mp_len_pos = out.len();
            out.put_u16(0);
            put_mp_reach_head(out, family, nh);
            let packed = pack(out, family, rest, start + max - block.len());
            let mp_len = out.len() - mp_len_pos - 2;
            patch_u16(out, mp_len_pos, mp_len as u16);
            out.put_slice(&block);
            packed
        } else {
            out.put_slice(&block);
            let attrs_end = out.len();
            let packed = pack(out, family, rest, start + max);
            patch_u16(out, alen_pos, (attrs_end - alen_pos - 2) as u16);
            packed
        };
        let packed = match packed {
            Ok(n) if n > 0 => n,
            Ok(_) => {
                // Unreachable by the size check above; never loop without progress.
                out.truncate(begin);
                return Err(EncodeError::TooLong {
                    kind: MessageType::Update,
                    len: out.len() - start,
                    max,
                });
            }
            Err(e) => {
                out.truncate(begin);
                return Err(e);
            }
        };
        if mp_next_hop.is_some() {
            let alen = out.len() - alen_pos - 2;
            patch_u16(out, alen_pos, alen as u16);
        }
        let len = out.len() - start;
        patch_u16(out, start + 16, len as u16);
        rest = rest.get(packed..).unwrap_or_default();
        messages += 1;
    }
    Ok(messages)
}

/// Encodes UPDATEs withdrawing `prefixes` (all of `family`), as many per message as fit;
/// returns the number of messages. IPv4 unicast uses the Withdrawn Routes field, IPv6
/// unicast MP_UNREACH_NLRI. On error nothing is left in `out`.
pub fn encode_withdrawals(
    family: Family,
    prefixes: &[IpNet],
    ctx: &CodecContext,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    check_family(family)?;
    let v4 = family == Family::IPV4_UNICAST;
    let max = ctx.max_message_len();
    let begin = out.len();
    let mut rest = prefixes;
    let mut messages = 0;
    while !rest.is_empty() {
        let start = out.len();
        out.reserve(max);
        start_message(out);
        let packed = if v4 {
            let wlen_pos = out.len();
            out.put_u16(0);
            // Room is left for the Total Path Attribute Length after the prefixes.
            let packed = pack(out, family, rest, start + max - 2);
            patch_u16(out, wlen_pos, (out.len() - wlen_pos - 2) as u16);
            out.put_u16(0);
            packed
        } else {
            out.put_u16(0);
            let alen_pos = out.len();
            out.put_u16(0);
            out.put_u8(F::OPTIONAL | F::EXTENDED_LENGTH);
            out.put_u8(T::MpUnreachNlri.code());
            let mp_len_pos = out.len();
            out.put_u16(0);
            out.put_u16(family.afi.code());
            out.put_u8(family.safi.code());
            let packed = pack(out, family, rest, start + max);
            patch_u16(out, mp_len_pos, (out.len() - mp_len_pos - 2) as u16);
            patch_u16(out, alen_pos, (out.len() - alen_pos - 2) as u16);
            packed
        };
        let packed = match packed {
            Ok(n) if n > 0 => n,
            Ok(_) => {
                // Unreachable by the size check above; never loop without progress.
                out.truncate(begin);
                return Err(EncodeError::TooLong {
                    kind: MessageType::Update,
                    len: out.len() - start,
                    max,
                });
            }
            Err(e) => {
                out.truncate(begin);
                return Err(e);
            }
        };
        let len = out.len() - start;
        patch_u16(out, start + 16, len as u16);
        rest = rest.get(packed..).unwrap_or_default();
        messages += 1;
    }
    Ok(messages)
}
