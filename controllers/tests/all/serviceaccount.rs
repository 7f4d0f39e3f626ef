//! Every namespace gets its `default` ServiceAccount and the cluster's root
//! CA, and keeps them.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_get_and_keep_their_default_account_and_root_ca() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    until("the default account", || async {
        accounts.get_opt("default").await.unwrap()
    })
    .await;
    let ca = until("the root CA", || async {
        maps.get_opt("kube-root-ca.crt").await.unwrap()
    })
    .await;
    let pem = ca.data.unwrap()["ca.crt"].clone();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // The built-in namespaces have them too.
    let system: Api<ServiceAccount> = Api::namespaced(client.clone(), "kube-system");
    until("kube-system's default account", || async {
        system.get_opt("default").await.unwrap()
    })
    .await;

    // Deleted or edited, they come back as they were.
    accounts.delete("default", &DeleteParams::default()).await.unwrap();
    maps.patch(
        "kube-root-ca.crt",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"ca.crt": "tampered", "extra": "x"}})),
    )
    .await
    .unwrap();
    until("the account back", || async {
        accounts.get_opt("default").await.unwrap()
    })
    .await;
    until("the CA put right", || async {
        let data = maps.get("kube-root-ca.crt").await.unwrap().data.unwrap_or_default();
        (data.len() == 1 && data["ca.crt"] == pem).then_some(())
    })
    .await;

    // A namespace being deleted is left to the namespace controller.
    namespaces.delete("team", &DeleteParams::default()).await.unwrap();
    until("the namespace gone", || async {
        namespaces.get_opt("team").await.unwrap().is_none().then_some(())
    })
    .await;
}
