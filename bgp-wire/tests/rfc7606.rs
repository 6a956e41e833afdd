//! RFC 7606 as a table: crafted malformed UPDATEs and the exact outcome, either the
//! findings (attribute and action) or the NOTIFICATION (code, subcode, data).

use bgp_wire::{AttributeType as T, CodecContext, DecodeError, Family, Message, RfcAction, Update};

/// Name, context, message, expected findings.
type FindingCase = (&'static str, CodecContext, Vec<u8>, Vec<(T, RfcAction)>);
/// Name, context, message, expected NOTIFICATION code, subcode and data.
type ResetCase = (&'static str, CodecContext, Vec<u8>, (u8, u8, Vec<u8>));

const W: RfcAction = RfcAction::TreatAsWithdraw;
const D: RfcAction = RfcAction::AttributeDiscard;

/// An attribute: flags, type, value (extended length when the flags say so).
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, code];
    if flags & 0x10 != 0 {
        v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        v.push(value.len() as u8);
    }
    v.extend_from_slice(value);
    v
}

fn origin() -> Vec<u8> {
    attr(0x40, 1, &[0])
}
/// AS_PATH "65000" with 4-octet ASes.
fn as_path() -> Vec<u8> {
    attr(0x40, 2, &[2, 1, 0, 0, 0xFD, 0xE8])
}
fn next_hop() -> Vec<u8> {
    attr(0x40, 3, &[10, 0, 0, 1])
}
/// The three mandatory attributes, with `extra` after them.
fn mandatory(extra: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut v = vec![origin(), as_path(), next_hop()];
    v.extend(extra.iter().cloned());
    v
}
const NLRI: &[u8] = &[24, 10, 1, 2];

/// An UPDATE message from its fields.
fn update(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(nlri);
    frame(&body)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xFF; 16];
    v.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
    v.push(2);
    v.extend_from_slice(body);
    v
}

const IBGP4: CodecContext = CodecContext {
    four_octet_as: true,
    extended_message: false,
    ebgp: false,
};
const EBGP4: CodecContext = CodecContext {
    four_octet_as: true,
    extended_message: false,
    ebgp: true,
};
const IBGP2: CodecContext = CodecContext {
    four_octet_as: false,
    extended_message: false,
    ebgp: false,
};

fn decode(ctx: &CodecContext, bytes: &[u8]) -> Result<Update, DecodeError> {
    match Message::decode(bytes, ctx)? {
        Message::Update(u) => Ok(*u),
        m => panic!("not an UPDATE: {m:?}"),
    }
}

/// Findings of a message that must decode.
fn findings(ctx: &CodecContext, bytes: &[u8]) -> Vec<(T, RfcAction)> {
    let u = decode(ctx, bytes).unwrap_or_else(|e| panic!("unexpected reset: {e}"));
    u.issues.iter().map(|i| (i.attribute, i.action)).collect()
}

/// Code, subcode and data of a message that must reset.
fn reset(ctx: &CodecContext, bytes: &[u8]) -> (u8, u8, Vec<u8>) {
    match decode(ctx, bytes) {
        Err(e) => {
            let (c, s) = e.notification.code.code();
            (c, s, e.notification.data.to_vec())
        }
        Ok(u) => panic!("expected a session reset, got {u:?}"),
    }
}

#[test]
fn per_attribute_actions_of_section_7() {
    let mp6 = |nh: &[u8], nlri: &[u8]| {
        let mut v = vec![0, 2, 1, nh.len() as u8];
        v.extend_from_slice(nh);
        v.push(0);
        v.extend_from_slice(nlri);
        attr(0x80, 14, &v)
    };
    let nh6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let cases: Vec<FindingCase> = vec![
        // 7.1 ORIGIN
        (
            "ORIGIN length 2",
            IBGP4,
            update(&[], &[attr(0x40, 1, &[0, 0]), as_path(), next_hop()], NLRI),
            vec![(T::Origin, W)],
        ),
        (
            "ORIGIN length 0",
            IBGP4,
            update(&[], &[attr(0x40, 1, &[]), as_path(), next_hop()], NLRI),
            vec![(T::Origin, W)],
        ),
        (
            "ORIGIN value 3",
            IBGP4,
            update(&[], &[attr(0x40, 1, &[3]), as_path(), next_hop()], NLRI),
            vec![(T::Origin, W)],
        ),
        // 3.c flags
        (
            "ORIGIN flagged optional",
            IBGP4,
            update(&[], &[attr(0xC0, 1, &[0]), as_path(), next_hop()], NLRI),
            vec![(T::Origin, W)],
        ),
        (
            "ORIGIN flagged partial",
            IBGP4,
            update(&[], &[attr(0x60, 1, &[0]), as_path(), next_hop()], NLRI),
            vec![(T::Origin, W)],
        ),
        (
            "MED flagged well-known",
            IBGP4,
            update(&[], &mandatory(&[attr(0x40, 4, &[0, 0, 0, 1])]), NLRI),
            vec![(T::Med, W)],
        ),
        (
            "COMMUNITIES flagged non-transitive",
            IBGP4,
            update(&[], &mandatory(&[attr(0x80, 8, &[0, 0, 0, 1])]), NLRI),
            vec![(T::Communities, W)],
        ),
        // 7.2 AS_PATH
        (
            "AS_PATH segment type 5",
            IBGP4,
            update(
                &[],
                &[origin(), attr(0x40, 2, &[5, 1, 0, 0, 0, 1]), next_hop()],
                NLRI,
            ),
            vec![(T::AsPath, W)],
        ),
        (
            "AS_PATH segment length 0",
            IBGP4,
            update(&[], &[origin(), attr(0x40, 2, &[2, 0]), next_hop()], NLRI),
            vec![(T::AsPath, W)],
        ),
        (
            "AS_PATH overrun",
            IBGP4,
            update(
                &[],
                &[origin(), attr(0x40, 2, &[2, 2, 0, 0, 0, 1]), next_hop()],
                NLRI,
            ),
            vec![(T::AsPath, W)],
        ),
        (
            "AS_PATH underrun",
            IBGP4,
            update(
                &[],
                &[origin(), attr(0x40, 2, &[2, 1, 0, 0, 0, 1, 2]), next_hop()],
                NLRI,
            ),
            vec![(T::AsPath, W)],
        ),
        (
            "AS_PATH with AS 0 (RFC 7607)",
            IBGP4,
            update(
                &[],
                &[origin(), attr(0x40, 2, &[2, 1, 0, 0, 0, 0]), next_hop()],
                NLRI,
            ),
            vec![(T::AsPath, W)],
        ),
        (
            "AS_PATH of length 0 is valid",
            IBGP4,
            update(&[], &[origin(), attr(0x40, 2, &[]), next_hop()], NLRI),
            vec![],
        ),
        // 7.3 NEXT_HOP
        (
            "NEXT_HOP length 5",
            IBGP4,
            update(
                &[],
                &[origin(), as_path(), attr(0x40, 3, &[10, 0, 0, 1, 0])],
                NLRI,
            ),
            vec![(T::NextHop, W)],
        ),
        // 7.4 MED
        (
            "MED length 3",
            IBGP4,
            update(&[], &mandatory(&[attr(0x80, 4, &[0, 0, 1])]), NLRI),
            vec![(T::Med, W)],
        ),
        // 7.5 LOCAL_PREF
        (
            "LOCAL_PREF length 2 from iBGP",
            IBGP4,
            update(&[], &mandatory(&[attr(0x40, 5, &[0, 1])]), NLRI),
            vec![(T::LocalPref, W)],
        ),
        (
            "LOCAL_PREF from eBGP",
            EBGP4,
            update(&[], &mandatory(&[attr(0x40, 5, &[0, 0, 0, 100])]), NLRI),
            vec![(T::LocalPref, D)],
        ),
        // 7.6 ATOMIC_AGGREGATE
        (
            "ATOMIC_AGGREGATE length 1",
            IBGP4,
            update(&[], &mandatory(&[attr(0x40, 6, &[0])]), NLRI),
            vec![(T::AtomicAggregate, D)],
        ),
        // 7.7 AGGREGATOR
        (
            "AGGREGATOR length 6 between 4-octet speakers",
            IBGP4,
            update(
                &[],
                &mandatory(&[attr(0xC0, 7, &[0, 1, 10, 0, 0, 1])]),
                NLRI,
            ),
            vec![(T::Aggregator, D)],
        ),
        (
            "AGGREGATOR length 8 from a 2-octet speaker",
            IBGP2,
            update(
                &[],
                &[
                    origin(),
                    attr(0x40, 2, &[2, 1, 0xFD, 0xE8]),
                    next_hop(),
                    attr(0xC0, 7, &[0, 0, 0, 1, 10, 0, 0, 1]),
                ],
                NLRI,
            ),
            vec![(T::Aggregator, D)],
        ),
        (
            "AGGREGATOR length 0",
            IBGP4,
            update(&[], &mandatory(&[attr(0xC0, 7, &[])]), NLRI),
            vec![(T::Aggregator, D)],
        ),
        (
            "AGGREGATOR AS 0 (RFC 7607)",
            IBGP4,
            update(
                &[],
                &mandatory(&[attr(0xC0, 7, &[0, 0, 0, 0, 10, 0, 0, 1])]),
                NLRI,
            ),
            vec![(T::Aggregator, D)],
        ),
        // 7.8 COMMUNITIES
        (
            "COMMUNITIES length 5",
            IBGP4,
            update(&[], &mandatory(&[attr(0xC0, 8, &[0, 0, 0, 1, 0])]), NLRI),
            vec![(T::Communities, W)],
        ),
        (
            "COMMUNITIES length 0",
            IBGP4,
            update(&[], &mandatory(&[attr(0xC0, 8, &[])]), NLRI),
            vec![(T::Communities, W)],
        ),
        // 7.9 ORIGINATOR_ID, 7.10 CLUSTER_LIST
        (
            "ORIGINATOR_ID length 3 from iBGP",
            IBGP4,
            update(&[], &mandatory(&[attr(0x80, 9, &[1, 2, 3])]), NLRI),
            vec![(T::OriginatorId, W)],
        ),
        (
            "ORIGINATOR_ID from eBGP",
            EBGP4,
            update(&[], &mandatory(&[attr(0x80, 9, &[1, 2, 3, 4])]), NLRI),
            vec![(T::OriginatorId, D)],
        ),
        (
            "CLUSTER_LIST length 6 from iBGP",
            IBGP4,
            update(
                &[],
                &mandatory(&[attr(0x80, 10, &[1, 2, 3, 4, 5, 6])]),
                NLRI,
            ),
            vec![(T::ClusterList, W)],
        ),
        (
            "CLUSTER_LIST from eBGP",
            EBGP4,
            update(&[], &mandatory(&[attr(0x80, 10, &[1, 2, 3, 4])]), NLRI),
            vec![(T::ClusterList, D)],
        ),
        // RFC 8092 6 LARGE_COMMUNITY
        (
            "LARGE_COMMUNITY length 11",
            IBGP4,
            update(&[], &mandatory(&[attr(0xC0, 32, &[0; 11])]), NLRI),
            vec![(T::LargeCommunities, W)],
        ),
        (
            "LARGE_COMMUNITY length 0",
            IBGP4,
            update(&[], &mandatory(&[attr(0xC0, 32, &[])]), NLRI),
            vec![(T::LargeCommunities, W)],
        ),
        // RFC 6793
        (
            "AS4_PATH between 4-octet speakers",
            IBGP4,
            update(
                &[],
                &mandatory(&[attr(0xC0, 17, &[2, 1, 0, 0, 0, 1])]),
                NLRI,
            ),
            vec![(T::As4Path, D)],
        ),
        (
            "AS4_AGGREGATOR between 4-octet speakers",
            IBGP4,
            update(
                &[],
                &mandatory(&[attr(0xC0, 18, &[0, 0, 0, 1, 1, 1, 1, 1])]),
                NLRI,
            ),
            vec![(T::As4Aggregator, D)],
        ),
        (
            "malformed AS4_PATH from a 2-octet speaker",
            IBGP2,
            update(
                &[],
                &[
                    origin(),
                    attr(0x40, 2, &[2, 1, 0xFD, 0xE8]),
                    next_hop(),
                    attr(0xC0, 17, &[2, 2, 0, 0, 0, 1]),
                ],
                NLRI,
            ),
            vec![(T::As4Path, D)],
        ),
        (
            "AS4_PATH with AS 0 (RFC 7607)",
            IBGP2,
            update(
                &[],
                &[
                    origin(),
                    attr(0x40, 2, &[2, 1, 0xFD, 0xE8]),
                    next_hop(),
                    attr(0xC0, 17, &[2, 1, 0, 0, 0, 0]),
                ],
                NLRI,
            ),
            vec![(T::As4Path, W)],
        ),
        (
            "AS4_AGGREGATOR length 6",
            IBGP2,
            update(
                &[],
                &[
                    origin(),
                    attr(0x40, 2, &[2, 1, 0xFD, 0xE8]),
                    next_hop(),
                    attr(0xC0, 18, &[0, 1, 1, 1, 1, 1]),
                ],
                NLRI,
            ),
            vec![(T::As4Aggregator, D)],
        ),
        // 3.g duplicates
        (
            "duplicate COMMUNITIES",
            IBGP4,
            update(
                &[],
                &mandatory(&[attr(0xC0, 8, &[0, 0, 0, 1]), attr(0xC0, 8, &[0, 0, 0, 2])]),
                NLRI,
            ),
            vec![(T::Communities, D)],
        ),
        (
            "duplicate ORIGIN",
            IBGP4,
            update(&[], &mandatory(&[origin()]), NLRI),
            vec![(T::Origin, D)],
        ),
        // 3.d missing well-known mandatory
        (
            "missing ORIGIN",
            IBGP4,
            update(&[], &[as_path(), next_hop()], NLRI),
            vec![(T::Origin, W)],
        ),
        (
            "missing AS_PATH",
            IBGP4,
            update(&[], &[origin(), next_hop()], NLRI),
            vec![(T::AsPath, W)],
        ),
        (
            "missing NEXT_HOP with NLRI",
            IBGP4,
            update(&[], &[origin(), as_path()], NLRI),
            vec![(T::NextHop, W)],
        ),
        (
            "no NEXT_HOP needed with MP_REACH only",
            IBGP4,
            update(
                &[],
                &[mp6(&nh6, &[32, 0x20, 1, 0xd, 0xb8]), origin(), as_path()],
                &[],
            ),
            vec![],
        ),
        (
            "missing ORIGIN with MP_REACH",
            IBGP4,
            update(&[], &[mp6(&nh6, &[32, 0x20, 1, 0xd, 0xb8]), as_path()], &[]),
            vec![(T::Origin, W)],
        ),
        (
            "NLRI without any attribute",
            IBGP4,
            update(&[], &[], NLRI),
            vec![(T::Origin, W), (T::AsPath, W), (T::NextHop, W)],
        ),
        // 4 attribute lengths
        (
            "last attribute overruns the attributes",
            IBGP4,
            update(
                &[],
                &[
                    origin(),
                    as_path(),
                    next_hop(),
                    vec![0xC0, 8, 8, 0, 0, 0, 1],
                ],
                NLRI,
            ),
            vec![(T::Communities, W)],
        ),
        (
            "two octets left for an attribute",
            IBGP4,
            update(&[], &[origin(), as_path(), next_hop(), vec![0xC0, 8]], NLRI),
            vec![(T::Communities, W)],
        ),
        // Several findings: all reported, the strongest decides (3.h).
        (
            "discard and withdraw together",
            IBGP4,
            update(
                &[],
                &mandatory(&[attr(0x40, 6, &[0]), attr(0x80, 4, &[0])]),
                NLRI,
            ),
            vec![(T::AtomicAggregate, D), (T::Med, W)],
        ),
    ];
    for (name, ctx, bytes, want) in cases {
        assert_eq!(findings(&ctx, &bytes), want, "{name}");
    }
}

#[test]
fn what_a_finding_keeps_and_drops() {
    // LOCAL_PREF from eBGP is gone, the route stays.
    let u = decode(
        &EBGP4,
        &update(&[], &mandatory(&[attr(0x40, 5, &[0, 0, 0, 100])]), NLRI),
    )
    .expect("decodes");
    let a = u.attributes.as_ref().expect("attributes");
    assert_eq!(a.local_pref, None);
    assert!(!u.treat_as_withdraw());
    assert_eq!(u.nlri.len(), 1);
    // The first of duplicate attributes is kept.
    let u = decode(
        &IBGP4,
        &update(
            &[],
            &mandatory(&[attr(0xC0, 8, &[0, 0, 0, 1]), attr(0xC0, 8, &[0, 0, 0, 2])]),
            NLRI,
        ),
    )
    .expect("decodes");
    assert_eq!(
        u.attributes.expect("attributes").communities,
        vec![bgp_wire::Community(1)]
    );
    // Treat-as-withdraw keeps the prefixes so they can be withdrawn.
    let u = decode(
        &IBGP4,
        &update(&[], &[attr(0x40, 1, &[7]), as_path(), next_hop()], NLRI),
    )
    .expect("decodes");
    assert!(u.treat_as_withdraw());
    assert_eq!(u.nlri, vec!["10.1.2.0/24".parse().expect("net")]);
    // Unrecognized optional attributes: transitive kept, non-transitive dropped.
    let u = decode(
        &IBGP4,
        &update(
            &[],
            &mandatory(&[attr(0xC0, 99, &[1, 2]), attr(0x80, 98, &[3])]),
            NLRI,
        ),
    )
    .expect("decodes");
    let unknown = &u.attributes.expect("attributes").unknown;
    assert_eq!(unknown.len(), 1);
    assert_eq!(
        (unknown[0].type_code, &unknown[0].value[..]),
        (99, &[1u8, 2][..])
    );
    // From a 2-octet speaker, AS4_PATH next to an AGGREGATOR that is not AS_TRANS is
    // ignored (RFC 6793 4.2.3); next to AS_TRANS it is used, with AS4_AGGREGATOR.
    let path2 = attr(0x40, 2, &[2, 2, 0xFD, 0xE8, 0x5B, 0xA0]); // 65000 23456
    let as4 = attr(0xC0, 17, &[2, 1, 0xFA, 0x56, 0xEA, 0x01]); // 4200000001
    let agg = |asn: [u8; 2]| attr(0xC0, 7, &[asn[0], asn[1], 1, 1, 1, 1]);
    let as4_agg = attr(0xC0, 18, &[0xFA, 0x56, 0xEA, 0x02, 1, 1, 1, 1]);
    let u = decode(
        &IBGP2,
        &update(
            &[],
            &[
                origin(),
                path2.clone(),
                next_hop(),
                agg([0, 7]),
                as4.clone(),
                as4_agg.clone(),
            ],
            NLRI,
        ),
    )
    .expect("decodes");
    let a = u.attributes.expect("attributes");
    assert_eq!(a.as_path.to_string(), "65000 23456");
    assert_eq!(a.aggregator.map(|g| g.asn), Some(7));
    let u = decode(
        &IBGP2,
        &update(
            &[],
            &[origin(), path2, next_hop(), agg([0x5B, 0xA0]), as4, as4_agg],
            NLRI,
        ),
    )
    .expect("decodes");
    let a = u.attributes.expect("attributes");
    assert_eq!(a.as_path.to_string(), "65000 4200000001");
    assert_eq!(a.aggregator.map(|g| g.asn), Some(4200000002));
}

#[test]
fn session_resets_and_their_notifications() {
    let ipv6_mp = |afi: u8, nh: &[u8], nlri: &[u8]| {
        let mut v = vec![0, afi, 1, nh.len() as u8];
        v.extend_from_slice(nh);
        v.push(0);
        v.extend_from_slice(nlri);
        v
    };
    let nh6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let bad_nh = attr(0x80, 14, &ipv6_mp(2, &[1, 2, 3, 4, 5], &[]));
    let long_prefix = attr(0x80, 14, &ipv6_mp(2, &nh6, &[129]));
    let short_unreach = attr(0x80, 15, &[0, 2]);
    let transitive_mp = attr(0xC0, 14, &ipv6_mp(2, &nh6, &[]));
    let unknown_wk = attr(0x40, 99, &[1]);
    let bad_origin = attr(0x40, 1, &[9]);
    let cases: Vec<ResetCase> = vec![
        // 7.11/7.12 and RFC 4760 7: MP errors reset with Optional Attribute Error.
        (
            "MP_REACH next hop length 5",
            IBGP4,
            update(&[], &[bad_nh.clone(), origin(), as_path()], &[]),
            (3, 9, bad_nh),
        ),
        (
            "MP_REACH prefix length 129",
            IBGP4,
            update(&[], &[long_prefix.clone(), origin(), as_path()], &[]),
            (3, 9, long_prefix),
        ),
        (
            "MP_UNREACH length 2",
            IBGP4,
            update(&[], std::slice::from_ref(&short_unreach), &[]),
            (3, 9, short_unreach),
        ),
        (
            "MP_REACH flagged transitive",
            IBGP4,
            update(&[], &[transitive_mp.clone(), origin(), as_path()], &[]),
            (3, 4, transitive_mp),
        ),
        // 3.g duplicate MP attributes
        (
            "duplicate MP_UNREACH",
            IBGP4,
            update(
                &[],
                &[attr(0x80, 15, &[0, 2, 1]), attr(0x80, 15, &[0, 2, 1])],
                &[],
            ),
            (3, 1, vec![]),
        ),
        // 5.3 NLRI and withdrawn routes
        (
            "NLRI prefix length 33",
            IBGP4,
            update(&[], &mandatory(&[]), &[33, 1, 2, 3, 4, 5]),
            (3, 10, vec![]),
        ),
        (
            "NLRI cut inside a prefix",
            IBGP4,
            update(&[], &mandatory(&[]), &[24, 10, 1]),
            (3, 10, vec![]),
        ),
        (
            "withdrawn route cut short",
            IBGP4,
            update(&[32, 10, 0], &[], &[]),
            (3, 10, vec![]),
        ),
        // 3.b lengths that overrun the message
        (
            "Withdrawn Routes Length overruns",
            IBGP4,
            frame(&[0, 50, 0, 0]),
            (3, 1, vec![]),
        ),
        (
            "Total Path Attribute Length overruns",
            IBGP4,
            frame(&[0, 0, 0, 50, 0x40, 1, 1, 0]),
            (3, 1, vec![]),
        ),
        // RFC 4271 6.3: unrecognized well-known attribute
        (
            "unrecognized well-known attribute",
            IBGP4,
            update(&[], &mandatory(std::slice::from_ref(&unknown_wk)), NLRI),
            (3, 2, unknown_wk),
        ),
        // 5.2: a finding other than attribute discard without reachable NLRI
        (
            "bad ORIGIN in a withdrawal",
            IBGP4,
            update(&[24, 10, 1, 2], &[bad_origin.clone(), as_path()], &[]),
            (3, 6, bad_origin),
        ),
        (
            "AS_PATH malformed without NLRI",
            IBGP4,
            update(&[], &[origin(), attr(0x40, 2, &[2, 0])], &[]),
            (3, 11, vec![]),
        ),
        (
            "attribute overrun without NLRI",
            IBGP4,
            update(&[], &[origin(), vec![0x40, 2, 9, 2]], &[]),
            (3, 5, vec![0x40, 2, 9, 2]),
        ),
        // 4: an MP attribute cut short hides routes
        (
            "MP_REACH overruns the attributes",
            IBGP4,
            update(
                &[],
                &[origin(), as_path(), vec![0x80, 14, 40, 0, 2, 1]],
                &[],
            ),
            (3, 5, vec![0x80, 14, 40, 0, 2, 1]),
        ),
    ];
    for (name, ctx, bytes, want) in cases {
        assert_eq!(reset(&ctx, &bytes), want, "{name}");
    }
    // The family of a broken MP attribute is named, for AFI/SAFI disable.
    let e = decode(
        &IBGP4,
        &update(
            &[],
            &[
                attr(0x80, 14, &ipv6_mp(2, &[1, 2, 3], &[])),
                origin(),
                as_path(),
            ],
            &[],
        ),
    )
    .expect_err("resets");
    assert_eq!(e.family, Some(Family::IPV6_UNICAST));
    assert!(
        e.to_string()
            .contains("UPDATE Message Error/Optional Attribute Error"),
        "{e}"
    );
    // End-of-RIB and withdrawals without attributes are fine.
    assert_eq!(findings(&IBGP4, &update(&[], &[], &[])), vec![]);
    assert_eq!(
        findings(&IBGP4, &update(&[], &[attr(0x80, 15, &[0, 2, 1])], &[])),
        vec![]
    );
}
