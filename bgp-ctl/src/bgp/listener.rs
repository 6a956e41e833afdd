//! The BGP listener: one socket per configured address (port 179 by default) accepting
//! every peer's connections and handing each to the session of its address, or to whoever
//! handles a dynamic-neighbor range containing it (longest prefix wins).
//!
//! TCP MD5 keys are installed on the listening sockets, per peer address or per range
//! (`TCP_MD5SIG_EXT` with a prefix), so that the kernel accepts the peers' signed SYNs.
//! A connection from an address nobody registered is closed at once.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use ipnet::IpNet;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tracing::{debug, warn};

use super::socket;

/// A connection the listener accepted.
#[derive(Debug)]
pub struct Accepted {
    /// The connection.
    pub stream: TcpStream,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address (IPv4-mapped addresses unmapped).
    pub remote: SocketAddr,
    /// TTL (hop limit) of the peer's SYN, for the GTSM check, if the kernel saved it.
    pub syn_ttl: Option<u8>,
}

#[derive(Debug)]
struct Route {
    to: mpsc::Sender<Accepted>,
    md5: Option<String>,
}

#[derive(Debug, Default)]
struct Registry {
    peers: HashMap<IpAddr, Route>,
    ranges: Vec<(IpNet, Route)>,
}

impl Registry {
    fn route(&self, addr: IpAddr) -> Option<&Route> {
        self.peers.get(&addr).or_else(|| {
            self.ranges
                .iter()
                .filter(|(net, _)| net.contains(&addr))
                .max_by_key(|(net, _)| net.prefix_len())
                .map(|(_, r)| r)
        })
    }
}

struct Shared {
    sockets: Vec<Arc<TcpListener>>,
    registry: Mutex<Registry>,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs or removes a key on every listening socket of the peer's family.
    fn set_md5(&self, peer: IpNet, key: Option<&str>) -> io::Result<()> {
        for s in &self.sockets {
            if s.local_addr()?.is_ipv6() == matches!(peer, IpNet::V6(_)) {
                socket::set_md5(s.as_ref(), peer, key.map(str::as_bytes))?;
            }
        }
        Ok(())
    }
}

/// Listening sockets and their accept tasks (stopped on drop).
pub struct Listener {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Listener {
    /// Listens on each address (e.g. `0.0.0.0:179` and `[::]:179`; an IPv6 socket takes
    /// IPv6 only). Must run inside a tokio runtime.
    pub fn bind(addrs: &[SocketAddr]) -> io::Result<Listener> {
        let sockets = addrs
            .iter()
            .map(|a| {
                socket::listen(*a)
                    .map(Arc::new)
                    .map_err(|e| io::Error::new(e.kind(), format!("listening on {a}: {e}")))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            sockets,
            registry: Mutex::new(Registry::default()),
        });
        let tasks = shared
            .sockets
            .iter()
            .map(|s| tokio::spawn(accept_loop(s.clone(), shared.clone())))
            .collect();
        Ok(Listener { shared, tasks })
    }

    /// The addresses actually bound (with the port chosen when 0 was asked).
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.shared.sockets.iter().map(|s| s.local_addr()).collect()
    }

    /// Hands connections from `addr` to `to` (a session's
    /// [`super::session::SessionHandle::incoming`]), with the peer's MD5 key if any.
    /// Replaces an earlier registration of the address.
    pub fn add_peer(
        &self,
        addr: IpAddr,
        md5: Option<&str>,
        to: mpsc::Sender<Accepted>,
    ) -> io::Result<()> {
        let addr = addr.to_canonical();
        let old = self.shared.registry().peers.remove(&addr);
        if let Some(Route { md5: Some(_), .. }) = &old {
            self.shared.set_md5(IpNet::from(addr), None)?;
        }
        if md5.is_some() {
            self.shared.set_md5(IpNet::from(addr), md5)?;
        }
        self.shared.registry().peers.insert(
            addr,
            Route {
                to,
                md5: md5.map(str::to_owned),
            },
        );
        Ok(())
    }

    /// Stops handing connections from `addr`, and removes its MD5 key.
    pub fn remove_peer(&self, addr: IpAddr) -> io::Result<()> {
        let addr = addr.to_canonical();
        let old = self.shared.registry().peers.remove(&addr);
        if let Some(Route { md5: Some(_), .. }) = old {
            self.shared.set_md5(IpNet::from(addr), None)?;
        }
        Ok(())
    }

    /// Hands connections from addresses in `range` (not registered by
    /// [`Listener::add_peer`]) to `to`, which typically starts a session for the new
    /// dynamic neighbor and passes the connection on. Replaces an earlier registration of
    /// the same range.
    pub fn add_range(
        &self,
        range: IpNet,
        md5: Option<&str>,
        to: mpsc::Sender<Accepted>,
    ) -> io::Result<()> {
        let range = range.trunc();
        self.remove_range(range)?;
        if md5.is_some() {
            self.shared.set_md5(range, md5)?;
        }
        self.shared.registry().ranges.push((
            range,
            Route {
                to,
                md5: md5.map(str::to_owned),
            },
        ));
        Ok(())
    }

    /// Stops accepting from `range`, and removes its MD5 key.
    pub fn remove_range(&self, range: IpNet) -> io::Result<()> {
        let range = range.trunc();
        let old = {
            let mut reg = self.shared.registry();
            let at = reg.ranges.iter().position(|(n, _)| *n == range);
            at.map(|i| reg.ranges.remove(i))
        };
        if let Some((_, Route { md5: Some(_), .. })) = old {
            self.shared.set_md5(range, None)?;
        }
        Ok(())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(listener: Arc<TcpListener>, shared: Arc<Shared>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or memory: wait instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let syn_ttl = socket::saved_syn_ttl(&stream).unwrap_or(None);
        let to = shared.registry().route(remote.ip()).map(|r| r.to.clone());
        let Some(to) = to else {
            debug!(%remote, "connection from an unknown address closed");
            continue;
        };
        if let Err(e) = to.try_send(Accepted {
            stream,
            local,
            remote,
            syn_ttl,
        }) {
            debug!(%remote, error = %e, "connection dropped: its session is busy or gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_to_their_peer_or_the_longest_matching_range() {
        let l = Listener::bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let addr = l.local_addrs().unwrap()[0];
        let (peer_tx, mut peer_rx) = mpsc::channel(4);
        let (range_tx, mut range_rx) = mpsc::channel(4);
        let (wide_tx, mut wide_rx) = mpsc::channel(4);
        l.add_range("127.0.0.0/8".parse().unwrap(), None, wide_tx)
            .unwrap();
        l.add_range("127.0.0.0/24".parse().unwrap(), None, range_tx)
            .unwrap();
        l.add_peer("127.0.0.1".parse().unwrap(), None, peer_tx)
            .unwrap();

        let connect_from = |src: &'static str| async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
            s.connect(addr).await.unwrap()
        };
        let timeout = Duration::from_secs(5);
        let _a = connect_from("127.0.0.1").await;
        let got = tokio::time::timeout(timeout, peer_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.remote.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(got.local, addr);
        assert_eq!(got.syn_ttl, Some(64), "loopback SYN with the default TTL");
        let _b = connect_from("127.0.0.2").await;
        let got = tokio::time::timeout(timeout, range_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.remote.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        let _c = connect_from("127.0.1.9").await;
        let got = tokio::time::timeout(timeout, wide_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.remote.ip(), "127.0.1.9".parse::<IpAddr>().unwrap());

        // Unregistered: closed by the listener (the client reads EOF).
        l.remove_range("127.0.0.0/8".parse().unwrap()).unwrap();
        let mut d = connect_from("127.0.2.1").await;
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(timeout, tokio::io::AsyncReadExt::read(&mut d, &mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
        assert!(peer_rx.try_recv().is_err() && range_rx.try_recv().is_err());
    }
}
