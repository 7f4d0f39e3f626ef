//! The node's tunnel: where other nodes' proxies reach the endpoints that
//! run on this node.
//!
//! It accepts `CONNECT <podIP:port>` only for an address that is a ready
//! endpoint of some Service on this node (the table's local targets); any
//! other target gets 403, so the tunnel cannot be used to reach the rest
//! of the node. Like kube-proxy's forwarding, it does not authenticate the
//! nodes that use it: it listens on the node's own address.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::Shared;
use crate::connect::read_head;

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(error) = handle(stream, &shared).await {
                tracing::debug!(%error, %peer, "tunnel connection failed");
            }
        });
    }
}

async fn reply(stream: &mut TcpStream, status: &str, message: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{message}",
        message.len()
    );
    stream.write_all(response.as_bytes()).await
}

async fn handle(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (head, early) = read_head(&mut stream).await?;
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        return reply(
            &mut stream,
            "405 Method Not Allowed",
            "this is a skiff node tunnel: CONNECT only\n",
        )
        .await;
    };
    let Ok(target) = target.parse::<SocketAddr>() else {
        return reply(&mut stream, "400 Bad Request", "the CONNECT target must be ip:port\n").await;
    };
    if !shared.table().local_targets.contains(&target) {
        return reply(
            &mut stream,
            "403 Forbidden",
            &format!("{target} is not a ready endpoint on this node\n"),
        )
        .await;
    }
    let mut upstream = match TcpStream::connect(target).await {
        Ok(upstream) => upstream,
        Err(error) => {
            return reply(
                &mut stream,
                "502 Bad Gateway",
                &format!("cannot connect to {target}: {error}\n"),
            )
            .await;
        }
    };
    upstream.set_nodelay(true)?;
    stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    if !early.is_empty() {
        upstream.write_all(&early).await?;
    }
    tokio::io::copy_bidirectional(&mut stream, &mut upstream).await?;
    Ok(())
}
