//! Wasm guests that abuse the network (`skiff_test_programs::CLI_NET_HOG`)
//! against a real agent: each is bounded by its limits and gets a clear
//! error, and a neighbour keeps serving throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{LogParams, PostParams};
use serde_json::json;
use support::{cluster_with, container, http_get, pod, pod_where, ready};
use tokio::io::AsyncReadExt;

/// A pod that runs the guest once with `args`.
fn hog(name: &str, image: &str, args: &[&str]) -> Pod {
    pod(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "node-a", "restartPolicy": "Never", "containers": [{"name": "hog", "image": image, "args": args}]}}))
}

fn terminated(pod: &Pod) -> bool {
    container(pod, 0)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.terminated.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_network_guests_are_bounded_and_neighbours_keep_serving() {
    // A small request body limit, so that an endless body meets it soon.
    let c = cluster_with(71, |config| config.egress.request_body_bytes = 4 << 20).await;
    let image = c.import(skiff_test_programs::CLI_NET_HOG, "net-hog");
    let hello = c.import(skiff_test_programs::HTTP_HELLO, "hello");
    let pods = c.pods();
    pods.create(
        &PostParams::default(),
        &pod(json!({"metadata": {"name": "neighbour", "namespace": "default"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": hello, "ports": [{"containerPort": 8080}]}]}})),
    )
    .await
    .unwrap();
    let neighbour = pod_where(&pods, "neighbour", "the neighbour Ready", ready).await;
    let neighbour = format!("{}:8080", neighbour.status.unwrap().pod_ip.unwrap());

    // A server that reads whatever it is sent, for the endless body.
    let sink = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = sink.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 << 10];
                while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
    });

    for (name, args) in [
        ("sockets", vec!["sockets"]),
        ("lookups", vec!["lookups", "2000", "localhost"]),
        ("body", vec!["body", sink_addr.as_str()]),
    ] {
        pods.create(&PostParams::default(), &hog(name, &image, &args))
            .await
            .unwrap();
    }
    let logs = |name: &'static str| {
        let pods = pods.clone();
        async move { pods.logs(name, &LogParams::default()).await.unwrap_or_default() }
    };

    // Sockets without end: the instance is stopped at its handle limit.
    let sockets = pod_where(&pods, "sockets", "the socket hog to end", terminated).await;
    let state = container(&sockets, 0)
        .unwrap()
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    let printed = logs("sockets").await;
    assert!(printed.contains("opened 500 sockets"), "{printed}");
    assert_ne!(state.exit_code, 0, "{state:?}");
    assert!(
        state
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("resource table has no free keys")
            || printed.contains("failed"),
        "{state:?} {printed}"
    );

    // Name lookups in a loop finish.
    pod_where(&pods, "lookups", "the lookups to end", terminated).await;
    let printed = logs("lookups").await;
    assert!(printed.contains("resolved 2000 times"), "{printed}");

    // An endless body stops at the limit, with the reason.
    let body = pod_where(&pods, "body", "the endless body to end", terminated).await;
    let printed = logs("body").await;
    let state = container(&body, 0).unwrap().state.clone();
    assert!(printed.contains("body stopped after"), "{printed} {state:?}");
    assert!(printed.contains("HttpRequestBodySize"), "{printed}");

    // The neighbour served throughout and still does.
    for _ in 0..20 {
        let reply = tokio::time::timeout(Duration::from_secs(10), http_get(&neighbour, "/hello"))
            .await
            .unwrap()
            .unwrap();
        assert!(reply.contains("hello from skiff"), "{reply}");
    }
    c.delete_all(&["neighbour", "sockets", "lookups", "body"]).await;
}
