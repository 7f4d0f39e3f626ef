//! Pulls from a private registry (Debian's `docker-registry` on loopback
//! with htpasswd authentication): a pod pulls with its `imagePullSecrets`
//! or its ServiceAccount's, and without them, or with a wrong password,
//! waits with the registry's refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use skiff_testing::registry::Registry;
use support::{cluster, container, phase, pod, pod_where, sample, scrape, waiting_reason};

/// A `kubernetes.io/dockerconfigjson` Secret for `registry` with a login.
fn pull_secret(name: &str, registry: &str, user: &str, password: &str) -> Secret {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {registry: {"auth": auth}}}).to_string();
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)},
    }))
    .unwrap()
}

fn wasm_pod(name: &str, image: &str, extra: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
    let mut spec = json!({"nodeName": "node-a", "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    pod(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_registry_pulls_use_the_pods_pull_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start_private(dir.path(), "puller", "s3cret").unwrap();
    let component = std::fs::read(skiff_test_programs::HTTP_HELLO).unwrap();
    let login = Some(("puller", "s3cret"));
    let first = registry
        .push_wasm_as("private/hello:1", &component, login)
        .await
        .unwrap();
    let second = registry
        .push_wasm_as("private/hello:2", &component, login)
        .await
        .unwrap();
    assert!(
        registry.push_wasm("private/hello:3", &component).await.is_err(),
        "the registry refuses anonymous pushes"
    );

    let c = cluster(18).await;
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "default");
    for secret in [
        pull_secret("good", &registry.addr, "puller", "s3cret"),
        pull_secret("wrong", &registry.addr, "puller", "guess"),
    ] {
        secrets.create(&PostParams::default(), &secret).await.unwrap();
    }
    let pods = c.pods();

    // Without a secret, and with a wrong password: refused, and the pods
    // wait saying so. (Before any pull succeeds: a pulled image is local.)
    pods.create(&PostParams::default(), &wasm_pod("anonymous", &first, json!({})))
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &wasm_pod("wrong", &first, json!({"imagePullSecrets": [{"name": "wrong"}]})),
    )
    .await
    .unwrap();
    for name in ["anonymous", "wrong"] {
        let waiting = pod_where(&pods, name, &format!("{name} refused by the registry"), |p| {
            matches!(
                waiting_reason(container(p, 0)),
                Some("ErrImagePull" | "ImagePullBackOff")
            )
        })
        .await;
        let message = container(&waiting, 0)
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
            .unwrap_or_default();
        assert!(message.contains("Not authorized"), "{name}: {message}");
        assert_eq!(phase(&waiting), "Pending");
    }
    for name in ["anonymous", "wrong"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }

    // With the right one: Running.
    pods.create(
        &PostParams::default(),
        &wasm_pod(
            "secret",
            &first,
            json!({"imagePullSecrets": [{"name": "wrong"}, {"name": "good"}]}),
        ),
    )
    .await
    .unwrap();
    pod_where(&pods, "secret", "secret Running", |p| phase(p) == "Running").await;

    // Through its ServiceAccount: the API server copies the account's
    // secrets into the pod, and the image (another tag) is pulled with
    // them.
    let accounts: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "default");
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "puller"}, "imagePullSecrets": [{"name": "good"}]}))
                .unwrap(),
        )
        .await
        .unwrap();
    let created = pods
        .create(
            &PostParams::default(),
            &wasm_pod("account", &second, json!({"serviceAccountName": "puller"})),
        )
        .await
        .unwrap();
    let copied = created.spec.unwrap().image_pull_secrets.unwrap_or_default();
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0].name, "good");
    pod_where(&pods, "account", "account Running", |p| phase(p) == "Running").await;

    // Both pulls were timed (the refused ones are not), in the kubelet's
    // smallest size class.
    let metrics = scrape(&c, "/metrics").await;
    let pulls = sample(
        &metrics,
        "kubelet_image_pull_duration_seconds_count",
        &[("image_size_in_bytes", "0-10MB")],
    );
    assert_eq!(pulls, Some(2.0), "{metrics}");
}
