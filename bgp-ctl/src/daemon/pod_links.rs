//! The program on the pods' interfaces (`[dataplane] attach-pods`): the host side of
//! each pod's veth, learned from its pod route, so that what pods send to remote pods
//! (and to each other) is forwarded from the maps too, like what arrives on the uplinks.
//!
//! One attachment per interface, however many pod routes (IPv4 and IPv6) point at it;
//! pinned like the uplinks' (`link_<ifname>`), so it survives a restart, and unpinned
//! when the last route through the interface goes (the kernel detaches the program from
//! a deleted interface by itself; the pin would only linger).

use std::{
    collections::{HashMap, HashSet},
    ffi::CStr,
};

use tracing::{info, warn};

use crate::{
    fib::{AttachMode, Dataplane},
    netlink::PodRoute,
};

/// Attachments to pod interfaces.
pub struct PodLinks {
    dp: Dataplane,
    mode: AttachMode,
    uplinks: HashSet<String>,
    /// ifindex -> (name, prefixes routed through it).
    attached: HashMap<u32, (String, HashSet<ipnet::IpNet>)>,
}

impl PodLinks {
    /// Takes over the loaded program; `uplinks` are never treated as pod interfaces.
    pub fn new(dp: Dataplane, mode: AttachMode, uplinks: &[String]) -> Self {
        PodLinks {
            dp,
            mode,
            uplinks: uplinks.iter().cloned().collect(),
            attached: HashMap::new(),
        }
    }

    /// A pod route appeared (or changed): attach to its interface if not yet done.
    pub fn route_added(&mut self, r: &PodRoute) {
        // A route that moved to another interface leaves the old one.
        let moved: Vec<u32> = self
            .attached
            .iter()
            .filter(|(i, (_, p))| **i != r.ifindex && p.contains(&r.prefix))
            .map(|(i, _)| *i)
            .collect();
        for ifindex in moved {
            self.route_removed(&PodRoute {
                ifindex,
                ..r.clone()
            });
        }
        if let Some((_, prefixes)) = self.attached.get_mut(&r.ifindex) {
            prefixes.insert(r.prefix);
            return;
        }
        let Some(name) = interface_name(r) else {
            warn!("pod route {}: interface {} is gone", r.prefix, r.ifindex);
            return;
        };
        if self.uplinks.contains(&name) {
            return;
        }
        let first = self.dp.attach(&name, self.mode);
        let result = match first {
            // A pin left from an interface of the same name that was deleted (its link
            // is defunct): start afresh.
            Err(_) => Dataplane::detach(self.dp.pin_dir(), &name)
                .and_then(|_| self.dp.attach(&name, self.mode)),
            ok => ok,
        };
        match result {
            Ok(()) => {
                info!("xdp-fwd attached to pod interface {name} ({})", self.mode);
                self.attached
                    .insert(r.ifindex, (name, HashSet::from([r.prefix])));
            }
            Err(e) => warn!("attaching xdp-fwd to pod interface {name}: {e}"),
        }
    }

    /// A pod route went: unpin the attachment when it was the interface's last.
    pub fn route_removed(&mut self, r: &PodRoute) {
        let Some((name, prefixes)) = self.attached.get_mut(&r.ifindex) else {
            return;
        };
        prefixes.remove(&r.prefix);
        if !prefixes.is_empty() {
            return;
        }
        let name = name.clone();
        self.attached.remove(&r.ifindex);
        match Dataplane::detach(self.dp.pin_dir(), &name) {
            Ok(_) => info!("xdp-fwd detached from pod interface {name}"),
            Err(e) => warn!("detaching xdp-fwd from pod interface {name}: {e}"),
        }
    }
}

/// The route's interface name, from the route or from the kernel.
fn interface_name(r: &PodRoute) -> Option<String> {
    if !r.ifname.is_empty() {
        return Some(r.ifname.clone());
    }
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(r.ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
