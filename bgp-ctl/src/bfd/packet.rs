//! The BFD Control packet (RFC 5880 section 4.1): typed fields, decoding with the
//! context-free checks of the reception procedure (section 6.8.6), and encoding.
//!
//! ```text
//!  0                   1                   2                   3
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |  (if A)
//! ```
//!
//! Decoding never panics: every field is read through nom's bounds-checked parsers, and
//! a packet the reception procedure says to discard is an error naming the reason.

use bytes::{BufMut, Bytes, BytesMut};
use nom::{
    IResult, Parser,
    number::complete::{be_u8, be_u32},
};

/// The protocol version this codec speaks (RFC 5880).
pub const VERSION: u8 = 1;
/// Length of a Control packet without an authentication section.
pub const MIN_LEN: usize = 24;
/// The Length field is one octet: no packet is longer.
pub const MAX_LEN: usize = 255;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// Session state as carried in the State field (bfd.SessionState, section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// 0: administratively held down.
    AdminDown,
    /// 1: down (no session, or it failed).
    Down,
    /// 2: the remote system is heard, three-way handshake in progress.
    Init,
    /// 3: up.
    Up,
}

impl State {
    /// The two-bit wire value.
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state of a two-bit wire value (only the low two bits are looked at).
    pub fn from_code(code: u8) -> Self {
        match code & 0x03 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why the session last changed state (the Diag field, section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0
    NoDiagnostic,
    /// 1: nothing was received for a Detection Time.
    ControlDetectionTimeExpired,
    /// 2
    EchoFunctionFailed,
    /// 3: the remote system said it is Down (or AdminDown).
    NeighborSignaledSessionDown,
    /// 4
    ForwardingPlaneReset,
    /// 5
    PathDown,
    /// 6
    ConcatenatedPathDown,
    /// 7: the session was taken down locally.
    AdministrativelyDown,
    /// 8
    ReverseConcatenatedPathDown,
    /// 9-31: reserved values, kept as received (receivers must not reject them).
    Reserved(u8),
}

impl Diagnostic {
    /// The five-bit wire value.
    pub fn code(self) -> u8 {
        match self {
            Diagnostic::NoDiagnostic => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(c) => c & 0x1f,
        }
    }

    /// The diagnostic of a five-bit wire value (only the low five bits are looked at).
    pub fn from_code(code: u8) -> Self {
        match code & 0x1f {
            0 => Diagnostic::NoDiagnostic,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            c => Diagnostic::Reserved(c),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diagnostic::NoDiagnostic => f.write_str("No Diagnostic"),
            Diagnostic::ControlDetectionTimeExpired => {
                f.write_str("Control Detection Time Expired")
            }
            Diagnostic::EchoFunctionFailed => f.write_str("Echo Function Failed"),
            Diagnostic::NeighborSignaledSessionDown => {
                f.write_str("Neighbor Signaled Session Down")
            }
            Diagnostic::ForwardingPlaneReset => f.write_str("Forwarding Plane Reset"),
            Diagnostic::PathDown => f.write_str("Path Down"),
            Diagnostic::ConcatenatedPathDown => f.write_str("Concatenated Path Down"),
            Diagnostic::AdministrativelyDown => f.write_str("Administratively Down"),
            Diagnostic::ReverseConcatenatedPathDown => {
                f.write_str("Reverse Concatenated Path Down")
            }
            Diagnostic::Reserved(c) => write!(f, "Reserved ({})", c & 0x1f),
        }
    }
}

/// The optional authentication section, kept raw: this implementation does not
/// authenticate (sessions never set the A bit, and packets that carry one are discarded
/// by the session, section 6.8.6), but the codec still reads and writes it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    auth_type: u8,
    data: Bytes,
}

impl Authentication {
    /// Most data octets: Auth Len is one octet and counts the type and length octets.
    pub const MAX_DATA: usize = MAX_LEN - MIN_LEN - 2;

    /// A section of `auth_type` with `data` (everything after Auth Len); `None` if the
    /// data does not fit in a packet.
    pub fn new(auth_type: u8, data: Bytes) -> Option<Self> {
        (data.len() <= Self::MAX_DATA).then_some(Self { auth_type, data })
    }

    /// Auth Type (1 simple password, 2/3 keyed MD5, 4/5 keyed SHA1).
    pub fn auth_type(&self) -> u8 {
        self.auth_type
    }

    /// Authentication Data: the octets after Auth Type and Auth Len.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    fn wire_len(&self) -> usize {
        2 + self.data.len()
    }
}

/// A BFD Control packet (version 1). The A bit is set exactly when `auth` is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diag: the reason of the sender's last state change.
    pub diag: Diagnostic,
    /// Sta: the sender's session state.
    pub state: State,
    /// P: the sender asks for verification of a parameter change (Poll Sequence).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D: the sender wishes to run in Demand mode.
    pub demand: bool,
    /// Detect Mult: the sender's detection time multiplier (never 0 in a decoded packet).
    pub detect_mult: u8,
    /// My Discriminator (never 0 in a decoded packet).
    pub my_discriminator: u32,
    /// Your Discriminator: the receiver's discriminator as the sender knows it, or 0.
    pub your_discriminator: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds (0: no Echo packets wanted).
    pub required_min_echo_rx_us: u32,
    /// The authentication section (the A bit), if any.
    pub auth: Option<Authentication>,
}

/// Why a datagram is not a Control packet this system may act on (RFC 5880 section
/// 6.8.6, the checks that need no session).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer octets than a Control packet (or than its own Length field) needs.
    #[error("truncated: {have} octets, {need} needed")]
    Truncated {
        /// Octets needed.
        need: usize,
        /// Octets received.
        have: usize,
    },
    /// Version other than 1.
    #[error("version {0}, only 1 is spoken")]
    Version(u8),
    /// The Length field is below the minimum (24, or 26 with an authentication section).
    #[error("Length field {length} below the minimum of {min}")]
    LengthTooShort {
        /// The Length field.
        length: u8,
        /// Its minimum for this packet.
        min: usize,
    },
    /// Detect Mult is zero.
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    /// The M bit is set (multipoint is reserved).
    #[error("Multipoint (M) bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the sender is neither Down nor AdminDown.
    #[error("Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    /// Auth Len does not match the rest of the packet.
    #[error("Auth Len {auth_len} does not fill the {section} octets after the header")]
    AuthLength {
        /// The Auth Len field.
        auth_len: u8,
        /// Octets of the authentication section per the Length field.
        section: usize,
    },
}

type Res<'a, T> = IResult<&'a [u8], T, ()>;

/// The fixed 24-octet header, as read.
struct Header {
    vers_diag: u8,
    sta_flags: u8,
    detect_mult: u8,
    length: u8,
    my_discriminator: u32,
    your_discriminator: u32,
    desired_min_tx_us: u32,
    required_min_rx_us: u32,
    required_min_echo_rx_us: u32,
}

fn header(i: &[u8]) -> Res<'_, Header> {
    (
        be_u8, be_u8, be_u8, be_u8, be_u32, be_u32, be_u32, be_u32, be_u32,
    )
        .map(
            |(vers_diag, sta_flags, detect_mult, length, my, your, tx, rx, echo)| Header {
                vers_diag,
                sta_flags,
                detect_mult,
                length,
                my_discriminator: my,
                your_discriminator: your,
                desired_min_tx_us: tx,
                required_min_rx_us: rx,
                required_min_echo_rx_us: echo,
            },
        )
        .parse(i)
}

impl ControlPacket {
    /// Decodes the Control packet at the start of `datagram` (a UDP payload). Octets past
    /// the Length field are ignored; a Length field longer than the datagram is an error.
    pub fn decode(datagram: &[u8]) -> Result<Self, PacketError> {
        let (_, h) = header(datagram).map_err(|_| PacketError::Truncated {
            need: MIN_LEN,
            have: datagram.len(),
        })?;
        let version = h.vers_diag >> 5;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let has_auth = h.sta_flags & FLAG_AUTH != 0;
        let min = if has_auth { MIN_LEN + 2 } else { MIN_LEN };
        let length = usize::from(h.length);
        if length < min {
            return Err(PacketError::LengthTooShort {
                length: h.length,
                min,
            });
        }
        if length > datagram.len() {
            return Err(PacketError::Truncated {
                need: length,
                have: datagram.len(),
            });
        }
        if h.detect_mult == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if h.sta_flags & FLAG_MULTIPOINT != 0 {
            return Err(PacketError::Multipoint);
        }
        if h.my_discriminator == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        let state = State::from_code(h.sta_flags >> 6);
        if h.your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(PacketError::ZeroYourDiscriminator(state));
        }
        let auth = if has_auth {
            let section = datagram.get(MIN_LEN..length).unwrap_or_default();
            let (data, (auth_type, auth_len)) =
                (be_u8, be_u8).parse(section).map_err(|_: nom::Err<()>| {
                    PacketError::Truncated {
                        need: MIN_LEN + 2,
                        have: length,
                    }
                })?;
            if usize::from(auth_len) != section.len() {
                return Err(PacketError::AuthLength {
                    auth_len,
                    section: section.len(),
                });
            }
            Authentication::new(auth_type, Bytes::copy_from_slice(data))
        } else {
            None
        };
        Ok(ControlPacket {
            diag: Diagnostic::from_code(h.vers_diag),
            state,
            poll: h.sta_flags & FLAG_POLL != 0,
            final_: h.sta_flags & FLAG_FINAL != 0,
            control_plane_independent: h.sta_flags & FLAG_CPI != 0,
            demand: h.sta_flags & FLAG_DEMAND != 0,
            detect_mult: h.detect_mult,
            my_discriminator: h.my_discriminator,
            your_discriminator: h.your_discriminator,
            desired_min_tx_us: h.desired_min_tx_us,
            required_min_rx_us: h.required_min_rx_us,
            required_min_echo_rx_us: h.required_min_echo_rx_us,
            auth,
        })
    }

    /// Length of the encoded packet (the Length field).
    pub fn wire_len(&self) -> usize {
        MIN_LEN + self.auth.as_ref().map_or(0, Authentication::wire_len)
    }

    /// Appends the encoded packet to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut flags = self.state.code() << 6;
        for (set, bit) in [
            (self.poll, FLAG_POLL),
            (self.final_, FLAG_FINAL),
            (self.control_plane_independent, FLAG_CPI),
            (self.auth.is_some(), FLAG_AUTH),
            (self.demand, FLAG_DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        // At most MAX_LEN by construction of Authentication.
        let length = u8::try_from(self.wire_len()).unwrap_or(u8::MAX);
        out.reserve(self.wire_len());
        out.put_u8((VERSION << 5) | self.diag.code());
        out.put_u8(flags);
        out.put_u8(self.detect_mult);
        out.put_u8(length);
        out.put_u32(self.my_discriminator);
        out.put_u32(self.your_discriminator);
        out.put_u32(self.desired_min_tx_us);
        out.put_u32(self.required_min_rx_us);
        out.put_u32(self.required_min_echo_rx_us);
        if let Some(auth) = &self.auth {
            out.put_u8(auth.auth_type);
            out.put_u8(u8::try_from(auth.wire_len()).unwrap_or(u8::MAX));
            out.put_slice(&auth.data);
        }
    }

    /// The encoded packet.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.wire_len());
        self.encode(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A packet FRR 8.4's bfdd sent in the lab (tcpdump, 10.0.0.2.49152 > 10.0.0.1.3784,
    /// TTL 255, TOS 0xc0): Down, slow timers both ways, Echo at 50 ms.
    const FRR_DOWN: [u8; 24] = [
        0x20, 0x40, 0x03, 0x18, 0x75, 0x2e, 0xc9, 0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42,
        0x40, 0x00, 0x0f, 0x42, 0x40, 0x00, 0x00, 0xc3, 0x50,
    ];

    fn sample() -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::NoDiagnostic,
            state: State::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 0x0a0b_0c0d,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    #[test]
    fn frr_packet_decodes_field_by_field() {
        let p = ControlPacket::decode(&FRR_DOWN).unwrap();
        assert_eq!(p.state, State::Down);
        assert_eq!(p.diag, Diagnostic::NoDiagnostic);
        assert!(!p.poll && !p.final_ && !p.demand && !p.control_plane_independent);
        assert_eq!(p.detect_mult, 3);
        assert_eq!(p.my_discriminator, 0x752e_c962);
        assert_eq!(p.your_discriminator, 0);
        assert_eq!(p.desired_min_tx_us, 1_000_000);
        assert_eq!(p.required_min_rx_us, 1_000_000);
        assert_eq!(p.required_min_echo_rx_us, 50_000);
        assert_eq!(p.auth, None);
        assert_eq!(&p.to_bytes()[..], &FRR_DOWN[..]);
    }

    #[test]
    fn encoding_puts_every_field_where_the_rfc_says() {
        let mut p = sample();
        p.diag = Diagnostic::ControlDetectionTimeExpired;
        p.poll = false;
        p.final_ = true;
        let b = p.to_bytes();
        assert_eq!(b.len(), 24);
        assert_eq!(b[0], 0x21, "version 1, diag 1");
        assert_eq!(b[1], 0xd0, "Up (3 << 6) | F");
        assert_eq!(b[2], 3);
        assert_eq!(b[3], 24);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[8..12], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(&b[12..16], &100_000u32.to_be_bytes());
        assert_eq!(&b[16..20], &100_000u32.to_be_bytes());
        assert_eq!(&b[20..24], &[0, 0, 0, 0]);
    }

    #[test]
    fn malformed_packets_are_rejected_with_their_reason() {
        let good = sample().to_bytes().to_vec();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            ControlPacket::decode(&b)
        };
        assert_eq!(
            ControlPacket::decode(&good[..23]),
            Err(PacketError::Truncated { need: 24, have: 23 })
        );
        assert_eq!(
            ControlPacket::decode(&[]),
            Err(PacketError::Truncated { need: 24, have: 0 })
        );
        assert_eq!(with(&|b| b[0] = 0x40), Err(PacketError::Version(2)));
        assert_eq!(with(&|b| b[0] = 0x00), Err(PacketError::Version(0)));
        assert_eq!(
            with(&|b| b[3] = 23),
            Err(PacketError::LengthTooShort {
                length: 23,
                min: 24
            })
        );
        assert_eq!(
            with(&|b| b[3] = 30),
            Err(PacketError::Truncated { need: 30, have: 24 })
        );
        assert_eq!(with(&|b| b[2] = 0), Err(PacketError::ZeroDetectMult));
        assert_eq!(with(&|b| b[1] |= 0x01), Err(PacketError::Multipoint));
        assert_eq!(
            with(&|b| b[4..8].fill(0)),
            Err(PacketError::ZeroMyDiscriminator)
        );
        assert_eq!(
            with(&|b| b[8..12].fill(0)),
            Err(PacketError::ZeroYourDiscriminator(State::Up))
        );
        assert_eq!(
            with(&|b| {
                b[8..12].fill(0);
                b[1] = (State::Init.code() << 6) | (b[1] & 0x3f);
            }),
            Err(PacketError::ZeroYourDiscriminator(State::Init))
        );
        // Your Discriminator 0 is how a Down or AdminDown system starts.
        for s in [State::Down, State::AdminDown] {
            let p = with(&|b| {
                b[8..12].fill(0);
                b[1] = s.code() << 6;
            })
            .unwrap();
            assert_eq!((p.state, p.your_discriminator), (s, 0));
        }
        // A bit: at least 26 octets, and Auth Len must fill the section.
        assert_eq!(
            with(&|b| b[1] |= 0x04),
            Err(PacketError::LengthTooShort {
                length: 24,
                min: 26
            })
        );
        assert_eq!(
            with(&|b| {
                b[1] |= 0x04;
                b[3] = 28;
                b.extend_from_slice(&[1, 5, b'a', b'b']);
            }),
            Err(PacketError::AuthLength {
                auth_len: 5,
                section: 4
            })
        );
    }

    #[test]
    fn trailing_octets_after_length_are_ignored_and_auth_round_trips() {
        let mut b = sample().to_bytes().to_vec();
        b.extend_from_slice(&[0xff; 7]);
        assert_eq!(ControlPacket::decode(&b).unwrap(), sample());

        let mut p = sample();
        p.auth = Authentication::new(1, Bytes::from_static(b"secret"));
        let b = p.to_bytes();
        assert_eq!(b.len(), 24 + 2 + 6);
        assert_eq!(b[1] & 0x04, 0x04);
        assert_eq!(&b[24..26], &[1, 8]);
        assert_eq!(ControlPacket::decode(&b).unwrap(), p);
        assert!(Authentication::new(1, Bytes::from(vec![0; 230])).is_none());
        assert!(Authentication::new(1, Bytes::from(vec![0; 229])).is_some());
    }

    #[test]
    fn every_diagnostic_and_state_code_round_trips() {
        for c in 0..32u8 {
            assert_eq!(Diagnostic::from_code(c).code(), c);
        }
        assert_eq!(
            Diagnostic::from_code(1),
            Diagnostic::ControlDetectionTimeExpired
        );
        assert_eq!(
            Diagnostic::from_code(3),
            Diagnostic::NeighborSignaledSessionDown
        );
        assert_eq!(Diagnostic::from_code(9), Diagnostic::Reserved(9));
        for c in 0..4u8 {
            assert_eq!(State::from_code(c).code(), c);
        }
    }

    fn arb_packet() -> impl Strategy<Value = ControlPacket> {
        let state = prop_oneof![
            Just(State::AdminDown),
            Just(State::Down),
            Just(State::Init),
            Just(State::Up)
        ];
        let auth = proptest::option::of(
            (
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..=Authentication::MAX_DATA),
            )
                .prop_map(|(t, d)| Authentication::new(t, Bytes::from(d))),
        )
        .prop_map(Option::flatten);
        (
            (0u8..32, state, any::<[bool; 4]>(), 1u8..=255),
            (1u32.., any::<u32>(), any::<[u32; 3]>()),
            auth,
        )
            .prop_map(|((diag, state, flags, mult), (my, your, iv), auth)| {
                // Your Discriminator 0 is only valid from a Down/AdminDown sender.
                let your = if matches!(state, State::Down | State::AdminDown) {
                    your
                } else {
                    your.max(1)
                };
                ControlPacket {
                    diag: Diagnostic::from_code(diag),
                    state,
                    poll: flags[0],
                    final_: flags[1],
                    control_plane_independent: flags[2],
                    demand: flags[3],
                    detect_mult: mult,
                    my_discriminator: my,
                    your_discriminator: your,
                    desired_min_tx_us: iv[0],
                    required_min_rx_us: iv[1],
                    required_min_echo_rx_us: iv[2],
                    auth,
                }
            })
    }

    proptest! {
        #[test]
        fn valid_packets_round_trip(p in arb_packet()) {
            let b = p.to_bytes();
            prop_assert_eq!(b.len(), p.wire_len());
            prop_assert_eq!(usize::from(b[3]), b.len());
            prop_assert_eq!(ControlPacket::decode(&b), Ok(p));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_decode_canonically(
            b in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            if let Ok(p) = ControlPacket::decode(&b) {
                // Every header bit is a field: re-encoding gives back the packet, except
                // that octets a too-long Length field covers without an authentication
                // section are ignored (and so not re-encoded).
                let enc = p.to_bytes();
                if p.auth.is_some() {
                    prop_assert_eq!(&enc[..], &b[..usize::from(b[3])]);
                } else {
                    prop_assert_eq!(&enc[..3], &b[..3]);
                    prop_assert_eq!(&enc[4..], &b[4..24]);
                }
                prop_assert_eq!(ControlPacket::decode(&enc), Ok(p));
            }
        }

        #[test]
        fn mutated_valid_packets_never_panic(
            p in arb_packet(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut b = p.to_bytes().to_vec();
            let i = at.index(b.len());
            b[i] = byte;
            let keep = cut.index(b.len() + 1);
            let _ = ControlPacket::decode(&b[..keep]);
            let _ = ControlPacket::decode(&b);
        }
    }
}
