//! `cli-net-hog`: a `wasi:cli/command` guest that abuses the network as
//! its first argument says, printing how far it got:
//!
//! * `sockets`: opens TCP listeners on `127.0.0.1:0` and keeps them all,
//!   printing `opened N sockets` every 500, until one fails (it prints the
//!   error and exits 1) or the host stops it.
//! * `lookups N NAME`: resolves `NAME` N times, then prints `resolved N
//!   times: ADDRESS` (or the error, and exits 1).
//! * `body AUTHORITY`: POSTs an endless body to `http://AUTHORITY/` in
//!   4 KiB writes until a write fails, then prints `body stopped after N
//!   bytes: ERROR` and the request's outcome, and exits 0.
//! * `udp ADDRESS`: from a UDP socket bound to `127.0.0.1:0`, sends `ping`
//!   to `ADDRESS` and prints `udp reply from SOURCE: TEXT` for the first
//!   datagram back (or `udp failed: ERROR`, and exits 1).

use std::net::ToSocketAddrs;

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

fn sockets() -> i32 {
    let mut open = Vec::new();
    loop {
        match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => open.push(listener),
            Err(error) => {
                println!("socket {} failed: {error}", open.len() + 1);
                return 1;
            }
        }
        if open.len() % 500 == 0 {
            println!("opened {} sockets", open.len());
        }
    }
}

fn lookups(times: usize, name: &str) -> i32 {
    let mut last = None;
    for _ in 0..times {
        match (name, 80).to_socket_addrs() {
            Ok(mut addrs) => last = addrs.next(),
            Err(error) => {
                println!("lookup of {name} failed: {error}");
                return 1;
            }
        }
    }
    println!("resolved {times} times: {last:?}");
    0
}

fn udp(address: &str) -> i32 {
    let exchanged = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|socket| {
        socket.send_to(b"ping", address)?;
        let mut reply = [0u8; 512];
        let (len, source) = socket.recv_from(&mut reply)?;
        Ok((source, String::from_utf8_lossy(&reply[..len]).into_owned()))
    });
    match exchanged {
        Ok((source, text)) => {
            println!("udp reply from {source}: {text}");
            0
        }
        Err(error) => {
            println!("udp failed: {error}");
            1
        }
    }
}

fn body(authority: &str) -> i32 {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Post);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some("/"));
    let Ok(body) = request.body() else {
        println!("no request body");
        return 1;
    };
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(error) => {
            println!("request refused: {error:?}");
            return 1;
        }
    };
    let Ok(stream) = body.write() else {
        println!("no body stream");
        return 1;
    };
    // blocking-write-and-flush takes at most 4 KiB at a time.
    let chunk = vec![0x5a; 4096];
    let mut sent = 0u64;
    loop {
        match stream.blocking_write_and_flush(&chunk) {
            Ok(()) => sent += chunk.len() as u64,
            Err(error) => {
                println!("body stopped after {sent} bytes: {error:?}");
                break;
            }
        }
    }
    drop(stream);
    let finished = OutgoingBody::finish(body, None);
    future.subscribe().block();
    println!("finish: {finished:?}; response: {:?}", future.get().map(|r| r.map(|r| r.map(|r| r.status()))));
    0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("sockets") => sockets(),
        Some("lookups") => lookups(
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000),
            args.get(3).map_or("localhost", String::as_str),
        ),
        Some("body") => body(args.get(2).map_or("127.0.0.1:80", String::as_str)),
        Some("udp") => udp(args.get(2).map_or("127.0.0.1:53", String::as_str)),
        _ => {
            println!("usage: cli-net-hog sockets | lookups N NAME | body AUTHORITY | udp ADDRESS");
            2
        }
    };
    std::process::exit(code);
}
