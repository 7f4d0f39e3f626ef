//! From skiff's types to the WIT records plugins receive.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;
use skiff_api::admission::{Attributes, Operation};
use skiff_scheduler::NodeInfo;
use skiff_scheduler::resources::{Resources, pod_requests};

use crate::bindings::{admission, scheduling, types};

fn pairs(map: Option<&BTreeMap<String, String>>) -> Vec<(String, String)> {
    map.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn resources(r: Resources) -> types::Resources {
    types::Resources {
        milli_cpu: r.milli_cpu,
        memory: r.memory,
        pods: r.pods,
    }
}

fn container(c: &Container) -> scheduling::Container {
    let list = |pick: fn(&k8s_openapi::api::core::v1::ResourceRequirements) -> Option<&BTreeMap<_, _>>| {
        resources(
            c.resources
                .as_ref()
                .and_then(pick)
                .map(Resources::from_list)
                .unwrap_or_default(),
        )
    };
    scheduling::Container {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        requests: list(|r| r.requests.as_ref()),
        limits: list(|r| r.limits.as_ref()),
    }
}

/// The pod record a scheduler plugin receives.
pub(crate) fn pod(pod: &Pod) -> scheduling::Pod {
    let spec = pod.spec.as_ref();
    scheduling::Pod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        labels: pairs(pod.metadata.labels.as_ref()),
        annotations: pairs(pod.metadata.annotations.as_ref()),
        runtime_class_name: spec.and_then(|s| s.runtime_class_name.clone()),
        node_selector: pairs(spec.and_then(|s| s.node_selector.as_ref())),
        tolerations: spec
            .and_then(|s| s.tolerations.as_ref())
            .into_iter()
            .flatten()
            .map(|t| scheduling::Toleration {
                key: t.key.clone().unwrap_or_default(),
                operator: t.operator.clone().unwrap_or_else(|| "Equal".into()),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone().unwrap_or_default(),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
        containers: spec.into_iter().flat_map(|s| &s.containers).map(container).collect(),
        init_containers: spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .map(container)
            .collect(),
        requests: resources(pod_requests(pod)),
        json: serde_json::to_string(pod).unwrap_or_default(),
    }
}

/// The node record a scheduler plugin receives.
pub(crate) fn node(info: &NodeInfo) -> scheduling::Node {
    let node = info.node();
    scheduling::Node {
        name: info.name().to_string(),
        labels: pairs(Some(info.labels())),
        taints: info
            .taints()
            .iter()
            .map(|t| scheduling::Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone(),
            })
            .collect(),
        allocatable: resources(info.allocatable()),
        free: resources(info.allocatable().minus(info.requested())),
        pod_count: u32::try_from(info.pods().len()).unwrap_or(u32::MAX),
        images: node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|image| image.names.iter().flatten().cloned())
            .collect(),
    }
}

/// The request record an admission plugin receives.
pub(crate) fn request(attributes: &Attributes<'_>, object: Option<&Value>, old: Option<&Value>) -> admission::Request {
    let resource = attributes.resource;
    admission::Request {
        operation: match attributes.operation {
            Operation::Create => admission::Operation::Create,
            Operation::Update => admission::Operation::Update,
            Operation::Delete => admission::Operation::Delete,
        },
        group: resource.group.clone(),
        version: resource.version.clone(),
        kind: resource.kind.clone(),
        resource: resource.plural.clone(),
        sub_resource: attributes.subresource.map(str::to_string),
        namespace: attributes.namespace.map(str::to_string),
        name: attributes.name.to_string(),
        user: admission::UserInfo {
            username: attributes.user.name.clone(),
            groups: attributes.user.groups.clone(),
        },
        dry_run: attributes.dry_run,
        object: object.map(Value::to_string),
        old_object: old.map(Value::to_string),
    }
}
