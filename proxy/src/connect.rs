//! Dialling a backend: directly when it runs on this node, else through
//! the tunnel of the node that runs it.
//!
//! The tunnel speaks HTTP/1.1 `CONNECT <podIP:port>`: the proxy sends the
//! request head, the remote node's proxy answers `200` once it has
//! connected to the endpoint, and from then on the connection carries the
//! client's bytes. Bytes the endpoint sends before the client has spoken
//! (a server-first protocol) may arrive with the answer's head; they are
//! handed back to the caller.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::table::{Backend, Route};

/// The longest response head a tunnel may send.
pub const MAX_HEAD: usize = 4096;

/// A connection to a backend, and what it sent ahead of the caller's
/// first read.
#[derive(Debug)]
pub struct Dialled {
    pub stream: TcpStream,
    pub early: Vec<u8>,
}

pub async fn dial(backend: &Backend, timeout: Duration) -> io::Result<Dialled> {
    tokio::time::timeout(timeout, dial_now(backend)).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {} timed out", backend.addr),
        )
    })?
}

async fn dial_now(backend: &Backend) -> io::Result<Dialled> {
    match &backend.route {
        Route::Local => {
            let stream = TcpStream::connect(backend.addr).await?;
            stream.set_nodelay(true)?;
            Ok(Dialled {
                stream,
                early: Vec::new(),
            })
        }
        Route::Tunnel(tunnel) => through(*tunnel, backend.addr).await,
    }
}

async fn through(tunnel: SocketAddr, target: SocketAddr) -> io::Result<Dialled> {
    let mut stream = TcpStream::connect(tunnel).await?;
    stream.set_nodelay(true)?;
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

/// Reads an HTTP head up to its blank line; returns it and the bytes read
/// past it.
pub async fn read_head(stream: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
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
