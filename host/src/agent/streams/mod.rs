//! `kubectl exec`, `attach`, `cp` and `port-forward`: the agent's streaming
//! endpoints, which the API server splices clients through to (as
//! kube-apiserver does to the kubelet).
//!
//! * `/exec/<namespace>/<pod>/<container>?command=…&command=…&stdin=…&stdout=…&stderr=…&tty=…`
//! * `/attach/<namespace>/<pod>/<container>?stdin=…&stdout=…&stderr=…&tty=…`: the
//!   container's own stdio, from the log writer ([`Attach`])
//! * `/portForward/<namespace>/<pod>`, with `?ports=…` over WebSocket;
//!   over SPDY each pair of streams names its port.
//!
//! Each is an upgraded connection; the protocol follows the client's
//! offer:
//!
//! | upgrade     | protocol                                | for           | spoken by                                |
//! |-------------|-----------------------------------------|---------------|------------------------------------------|
//! | `websocket` | `v5.channel.k8s.io`, `v4.channel.k8s.io` | exec, attach  | kubectl ≥ 1.30, the Python client        |
//! | `websocket` | `v4.channel.k8s.io`                      | port-forward  | the Python client                        |
//! | `websocket` | `SPDY/3.1+portforward.k8s.io`            | port-forward  | kubectl ≥ 1.31 (SPDY inside the WebSocket) |
//! | `SPDY/3.1`  | `v4.channel.k8s.io`                      | exec, attach  | older kubectl, client-go's SPDY executor |
//! | `SPDY/3.1`  | `portforward.k8s.io`                     | port-forward  | older kubectl                            |
//!
//! ([`channel`] is the WebSocket framing, [`spdy`] the SPDY one,
//! [`session`] an exec session whichever carries it.)
//!
//! The pod workers keep a [`StreamIndex`]: for each pod, its network and
//! how to start a process in each running container. Port-forward
//! connects to `localhost:<port>` inside the pod's network namespace (as
//! containerd does), to the pod's address for Wasm pods (their gateway
//! listens there), and to the node's loopback for host-network pods.

pub mod channel;
pub mod session;
pub mod spdy;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use self::session::{In, Out};
use super::logs::Attach;
use super::runtime::Spawn;

/// `X-Stream-Protocol-Version` of SPDY port-forward.
const PORT_FORWARD_V1: &str = "portforward.k8s.io";
/// The WebSocket subprotocol carrying SPDY port-forward.
const TUNNELED_PORT_FORWARD: &str = "SPDY/3.1+portforward.k8s.io";
/// How long a SPDY exec waits for the client's streams.
const STREAMS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a forwarded connection's other direction may go on once one
/// has ended (containerd's grace).
const FORWARD_GRACE: Duration = Duration::from_secs(1);
/// How long connecting to a pod's port may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a pod's ports are reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodNet {
    /// Its own network namespace, pinned at this path.
    Namespace(PathBuf),
    /// Its own address on the node (a Wasm pod's gateway).
    Address(IpAddr),
    /// The node's network.
    Host,
}

#[derive(Clone)]
struct PodEntry {
    uid: String,
    network: PodNet,
    /// Running containers.
    containers: HashMap<String, ContainerEntry>,
}

/// A running container: how to start a process in it and its stdio
/// (`None` for a Wasm component, which has neither).
#[derive(Clone)]
struct ContainerEntry {
    spawn: Option<Spawn>,
    attach: Option<Attach>,
}

/// What the streaming endpoints may reach, kept by the pod workers.
#[derive(Default)]
pub struct StreamIndex {
    pods: Mutex<HashMap<(String, String), PodEntry>>,
}

impl std::fmt::Debug for StreamIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIndex").finish_non_exhaustive()
    }
}

impl StreamIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PodEntry>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A container of the pod started.
    #[allow(clippy::too_many_arguments)]
    pub fn started(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        network: PodNet,
        container: &str,
        spawn: Option<Spawn>,
        attach: Option<Attach>,
    ) {
        let mut pods = self.lock();
        let entry = pods
            .entry((namespace.to_string(), pod.to_string()))
            .or_insert_with(|| PodEntry {
                uid: uid.to_string(),
                network: network.clone(),
                containers: HashMap::new(),
            });
        entry.uid = uid.to_string();
        entry.network = network;
        entry
            .containers
            .insert(container.to_string(), ContainerEntry { spawn, attach });
    }

    /// A container of the pod is no longer running.
    pub fn stopped(&self, namespace: &str, pod: &str, container: &str) {
        if let Some(entry) = self.lock().get_mut(&(namespace.to_string(), pod.to_string())) {
            entry.containers.remove(container);
        }
    }

    /// The pod is gone from the node.
    pub fn remove(&self, namespace: &str, pod: &str) {
        self.lock().remove(&(namespace.to_string(), pod.to_string()));
    }

    fn get(&self, namespace: &str, pod: &str) -> Option<PodEntry> {
        self.lock().get(&(namespace.to_string(), pod.to_string())).cloned()
    }
}

/// A refusal: an HTTP status and a `metav1.Status` body.
type Refused = (StatusCode, String);

/// Serves a streaming request; gives the request back when its path is
/// not one.
pub async fn handle(
    index: Arc<StreamIndex>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Request<Incoming>> {
    let path = request.uri().path().to_string();
    let served = if let Some(rest) = path.strip_prefix("/exec/") {
        exec(&index, rest, request, false).await
    } else if let Some(rest) = path.strip_prefix("/attach/") {
        exec(&index, rest, request, true).await
    } else if let Some(rest) = path.strip_prefix("/portForward/") {
        port_forward(&index, rest, request).await
    } else {
        return Err(request);
    };
    Ok(served.unwrap_or_else(|(code, message)| {
        let reason = match code {
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::BAD_REQUEST => "BadRequest",
            _ => "InternalError",
        };
        let status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        });
        let mut response = Response::new(Full::new(Bytes::from(status.to_string())));
        *response.status_mut() = code;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }))
}

fn bad(message: impl Into<String>) -> Refused {
    (StatusCode::BAD_REQUEST, message.into())
}

/// The query's pairs, decoded, in order (`command` repeats).
fn query_pairs(request: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A boolean as Go's `strconv.ParseBool` reads it (the Python client
/// sends `True`).
fn flag(pairs: &[(String, String)], name: &str) -> bool {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// The values of a header that may repeat and list values with commas.
fn header_values(request: &Request<Incoming>, name: &str) -> Vec<String> {
    request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// How the client asked to upgrade, and the protocol chosen from its
/// offer.
enum Transport {
    WebSocket { key: String, protocol: &'static str },
    Spdy { protocol: &'static str },
}

fn transport(
    request: &Request<Incoming>,
    websocket: &[&'static str],
    spdy: &'static str,
) -> Result<Transport, Refused> {
    let upgrade = header_values(request, "upgrade");
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let key = request
            .headers()
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("a WebSocket upgrade needs Sec-WebSocket-Key"))?
            .to_string();
        let offered = header_values(request, "sec-websocket-protocol");
        let protocol = websocket
            .iter()
            .find(|p| offered.iter().any(|o| o == *p))
            .ok_or_else(|| {
                bad(format!(
                    "none of the offered WebSocket subprotocols [{}] is supported; want one of [{}]",
                    offered.join(", "),
                    websocket.join(", ")
                ))
            })?;
        return Ok(Transport::WebSocket { key, protocol });
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        let offered = header_values(request, "x-stream-protocol-version");
        if !offered.iter().any(|o| o == spdy) {
            return Err(bad(format!(
                "none of the offered stream protocols [{}] is supported; want {spdy}",
                offered.join(", ")
            )));
        }
        return Ok(Transport::Spdy { protocol: spdy });
    }
    Err(bad("upgrade request required: WebSocket or SPDY/3.1"))
}

/// The 101 answer, and the connection it upgrades to once sent.
fn switch(request: Request<Incoming>, transport: &Transport) -> (Response<Full<Bytes>>, hyper::upgrade::OnUpgrade) {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    match transport {
        Transport::WebSocket { key, protocol } => {
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            if let Ok(accept) = HeaderValue::from_str(&accept) {
                headers.insert("sec-websocket-accept", accept);
            }
            headers.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
        }
        Transport::Spdy { protocol } => {
            headers.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            headers.insert("x-stream-protocol-version", HeaderValue::from_static(protocol));
        }
    }
    (response, hyper::upgrade::on(request))
}

/// `/exec/<namespace>/<pod>/<container>`, or with `attach`,
/// `/attach/<namespace>/<pod>/<container>`.
async fn exec(
    index: &StreamIndex,
    rest: &str,
    request: Request<Incoming>,
    attach: bool,
) -> Result<Response<Full<Bytes>>, Refused> {
    let verb = if attach { "attach" } else { "exec" };
    let [namespace, pod, container] = rest.split('/').collect::<Vec<_>>()[..] else {
        return Err(bad(format!("want /{verb}/<namespace>/<pod>/<container>")));
    };
    let pairs = query_pairs(&request);
    let command: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() && !attach {
        return Err(bad("you must specify a command"));
    }
    let tty = flag(&pairs, "tty");
    let wants = Wants {
        stdin: flag(&pairs, "stdin"),
        stdout: flag(&pairs, "stdout"),
        stderr: flag(&pairs, "stderr") && !tty,
        tty,
    };
    let entry = index.get(namespace, pod).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not running on this node"),
        )
    })?;
    let running = entry.containers.get(container).ok_or_else(|| {
        bad(format!(
            "container {container:?} of pod {namespace}/{pod} is not running, so there is nothing to {verb}"
        ))
    })?;
    let job = match (attach, &running.spawn, &running.attach) {
        (false, Some(spawn), _) => Job::Exec(spawn.clone(), command),
        (true, _, Some(stdio)) => {
            if wants.stdin && stdio.stdin.is_none() {
                return Err(bad(format!(
                    "container {container:?} of pod {namespace}/{pod} has no stdin (it was not started with stdin: true)"
                )));
            }
            Job::Attach(stdio.clone())
        }
        _ => {
            return Err(bad(format!(
                "container {container:?} of pod {namespace}/{pod} is a Wasm component, which has no processes to {verb}"
            )));
        }
    };
    let transport = transport(&request, &[channel::V5, channel::V4], channel::V4)?;
    let (response, upgrade) = switch(request, &transport);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = TokioIo::new(upgraded);
        match transport {
            Transport::WebSocket { protocol, .. } => {
                exec_websocket(io, protocol == channel::V5, job, wants).await;
            }
            Transport::Spdy { .. } => exec_spdy(io, job, wants).await,
        }
    });
    Ok(response)
}

/// What a session runs: a new process, or the container's own stdio.
enum Job {
    Exec(Spawn, Vec<String>),
    Attach(Attach),
}

/// Which streams an exec asked for.
#[derive(Clone, Copy, Debug)]
struct Wants {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

/// Starts the job and runs the session; what the client sends goes to
/// `input` (its end means the client has gone), what it gets comes from
/// the returned receiver.
fn start_session(job: Job, wants: Wants, input: mpsc::Receiver<In>) -> mpsc::Receiver<Out> {
    let (output, received) = mpsc::channel(16);
    tokio::spawn(async move {
        let (spawn, command) = match job {
            Job::Attach(stdio) => return session::attach(stdio, wants.stdin, input, output).await,
            Job::Exec(spawn, command) => (spawn, command),
        };
        let spawned = tokio::task::spawn_blocking(move || spawn(command, wants.tty)).await;
        match spawned {
            Ok(Ok(process)) => session::run(process, input, output).await,
            Ok(Err(message)) => {
                let message = format!("error executing command in container: {message}");
                let _ = output.send(Out::Done(session::failure(&message))).await;
            }
            Err(_) => {
                let _ = output.send(Out::Done(session::failure("the exec was cancelled"))).await;
            }
        }
    });
    received
}

async fn exec_websocket<IO>(io: IO, v5: bool, job: Job, wants: Wants)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut stream) = socket.split();
    let (input, input_rx) = mpsc::channel(16);
    if !wants.stdin {
        let _ = input.send(In::StdinClosed).await;
    }
    let mut output = start_session(job, wants, input_rx);
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                // The Python client sends text as text messages; the
                // channel byte leads either kind.
                Message::Binary(_) | Message::Text(_) => {
                    let data = message.into_data();
                    if let Some(message) = channel::decode(&data, v5)
                        && input.send(message).await.is_err()
                    {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    while let Some(out) = output.recv().await {
        let done = matches!(out, Out::Done(_));
        let skip = match &out {
            Out::Stdout(_) => !wants.stdout,
            Out::Stderr(_) => !wants.stderr,
            Out::Done(_) => false,
        };
        if !skip && sink.send(Message::Binary(channel::encode(&out).into())).await.is_err() {
            break;
        }
        if done {
            break;
        }
    }
    close_normally(&mut sink).await;
    reader.abort();
}

async fn exec_spdy<IO>(io: IO, job: Job, wants: Wants)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = spdy::Session::start(io);
    let expected =
        1 + usize::from(wants.stdin) + usize::from(wants.stdout) + usize::from(wants.stderr) + usize::from(wants.tty);
    let mut streams: HashMap<String, spdy::Stream> = HashMap::new();
    let collected = tokio::time::timeout(STREAMS_TIMEOUT, async {
        while streams.len() < expected {
            let Some(stream) = session.accept().await else {
                return false;
            };
            let kind = stream.headers.get("streamtype").unwrap_or_default().to_string();
            streams.insert(kind, stream);
        }
        true
    })
    .await;
    if collected != Ok(true) || !streams.contains_key("error") {
        session.close().await;
        return;
    }
    let (input, input_rx) = mpsc::channel(16);
    let mut feeders = Vec::new();
    match streams.remove("stdin") {
        Some(mut stdin) => {
            let input = input.clone();
            feeders.push(tokio::spawn(async move {
                while let Some(data) = stdin.data.recv().await {
                    if input.send(In::Stdin(data)).await.is_err() {
                        return;
                    }
                }
                let _ = input.send(In::StdinClosed).await;
            }));
        }
        None => {
            let _ = input.send(In::StdinClosed).await;
        }
    }
    if let Some(mut resize) = streams.remove("resize") {
        let input = input.clone();
        feeders.push(tokio::spawn(async move {
            // A stream of JSON objects, one per size change.
            let mut pending = Vec::new();
            while let Some(data) = resize.data.recv().await {
                pending.extend_from_slice(&data);
                let mut sizes = serde_json::Deserializer::from_slice(&pending).into_iter::<serde_json::Value>();
                let mut used = 0;
                while let Some(Ok(size)) = sizes.next() {
                    used = sizes.byte_offset();
                    let dimension = |k: &str| {
                        size.get(k)
                            .and_then(serde_json::Value::as_u64)
                            .and_then(|v| u16::try_from(v).ok())
                    };
                    if let (Some(width), Some(height)) = (dimension("Width"), dimension("Height"))
                        && input.send(In::Resize { width, height }).await.is_err()
                    {
                        return;
                    }
                }
                pending.drain(..used);
            }
        }));
    }
    // The input ends, for the session, when the connection does.
    let gone = session.gone();
    tokio::spawn(async move {
        gone.await;
        drop(input);
    });
    let mut output = start_session(job, wants, input_rx);
    while let Some(out) = output.recv().await {
        match out {
            Out::Stdout(data) => {
                if let Some(stream) = streams.get("stdout") {
                    stream.writer.send(&data).await;
                }
            }
            Out::Stderr(data) => {
                if let Some(stream) = streams.get("stderr") {
                    stream.writer.send(&data).await;
                }
            }
            Out::Done(status) => {
                if let Some(stream) = streams.get("error") {
                    stream.writer.send(status.to_string().as_bytes()).await;
                }
                break;
            }
        }
    }
    for stream in streams.values() {
        stream.writer.finish().await;
    }
    for feeder in feeders {
        feeder.abort();
    }
    session.close().await;
}

/// Ends a WebSocket with a normal closure (1000): Go clients take a
/// close without a code for an error.
async fn close_normally<S>(sink: &mut S)
where
    S: futures::Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// `/portForward/<namespace>/<pod>`.
async fn port_forward(
    index: &StreamIndex,
    rest: &str,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Refused> {
    let [namespace, pod] = rest.split('/').collect::<Vec<_>>()[..] else {
        return Err(bad("want /portForward/<namespace>/<pod>"));
    };
    let entry = index.get(namespace, pod).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not running on this node"),
        )
    })?;
    let target = Target {
        network: entry.network,
        pod: format!("{namespace}/{pod}, uid {}", entry.uid),
    };
    let transport = transport(&request, &[TUNNELED_PORT_FORWARD, channel::V4], PORT_FORWARD_V1)?;
    let ports = match &transport {
        Transport::WebSocket { protocol, .. } if *protocol == channel::V4 => {
            let pairs = query_pairs(&request);
            let mut ports = Vec::new();
            for value in pairs
                .iter()
                .filter(|(k, _)| k == "ports")
                .flat_map(|(_, v)| v.split(','))
            {
                let port = value
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad(format!("invalid port {value:?}")))?;
                ports.push(port);
            }
            if ports.is_empty() {
                return Err(bad("query parameter \"ports\" is required"));
            }
            ports
        }
        _ => Vec::new(),
    };
    let (response, upgrade) = switch(request, &transport);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = TokioIo::new(upgraded);
        match transport {
            Transport::WebSocket { protocol, .. } if protocol == TUNNELED_PORT_FORWARD => {
                let socket = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                forward_spdy(tunnel(socket), target).await;
            }
            Transport::WebSocket { .. } => forward_websocket(io, ports, target).await,
            Transport::Spdy { .. } => forward_spdy(io, target).await,
        }
    });
    Ok(response)
}

/// Where forwarded connections go, and how errors name the pod.
#[derive(Clone, Debug)]
struct Target {
    network: PodNet,
    pod: String,
}

impl Target {
    async fn dial(&self, port: u16) -> io::Result<TcpStream> {
        let connecting = async {
            match &self.network {
                PodNet::Namespace(path) => {
                    let stream = crate::podnet::connect_inside(path.clone(), port, DIAL_TIMEOUT).await?;
                    stream.set_nonblocking(true)?;
                    TcpStream::from_std(stream)
                }
                PodNet::Address(ip) => TcpStream::connect((*ip, port)).await,
                PodNet::Host => TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await,
            }
        };
        tokio::time::timeout(DIAL_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
    }

    fn error(&self, port: u16, error: &io::Error) -> String {
        format!("error forwarding port {port} to pod {}: {error}", self.pod)
    }
}

/// A WebSocket as the byte stream it tunnels (kubectl's SPDY inside
/// binary messages): bytes in either direction are copied through a
/// pipe.
fn tunnel<S>(socket: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (near, far) = tokio::io::duplex(64 * 1024);
    let (mut far_read, mut far_write) = tokio::io::split(far);
    let (mut sink, mut stream) = socket.split();
    tokio::spawn(async move {
        let inbound = async {
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Binary(data) if far_write.write_all(&data).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = far_write.shutdown().await;
        };
        let outbound = async {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match far_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink
                            .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            close_normally(&mut sink).await;
        };
        // Either side ending ends the tunnel.
        tokio::select! {
            () = inbound => {}
            () = outbound => {}
        }
    });
    near
}

/// Port-forward over SPDY: each forwarded connection is a pair of
/// streams, `error` and `data`, with the same `requestid`.
async fn forward_spdy<IO>(io: IO, target: Target)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = spdy::Session::start(io);
    let mut pending: HashMap<String, (Option<spdy::Stream>, Option<spdy::Stream>)> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    while let Some(stream) = session.accept().await {
        let request = stream.headers.get("requestid").unwrap_or_default().to_string();
        let slot = pending.entry(request.clone()).or_default();
        match stream.headers.get("streamtype") {
            Some("error") => slot.0 = Some(stream),
            Some("data") => slot.1 = Some(stream),
            _ => stream.writer.finish().await,
        }
        if let Some((Some(_), Some(_))) = pending.get(&request)
            && let Some((Some(error), Some(data))) = pending.remove(&request)
        {
            forwards.spawn(forward_pair(error, data, target.clone()));
        }
    }
    forwards.abort_all();
    session.close().await;
}

async fn forward_pair(error: spdy::Stream, data: spdy::Stream, target: Target) {
    let port = data
        .headers
        .get("port")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(0);
    let connection = if port == 0 {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the stream names no valid port",
        ))
    } else {
        target.dial(port).await
    };
    let connection = match connection {
        Ok(connection) => connection,
        Err(e) => {
            error.writer.send(target.error(port, &e).as_bytes()).await;
            error.writer.finish().await;
            data.writer.finish().await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = connection.into_split();
    let mut from_client = data.data;
    let writer = data.writer;
    let mut up = Box::pin(async move {
        while let Some(bytes) = from_client.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    });
    let down_writer = writer.clone();
    let mut down = Box::pin(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !down_writer.send(&buf[..n]).await {
                        break;
                    }
                }
            }
        }
        down_writer.finish().await;
    });
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(FORWARD_GRACE, down).await; }
        () = &mut down => { let _ = tokio::time::timeout(FORWARD_GRACE, up).await; }
    }
    writer.finish().await;
    error.writer.finish().await;
}

/// Port-forward over WebSocket (`v4.channel.k8s.io`): one connection per
/// port of the query, for as long as the WebSocket lasts.
async fn forward_websocket<IO>(io: IO, ports: Vec<u16>, target: Target)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(Message::Binary(message.into())).await.is_err() {
                break;
            }
        }
        close_normally(&mut sink).await;
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut to_pods: Vec<Option<mpsc::Sender<Bytes>>> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, errors) = ((2 * i) as u8, (2 * i + 1) as u8);
        let _ = out.send(channel::port_opening(data, *port)).await;
        let _ = out.send(channel::port_opening(errors, *port)).await;
    }
    for (i, port) in ports.iter().enumerate() {
        let (data, errors) = ((2 * i) as u8, (2 * i + 1) as u8);
        match target.dial(*port).await {
            Err(e) => {
                let mut message = vec![errors];
                message.extend(target.error(*port, &e).into_bytes());
                let _ = out.send(message).await;
                to_pods.push(None);
            }
            Ok(connection) => {
                let (mut from_pod, mut to_pod) = connection.into_split();
                let (tx, mut rx) = mpsc::channel::<Bytes>(64);
                to_pods.push(Some(tx));
                tasks.spawn(async move {
                    while let Some(bytes) = rx.recv().await {
                        if to_pod.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_pod.shutdown().await;
                });
                let out = out.clone();
                tasks.spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match from_pod.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let mut message = Vec::with_capacity(n + 1);
                                message.push(data);
                                message.extend_from_slice(&buf[..n]);
                                if out.send(message).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        }
    }
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Binary(_) | Message::Text(_) => {
                let bytes = message.into_data();
                let Some((&channel, payload)) = bytes.split_first() else {
                    continue;
                };
                let port = usize::from(channel) / 2;
                if channel % 2 == 0
                    && let Some(Some(to_pod)) = to_pods.get(port)
                    && !payload.is_empty()
                    && to_pod.send(Bytes::copy_from_slice(payload)).await.is_err()
                {
                    to_pods[port] = None;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    tasks.abort_all();
    drop(out);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_go_reads_them() {
        let pairs: Vec<(String, String)> = [("stdin", "True"), ("stdout", "1"), ("tty", "false"), ("stderr", "yes")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(flag(&pairs, "stdin"));
        assert!(flag(&pairs, "stdout"));
        assert!(!flag(&pairs, "tty"));
        assert!(!flag(&pairs, "stderr"));
        assert!(!flag(&pairs, "absent"));
    }

    #[test]
    fn the_index_follows_containers() {
        let index = StreamIndex::default();
        let network = PodNet::Address(IpAddr::from([127, 0, 0, 9]));
        index.started("ns", "p", "u1", network.clone(), "app", None, None);
        let entry = index.get("ns", "p").unwrap();
        assert_eq!(entry.network, network);
        assert!(entry.containers.contains_key("app"));
        index.stopped("ns", "p", "app");
        assert!(index.get("ns", "p").unwrap().containers.is_empty());
        index.remove("ns", "p");
        assert!(index.get("ns", "p").is_none());
    }
}
