//! Decoding of real BGP sessions between FRR 8.4 and BIRD 2.0.12, captured with
//! `captures/capture.sh` and split into messages by `captures/extract.py` (see
//! `captures/README.md`).

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_wire::{
    Capability, CodecContext, Community, Family, LargeCommunity, Message, MpNextHop, Open, Update,
};
use bytes::BytesMut;

fn load(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/tests/captures/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

fn first_open(msgs: &[Vec<u8>]) -> Open {
    let frame = msgs.first().expect("a message");
    match Message::decode(frame, &CodecContext::default()).expect("OPEN decodes") {
        Message::Open(o) => o,
        m => panic!("first message is {:?}", m.kind()),
    }
}

/// Both directions of one session: decoded with the context their OPENs negotiate.
struct Session {
    frr: Vec<Message>,
    bird: Vec<Message>,
    ctx: CodecContext,
}

fn session(name: &str) -> Session {
    let frr_raw = load(&format!("frr-to-bird-{name}"));
    let bird_raw = load(&format!("bird-to-frr-{name}"));
    let (a, b) = (first_open(&frr_raw), first_open(&bird_raw));
    let ctx = CodecContext::new(
        a.four_octet_as() && b.four_octet_as(),
        a.has(&Capability::ExtendedMessage) && b.has(&Capability::ExtendedMessage),
        true,
    );
    let decode_all = |raw: &[Vec<u8>]| -> Vec<Message> {
        raw.iter()
            .map(|frame| {
                let m = Message::decode(frame, &ctx)
                    .unwrap_or_else(|e| panic!("{name}: {e} decoding {frame:02x?}"));
                if let Message::Update(u) = &m {
                    assert!(u.issues.is_empty(), "{name}: {:?}", u.issues);
                }
                // Re-encoding gives the same content; KEEPALIVE, NOTIFICATION and
                // ROUTE-REFRESH the same octets.
                let mut out = BytesMut::new();
                m.encode(&ctx, &mut out).expect("re-encodes");
                let again = Message::decode(&out, &ctx).expect("re-encoded decodes");
                assert_eq!(again, m, "{name}: re-encoding changed the content");
                if !matches!(m, Message::Update(_) | Message::Open(_)) {
                    assert_eq!(&out[..], &frame[..], "{name}: {:?}", m.kind());
                }
                m
            })
            .collect()
    };
    Session {
        frr: decode_all(&frr_raw),
        bird: decode_all(&bird_raw),
        ctx,
    }
}

fn updates(msgs: &[Message]) -> Vec<&Update> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(&**u),
            _ => None,
        })
        .collect()
}

fn open(msgs: &[Message]) -> &Open {
    match msgs.first() {
        Some(Message::Open(o)) => o,
        m => panic!("first message {m:?}"),
    }
}

fn other_codes(o: &Open) -> Vec<u8> {
    o.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Other { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// The UPDATE announcing `prefix` (in the NLRI field or MP_REACH_NLRI).
fn announcing<'a>(msgs: &'a [Message], prefix: &str) -> &'a Update {
    let net: ipnet::IpNet = prefix.parse().expect("prefix");
    updates(msgs)
        .into_iter()
        .find(|u| {
            u.nlri.iter().any(|n| ipnet::IpNet::V4(*n) == net)
                || u.mp_reach.as_ref().is_some_and(|r| r.nlri.contains(&net))
        })
        .unwrap_or_else(|| panic!("no UPDATE announces {prefix}"))
}

#[test]
fn frr_and_bird_ipv4_session_with_4_octet_ases() {
    let s = session("ipv4");
    assert!(s.ctx.four_octet_as);
    let frr = open(&s.frr);
    assert_eq!((frr.my_as, frr.asn()), (23456, 4200000001));
    assert_eq!(frr.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(frr.hold_time, 9);
    for cap in [
        Capability::MultiProtocol(Family::IPV4_UNICAST),
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::ExtendedMessage,
        Capability::FourOctetAs(4200000001),
    ] {
        assert!(frr.has(&cap), "FRR OPEN lacks {cap:?}");
    }
    let gr = frr.graceful_restart().expect("FRR sends graceful restart");
    assert_eq!(gr.restart_time, 120);
    // FRR's extras, kept raw: old-style route refresh (128), ADD-PATH (69), long-lived
    // graceful restart (71) and FQDN (73) with its hostname.
    let mut extras = other_codes(frr);
    extras.sort_unstable();
    assert_eq!(extras, vec![69, 71, 73, 128]);
    assert!(frr.capabilities.iter().any(|c| matches!(
        c,
        Capability::Other { code: 73, value } if value.windows(5).any(|w| w == b"frr-a")
    )));
    let bird = open(&s.bird);
    assert_eq!((bird.my_as, bird.asn()), (23456, 4200000002));
    assert!(!bird.has(&Capability::ExtendedMessage));
    assert!(!s.ctx.extended_message);

    let tagged = announcing(&s.frr, "192.0.2.0/24");
    let a = tagged.attributes.as_ref().expect("attributes");
    assert_eq!(a.as_path.to_string(), "4200000001");
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(a.med, Some(50));
    assert_eq!(
        a.communities,
        vec![Community::new(65000, 100), Community::new(65000, 101)]
    );
    assert_eq!(
        a.large_communities,
        vec![
            LargeCommunity {
                global: 4200000001,
                local1: 1,
                local2: 2
            },
            LargeCommunity {
                global: 4200000001,
                local1: 3,
                local2: 4
            },
        ]
    );
    let pair = announcing(&s.frr, "198.51.100.0/25");
    assert_eq!(pair.nlri.len(), 2, "FRR packs both /25s in one UPDATE");

    let b = announcing(&s.bird, "203.0.113.0/24");
    let a = b.attributes.as_ref().expect("attributes");
    assert_eq!(a.as_path.to_string(), "4200000002");
    assert_eq!(a.med, Some(70));
    assert_eq!(a.communities, vec![Community::new(65000, 200)]);
    assert_eq!(
        a.large_communities,
        vec![LargeCommunity {
            global: 4200000002,
            local1: 5,
            local2: 6
        }]
    );
    // End-of-RIB both ways, BIRD's enhanced route refresh markers, its Cease.
    for side in [&s.frr, &s.bird] {
        assert!(
            updates(side)
                .iter()
                .any(|u| u.end_of_rib_family() == Some(Family::IPV4_UNICAST))
        );
    }
    let subtypes: Vec<_> = s
        .bird
        .iter()
        .filter_map(|m| match m {
            Message::RouteRefresh(r) => Some(r.subtype),
            _ => None,
        })
        .collect();
    assert_eq!(
        subtypes,
        vec![
            bgp_wire::RouteRefreshSubtype::Begin,
            bgp_wire::RouteRefreshSubtype::End
        ]
    );
    let Some(Message::Notification(n)) = s.bird.last() else {
        panic!("BIRD ends with a NOTIFICATION");
    };
    assert_eq!(n.code.to_string(), "Cease/Administrative Shutdown");
}

#[test]
fn frr_and_bird_ipv6_session_uses_mp_reach() {
    let s = session("ipv6");
    assert_eq!(open(&s.frr).families(), vec![Family::IPV6_UNICAST]);
    assert_eq!(open(&s.bird).families(), vec![Family::IPV6_UNICAST]);
    let u = announcing(&s.frr, "2001:db8:1::/48");
    let r = u.mp_reach.as_ref().expect("MP_REACH_NLRI");
    assert_eq!(r.family, Family::IPV6_UNICAST);
    let fd00_1: Ipv6Addr = "fd00::1".parse().expect("address");
    assert!(matches!(r.next_hop, MpNextHop::Ipv6 { global, .. } if global == fd00_1));
    assert!(u.nlri.is_empty() && u.withdrawn.is_empty());
    let a = u.attributes.as_ref().expect("attributes");
    assert_eq!((a.med, a.next_hop), (Some(50), None));
    let b = announcing(&s.bird, "2001:db8:2::/48");
    let a = b.attributes.as_ref().expect("attributes");
    assert_eq!(a.as_path.to_string(), "4200000002");
    assert_eq!(a.communities, vec![Community::new(65000, 300)]);
    for side in [&s.frr, &s.bird] {
        assert!(
            updates(side)
                .iter()
                .any(|u| u.end_of_rib_family() == Some(Family::IPV6_UNICAST))
        );
    }
}

#[test]
fn a_2_octet_session_rebuilds_4_octet_paths_from_as4_path() {
    let s = session("as2");
    assert!(!s.ctx.four_octet_as, "BIRD runs with `enable as4 off`");
    let frr = open(&s.frr);
    assert_eq!((frr.my_as, frr.asn()), (65001, 65001));
    let bird = open(&s.bird);
    assert!(!bird.four_octet_as());
    assert_eq!(bird.asn(), 65002);
    // BIRD passes FRR's routes back as 2-octet AS_PATH "65002 23456" plus AS4_PATH.
    let raw = load("bird-to-frr-as2");
    assert!(
        raw.iter().any(|f| f.windows(2).any(|w| w == [0xC0, 17])),
        "an AS4_PATH on the wire"
    );
    let u = announcing(&s.bird, "192.0.2.0/24");
    let a = u.attributes.as_ref().expect("attributes");
    assert_eq!(a.as_path.to_string(), "65002 4200000001");
    assert_eq!(a.large_communities.len(), 2);
    let own = announcing(&s.bird, "203.0.113.0/24");
    assert_eq!(
        own.attributes
            .as_ref()
            .expect("attributes")
            .as_path
            .to_string(),
        "65002"
    );
    // And our encoder speaks the same dialect: the 4-octet path goes out as AS_TRANS and
    // AS4_PATH, and comes back whole.
    let mut out = BytesMut::new();
    Message::Update(Box::new(u.clone()))
        .encode(&s.ctx, &mut out)
        .expect("encodes");
    assert!(
        out.windows(2).any(|w| w == [0x5B, 0xA0]),
        "AS_TRANS in the AS_PATH"
    );
    let back = Message::decode(&out, &s.ctx).expect("decodes");
    assert_eq!(back, Message::Update(Box::new(u.clone())));
}
