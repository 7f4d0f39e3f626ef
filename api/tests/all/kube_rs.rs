//! kube-rs against a served TLS endpoint, configured from the kubeconfig
//! the server's credentials produce.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use skiff_api::ApiServer;
use skiff_api::pki::Pki;

use crate::support;

struct Served {
    client: kube::Client,
    api: support::Api,
    _pki_dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn serve() -> Served {
    let api = support::Api::start().await;
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(pki_dir.path(), &["127.0.0.1".into(), "localhost".into()]).unwrap();
    let authn = pki.authentication(skiff_api::auth::DEFAULT_ISSUER).unwrap();
    let server = ApiServer::new(api.store.clone(), authn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(skiff_api::serve_tls(
        listener,
        pki.server_config().unwrap(),
        server.router(),
        async move {
            let _ = rx.await;
        },
    ));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&pki.kubeconfig(&url)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Served {
        client: kube::Client::try_from(config).unwrap(),
        api,
        _pki_dir: pki_dir,
        _shutdown: tx,
    }
}

fn configmap(name: &str, tier: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"tier": tier}},
        "data": {"k": "v"},
    }))
    .unwrap()
}

#[tokio::test]
async fn crud_conflicts_and_selectors() {
    let served = serve().await;
    let namespaces: Api<Namespace> = Api::all(served.client.clone());
    assert!(namespaces.get("default").await.is_ok());
    let cms: Api<ConfigMap> = Api::namespaced(served.client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("a", "front"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &configmap("b", "back"))
        .await
        .unwrap();

    let err = cms
        .create(&PostParams::default(), &configmap("a", "front"))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "AlreadyExists"));

    let mut first = cms.get("a").await.unwrap();
    first.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = cms.replace("a", &PostParams::default(), &first).await.unwrap();
    assert_ne!(replaced.metadata.resource_version, created.metadata.resource_version);
    let err = cms.replace("a", &PostParams::default(), &first).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    let fronts = cms.list(&ListParams::default().labels("tier=front")).await.unwrap();
    assert_eq!(fronts.items.len(), 1);
    let named = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(named.items[0].metadata.name.as_deref(), Some("b"));

    let patched = cms
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"x": "y"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["x"], "y");
    let applied = cms
        .patch(
            "c",
            &PatchParams::apply("kube-test"),
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["a"], "1");

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let err = cms.get("a").await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 404);
}

#[tokio::test]
async fn paging_at_one_revision() {
    let served = serve().await;
    let cms: Api<ConfigMap> = Api::namespaced(served.client.clone(), "default");
    for i in 0..7 {
        cms.create(&PostParams::default(), &configmap(&format!("cm{i}"), "x"))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut revisions = Vec::new();
    loop {
        let page = cms.list(&params).await.unwrap();
        revisions.push(page.metadata.resource_version.clone());
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        cms.create(&PostParams::default(), &configmap(&format!("late{}", names.len()), "x"))
            .await
            .unwrap();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("cm{i}")).collect::<Vec<_>>());
    assert!(revisions.windows(2).all(|w| w[0] == w[1]), "{revisions:?}");
}

#[tokio::test]
async fn watch_resume_and_runtime_watcher() {
    let served = serve().await;
    let deployments: Api<Deployment> = Api::namespaced(served.client.clone(), "default");
    let list = deployments.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let body: Deployment = serde_json::from_value(support::deployment("web", "registry.local/web:1")).unwrap();
    deployments.create(&PostParams::default(), &body).await.unwrap();
    let mut stream = deployments
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    let Some(WatchEvent::Added(added)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(added.metadata.name.as_deref(), Some("web"));

    // kube-runtime's watcher: list, then watch, as controllers use it.
    let cms: Api<ConfigMap> = Api::namespaced(served.client.clone(), "default");
    let events = watcher(cms.clone(), watcher::Config::default()).boxed();
    cms.create(&PostParams::default(), &configmap("seen", "x"))
        .await
        .unwrap();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        let mut events = events;
        while let Some(event) = events.try_next().await.unwrap() {
            match event {
                watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)
                    if cm.metadata.name.as_deref() == Some("seen") =>
                {
                    return true;
                }
                _ => {}
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(found);
    drop(served.api);
}
