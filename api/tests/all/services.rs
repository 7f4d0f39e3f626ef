//! Service addresses: ClusterIPs and node ports allocated, kept, checked
//! and freed through the REST API.

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::Api;

const SVCS: &str = "/api/v1/namespaces/default/services";

fn service(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": spec})
}

fn cause_messages(body: &Value) -> Vec<String> {
    body["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_and_node_ports_are_allocated_once_and_freed() {
    let api = Api::start().await;
    let web = api
        .post(
            SVCS,
            service(
                "web",
                json!({"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "admin", "port": 9000}]}),
            ),
        )
        .await;
    assert_eq!(web.status, StatusCode::CREATED, "{}", web.text);
    let ip = web.body["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("127.96."), "{ip}");
    assert_eq!(web.body["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(web.body["spec"]["ipFamilies"], json!(["IPv4"]));
    let node_ports: Vec<u64> = (0..2)
        .map(|i| web.body["spec"]["ports"][i]["nodePort"].as_u64().unwrap())
        .collect();
    assert!(node_ports.iter().all(|p| (30000..=32767).contains(p)), "{node_ports:?}");
    assert_ne!(node_ports[0], node_ports[1]);

    // Asking for what another Service holds is refused, and nothing is written.
    let clash = api
        .post(
            SVCS,
            service(
                "clash",
                json!({"type": "NodePort", "clusterIP": ip,
            "ports": [{"port": 80, "nodePort": node_ports[0]}]}),
            ),
        )
        .await;
    assert_eq!(clash.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", clash.text);
    let messages = cause_messages(&clash.body);
    assert!(
        messages.iter().any(|m| m.contains("provided IP is already allocated")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("provided port is already allocated")),
        "{messages:?}"
    );
    assert_eq!(api.get(&format!("{SVCS}/clash")).await.status, StatusCode::NOT_FOUND);
    // The same Service created again is told it exists, not that its own
    // addresses are taken.
    let again = api
        .post(SVCS, service("web", json!({"clusterIP": ip, "ports": [{"port": 80}]})))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.body["reason"], "AlreadyExists");

    // A replace that leaves the addresses out keeps them; changing the IP is refused.
    let mut replaced = web.body.clone();
    replaced["spec"].as_object_mut().unwrap().remove("clusterIP");
    replaced["spec"].as_object_mut().unwrap().remove("clusterIPs");
    replaced["spec"]["ports"][0].as_object_mut().unwrap().remove("nodePort");
    let kept = api.put(&format!("{SVCS}/web"), replaced).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    assert_eq!(kept.body["spec"]["clusterIP"], ip.as_str());
    assert_eq!(kept.body["spec"]["ports"][0]["nodePort"], node_ports[0]);
    let mut moved = kept.body.clone();
    moved["spec"]["clusterIP"] = json!("127.96.200.200");
    moved["spec"]["clusterIPs"] = json!(["127.96.200.200"]);
    let refused = api.put(&format!("{SVCS}/web"), moved).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);

    // Becoming a ClusterIP Service gives the node ports back.
    let patched = api
        .patch(
            &format!("{SVCS}/web"),
            "application/merge-patch+json",
            json!({"spec": {"type": "ClusterIP"}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert!(patched.body["spec"]["ports"][0].get("nodePort").is_none());
    let reuse = api
        .post(
            SVCS,
            service(
                "reuse",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": node_ports[0]}]}),
            ),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::CREATED, "{}", reuse.text);

    // Deleting a Service frees its IP for the next one that asks.
    assert_eq!(api.delete(&format!("{SVCS}/web")).await.status, StatusCode::OK);
    let again = api
        .post(
            SVCS,
            service("again", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);

    let headless = api
        .post(
            SVCS,
            service("headless", json!({"clusterIP": "None", "selector": {"app": "web"}})),
        )
        .await;
    assert_eq!(headless.status, StatusCode::CREATED, "{}", headless.text);
    assert_eq!(headless.body["spec"]["clusterIPs"], json!(["None"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_services_are_refused_with_their_causes() {
    let api = Api::start().await;
    let cases = [
        (
            json!({"ports": [{"port": 80}, {"port": 80}]}),
            "spec.ports[0].name: Required value",
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
            "spec.ports: Duplicate value",
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
            "spec.ports[1].name: Duplicate value",
        ),
        (json!({"ports": [{"port": 70000}]}), "spec.ports[0].port: Invalid value"),
        (
            json!({"type": "Magic", "ports": [{"port": 80}]}),
            "spec.type: Unsupported value",
        ),
        (json!({"selector": {"app": "x"}}), "spec.ports: Required value"),
        (
            json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}),
            "is not in the valid range",
        ),
        (
            json!({"ports": [{"port": 80, "nodePort": 30001}]}),
            "may not be used when `type` is 'ClusterIP'",
        ),
        (
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            "range of valid ports is 30000-32767",
        ),
        (
            json!({"type": "ExternalName", "ports": [{"port": 80}]}),
            "spec.externalName: Required value",
        ),
    ];
    for (spec, expected) in cases {
        let reply = api.post(SVCS, service("bad", spec.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {}", reply.text);
        let messages = cause_messages(&reply.body);
        assert!(messages.iter().any(|m| m.contains(expected)), "{spec}: {messages:?}");
    }
    let listed = api.get(SVCS).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ingresses_are_refused_with_their_causes() {
    let api = Api::start().await;
    const INGS: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";
    let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
    let paths = |path: Value| json!({"rules": [{"host": "a.example.com", "http": {"paths": [path]}}]});
    let cases = [
        (json!({}), "either `defaultBackend` or `rules` must be specified"),
        (
            paths(json!({"path": "/", "backend": backend})),
            "pathType: Required value",
        ),
        (
            paths(json!({"path": "/", "pathType": "Regex", "backend": backend})),
            "pathType: Unsupported value",
        ),
        (
            paths(json!({"path": "api", "pathType": "Prefix", "backend": backend})),
            "must be an absolute path",
        ),
        (
            paths(json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}})),
            "port name or number is required",
        ),
        (
            json!({"defaultBackend": {"service": {"name": "Web_1", "port": {"number": 80}}}}),
            "defaultBackend.service.name: Invalid value",
        ),
        (
            json!({"rules": [{"host": "10.0.0.1", "http": {"paths": [{"path": "/", "pathType": "Exact", "backend": backend}]}}]}),
            "must be a DNS name, not an IP address",
        ),
    ];
    for (spec, expected) in cases {
        let reply = api.post(INGS, json!({"metadata": {"name": "bad"}, "spec": spec})).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {}", reply.text);
        let messages = cause_messages(&reply.body);
        assert!(messages.iter().any(|m| m.contains(expected)), "{spec}: {messages:?}");
    }
    let good = api
        .post(
            INGS,
            json!({"metadata": {"name": "good"}, "spec": {"rules": [{"host": "*.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}),
        )
        .await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.text);
}

/// Each server registers in its Lease; the Endpoints and EndpointSlices
/// list the servers whose Leases are current, a subset and a slice per
/// port, and a server whose Lease lapsed leaves them.
#[tokio::test]
async fn every_live_api_server_is_listed_in_the_kubernetes_service() {
    let api = Api::start().await;
    for (identity, address) in [
        ("a", "127.0.0.1:6443"),
        ("b", "127.0.0.2:6443"),
        ("c", "127.0.0.1:7443"),
        ("a", "127.0.0.1:6443"),
    ] {
        api.server
            .register_endpoint(identity, address.parse().unwrap())
            .await
            .unwrap();
    }
    let service = api.get("/api/v1/namespaces/default/services/kubernetes").await;
    assert_eq!(service.status, StatusCode::OK, "{}", service.text);
    assert_eq!(service.body["spec"]["clusterIP"], "127.96.0.1");
    assert_eq!(
        service.body["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    assert!(service.body["spec"].get("selector").is_none());
    let endpoints = api.get("/api/v1/namespaces/default/endpoints/kubernetes").await;
    assert_eq!(
        endpoints.body["subsets"],
        json!([{"addresses": [{"ip": "127.0.0.1"}, {"ip": "127.0.0.2"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
               {"addresses": [{"ip": "127.0.0.1"}],
                "ports": [{"name": "https", "port": 7443, "protocol": "TCP"}]}])
    );
    const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
    let slice = api.get(&format!("{SLICES}/kubernetes")).await;
    assert_eq!(
        slice.body["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
    assert_eq!(slice.body["endpoints"].as_array().unwrap().len(), 2);
    let other = api.get(&format!("{SLICES}/kubernetes-7443")).await;
    assert_eq!(other.body["ports"][0]["port"], 7443, "{}", other.text);

    // b stops renewing; c is gone too: once their Leases lapse, the next
    // renewal by a takes them out.
    for lapsed in ["b", "c"] {
        let reply = api
            .patch(
                &format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/apiserver-{lapsed}"),
                "application/merge-patch+json",
                json!({"spec": {"renewTime": "2020-01-01T00:00:00.000000Z"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    api.server
        .register_endpoint("a", "127.0.0.1:6443".parse().unwrap())
        .await
        .unwrap();
    let endpoints = api.get("/api/v1/namespaces/default/endpoints/kubernetes").await;
    assert_eq!(
        endpoints.body["subsets"],
        json!([{"addresses": [{"ip": "127.0.0.1"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
    );
    let slice = api.get(&format!("{SLICES}/kubernetes")).await;
    assert_eq!(slice.body["endpoints"].as_array().unwrap().len(), 1);
    let gone = api.get(&format!("{SLICES}/kubernetes-7443")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
