//! Endpoints and EndpointSlices follow a Service's pods.

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_list_the_ready_pods_of_a_service() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &service).await.unwrap();
    for (name, ip) in [("a", "10.9.0.1"), ("b", "10.9.0.2")] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/web:1",
                "ports": [{"name": "http", "containerPort": 8080}]}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        // The stand-in node marks it ready; give it an address too.
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"podIP": ip}})),
        )
        .await
        .unwrap();
    }
    let ready = until("both addresses", || async {
        let e = endpoints.get_opt("web").await.unwrap()?;
        let subset = e.subsets?.into_iter().next()?;
        let ips: Vec<String> = subset.addresses.iter().flatten().map(|a| a.ip.clone()).collect();
        (ips == ["10.9.0.1", "10.9.0.2"]).then_some(subset)
    })
    .await;
    assert_eq!(ready.ports.unwrap()[0].port, 8080);
    let slice = until("the slice", || async {
        let s = slices.get_opt("web").await.unwrap()?;
        (s.endpoints.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(slice.metadata.labels.unwrap()["kubernetes.io/service-name"], "web");

    pods.delete("a", &DeleteParams::default()).await.unwrap();
    until("one address left", || async {
        let e = endpoints.get_opt("web").await.unwrap()?;
        let ips: Vec<String> = e
            .subsets?
            .into_iter()
            .flat_map(|s| s.addresses.into_iter().flatten())
            .map(|a| a.ip)
            .collect();
        (ips == ["10.9.0.2"]).then_some(())
    })
    .await;
}
