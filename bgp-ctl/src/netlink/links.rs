//! Links (interfaces): ifindex, name, MAC, MTU and state, with change events.

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkAttribute, LinkFlags, LinkMessage, State},
};

use super::{
    NetlinkError,
    socket::{NetlinkSocket, Received},
    watch::{self, Event, KernelTable, Mirror, Watch, WatchOptions},
};

/// `RTNLGRP_LINK`.
pub(crate) const RTNLGRP_LINK: u32 = 1;

/// Operational state (RFC 2863, `IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperState {
    /// Up and able to pass packets.
    Up,
    /// Down.
    Down,
    /// Down because a lower layer is (a veth whose peer is down, no carrier).
    LowerLayerDown,
    /// Waiting for an external event.
    Dormant,
    /// In a test mode.
    Testing,
    /// A component is missing.
    NotPresent,
    /// The driver does not report it (loopback, some virtual devices).
    Unknown,
}

impl From<&State> for OperState {
    fn from(state: &State) -> Self {
        match state {
            State::Up => Self::Up,
            State::Down => Self::Down,
            State::LowerLayerDown => Self::LowerLayerDown,
            State::Dormant => Self::Dormant,
            State::Testing => Self::Testing,
            State::NotPresent => Self::NotPresent,
            _ => Self::Unknown,
        }
    }
}

/// An interface as the FIB programmer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Its Ethernet address; `None` for devices without a 6-byte one (loopback has
    /// all zeros and is reported as such, tunnels have none).
    pub mac: Option<[u8; 6]>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Operational state.
    pub oper: OperState,
}

impl Link {
    /// Whether it can carry traffic now: administratively up and operationally up (or
    /// reporting no state, as loopback does, while its lower layer is up).
    pub fn is_usable(&self) -> bool {
        self.admin_up && matches!(self.oper, OperState::Up | OperState::Unknown)
    }
}

/// Parses an `RTM_NEWLINK`/`RTM_DELLINK` of the `AF_UNSPEC` family (the ones that
/// describe the device; `AF_BRIDGE` ones describe bridge ports). `None` for others or
/// when the name is missing.
pub(crate) fn parse_link(message: &LinkMessage) -> Option<Link> {
    if message.header.interface_family != AddressFamily::Unspec {
        return None;
    }
    let mut name = None;
    let mut mac = None;
    let mut mtu = 0;
    let mut oper = OperState::Unknown;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::OperState(s) => oper = s.into(),
            _ => {}
        }
    }
    Some(Link {
        ifindex: message.header.index,
        name: name?,
        mac,
        mtu,
        admin_up: message.header.flags.contains(LinkFlags::Up),
        oper,
    })
}

/// A link dump request.
pub(crate) fn dump_request() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(LinkMessage::default())
}

/// The link table as a [`KernelTable`].
pub(crate) struct LinkTable {
    mirror: Mirror<u32, Link>,
}

impl KernelTable for LinkTable {
    type Item = Link;
    const NAME: &'static str = "link";

    fn groups(&self) -> Vec<u32> {
        vec![RTNLGRP_LINK]
    }

    fn dumps(&self) -> Vec<(&'static str, RouteNetlinkMessage)> {
        vec![("link", dump_request())]
    }

    fn load(&mut self, dumped: Vec<RouteNetlinkMessage>, out: &mut Vec<Event<Link>>) {
        let fresh = dumped
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => parse_link(l),
                _ => None,
            })
            .map(|l| (l.ifindex, l))
            .collect();
        self.mirror.replace_all(fresh, out);
    }

    fn apply(&mut self, received: Received, out: &mut Vec<Event<Link>>) {
        match &received.message {
            RouteNetlinkMessage::NewLink(m) => {
                if let Some(link) = parse_link(m) {
                    self.mirror.set(link.ifindex, link, out);
                }
            }
            RouteNetlinkMessage::DelLink(m)
                if m.header.interface_family == AddressFamily::Unspec =>
            {
                self.mirror.remove(&m.header.index, out);
            }
            _ => {}
        }
    }
}

/// Follows the kernel's links: every link as `Added` then `Synced`, then `Added`,
/// `Changed` (name, MAC, MTU, admin or oper state changed) and `Removed` as they
/// happen. Must be called within a tokio runtime.
pub fn watch_links(options: &WatchOptions) -> Result<Watch<Link>, NetlinkError> {
    watch::start(
        LinkTable {
            mirror: Mirror::new(),
        },
        options,
    )
}

/// How an XDP program is attached to an interface (`IFLA_XDP_ATTACHED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttachment {
    /// In the driver (native XDP).
    Driver,
    /// Generic XDP, on the socket buffer.
    Skb,
    /// Offloaded to the NIC.
    Hardware,
    /// More than one mode at once.
    Multiple,
}

/// The XDP attachment of `message`'s interface, `None` when it has none.
fn xdp_attachment(message: &LinkMessage) -> Option<XdpAttachment> {
    use netlink_packet_route::link::{LinkXdp, XdpAttached};
    message.attributes.iter().find_map(|a| match a {
        LinkAttribute::Xdp(xdp) => xdp.iter().find_map(|x| match x {
            LinkXdp::Attached(XdpAttached::Driver) => Some(XdpAttachment::Driver),
            LinkXdp::Attached(XdpAttached::SocketBuffer) => Some(XdpAttachment::Skb),
            LinkXdp::Attached(XdpAttached::Hardware) => Some(XdpAttachment::Hardware),
            LinkXdp::Attached(XdpAttached::Multiple) => Some(XdpAttachment::Multiple),
            _ => None,
        }),
        _ => None,
    })
}

/// The XDP attachment of every interface that has one, by name: what the kernel says
/// now (readiness checks it rather than trusting what the daemon did at start).
pub async fn xdp_attachments() -> Result<Vec<(String, XdpAttachment)>, NetlinkError> {
    let mut socket = NetlinkSocket::requests()?;
    let dumped = socket.dump("links", dump_request()).await?;
    Ok(dumped
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some((parse_link(l)?.name, xdp_attachment(l)?)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(family: AddressFamily, attrs: Vec<LinkAttribute>, up: bool) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.interface_family = family;
        m.header.index = 7;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes = attrs;
        m
    }

    #[test]
    fn a_link_message_gives_name_mac_mtu_and_state() {
        let m = message(
            AddressFamily::Unspec,
            vec![
                LinkAttribute::IfName("cali1a2b".into()),
                LinkAttribute::Address(vec![0xee, 0xee, 0xee, 0xee, 0xee, 0xee]),
                LinkAttribute::Mtu(1450),
                LinkAttribute::OperState(State::Up),
            ],
            true,
        );
        let link = parse_link(&m).unwrap();
        assert_eq!(link.ifindex, 7);
        assert_eq!(link.name, "cali1a2b");
        assert_eq!(link.mac, Some([0xee; 6]));
        assert_eq!(link.mtu, 1450);
        assert!(link.is_usable());
    }

    #[test]
    fn bridge_port_messages_and_nameless_links_are_ignored() {
        let named = vec![LinkAttribute::IfName("eth0".into())];
        assert!(parse_link(&message(AddressFamily::Bridge, named, true)).is_none());
        assert!(parse_link(&message(AddressFamily::Unspec, vec![], true)).is_none());
    }

    #[test]
    fn odd_hardware_addresses_give_no_mac_and_down_links_are_unusable() {
        let m = message(
            AddressFamily::Unspec,
            vec![
                LinkAttribute::IfName("tun0".into()),
                LinkAttribute::Address(vec![1, 2, 3, 4]),
                LinkAttribute::OperState(State::Down),
            ],
            true,
        );
        let link = parse_link(&m).unwrap();
        assert_eq!(link.mac, None);
        assert!(!link.is_usable());
    }
}
