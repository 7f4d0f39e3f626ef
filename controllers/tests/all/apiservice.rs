//! APIServices: registered for what is served, local ones available.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{Cluster, until};

fn available(service: &APIService) -> Option<(String, Option<String>)> {
    let condition = service
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Available")?;
    Some((condition.status.clone(), condition.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_group_versions_are_registered_and_follow_crds() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let services: Api<APIService> = Api::all(client.clone());
    for name in ["v1.", "v1.apps", "v1.apiregistration.k8s.io"] {
        let service = until(&format!("{name} available"), || async {
            let s = services.get_opt(name).await.unwrap()?;
            (available(&s) == Some(("True".into(), Some("Local".into())))).then_some(s)
        })
        .await;
        assert_eq!(service.labels()["kube-aggregator.kubernetes.io/automanaged"], "onstart");
    }

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let custom = until("the CRD's group registered", || async {
        services.get_opt("v1.example.com").await.unwrap()
    })
    .await;
    assert_eq!(custom.labels()["kube-aggregator.kubernetes.io/automanaged"], "true");
    assert_eq!(custom.spec.unwrap().group_priority_minimum, 1000);
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    until("the CRD's group unregistered", || async {
        services
            .get_opt("v1.example.com")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // One backed by a Service is not proxied, and says so.
    let remote: APIService = serde_json::from_value(json!({
        "metadata": {"name": "v1beta1.metrics.example.com"},
        "spec": {
            "group": "metrics.example.com",
            "version": "v1beta1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "service": {"namespace": "kube-system", "name": "metrics"},
        },
    }))
    .unwrap();
    services.create(&PostParams::default(), &remote).await.unwrap();
    until("the remote one reported unavailable", || async {
        let s = services.get_opt("v1beta1.metrics.example.com").await.unwrap()?;
        (available(&s)?.0 == "False").then_some(())
    })
    .await;
}
