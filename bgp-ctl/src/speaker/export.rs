//! Turning the RIB's advertisements for one peer into encoded UPDATE messages.

use bgp_wire::{CodecContext, Family, MpNextHop, Update, encode_updates, encode_withdrawals};
use bytes::BytesMut;
use ipnet::IpNet;

use crate::rib::Advertisements;

/// Encodes `adv` (withdrawals first) into UPDATE messages for a session with `ctx`.
/// Prefixes of a family the session did not negotiate are skipped.
pub fn encode(adv: &Advertisements, families: &[Family], ctx: &CodecContext) -> BytesMut {
    let mut out = BytesMut::new();
    let (mut w4, mut w6): (Vec<IpNet>, Vec<IpNet>) = (Vec::new(), Vec::new());
    for p in &adv.withdraw {
        match p {
            IpNet::V4(_) => w4.push(*p),
            IpNet::V6(_) => w6.push(*p),
        }
    }
    for (family, list) in [(Family::IPV4_UNICAST, &w4), (Family::IPV6_UNICAST, &w6)] {
        if !list.is_empty()
            && families.contains(&family)
            && let Err(e) = encode_withdrawals(family, list, ctx, &mut out)
        {
            tracing::warn!("encoding withdrawals: {e}");
        }
    }
    for a in &adv.announce {
        let family = match a.prefixes.first() {
            Some(IpNet::V4(_)) => Family::IPV4_UNICAST,
            Some(IpNet::V6(_)) => Family::IPV6_UNICAST,
            None => continue,
        };
        if !families.contains(&family) {
            continue;
        }
        let next_hop = match a.attrs.next_hop {
            nh @ MpNextHop::Ipv6 { .. } => Some(nh),
            MpNextHop::Ipv4(_) if family == Family::IPV6_UNICAST => Some(a.attrs.next_hop),
            MpNextHop::Ipv4(_) => None,
        };
        if let Err(e) = encode_updates(
            &a.attrs.to_wire(),
            family,
            next_hop,
            &a.prefixes,
            ctx,
            &mut out,
        ) {
            tracing::warn!("encoding an UPDATE for {} prefixes: {e}", a.prefixes.len());
        }
    }
    out
}

/// End-of-RIB markers for `families`, encoded.
pub fn end_of_rib(families: &[Family], ctx: &CodecContext) -> BytesMut {
    let mut out = BytesMut::new();
    for f in families {
        let m = bgp_wire::Message::Update(Box::new(Update::end_of_rib(*f)));
        if let Err(e) = m.encode(ctx, &mut out) {
            tracing::warn!("encoding End-of-RIB for {f}: {e}");
        }
    }
    out
}
