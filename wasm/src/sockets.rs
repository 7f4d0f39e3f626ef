//! `wasi:sockets` as a pod sees it: TCP, UDP and name lookup through the
//! host, which decides what the instance's addresses mean and what it may
//! reach ([`NetworkView`]).
//!
//! wasmtime-wasi implements the sockets; this module replaces six of its
//! functions in the linker (`allow_shadowing`), each a thin wrapper that
//! rewrites or checks an address and then calls wasmtime-wasi's own
//! implementation:
//!
//! * `tcp-socket.start-bind`, `udp-socket.start-bind`: `127.0.0.1` and
//!   `0.0.0.0` become the instance's own address (its pod IP), so a
//!   component that listens on `127.0.0.1:8080` serves on `podIP:8080`;
//!   its own address is allowed as it stands; any other address, and any
//!   IPv6 address, is `access-denied` (a pod binds its own address only).
//! * `tcp-socket.start-connect`, `udp-socket.stream` (a connected UDP
//!   socket), `outgoing-datagram-stream.send`: `127.0.0.1` and `0.0.0.0`
//!   become the instance's own address; a destination the view refuses
//!   (NetworkPolicy) is `connection-refused`. A TCP socket not yet bound
//!   that connects to a loopback address is bound to the instance's own
//!   address first, so the other end sees the pod.
//! * `tcp-socket.accept`: a connection from a source the view refuses
//!   (NetworkPolicy ingress) is shut down both ways before the guest gets
//!   it, so the client is sent nothing and the guest sees a connection
//!   that has already ended.
//! * `ip-name-lookup.resolve-addresses`: a name the view knows (a cluster
//!   name) resolves to its first address, one it says does not exist is
//!   `name-unresolvable`, any other is resolved by wasmtime-wasi through
//!   the node's resolver.
//!
//! Everything else (listen, streams, options, shutdown) is
//! wasmtime-wasi's, unchanged. Without a view, sockets stay closed:
//! wasmtime-wasi's default address check refuses every address.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::SocketError;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{Host as _, ResolveAddressStream};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpSocketAddress, Network};
use wasmtime_wasi::p2::bindings::sockets::tcp::{HostTcpSocket, ShutdownType, TcpSocket};
use wasmtime_wasi::p2::bindings::sockets::udp::{
    HostOutgoingDatagramStream as _, HostUdpSocket, IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream,
    UdpSocket,
};
use wasmtime_wasi::sockets::WasiSocketsView as _;

use super::state::State;

/// The network as one instance sees it: supplied by whoever runs the
/// instance (the node agent, per pod).
pub trait NetworkView: Send + Sync + Debug {
    /// The instance's own address: what `127.0.0.1` and `0.0.0.0` mean
    /// to it.
    fn own_address(&self) -> Ipv4Addr;

    /// What `name` resolves to.
    fn lookup(&self, name: &str) -> NameLookup;

    /// Whether the instance may connect (TCP) or send (UDP) to `addr`.
    fn may_reach(&self, addr: SocketAddr, udp: bool) -> bool;

    /// Whether a TCP connection from `source` to the instance's listener
    /// at `local` may be taken.
    fn may_accept(&self, source: SocketAddr, local: SocketAddr) -> bool;
}

/// The answer to a name lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameLookup {
    /// A name the view knows, with its addresses.
    Addresses(Vec<IpAddr>),
    /// A name the view knows does not exist.
    NotFound,
    /// Not the view's to answer: the node's resolver is asked.
    Elsewhere,
}

const VERSION: &str = "0.2.12";

/// Replaces the address-taking socket functions of a linker that already
/// has wasmtime-wasi's p2 sockets with this module's wrappers.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut tcp = linker.instance(&format!("wasi:sockets/tcp@{VERSION}"))?;
    tcp.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut store, (this, network, local): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let local = match own(store.data().network.as_deref(), local) {
                    Ok(local) => local,
                    Err(code) => return Ok((Err(code),)),
                };
                let mut sockets = store.data_mut().sockets();
                result(HostTcpSocket::start_bind(&mut sockets, this, network, local).await)
            })
        },
    )?;
    tcp.func_wrap_async(
        "[method]tcp-socket.start-connect",
        |mut store, (this, network, remote): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let Some(view) = store.data().network.clone() else {
                    return result(HostTcpSocket::start_connect(
                        &mut store.data_mut().sockets(),
                        this,
                        network,
                        remote,
                    ));
                };
                let remote = match reach(view.as_ref(), remote.into(), false) {
                    Ok(remote) => remote,
                    Err(code) => return Ok((Err(code),)),
                };
                let mut sockets = store.data_mut().sockets();
                // On the node's loopback the connection leaves from the
                // instance's own address, so that what it reaches sees
                // which pod calls.
                let own = view.own_address();
                let unbound = HostTcpSocket::local_address(&mut sockets, Resource::new_borrow(this.rep())).is_err();
                if unbound && remote.ip().is_loopback() && own.is_loopback() {
                    let local = SocketAddr::new(own.into(), 0).into();
                    let bound = HostTcpSocket::start_bind(
                        &mut sockets,
                        Resource::new_borrow(this.rep()),
                        Resource::new_borrow(network.rep()),
                        local,
                    )
                    .await;
                    if let Err(error) =
                        bound.and_then(|()| HostTcpSocket::finish_bind(&mut sockets, Resource::new_borrow(this.rep())))
                    {
                        return Ok((Err(error.downcast()?),));
                    }
                }
                result(HostTcpSocket::start_connect(&mut sockets, this, network, remote.into()))
            })
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.accept",
        |mut store, (this,): (Resource<TcpSocket>,)| {
            let view = store.data().network.clone();
            let mut sockets = store.data_mut().sockets();
            let (socket, input, output) = match HostTcpSocket::accept(&mut sockets, this) {
                Ok(accepted) => accepted,
                Err(error) => return Ok((Err(error.downcast()?),)),
            };
            if let Some(view) = view {
                let borrow = || Resource::<TcpSocket>::new_borrow(socket.rep());
                let source = HostTcpSocket::remote_address(&mut sockets, borrow());
                let local = HostTcpSocket::local_address(&mut sockets, borrow());
                let admitted =
                    matches!((source, local), (Ok(source), Ok(local)) if view.may_accept(source.into(), local.into()));
                if !admitted {
                    // Closed both ways before the guest sees it: the client
                    // gets no byte, the guest a connection already ended.
                    // (Failing the accept instead would end many a server's
                    // accept loop.)
                    let _ = HostTcpSocket::shutdown(&mut sockets, borrow(), ShutdownType::Both);
                }
            }
            Ok((Ok((socket, input, output)),))
        },
    )?;
    let mut udp = linker.instance(&format!("wasi:sockets/udp@{VERSION}"))?;
    udp.func_wrap_async(
        "[method]udp-socket.start-bind",
        |mut store, (this, network, local): (Resource<UdpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let local = match own(store.data().network.as_deref(), local) {
                    Ok(local) => local,
                    Err(code) => return Ok((Err(code),)),
                };
                let mut sockets = store.data_mut().sockets();
                result(HostUdpSocket::start_bind(&mut sockets, this, network, local).await)
            })
        },
    )?;
    udp.func_wrap_async(
        "[method]udp-socket.stream",
        |mut store, (this, remote): (Resource<UdpSocket>, Option<IpSocketAddress>)| {
            Box::new(async move {
                let remote = match (store.data().network.clone(), remote) {
                    (Some(view), Some(remote)) => match reach(view.as_ref(), remote.into(), true) {
                        Ok(remote) => Some(remote.into()),
                        Err(code) => return Ok((Err(code),)),
                    },
                    (_, remote) => remote,
                };
                let mut sockets = store.data_mut().sockets();
                result::<(Resource<IncomingDatagramStream>, Resource<OutgoingDatagramStream>)>(
                    sockets.stream(this, remote).await,
                )
            })
        },
    )?;
    udp.func_wrap(
        "[method]outgoing-datagram-stream.send",
        |mut store, (this, mut datagrams): (Resource<OutgoingDatagramStream>, Vec<OutgoingDatagram>)| {
            if let Some(view) = store.data().network.clone() {
                for datagram in &mut datagrams {
                    if let Some(remote) = datagram.remote_address {
                        match reach(view.as_ref(), remote.into(), true) {
                            Ok(remote) => datagram.remote_address = Some(remote.into()),
                            Err(code) => return Ok((Err(code),)),
                        }
                    }
                }
            }
            result(store.data_mut().sockets().send(this, datagrams))
        },
    )?;
    let mut lookup = linker.instance(&format!("wasi:sockets/ip-name-lookup@{VERSION}"))?;
    lookup.func_wrap(
        "resolve-addresses",
        |mut store, (network, name): (Resource<Network>, String)| {
            let name = match store.data().network.clone().map(|view| view.lookup(&name)) {
                Some(NameLookup::Addresses(addresses)) => match addresses.first() {
                    Some(address) => address.to_string(),
                    None => return Ok((Err(ErrorCode::NameUnresolvable),)),
                },
                Some(NameLookup::NotFound) => return Ok((Err(ErrorCode::NameUnresolvable),)),
                Some(NameLookup::Elsewhere) | None => name,
            };
            result::<Resource<ResolveAddressStream>>(store.data_mut().sockets().resolve_addresses(network, name))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A wasmtime-wasi result as the function's WIT result: an error code for
/// the guest, or a trap.
fn result<T>(outcome: Result<T, SocketError>) -> wasmtime::Result<(Result<T, ErrorCode>,)> {
    match outcome {
        Ok(value) => Ok((Ok(value),)),
        Err(error) => Ok((Err(error.downcast()?),)),
    }
}

/// The address a bind to `addr` takes: the instance's own (as it stands
/// without a view, which wasmtime-wasi's own check then refuses).
fn own(view: Option<&dyn NetworkView>, addr: IpSocketAddress) -> Result<IpSocketAddress, ErrorCode> {
    let Some(view) = view else {
        return Ok(addr);
    };
    let own = view.own_address();
    let addr = SocketAddr::from(addr);
    match addr.ip() {
        IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST || ip.is_unspecified() || ip == own => {
            Ok(SocketAddr::new(own.into(), addr.port()).into())
        }
        _ => Err(ErrorCode::AccessDenied),
    }
}

/// Where a connection or datagram to `addr` goes, if it may.
fn reach(view: &dyn NetworkView, addr: SocketAddr, udp: bool) -> Result<SocketAddr, ErrorCode> {
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST || ip.is_unspecified() => {
            SocketAddr::new(view.own_address().into(), addr.port())
        }
        _ => addr,
    };
    if view.may_reach(addr, udp) {
        Ok(addr)
    } else {
        Err(ErrorCode::ConnectionRefused)
    }
}
