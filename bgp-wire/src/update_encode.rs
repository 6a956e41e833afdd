//! UPDATE encoding: path attributes (with the RFC 6793 AS_TRANS / AS4_* conversion for
//! 2-octet peers), MP_REACH_NLRI / MP_UNREACH_NLRI, and whole UPDATE bodies.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use crate::{
    AS_TRANS, Aggregator, AttributeFlags as F, AttributeType as T, CodecContext, EncodeError,
    Family, MpNextHop, MpReach, MpUnreach, PathAttributes, Update, as4, nlri,
    wire::{patch_u16, put_attr_header},
};

const WELL_KNOWN: u8 = F::TRANSITIVE;
const OPTIONAL: u8 = F::OPTIONAL;
const OPTIONAL_TRANSITIVE: u8 = F::OPTIONAL | F::TRANSITIVE;

/// Largest attribute value (two-octet length).
const MAX_VALUE: usize = u16::MAX as usize;

fn check_len(what: T, len: usize) -> Result<(), EncodeError> {
    if len > MAX_VALUE {
        return Err(EncodeError::FieldTooLong(format!(
            "{what:?} value of {len} octets, at most {MAX_VALUE}"
        )));
    }
    Ok(())
}

fn put_aggregator(out: &mut BytesMut, code: T, asn_octets: usize, a: &Aggregator, asn: u32) {
    put_attr_header(out, OPTIONAL_TRANSITIVE, code.code(), asn_octets + 4);
    if asn_octets == 4 {
        out.put_u32(asn);
    } else {
        out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
    }
    out.put_slice(&a.address.octets());
}

/// Writes the path attributes of `attrs` (not MP_REACH/MP_UNREACH), with `next_hop` as
/// NEXT_HOP. Towards an external peer (`ctx.ebgp`) LOCAL_PREF, ORIGINATOR_ID and
/// CLUSTER_LIST are left out (RFC 4271 5.1.5, RFC 4456 8). Unrecognized optional
/// transitive attributes are passed on with the Partial bit set (RFC 4271 5).
pub(crate) fn put_path_attributes(
    attrs: &PathAttributes,
    next_hop: Option<Ipv4Addr>,
    ctx: &CodecContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    put_attr_header(out, WELL_KNOWN, T::Origin.code(), 1);
    out.put_u8(attrs.origin.code());

    let as_size = if ctx.four_octet_as { 4 } else { 2 };
    let path_len = as4::path_len(&attrs.as_path, as_size);
    check_len(T::AsPath, path_len)?;
    put_attr_header(out, WELL_KNOWN, T::AsPath.code(), path_len);
    if ctx.four_octet_as {
        as4::put_path4(out, &attrs.as_path);
    } else {
        as4::put_path2(out, &attrs.as_path);
    }

    if let Some(nh) = next_hop {
        put_attr_header(out, WELL_KNOWN, T::NextHop.code(), 4);
        out.put_slice(&nh.octets());
    }
    if let Some(med) = attrs.med {
        put_attr_header(out, OPTIONAL, T::Med.code(), 4);
        out.put_u32(med);
    }
    if let (Some(lp), false) = (attrs.local_pref, ctx.ebgp) {
        put_attr_header(out, WELL_KNOWN, T::LocalPref.code(), 4);
        out.put_u32(lp);
    }
    if attrs.atomic_aggregate {
        put_attr_header(out, WELL_KNOWN, T::AtomicAggregate.code(), 0);
    }
    // RFC 6793 4.2.2: towards a 2-octet speaker, an aggregator AS that does not fit goes
    // in AS4_AGGREGATOR behind AS_TRANS. So does any aggregator when an AS4_PATH is sent:
    // the receiver ignores AS4_PATH next to an AGGREGATOR that is not AS_TRANS (4.2.3).
    let path4 = !ctx.four_octet_as && as4::needs_as4(&attrs.as_path);
    let mut as4_aggregator = None;
    if let Some(a) = &attrs.aggregator {
        if ctx.four_octet_as {
            put_aggregator(out, T::Aggregator, 4, a, a.asn);
        } else if a.asn > u32::from(u16::MAX) || path4 {
            put_aggregator(out, T::Aggregator, 2, a, u32::from(AS_TRANS));
            as4_aggregator = Some(a);
        } else {
            put_aggregator(out, T::Aggregator, 2, a, a.asn);
        }
    }
    if !attrs.communities.is_empty() {
        let len = attrs.communities.len() * 4;
        check_len(T::Communities, len)?;
        put_attr_header(out, OPTIONAL_TRANSITIVE, T::Communities.code(), len);
        for c in &attrs.communities {
            out.put_u32(c.0);
        }
    }
    if !ctx.ebgp {
        if let Some(id) = attrs.originator_id {
            put_attr_header(out, OPTIONAL, T::OriginatorId.code(), 4);
            out.put_slice(&id.octets());
        }
        if !attrs.cluster_list.is_empty() {
            let len = attrs.cluster_list.len() * 4;
            check_len(T::ClusterList, len)?;
            put_attr_header(out, OPTIONAL, T::ClusterList.code(), len);
            for id in &attrs.cluster_list {
                out.put_slice(&id.octets());
            }
        }
    }
    if path4 {
        let as4_path = as4::as4_path_of(&attrs.as_path);
        let len = as4::path_len(&as4_path, 4);
        check_len(T::As4Path, len)?;
        put_attr_header(out, OPTIONAL_TRANSITIVE, T::As4Path.code(), len);
        as4::put_path4(out, &as4_path);
    }
    if let Some(a) = as4_aggregator {
        put_aggregator(out, T::As4Aggregator, 4, a, a.asn);
    }
    if !attrs.large_communities.is_empty() {
        let len = attrs.large_communities.len() * 12;
        check_len(T::LargeCommunities, len)?;
        put_attr_header(out, OPTIONAL_TRANSITIVE, T::LargeCommunities.code(), len);
        for c in &attrs.large_communities {
            out.put_u32(c.global);
            out.put_u32(c.local1);
            out.put_u32(c.local2);
        }
    }
    for raw in &attrs.unknown {
        check_len(T::Other(raw.type_code), raw.value.len())?;
        let mut flags = raw.flags.0;
        if raw.flags.optional() && raw.flags.transitive() {
            flags |= F::PARTIAL;
        }
        put_attr_header(out, flags, raw.type_code, raw.value.len());
        out.put_slice(&raw.value);
    }
    Ok(())
}

/// Wire size of an MP next hop.
pub(crate) fn next_hop_len(nh: &MpNextHop) -> usize {
    match nh {
        MpNextHop::Ipv4(_) => 4,
        MpNextHop::Ipv6 {
            link_local: None, ..
        } => 16,
        MpNextHop::Ipv6 {
            link_local: Some(_),
            ..
        } => 32,
    }
}

/// Writes the fields of MP_REACH_NLRI before the NLRI: AFI, SAFI, next hop, reserved.
pub(crate) fn put_mp_reach_head(out: &mut BytesMut, family: Family, nh: &MpNextHop) {
    out.put_u16(family.afi.code());
    out.put_u8(family.safi.code());
    out.put_u8(next_hop_len(nh) as u8);
    match nh {
        MpNextHop::Ipv4(a) => out.put_slice(&a.octets()),
        MpNextHop::Ipv6 { global, link_local } => {
            out.put_slice(&global.octets());
            if let Some(ll) = link_local {
                out.put_slice(&ll.octets());
            }
        }
    }
    out.put_u8(0);
}

fn put_mp_reach(out: &mut BytesMut, r: &MpReach) -> Result<(), EncodeError> {
    let len = 5 + next_hop_len(&r.next_hop) + r.nlri.iter().map(nlri::net_size).sum::<usize>();
    check_len(T::MpReachNlri, len)?;
    put_attr_header(out, OPTIONAL, T::MpReachNlri.code(), len);
    put_mp_reach_head(out, r.family, &r.next_hop);
    for n in &r.nlri {
        nlri::put_net(out, n);
    }
    Ok(())
}

fn put_mp_unreach(out: &mut BytesMut, u: &MpUnreach) -> Result<(), EncodeError> {
    let len = 3 + u.withdrawn.iter().map(nlri::net_size).sum::<usize>();
    check_len(T::MpUnreachNlri, len)?;
    put_attr_header(out, OPTIONAL, T::MpUnreachNlri.code(), len);
    out.put_u16(u.family.afi.code());
    out.put_u8(u.family.safi.code());
    for n in &u.withdrawn {
        nlri::put_net(out, n);
    }
    Ok(())
}

/// Writes an UPDATE body. MP_UNREACH_NLRI and MP_REACH_NLRI come first (RFC 7606 5.1).
/// The caller checks the message length.
pub(crate) fn encode_update(
    u: &Update,
    ctx: &CodecContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let wlen_pos = out.len();
    out.put_u16(0);
    for n in &u.withdrawn {
        nlri::put_ipv4(out, n);
    }
    let wlen = out.len() - wlen_pos - 2;
    check_len(T::Other(0), wlen)?;
    patch_u16(out, wlen_pos, wlen as u16);

    let alen_pos = out.len();
    out.put_u16(0);
    if let Some(mu) = &u.mp_unreach {
        put_mp_unreach(out, mu)?;
    }
    if let Some(mr) = &u.mp_reach {
        put_mp_reach(out, mr)?;
    }
    if let Some(a) = &u.attributes {
        put_path_attributes(a, a.next_hop, ctx, out)?;
    }
    let alen = out.len() - alen_pos - 2;
    check_len(T::Other(0), alen)?;
    patch_u16(out, alen_pos, alen as u16);
    for n in &u.nlri {
        nlri::put_ipv4(out, n);
    }
    Ok(())
}
