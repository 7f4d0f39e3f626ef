//! SPDY/3.1, as far as Kubernetes' streaming uses it.
//!
//! client-go opens exec, attach and port-forward connections with
//! `Upgrade: SPDY/3.1` and then multiplexes streams over the connection
//! (one per stdio stream, two per forwarded connection); kubectl from 1.31
//! tunnels the same bytes through a WebSocket for port-forward. SPDY was
//! retired for HTTP/2 and no maintained Rust crate speaks it, so the
//! framing is here: the frame layout of the SPDY/3 draft, header blocks
//! compressed with zlib and the protocol's dictionary, one compression
//! context per direction for the whole connection.
//!
//! A [`Session`] is the server side: it answers each `SYN_STREAM` with a
//! `SYN_REPLY` (client-go waits for one) and every `PING` with the same
//! id, and hands each new [`Stream`] to its owner. Flow control
//! (`WINDOW_UPDATE`) is ignored both ways: the Go implementation the
//! clients use neither enforces windows nor waits for them, and back
//! pressure comes from TCP, since the frame reader waits while a stream's
//! data is not taken.

use std::collections::HashMap;
use std::io;
use std::sync::LazyLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const FLAG_FIN: u8 = 0x01;
/// The largest frame read; Kubernetes' frames are far smaller.
const MAX_FRAME: usize = 1 << 20;
/// Data frames written are at most this long.
const MAX_DATA: usize = 32 * 1024;
/// Frames of one stream waiting to be taken before the reader waits.
const STREAM_BUFFER: usize = 64;

/// The header block dictionary of SPDY/3 (draft 3, section 2.6.10.1):
/// these words, each with a 32-bit big-endian length, then the tail.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut dictionary = Vec::new();
    for word in WORDS {
        dictionary.extend_from_slice(&(word.len() as u32).to_be_bytes());
        dictionary.extend_from_slice(word.as_bytes());
    }
    dictionary.extend_from_slice(TAIL.as_bytes());
    dictionary
});

/// A stream's headers: lowercase names, each with its values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<String>)>);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }

    #[cfg(test)]
    fn from_pairs(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), vec![v.to_string()]))
                .collect(),
        )
    }
}

/// One frame, as far as this side cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last: u32,
        status: u32,
    },
    Headers {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    Data {
        id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame this side does not act on (SETTINGS,
    /// WINDOW_UPDATE, …).
    Other {
        kind: u16,
    },
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Decodes frames; keeps the inflate context of the peer's header blocks.
#[derive(Debug)]
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// Reads the next frame; `None` at a clean end of the connection.
    pub async fn read<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let flags = head[4];
        let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        if length > MAX_FRAME {
            return Err(invalid(format!("a SPDY frame of {length} bytes is too long")));
        }
        let mut body = vec![0u8; length];
        io.read_exact(&mut body).await?;
        self.decode(head, flags, Bytes::from(body)).map(Some)
    }

    fn decode(&mut self, head: [u8; 8], flags: u8, mut body: Bytes) -> io::Result<Frame> {
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Frame::Data { id, fin, data: body });
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(invalid(format!("SPDY version {version} is not spoken here")));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |body: &Bytes, n: usize| {
            if body.len() < n {
                Err(invalid(format!("a SPDY control frame of type {kind} is too short")))
            } else {
                Ok(())
            }
        };
        Ok(match kind {
            SYN_STREAM => {
                need(&body, 10)?;
                let id = body.get_u32() & 0x7fff_ffff;
                body.advance(6); // associated stream, priority, slot
                let headers = self.headers(&body)?;
                Frame::SynStream { id, fin, headers }
            }
            SYN_REPLY | HEADERS => {
                need(&body, 4)?;
                let id = body.get_u32() & 0x7fff_ffff;
                let headers = self.headers(&body)?;
                if kind == SYN_REPLY {
                    Frame::SynReply { id, fin, headers }
                } else {
                    Frame::Headers { id, fin, headers }
                }
            }
            RST_STREAM => {
                need(&body, 8)?;
                Frame::RstStream {
                    id: body.get_u32() & 0x7fff_ffff,
                    status: body.get_u32(),
                }
            }
            PING => {
                need(&body, 4)?;
                Frame::Ping { id: body.get_u32() }
            }
            GOAWAY => {
                need(&body, 8)?;
                Frame::GoAway {
                    last: body.get_u32() & 0x7fff_ffff,
                    status: body.get_u32(),
                }
            }
            kind => Frame::Other { kind },
        })
    }

    /// Inflates and parses a header block.
    fn headers(&mut self, compressed: &[u8]) -> io::Result<Headers> {
        let mut plain = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut input = compressed;
        loop {
            if plain.len() == plain.capacity() {
                plain.reserve(plain.capacity());
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let mut dictionary = false;
            match self.inflate.decompress_vec(input, &mut plain, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| invalid(format!("SPDY header dictionary: {e}")))?;
                    dictionary = true;
                }
                Err(e) => return Err(invalid(format!("SPDY header block: {e}"))),
            }
            let used = (self.inflate.total_in() - before_in) as usize;
            let produced = self.inflate.total_out() - before_out;
            input = &input[used..];
            // Room left over means the flushed block is out in full.
            if input.is_empty() && plain.len() < plain.capacity() {
                break;
            }
            if used == 0 && produced == 0 && !dictionary {
                return Err(invalid("SPDY header block: truncated"));
            }
        }
        parse_headers(&plain)
    }
}

fn parse_headers(mut block: &[u8]) -> io::Result<Headers> {
    let short = || invalid("SPDY header block: truncated");
    let take = |block: &mut &[u8]| -> io::Result<String> {
        if block.len() < 4 {
            return Err(short());
        }
        let n = block.get_u32() as usize;
        if block.len() < n {
            return Err(short());
        }
        let text = String::from_utf8_lossy(&block[..n]).into_owned();
        block.advance(n);
        Ok(text)
    };
    if block.len() < 4 {
        return Err(short());
    }
    let count = block.get_u32();
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = take(&mut block)?.to_ascii_lowercase();
        let values = take(&mut block)?.split('\0').map(str::to_string).collect();
        headers.push((name, values));
    }
    Ok(Headers(headers))
}

/// Encodes frames; keeps the deflate context of this side's header
/// blocks.
#[derive(Debug)]
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // A fresh compressor takes a dictionary; nothing can fail here.
        let _ = deflate.set_dictionary(&DICTIONARY);
        Encoder { deflate }
    }
}

impl Encoder {
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> io::Result<()> {
        let control = |out: &mut BytesMut, kind: u16, flags: u8, body: &[u8]| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(kind);
            out.put_u8(flags);
            out.put_uint(body.len() as u64, 3);
            out.put_slice(body);
        };
        let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
        match frame {
            Frame::SynReply { id, fin, headers } | Frame::Headers { id, fin, headers } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                let mut body = id.to_be_bytes().to_vec();
                body.extend(self.header_block(headers)?);
                control(out, kind, fin_flag(*fin), &body);
            }
            Frame::SynStream { id, fin, headers } => {
                let mut body = id.to_be_bytes().to_vec();
                body.extend([0; 6]);
                body.extend(self.header_block(headers)?);
                control(out, SYN_STREAM, fin_flag(*fin), &body);
            }
            Frame::RstStream { id, status } => {
                let mut body = id.to_be_bytes().to_vec();
                body.extend(status.to_be_bytes());
                control(out, RST_STREAM, 0, &body);
            }
            Frame::Ping { id } => control(out, PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last, status } => {
                let mut body = last.to_be_bytes().to_vec();
                body.extend(status.to_be_bytes());
                control(out, GOAWAY, 0, &body);
            }
            Frame::Data { id, fin, data } => {
                out.put_u32(id & 0x7fff_ffff);
                out.put_u8(fin_flag(*fin));
                out.put_uint(data.len() as u64, 3);
                out.put_slice(data);
            }
            Frame::Other { .. } => {}
        }
        Ok(())
    }

    fn header_block(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        let mut plain = Vec::new();
        plain.put_u32(headers.0.len() as u32);
        for (name, values) in &headers.0 {
            let value = values.join("\0");
            plain.put_u32(name.len() as u32);
            plain.put_slice(name.to_ascii_lowercase().as_bytes());
            plain.put_u32(value.len() as u32);
            plain.put_slice(value.as_bytes());
        }
        let mut compressed = Vec::with_capacity(plain.len() + 64);
        loop {
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(&plain, &mut compressed, FlushCompress::Sync)
                .map_err(|e| invalid(format!("SPDY header block: {e}")))?;
            plain.drain(..(self.deflate.total_in() - before) as usize);
            // Room left over means the flush is out in full.
            if plain.is_empty() && compressed.len() < compressed.capacity() {
                return Ok(compressed);
            }
            if status == Status::StreamEnd {
                return Err(invalid("SPDY header compression ended early"));
            }
            compressed.reserve(compressed.capacity().max(64));
        }
    }
}

/// What the writer task is asked to do.
#[derive(Debug)]
enum Out {
    Frame(Frame),
    /// Flush, then end the connection.
    Close,
}

/// Writes a stream's half of the conversation.
#[derive(Clone, Debug)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

impl StreamWriter {
    /// Sends `data`; `false` once the connection is gone.
    pub async fn send(&self, data: &[u8]) -> bool {
        for chunk in data.chunks(MAX_DATA) {
            let frame = Frame::Data {
                id: self.id,
                fin: false,
                data: Bytes::copy_from_slice(chunk),
            };
            if self.out.send(Out::Frame(frame)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Ends this side of the stream (a data frame with FIN).
    pub async fn finish(&self) {
        let frame = Frame::Data {
            id: self.id,
            fin: true,
            data: Bytes::new(),
        };
        let _ = self.out.send(Out::Frame(frame)).await;
    }
}

/// A stream the client opened.
#[derive(Debug)]
pub struct Stream {
    pub headers: Headers,
    /// What the client sends; ends when it finishes or resets the stream.
    pub data: mpsc::Receiver<Bytes>,
    pub writer: StreamWriter,
}

/// The server side of a SPDY connection.
#[derive(Debug)]
pub struct Session {
    streams: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Out>,
    writer: tokio::task::JoinHandle<()>,
    reader: tokio::task::AbortHandle,
    /// Closed (its sender dropped) when the reader ends.
    gone: tokio::sync::watch::Receiver<()>,
}

impl Session {
    /// Serves the connection `io`, already upgraded.
    pub fn start<IO>(io: IO) -> Session
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(256);
        let (streams_tx, streams_rx) = mpsc::channel(16);
        let writer = tokio::spawn(write_frames(write, out_rx));
        let out = out_tx.clone();
        let (gone_tx, gone) = tokio::sync::watch::channel(());
        let reader = tokio::spawn(async move {
            let _gone = gone_tx;
            let mut decoder = Decoder::default();
            let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
            loop {
                let frame = match decoder.read(&mut read).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => {
                        tracing::debug!(%error, "SPDY connection ended");
                        break;
                    }
                };
                match frame {
                    Frame::SynStream { id, fin, headers } => {
                        let reply = Frame::SynReply {
                            id,
                            fin: false,
                            headers: Headers::default(),
                        };
                        if out.send(Out::Frame(reply)).await.is_err() {
                            break;
                        }
                        let (data_tx, data_rx) = mpsc::channel(STREAM_BUFFER);
                        if !fin {
                            open.insert(id, data_tx);
                        }
                        let stream = Stream {
                            headers,
                            data: data_rx,
                            writer: StreamWriter { id, out: out.clone() },
                        };
                        if streams_tx.send(stream).await.is_err() {
                            break;
                        }
                    }
                    Frame::Data { id, fin, data } => {
                        if let Some(tx) = open.get(&id)
                            && !data.is_empty()
                            && tx.send(data).await.is_err()
                        {
                            open.remove(&id);
                        }
                        if fin {
                            open.remove(&id);
                        }
                    }
                    Frame::RstStream { id, .. } => {
                        open.remove(&id);
                    }
                    Frame::Ping { id } => {
                        if out.send(Out::Frame(Frame::Ping { id })).await.is_err() {
                            break;
                        }
                    }
                    Frame::GoAway { .. } => break,
                    Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Other { .. } => {}
                }
            }
        });
        Session {
            streams: streams_rx,
            out: out_tx,
            writer,
            reader: reader.abort_handle(),
            gone,
        }
    }

    /// Resolves once the client's side of the connection has ended.
    pub fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut gone = self.gone.clone();
        async move { while gone.changed().await.is_ok() {} }
    }

    /// The next stream the client opens; `None` once the connection ends.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.streams.recv().await
    }

    /// Flushes what was sent and ends the connection.
    pub async fn close(self) {
        let _ = self.out.send(Out::Close).await;
        drop(self.out);
        let _ = self.writer.await;
        self.reader.abort();
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut io: W, mut frames: mpsc::Receiver<Out>) {
    let mut encoder = Encoder::default();
    let mut buffer = BytesMut::new();
    while let Some(out) = frames.recv().await {
        let Out::Frame(frame) = out else { break };
        buffer.clear();
        if let Err(error) = encoder.encode(&frame, &mut buffer) {
            tracing::debug!(%error, "cannot encode a SPDY frame");
            return;
        }
        if io.write_all(&buffer).await.is_err() {
            return;
        }
        // Batch what is already queued into one flush.
        if frames.is_empty() && io.flush().await.is_err() {
            return;
        }
    }
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_protocols() {
        // Length and Adler-32 of the dictionary the SPDY/3 draft prints.
        assert_eq!(DICTIONARY.len(), 1423);
        let (mut a, mut b) = (1u32, 0u32);
        for byte in DICTIONARY.iter() {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    /// Frames round-trip through an encoder and a decoder, header blocks
    /// sharing one compression context across frames as on a connection.
    #[tokio::test]
    async fn frames_round_trip() {
        let frames = [
            Frame::SynStream {
                id: 1,
                fin: false,
                headers: Headers::from_pairs(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynStream {
                id: 3,
                fin: true,
                headers: Headers::from_pairs(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply {
                id: 3,
                fin: false,
                headers: Headers::default(),
            },
            Frame::Data {
                id: 3,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Ping { id: 7 },
            Frame::RstStream { id: 1, status: 5 },
            Frame::GoAway { last: 3, status: 0 },
        ];
        let mut encoder = Encoder::default();
        let mut wire = BytesMut::new();
        for frame in &frames {
            encoder.encode(frame, &mut wire).unwrap();
        }
        let mut reader = &wire[..];
        let mut decoder = Decoder::default();
        for frame in &frames {
            assert_eq!(decoder.read(&mut reader).await.unwrap().as_ref(), Some(frame));
        }
        assert_eq!(decoder.read(&mut reader).await.unwrap(), None);
    }

    #[tokio::test]
    async fn bad_frames_are_errors_not_panics() {
        let mut decoder = Decoder::default();
        // A SYN_STREAM of SPDY/2, a too-short control frame, a header block
        // that is not zlib.
        for wire in [
            &[0x80, 2, 0, 1, 0, 0, 0, 0][..],
            &[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 0][..],
            &[0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2][..],
        ] {
            let mut reader = wire;
            assert!(decoder.read(&mut reader).await.is_err(), "{wire:?}");
        }
    }
}
