//! Dialling a backend: directly when it runs on this node, else through
//! the tunnel of the node that runs it.
//!
//! The tunnel speaks HTTP/1.1 `CONNECT <podIP:port>`: the proxy sends the
//! request head, the remote node's proxy answers `200` once it has
//! connected to the endpoint, and from then on the connection carries the
//! client's bytes. Bytes the endpoint sends before the client has spoken
//! (a server-first protocol) may arrive with the answer's head; they are
//! handed back to the caller. With the cluster's credentials
//! ([`TunnelTls`]) all of it runs inside mutual TLS.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::table::{Backend, Route};
use crate::tunnel::TunnelTls;

/// The longest response head a tunnel may send.
pub const MAX_HEAD: usize = 4096;

/// A connection to a backend: a TCP stream, or a tunnel's TLS over one.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tunnel(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A connection to a backend, and what it sent ahead of the caller's
/// first read.
#[derive(Debug)]
pub struct Dialled {
    pub stream: Stream,
    pub early: Vec<u8>,
}

/// How a node's proxy dials: how long one endpoint may take, and the
/// tunnels' TLS when the cluster has credentials.
#[derive(Clone, Debug)]
pub struct Dialer {
    timeout: Duration,
    tls: Option<TunnelTls>,
}

impl Dialer {
    pub fn new(timeout: Duration, tls: Option<TunnelTls>) -> Dialer {
        Dialer { timeout, tls }
    }

    pub async fn dial(&self, backend: &Backend) -> io::Result<Dialled> {
        tokio::time::timeout(self.timeout, self.dial_now(backend))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {} timed out", backend.addr),
                )
            })?
    }

    async fn dial_now(&self, backend: &Backend) -> io::Result<Dialled> {
        match &backend.route {
            Route::Local => {
                let stream = TcpStream::connect(backend.addr).await?;
                stream.set_nodelay(true)?;
                Ok(Dialled {
                    stream: Stream::Plain(stream),
                    early: Vec::new(),
                })
            }
            Route::Tunnel(tunnel) => self.through(*tunnel, backend.addr).await,
        }
    }

    async fn through(&self, tunnel: SocketAddr, target: SocketAddr) -> io::Result<Dialled> {
        let tcp = TcpStream::connect(tunnel).await?;
        tcp.set_nodelay(true)?;
        let mut stream = match &self.tls {
            Some(tls) => Stream::Tunnel(Box::new(tls.connect(tunnel, tcp).await?)),
            None => Stream::Plain(tcp),
        };
        stream
            .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await?;
        let (head, early) = read_head(&mut stream).await?;
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            let line = head.lines().next().unwrap_or_default().to_string();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("the tunnel at {tunnel} refused {target}: {line}"),
            ));
        }
        Ok(Dialled { stream, early })
    }
}

/// Reads an HTTP head up to its blank line; returns it and the bytes read
/// past it.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(String, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            let head = String::from_utf8_lossy(&buffer).into_owned();
            return Ok((head, rest));
        }
        if buffer.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the HTTP head is too long"));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before the HTTP head ended",
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tunnel(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}
