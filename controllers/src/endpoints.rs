//! Endpoints and EndpointSlices: for every Service with a selector, the
//! addresses and ports of the pods it selects, ready or not.
//!
//! A pod counts once it has an IP and until it finishes. Ready pods are
//! `addresses` in the Endpoints object and `ready: true` in the slice; the
//! rest are `notReadyAddresses` / `ready: false` (all ready when the
//! Service says `publishNotReadyAddresses`); a pod being deleted is
//! `terminating` in the slice and left out of Endpoints. A named
//! `targetPort` is looked up in each pod's container ports, so pods that
//! name it differently can still serve one Service; a pod that lacks the
//! name is left out for that port. One EndpointSlice per Service holds
//! every endpoint (Kubernetes splits at 100; nothing here is that large
//! yet). Both objects are owned by the Service, so they go with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::error::Result;
use crate::owner::controller_reference;

const MANAGER: &str = "endpoint-controller";
/// The label that ties a slice to its Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";

struct Context {
    client: kube::Client,
}

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Arc::new(Context { client: client.clone() });
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let services = controller.store();
    controller
        .watches(Api::<Pod>::all(client), watcher::Config::default(), move |pod| {
            services_for_pod(&services, &pod)
        })
        .run(crate::metered("endpoints", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("endpoints", result) })
        .await;
}

fn selector_of(service: &Service) -> Option<BTreeMap<String, String>> {
    service.spec.as_ref()?.selector.clone().filter(|s| !s.is_empty())
}

fn services_for_pod(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let namespace = pod.namespace().unwrap_or_default();
    let labels = pod.labels();
    services
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| selector_of(s).is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v))))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let Some(selector) = selector_of(&service) else {
        // Without a selector, Endpoints are the user's to write.
        return Ok(Action::await_change());
    };
    if service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = service.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let query = skiff_client::selector::to_query(&LabelSelector {
        match_labels: Some(selector),
        match_expressions: None,
    });
    let listed = pods.list(&ListParams::default().labels(&query)).await?.items;
    let (endpoints, slice) = build(&service, &listed);
    let params = PatchParams::apply(MANAGER).force();
    let name = service.name_any();
    Api::<Endpoints>::namespaced(ctx.client.clone(), &namespace)
        .patch(&name, &params, &Patch::Apply(&endpoints))
        .await?;
    let slice_name = slice.metadata.name.clone().unwrap_or_default();
    Api::<EndpointSlice>::namespaced(ctx.client.clone(), &namespace)
        .patch(&slice_name, &params, &Patch::Apply(&slice))
        .await?;
    Ok(Action::await_change())
}

/// One endpoint: a pod that may serve.
struct Member<'a> {
    pod: &'a Pod,
    ip: String,
    ready: bool,
    terminating: bool,
}

fn members<'a>(service: &Service, pods: &'a [Pod]) -> Vec<Member<'a>> {
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut members: Vec<Member<'a>> = pods
        .iter()
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
                return None;
            }
            Some(Member {
                pod,
                ip,
                ready: publish_not_ready || crate::pods::is_ready(pod),
                terminating: pod.metadata.deletion_timestamp.is_some(),
            })
        })
        .collect();
    members.sort_by(|a, b| a.ip.cmp(&b.ip).then_with(|| a.pod.name_any().cmp(&b.pod.name_any())));
    members
}

/// The container port `port` resolves to in `pod`.
fn target_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .or_else(|| name.parse().ok()),
    }
}

fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The Endpoints and the EndpointSlice for `service` given the pods its
/// selector picks.
pub fn build(service: &Service, pods: &[Pod]) -> (Endpoints, EndpointSlice) {
    let name = service.name_any();
    let namespace = service.namespace();
    let ports: Vec<ServicePort> = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let members = members(service, pods);

    // Endpoints: pods grouped into subsets by the ports they resolve to.
    let mut subsets: BTreeMap<Vec<(Option<String>, i32, String)>, EndpointSubset> = BTreeMap::new();
    for member in members.iter().filter(|m| !m.terminating) {
        let resolved: Vec<(Option<String>, i32, String)> = ports
            .iter()
            .filter_map(|p| {
                Some((
                    p.name.clone(),
                    target_port(p, member.pod)?,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ))
            })
            .collect();
        let subset = subsets.entry(resolved.clone()).or_insert_with(|| EndpointSubset {
            ports: Some(
                resolved
                    .iter()
                    .map(|(name, port, protocol)| EndpointPort {
                        name: name.clone(),
                        port: *port,
                        protocol: Some(protocol.clone()),
                        app_protocol: None,
                    })
                    .collect(),
            ),
            ..EndpointSubset::default()
        });
        let address = EndpointAddress {
            ip: member.ip.clone(),
            node_name: member.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_reference(member.pod)),
            hostname: None,
        };
        let list = if member.ready {
            subset.addresses.get_or_insert_with(Vec::new)
        } else {
            subset.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(address);
    }
    let labels = service.labels().clone();
    let endpoints = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![controller_reference(service)]),
            ..ObjectMeta::default()
        },
        subsets: Some(subsets.into_values().collect()),
    };

    // The slice: one entry per pod, with the ports of the first pod that
    // resolves them all (slices carry one port list).
    let slice_ports: Vec<SlicePort> = ports
        .iter()
        .map(|p| SlicePort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: members.iter().find_map(|m| target_port(p, m.pod)),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    let mut slice_labels = labels;
    slice_labels.insert(SERVICE_NAME.into(), name.clone());
    slice_labels.insert(MANAGED_BY.into(), SLICE_MANAGER.into());
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace,
            labels: Some(slice_labels),
            owner_references: Some(vec![controller_reference(service)]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: members
            .iter()
            .map(|m| Endpoint {
                addresses: vec![m.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(m.ready && !m.terminating),
                    serving: Some(m.ready),
                    terminating: Some(m.terminating),
                }),
                node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(pod_reference(m.pod)),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(slice_ports),
    };
    (endpoints, slice)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn ready_and_unready_pods_become_addresses_with_resolved_ports() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }))
        .unwrap();
        let mut gone = pod("c", "10.0.0.3", true, "http");
        gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
        let mut no_ip = pod("d", "", true, "http");
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let pods = [
            pod("a", "10.0.0.1", true, "http"),
            pod("b", "10.0.0.2", false, "http"),
            gone,
            no_ip,
        ];
        let (endpoints, slice) = build(&service, &pods);
        let subsets = endpoints.subsets.unwrap();
        assert_eq!(subsets.len(), 1);
        let ips = |list: &Option<Vec<EndpointAddress>>| -> Vec<String> {
            list.iter().flatten().map(|a| a.ip.clone()).collect()
        };
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.2"]);
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);

        let states: Vec<(String, bool, bool)> = slice
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap();
                (e.addresses[0].clone(), c.ready.unwrap(), c.terminating.unwrap())
            })
            .collect();
        assert_eq!(
            states,
            [
                ("10.0.0.1".to_string(), true, false),
                ("10.0.0.2".to_string(), false, false),
                ("10.0.0.3".to_string(), false, true),
            ]
        );
        assert_eq!(slice.ports.unwrap()[0].port, Some(8080));
        assert_eq!(slice.metadata.labels.unwrap()[SERVICE_NAME], "web");
    }
}
