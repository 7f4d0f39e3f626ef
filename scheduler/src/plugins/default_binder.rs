//! `DefaultBinder`: binds the pod by creating its `pods/binding`
//! subresource, as kube-scheduler does.

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use crate::framework::{BindOutcome, BindPlugin, CycleState, Plugin};
use crate::{Error, Result};

#[derive(Debug, Default)]
pub struct DefaultBinder;

impl Plugin for DefaultBinder {
    fn name(&self) -> &str {
        super::DEFAULT_BINDER
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

impl BindPlugin for DefaultBinder {
    fn bind<'a>(
        &'a self,
        client: &'a kube::Client,
        _: &'a CycleState,
        pod: &'a Pod,
        node: &'a str,
    ) -> BoxFuture<'a, Result<BindOutcome>> {
        async move {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    uid: pod.metadata.uid.clone(),
                    ..ObjectMeta::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.to_string()),
                    ..ObjectReference::default()
                },
            };
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            pods.create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding)
                .await
                .map_err(|source| Error::Api {
                    action: format!("binding pod {namespace}/{name} to node {node}"),
                    source,
                })?;
            Ok(BindOutcome::Bound)
        }
        .boxed()
    }
}
