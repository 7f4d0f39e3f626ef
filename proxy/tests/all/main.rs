//! The proxy against a real API server (skiff-api on a one-node store,
//! over TLS, through kube-rs): Services and Endpoints written to the API,
//! reached through their ClusterIPs on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Event, Service};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use skiff_proxy::{Proxy, ProxyConfig};
use skiff_testing::{TestApi, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A ClusterIP of the default range no other test uses.
const CLUSTER_IP: [u8; 4] = [127, 96, 213, 7];

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

    let endpoints: Api<Endpoints> = Api::namespaced(api.client.clone(), "default");
    endpoints
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "held"},
                "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": backend.port()}]}],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(api.client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "held"},
                "spec": {"clusterIP": frontend.ip().to_string(),
                    "ports": [{"port": frontend.port(), "appProtocol": "tcp"}]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    let events: Api<Event> = Api::namespaced(api.client.clone(), "default");
    let selector = ListParams::default().fields("involvedObject.name=held");
    let event = eventually(
        Duration::from_secs(30),
        "a FailedToListen Event on the Service",
        || async {
            let listed = events.list(&selector).await.ok()?;
            listed
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("FailedToListen"))
                .filter(|e| e.involved_object.kind.as_deref() == Some("Service"))
        },
    )
    .await
    .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
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
    drop((services, endpoints, events));
    api.stop().await.unwrap();
}
