//! The proxy against a real API server (skiff-api on a one-node store,
//! over TLS, through kube-rs): Services and Endpoints written to the API,
//! reached through their ClusterIPs on loopback, the cluster DNS, and an
//! Ingress listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Event, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use skiff_proxy::metrics::Metrics;
use skiff_proxy::{Proxy, ProxyConfig};
use skiff_testing::{TestApi, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A ClusterIP of the default range no other test uses.
const CLUSTER_IP: [u8; 4] = [127, 96, 213, 7];
/// Another, for the Service behind an Ingress.
const INGRESS_BACKEND_IP: [u8; 4] = [127, 96, 213, 8];
/// Two more, for the Services whose traffic is counted.
const COUNTED_HTTP_IP: [u8; 4] = [127, 96, 213, 11];
const COUNTED_TCP_IP: [u8; 4] = [127, 96, 213, 12];
/// Another, for the cluster DNS: the default one (127.96.0.10) is every
/// test cluster's, served by their proxies at the same time as this one's.
const DNS_IP: [u8; 4] = [127, 96, 213, 10];

/// Creates Service `name` in `default` with `spec` and, as its Endpoints,
/// `backend` on 127.0.0.1; returns the Services API.
async fn backed_service(
    client: &kube::Client,
    name: &str,
    spec: serde_json::Value,
    backend: SocketAddr,
) -> Api<Service> {
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let subsets = json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": backend.port()}]}]);
    endpoints
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "subsets": subsets})).unwrap(),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap(),
        )
        .await
        .unwrap();
    services
}

/// Answers `pong` to whatever a connection sends first.
async fn pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 64];
                if stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {
                    let _ = stream.write_all(b"pong").await;
                }
            });
        }
    });
    addr
}

/// What `addr` answers to `ping`, if it accepts at all.
async fn ping(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(b"ping").await.ok()?;
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut reply))
        .await
        .ok()?
        .ok()?;
    Some(reply)
}

/// Answers every HTTP request with `pong`, one request per connection.
async fn http_pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&buffer[..n]),
                        _ => return,
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong")
                    .await;
            });
        }
    });
    addr
}

/// What `addr` answers to `GET /` (status line, headers and body), if it
/// answers at all.
async fn get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: web.skiff.test\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut reply))
        .await
        .ok()?
        .ok()?;
    Some(reply)
}

/// The first Warning Event with `reason` on the object named `name` in
/// `namespace`, waited for.
async fn warning(client: &kube::Client, namespace: &str, name: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let event = eventually(
        Duration::from_secs(30),
        &format!("a {reason} Event on {name}"),
        || async {
            let listed = events.list(&selector).await.ok()?;
            listed.items.into_iter().find(|e| e.reason.as_deref() == Some(reason))
        },
    )
    .await
    .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    event
}

/// An `A` query for `name`, id 0x1234, recursion desired.
fn dns_query(name: &str) -> Vec<u8> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&[0, 1, 0, 1]);
    query
}

/// What `server` replies to `query` within a second, if anything.
async fn resolve(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.send_to(query, server).await.ok()?;
    let mut buffer = vec![0u8; 512];
    let (read, _) = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buffer))
        .await
        .ok()?
        .ok()?;
    buffer.truncate(read);
    Some(buffer)
}

/// A Service whose ClusterIP port another process holds when it is
/// created is served once the port is free, with no change to any
/// Service in between, and the failure is an Event on the Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_address_held_elsewhere_is_served_once_released() {
    let api = TestApi::start().await.unwrap();
    let backend = pong_server().await;
    // Held without SO_REUSEPORT, so the proxy cannot share it.
    let holder = std::net::TcpListener::bind(SocketAddr::new(IpAddr::from(CLUSTER_IP), 0)).unwrap();
    let frontend = holder.local_addr().unwrap();
    let proxy = Proxy::start(
        api.client.clone(),
        ProxyConfig::new("node-a", IpAddr::from([127, 0, 0, 1])),
    )
    .await
    .unwrap();

    let services = backed_service(
        &api.client,
        "held",
        json!({"clusterIP": frontend.ip().to_string(), "ports": [{"port": frontend.port(), "appProtocol": "tcp"}]}),
        backend,
    )
    .await;

    let event = warning(&api.client, "default", "held", "FailedToListen").await;
    assert_eq!(event.involved_object.kind.as_deref(), Some("Service"));
    let message = event.message.unwrap_or_default();
    assert!(message.contains(&frontend.to_string()), "{message}");
    assert!(message.contains("in use"), "{message}");

    let version = services.get("held").await.unwrap().metadata.resource_version;
    drop(holder);
    let reply = eventually(Duration::from_secs(30), "the ClusterIP served", || async {
        ping(frontend).await.filter(|r| r == "pong")
    })
    .await
    .unwrap();
    assert_eq!(reply, "pong");
    assert_eq!(
        services.get("held").await.unwrap().metadata.resource_version,
        version,
        "no Service change in between"
    );

    drop(proxy);
    drop(services);
    api.stop().await.unwrap();
}

/// The cluster DNS address held by another process when the proxy starts
/// is served once it is free, with no change to the `kube-dns` Service in
/// between, and the failure is an Event on that Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_dns_address_held_elsewhere_is_served_once_released() {
    let api = TestApi::start().await.unwrap();
    // This cluster's DNS on an address of its own (see DNS_IP).
    let services: Api<Service> = Api::namespaced(api.client.clone(), "kube-system");
    services.delete("kube-dns", &Default::default()).await.unwrap();
    let dns_addr = SocketAddr::new(IpAddr::from(DNS_IP), 53);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "kube-dns"},
                "spec": {"clusterIP": dns_addr.ip().to_string(),
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // Held without SO_REUSEPORT (or SO_REUSEADDR), so the proxy cannot
    // share it.
    let holder = std::net::UdpSocket::bind(dns_addr).unwrap();
    let proxy = Proxy::start(
        api.client.clone(),
        ProxyConfig::new("node-a", IpAddr::from([127, 0, 0, 1])),
    )
    .await
    .unwrap();

    let event = warning(&api.client, "kube-system", "kube-dns", "FailedToListen").await;
    assert_eq!(event.involved_object.kind.as_deref(), Some("Service"));
    let message = event.message.unwrap_or_default();
    assert!(message.contains(&dns_addr.to_string()), "{message}");
    assert!(message.contains("in use"), "{message}");
    assert_eq!(proxy.dns_address(), Some(dns_addr));

    let version = services.get("kube-dns").await.unwrap().metadata.resource_version;
    drop(holder);
    let query = dns_query("kube-dns.kube-system.svc.cluster.local");
    let reply = eventually(Duration::from_secs(30), "the cluster DNS answering", || {
        resolve(dns_addr, &query)
    })
    .await
    .unwrap();
    assert_eq!(&reply[..2], &[0x12, 0x34], "the query's id");
    assert_eq!(reply[3] & 0x0f, 0, "NOERROR");
    assert_eq!(&reply[reply.len() - 4..], &DNS_IP, "the Service's own ClusterIP");
    assert_eq!(
        services.get("kube-dns").await.unwrap().metadata.resource_version,
        version,
        "no Service change in between"
    );

    drop(proxy);
    drop(services);
    api.stop().await.unwrap();
}

/// An Ingress listener whose port another process holds when the proxy
/// starts is served once the port is free, with no change to the proxy's
/// configuration or the Ingress in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_port_held_elsewhere_is_served_once_released() {
    let api = TestApi::start().await.unwrap();
    let backend = http_pong_server().await;
    backed_service(
        &api.client,
        "web",
        json!({"clusterIP": IpAddr::from(INGRESS_BACKEND_IP).to_string(), "ports": [{"port": 80}]}),
        backend,
    )
    .await;
    let ingresses: Api<Ingress> = Api::namespaced(api.client.clone(), "default");
    ingresses
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    // Held without SO_REUSEPORT, as the proxy binds it too.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ingress = holder.local_addr().unwrap();
    let mut config = ProxyConfig::new("node-a", IpAddr::from([127, 0, 0, 1]));
    config.ingress_http = Some(ingress);
    let proxy = Proxy::start(api.client.clone(), config).await.unwrap();
    // The listener's first attempt is made as the proxy starts, before it
    // has listed anything; the Ingress's status is written after its
    // first sync, so the port has been refused once by then.
    let ingress_status = |ingress: Ingress| {
        let status = ingress.status?.load_balancer?.ingress?;
        status
            .iter()
            .any(|i| i.ip.as_deref() == Some("127.0.0.1"))
            .then_some(())
    };
    eventually(Duration::from_secs(30), "the node's address on the Ingress", || async {
        ingresses.get("web").await.ok().and_then(ingress_status)
    })
    .await
    .unwrap();

    let version = ingresses.get("web").await.unwrap().metadata.resource_version;
    drop(holder);
    let reply = eventually(Duration::from_secs(30), "the Ingress served", || async {
        get(ingress).await.filter(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await
    .unwrap();
    assert!(reply.ends_with("\r\n\r\npong"), "{reply}");
    assert_eq!(
        ingresses.get("web").await.unwrap().metadata.resource_version,
        version,
        "no Ingress change in between"
    );

    drop(proxy);
    drop(ingresses);
    api.stop().await.unwrap();
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, pairs) = series.split_once('{')?;
        let pairs = pairs.strip_suffix('}')?;
        let matches = metric == name
            && labels
                .iter()
                .all(|(k, v)| pairs.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().ok())?
    })
}

/// HTTP requests through a Service are counted by Service and status,
/// with the endpoint's latency, and spliced connections by Service, in
/// the registry the proxy was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_connections_are_counted_by_service() {
    let api = TestApi::start().await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut config = ProxyConfig::new("node-a", IpAddr::from([127, 0, 0, 1]));
    config.metrics = Metrics::register(&mut registry);
    let proxy = Proxy::start(api.client.clone(), config).await.unwrap();
    let http = SocketAddr::new(IpAddr::from(COUNTED_HTTP_IP), 80);
    let tcp = SocketAddr::new(IpAddr::from(COUNTED_TCP_IP), 7000);
    backed_service(
        &api.client,
        "counted-http",
        json!({"clusterIP": http.ip().to_string(), "ports": [{"port": http.port(), "appProtocol": "http"}]}),
        http_pong_server().await,
    )
    .await;
    backed_service(
        &api.client,
        "counted-tcp",
        json!({"clusterIP": tcp.ip().to_string(), "ports": [{"port": tcp.port(), "appProtocol": "tcp"}]}),
        pong_server().await,
    )
    .await;
    eventually(Duration::from_secs(30), "the HTTP Service served", || async {
        get(http).await.filter(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "the TCP Service served", || async {
        ping(tcp).await.filter(|r| r == "pong")
    })
    .await
    .unwrap();

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let service = |name| [("namespace", "default"), ("service", name)];
    let ok = [("namespace", "default"), ("service", "counted-http"), ("code", "200")];
    let answered = sample(&text, "skiff_proxy_requests_total", &ok).unwrap_or_default();
    assert!(answered >= 1.0, "{text}");
    let timed = sample(
        &text,
        "skiff_proxy_upstream_duration_seconds_count",
        &service("counted-http"),
    );
    assert_eq!(timed, Some(answered), "{text}");
    let connections = sample(&text, "skiff_proxy_connections_total", &service("counted-tcp")).unwrap_or_default();
    assert!(connections >= 1.0, "{text}");

    drop(proxy);
    api.stop().await.unwrap();
}
