//! Property tests: typed values are encoded, decoded, and compared, in every codec
//! context (4-octet and 2-octet AS, extended messages or not, iBGP and eBGP).

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_wire::{
    Afi, Aggregator, AsPath, AsSegment, AttributeFlags, Capability, CodecContext, Community,
    Family, GracefulRestart, GracefulRestartFamily, LargeCommunity, Message, MpNextHop, MpReach,
    MpUnreach, Notification, NotificationCode, Open, Origin, PathAttributes, RawAttribute,
    RouteRefresh, RouteRefreshSubtype, Safi, SegmentType, Update, encode_updates,
    encode_withdrawals,
};
use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::{collection::vec, prelude::*};

fn ctx() -> impl Strategy<Value = CodecContext> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, e, x)| CodecContext::new(a, e, x))
}

fn asn() -> impl Strategy<Value = u32> {
    prop_oneof![1..=65535u32, 65536..=u32::MAX, Just(23456u32)]
}

fn segment(
    kind: SegmentType,
    asns: impl Strategy<Value = u32>,
) -> impl Strategy<Value = AsSegment> {
    vec(asns, 1..8).prop_map(move |asns| AsSegment { kind, asns })
}

/// Paths as they occur: confederation segments (with 2-octet members, RFC 6793 carries
/// no AS4_PATH for them) only at the start.
fn as_path() -> impl Strategy<Value = AsPath> {
    let confed = prop_oneof![
        segment(SegmentType::ConfedSequence, 1..=65535u32),
        segment(SegmentType::ConfedSet, 1..=65535u32),
    ];
    let main = prop_oneof![
        3 => segment(SegmentType::Sequence, asn()),
        1 => segment(SegmentType::Set, asn()),
    ];
    (vec(confed, 0..2), vec(main, 0..4)).prop_map(|(mut c, m)| {
        c.extend(m);
        AsPath { segments: c }
    })
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn v4net() -> impl Strategy<Value = Ipv4Net> {
    (ipv4(), 0..=32u8).prop_map(|(a, l)| Ipv4Net::new(a, l).map(|n| n.trunc()).unwrap_or_default())
}

fn v6net() -> impl Strategy<Value = Ipv6Net> {
    (ipv6(), 0..=128u8).prop_map(|(a, l)| Ipv6Net::new(a, l).map(|n| n.trunc()).unwrap_or_default())
}

/// Type codes this codec does not interpret.
fn unknown_code() -> impl Strategy<Value = u8> {
    prop_oneof![Just(16u8), Just(25), Just(26), 33..=254u8]
}

fn unknown_attrs() -> impl Strategy<Value = Vec<RawAttribute>> {
    proptest::collection::btree_map(unknown_code(), vec(any::<u8>(), 0..300), 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(type_code, value)| RawAttribute {
                // Passed on with Partial set, so that is what comes back.
                flags: AttributeFlags(
                    AttributeFlags::OPTIONAL | AttributeFlags::TRANSITIVE | AttributeFlags::PARTIAL,
                ),
                type_code,
                value: Bytes::from(value),
            })
            .collect()
    })
}

prop_compose! {
    fn path_attributes()(
        origin in prop_oneof![Just(Origin::Igp), Just(Origin::Egp), Just(Origin::Incomplete)],
        as_path in as_path(),
        next_hop in proptest::option::of(ipv4()),
        med in proptest::option::of(any::<u32>()),
        local_pref in proptest::option::of(any::<u32>()),
        atomic_aggregate in any::<bool>(),
        aggregator in proptest::option::of((asn(), ipv4()).prop_map(|(asn, address)| Aggregator { asn, address })),
        communities in vec(any::<u32>().prop_map(Community), 0..6),
        large_communities in vec((any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(global, local1, local2)| LargeCommunity { global, local1, local2 }), 0..4),
        originator_id in proptest::option::of(ipv4()),
        cluster_list in vec(ipv4(), 0..4),
        unknown in unknown_attrs(),
    ) -> PathAttributes {
        PathAttributes {
            origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator,
            communities, large_communities, originator_id, cluster_list, unknown,
        }
    }
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    prop_oneof![
        (ipv4(), vec(v4net(), 0..20)).prop_map(|(a, n)| MpReach {
            family: Family::IPV4_UNICAST,
            next_hop: MpNextHop::Ipv4(a),
            nlri: n.into_iter().map(IpNet::V4).collect(),
        }),
        (ipv6(), proptest::option::of(ipv6()), vec(v6net(), 0..20)).prop_map(|(g, l, n)| MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: MpNextHop::Ipv6 {
                global: g,
                link_local: l
            },
            nlri: n.into_iter().map(IpNet::V6).collect(),
        }),
    ]
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        vec(v4net(), 0..20).prop_map(|n| MpUnreach {
            family: Family::IPV4_UNICAST,
            withdrawn: n.into_iter().map(IpNet::V4).collect(),
        }),
        vec(v6net(), 0..20).prop_map(|n| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: n.into_iter().map(IpNet::V6).collect(),
        }),
    ]
}

prop_compose! {
    fn update()(
        withdrawn in vec(v4net(), 0..20),
        attrs in path_attributes(),
        next_hop in ipv4(),
        nlri in vec(v4net(), 0..20),
        mp_reach in proptest::option::of(mp_reach()),
        mp_unreach in proptest::option::of(mp_unreach()),
        with_attrs in any::<bool>(),
    ) -> Update {
        // Well-formed UPDATEs only: routes come with the mandatory attributes, and
        // NLRI with a NEXT_HOP.
        let needs_attrs = !nlri.is_empty() || mp_reach.is_some() || mp_unreach.is_some();
        let mut attrs = attrs;
        if !nlri.is_empty() && attrs.next_hop.is_none() {
            attrs.next_hop = Some(next_hop);
        }
        Update {
            withdrawn,
            attributes: (needs_attrs || with_attrs).then_some(attrs),
            nlri,
            mp_reach,
            mp_unreach,
            issues: Vec::new(),
        }
    }
}

fn family() -> impl Strategy<Value = Family> {
    (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family {
        afi: Afi::from(a),
        safi: Safi::from(s),
    })
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::MultiProtocol),
        Just(Capability::RouteRefresh),
        Just(Capability::ExtendedMessage),
        Just(Capability::EnhancedRouteRefresh),
        (1..=u32::MAX).prop_map(Capability::FourOctetAs),
        (
            any::<bool>(),
            any::<bool>(),
            0..=4095u16,
            vec((family(), any::<bool>()), 0..4)
        )
            .prop_map(|(restarting, notification, restart_time, fams)| {
                Capability::GracefulRestart(GracefulRestart {
                    restarting,
                    notification,
                    restart_time,
                    families: fams
                        .into_iter()
                        .map(|(family, forwarding_preserved)| GracefulRestartFamily {
                            family,
                            forwarding_preserved,
                        })
                        .collect(),
                })
            }),
        (
            any::<u8>().prop_filter("not a code decoded as a typed capability", |c| {
                ![1u8, 2, 6, 64, 65, 70].contains(c)
            }),
            vec(any::<u8>(), 0..80)
        )
            .prop_map(|(code, value)| Capability::Other {
                code,
                value: Bytes::from(value)
            }),
    ]
}

prop_compose! {
    fn open()(
        my_as in 1..=65535u16,
        hold_time in prop_oneof![Just(0u16), 3..=65535u16],
        bgp_id in (1..=u32::MAX).prop_map(Ipv4Addr::from),
        // Up to 40 capabilities of up to 82 octets: some OPENs need RFC 9072 lengths.
        capabilities in vec(capability(), 0..40),
    ) -> Open {
        Open { version: 4, my_as, hold_time, bgp_id, capabilities }
    }
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update().prop_map(|u| Message::Update(Box::new(u))),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..100)).prop_map(|(c, s, d)| {
            Message::Notification(Notification::with_data(NotificationCode::from((c, s)), d))
        }),
        Just(Message::Keepalive),
        (family(), any::<u8>()).prop_map(|(family, s)| Message::RouteRefresh(RouteRefresh {
            family,
            subtype: RouteRefreshSubtype::from(s),
        })),
    ]
}

/// What must come back: the encoder sends no LOCAL_PREF, ORIGINATOR_ID or CLUSTER_LIST
/// to an external peer.
fn expected(m: &Message, ctx: &CodecContext) -> Message {
    let mut m = m.clone();
    if let (Message::Update(u), true) = (&mut m, ctx.ebgp)
        && let Some(a) = u.attributes.as_mut()
    {
        a.local_pref = None;
        a.originator_id = None;
        a.cluster_list.clear();
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(m in message(), ctx in ctx()) {
        let mut out = BytesMut::new();
        match m.encode(&ctx, &mut out) {
            Ok(()) => {
                prop_assert_eq!(bgp_wire::frame_length(&out, &ctx), Ok(Some(out.len())));
                let back = Message::decode(&out, &ctx);
                prop_assert_eq!(back, Ok(expected(&m, &ctx)));
            }
            // Only OPENs with more capabilities than 4096 octets hold may not encode.
            Err(e) => {
                prop_assert!(matches!(m, Message::Open(_)), "{e}");
                prop_assert!(out.is_empty());
            }
        }
    }

}

proptest! {
    // Thousands of prefixes a case: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn packed_updates_carry_every_prefix_once(
        attrs in path_attributes(),
        v6 in any::<bool>(),
        v4nets in vec(v4net(), 1..3000),
        v6nets in vec(v6net(), 1..1500),
        nh6 in (ipv6(), proptest::option::of(ipv6())),
        nh4 in ipv4(),
        ctx in ctx(),
    ) {
        let (family, nets, nh): (Family, Vec<IpNet>, MpNextHop) = if v6 {
            (Family::IPV6_UNICAST, v6nets.into_iter().map(IpNet::V6).collect(),
             MpNextHop::Ipv6 { global: nh6.0, link_local: nh6.1 })
        } else {
            (Family::IPV4_UNICAST, v4nets.into_iter().map(IpNet::V4).collect(), MpNextHop::Ipv4(nh4))
        };
        let mut out = BytesMut::new();
        let n = encode_updates(&attrs, family, Some(nh), &nets, &ctx, &mut out).expect("encodes");
        let mut got: Vec<IpNet> = Vec::new();
        let mut rest = &out[..];
        let mut count = 0;
        while let Some(len) = bgp_wire::frame_length(rest, &ctx).expect("valid header") {
            prop_assert!(len <= ctx.max_message_len());
            let Message::Update(u) = Message::decode(&rest[..len], &ctx).expect("decodes") else {
                panic!("not an UPDATE");
            };
            prop_assert!(u.issues.is_empty(), "{:?}", u.issues);
            let mut want = expected(&Message::Update(Box::new(Update {
                attributes: Some(attrs.clone()), ..Update::default()
            })), &ctx);
            if let Message::Update(w) = &mut want {
                if let Some(a) = w.attributes.as_mut() {
                    a.next_hop = if v6 { None } else { Some(nh4) };
                }
                prop_assert_eq!(&u.attributes, &w.attributes);
            }
            got.extend(u.nlri.iter().copied().map(IpNet::V4));
            if let Some(r) = &u.mp_reach {
                prop_assert_eq!(r.next_hop, nh);
                got.extend(r.nlri.iter().copied());
            }
            rest = &rest[len..];
            count += 1;
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(count, n);
        prop_assert_eq!(got, nets.clone());

        let mut out = BytesMut::new();
        let n = encode_withdrawals(family, &nets, &ctx, &mut out).expect("encodes");
        let mut got: Vec<IpNet> = Vec::new();
        let mut rest = &out[..];
        let mut count = 0;
        while let Some(len) = bgp_wire::frame_length(rest, &ctx).expect("valid header") {
            let Message::Update(u) = Message::decode(&rest[..len], &ctx).expect("decodes") else {
                panic!("not an UPDATE");
            };
            got.extend(u.withdrawn.iter().copied().map(IpNet::V4));
            if let Some(w) = &u.mp_unreach {
                got.extend(w.withdrawn.iter().copied());
            }
            rest = &rest[len..];
            count += 1;
        }
        prop_assert_eq!(count, n);
        prop_assert_eq!(got, nets);
    }
}

#[test]
fn packing_fills_messages_and_rejects_bad_input() {
    let attrs = PathAttributes {
        as_path: AsPath::from_sequence([65001]),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..PathAttributes::default()
    };
    let nets: Vec<IpNet> = (0..10_000u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0A00_0000 + i), 32).expect("net")))
        .collect();
    let ctx = CodecContext::new(true, false, true);
    let mut out = BytesMut::new();
    let n = encode_updates(&attrs, Family::IPV4_UNICAST, None, &nets, &ctx, &mut out).expect("ok");
    // 4096 - 19 - 4 - 20 octets of attributes (ORIGIN 4, AS_PATH 9, NEXT_HOP 7) leave
    // room for 810 /32s a message.
    assert_eq!(n, 10_000usize.div_ceil(810));
    assert_eq!(
        u16::from_be_bytes([out[16], out[17]]),
        19 + 4 + 20 + 810 * 5
    );
    let ext = CodecContext::new(true, true, true);
    let mut big = BytesMut::new();
    let n = encode_updates(&attrs, Family::IPV4_UNICAST, None, &nets, &ext, &mut big).expect("ok");
    assert_eq!(n, 1);
    let mixed = vec![nets[0], "2001:db8::/32".parse().expect("net")];
    let mut out = BytesMut::new();
    assert!(matches!(
        encode_updates(&attrs, Family::IPV4_UNICAST, None, &mixed, &ctx, &mut out),
        Err(bgp_wire::EncodeError::FamilyMismatch { .. })
    ));
    assert!(out.is_empty());
    assert!(matches!(
        encode_updates(&attrs, Family::IPV6_UNICAST, None, &nets, &ctx, &mut out),
        Err(bgp_wire::EncodeError::MissingNextHop(_))
    ));
}
