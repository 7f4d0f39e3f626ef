//! Kubernetes' WebSocket channel protocols (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`): every binary message starts with a channel
//! byte. For exec and attach, 0 is stdin, 1 stdout, 2 stderr, 3 the
//! error stream (the session's final `metav1.Status`), 4 terminal
//! resizes (`{"Width":…,"Height":…}`); v5 adds 255, "close channel n"
//! (the client's end of stdin). For port-forward, port `i` of the
//! `ports` query has channels `2i` (data) and `2i+1` (errors), each
//! opened by a message holding the port number (little-endian u16).

use bytes::Bytes;
use serde::Deserialize;

use super::session::{In, Out};

pub const V4: &str = "v4.channel.k8s.io";
pub const V5: &str = "v5.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Size {
    width: u16,
    height: u16,
}

/// An exec message from the client; `None` for what carries nothing to
/// act on (an empty message, an unknown channel, a malformed resize).
pub fn decode(message: &[u8], v5: bool) -> Option<In> {
    let (&channel, data) = message.split_first()?;
    match channel {
        STDIN => Some(In::Stdin(Bytes::copy_from_slice(data))),
        RESIZE => serde_json::from_slice::<Size>(data).ok().map(|s| In::Resize {
            width: s.width,
            height: s.height,
        }),
        CLOSE if v5 && data.first() == Some(&STDIN) => Some(In::StdinClosed),
        _ => None,
    }
}

/// An exec message to the client.
pub fn encode(out: &Out) -> Vec<u8> {
    let (channel, data): (u8, &[u8]) = match out {
        Out::Stdout(data) => (STDOUT, data),
        Out::Stderr(data) => (STDERR, data),
        Out::Done(status) => {
            let mut message = vec![ERROR];
            message.extend(serde_json::to_vec(status).unwrap_or_default());
            return message;
        }
    };
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    message
}

/// The message opening a port-forward channel.
pub fn port_opening(channel: u8, port: u16) -> Vec<u8> {
    let [low, high] = port.to_le_bytes();
    vec![channel, low, high]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_by_channel() {
        assert!(matches!(decode(b"\0ls\n", false), Some(In::Stdin(d)) if &d[..] == b"ls\n"));
        assert!(matches!(
            decode(b"\x04{\"Width\":80,\"Height\":24}", false),
            Some(In::Resize { width: 80, height: 24 })
        ));
        assert!(matches!(decode(&[255, 0], true), Some(In::StdinClosed)));
        // v4 has no close; a bad resize and an empty message carry nothing.
        assert!(decode(&[255, 0], false).is_none());
        assert!(decode(b"\x04{", false).is_none());
        assert!(decode(b"", true).is_none());
        assert_eq!(encode(&Out::Stdout(Bytes::from_static(b"hi"))), b"\x01hi");
        assert_eq!(port_opening(3, 8080), [3, 0x90, 0x1f]);
    }
}
