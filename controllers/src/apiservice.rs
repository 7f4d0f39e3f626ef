//! APIService registration: one `APIService` per group version the API
//! serves, kept as kube-apiserver's autoregister (built-in groups, labelled
//! `kube-aggregator.kubernetes.io/automanaged: onstart`) and CRD
//! registration (custom groups, labelled `"true"`) controllers keep them,
//! and each one's `Available` condition as its local-availability
//! controller reports it: `True`, reason `Local`, for an APIService
//! without a Service. skiff proxies no aggregated API, so one that names
//! a Service is reported `False`.
//!
//! Every few seconds the loop discovers what is served, lists the CRDs
//! (to tell custom groups from built-in ones) and the APIServices, and
//! writes the difference. What to write is worked out by pure functions
//! ([`wanted`], [`available`]) that the tests drive.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceCondition, APIServiceSpec, APIServiceStatus,
};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::discovery::Discovery;
use kube::{Api, ResourceExt};

use crate::error::{Result, is_not_found};

/// How often what is served is compared with what is registered.
const RESYNC: Duration = Duration::from_secs(5);

/// The label on registered APIServices, and its values.
pub const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";
const BUILT_IN: &str = "onstart";
const CUSTOM: &str = "true";

/// A group, its priority minimum, and its versions' priorities.
type GroupPriority = (&'static str, i32, &'static [(&'static str, i32)]);

/// Group priorities as kube-apiserver registers them: the group's minimum
/// and, per version, the version's priority. Groups not listed (none that
/// skiff serves today) get the custom groups' 1000 and 100.
const PRIORITIES: &[GroupPriority] = &[
    ("", 18000, &[("v1", 1)]),
    ("apps", 17800, &[("v1", 15)]),
    ("events.k8s.io", 17750, &[("v1", 15)]),
    ("authentication.k8s.io", 17700, &[("v1", 15)]),
    ("authorization.k8s.io", 17600, &[("v1", 15)]),
    ("autoscaling", 17500, &[("v2", 30), ("v1", 15)]),
    ("batch", 17400, &[("v1", 15)]),
    ("certificates.k8s.io", 17300, &[("v1", 15)]),
    ("networking.k8s.io", 17200, &[("v1", 15)]),
    ("policy", 17100, &[("v1", 15)]),
    ("rbac.authorization.k8s.io", 17000, &[("v1", 15)]),
    ("storage.k8s.io", 16800, &[("v1", 15)]),
    ("apiextensions.k8s.io", 16700, &[("v1", 15)]),
    ("admissionregistration.k8s.io", 16700, &[("v1", 15)]),
    ("scheduling.k8s.io", 16600, &[("v1", 15)]),
    ("coordination.k8s.io", 16500, &[("v1", 15)]),
    ("node.k8s.io", 16300, &[("v1", 15)]),
    ("discovery.k8s.io", 16200, &[("v1", 15)]),
    ("apiregistration.k8s.io", 16700, &[("v1", 15)]),
];

/// A served group version: `(group, version)`, the core group as `""`.
pub type GroupVersion = (String, String);

/// The APIServices that should exist for what is served, by name;
/// `custom` are the group versions CRDs serve.
pub fn wanted(served: &BTreeSet<GroupVersion>, custom: &BTreeSet<GroupVersion>) -> BTreeMap<String, APIService> {
    served
        .iter()
        .map(|(group, version)| {
            let is_custom = custom.contains(&(group.clone(), version.clone()));
            let (group_priority, version_priority) = match PRIORITIES.iter().find(|(g, _, _)| g == group) {
                Some((_, minimum, versions)) if !is_custom => {
                    let version = versions.iter().find(|(v, _)| v == version).map_or(1, |(_, p)| *p);
                    (*minimum, version)
                }
                _ => (1000, 100),
            };
            let name = format!("{version}.{group}");
            let service = APIService {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([(
                        AUTOMANAGED.to_string(),
                        (if is_custom { CUSTOM } else { BUILT_IN }).to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                spec: Some(APIServiceSpec {
                    group: (!group.is_empty()).then(|| group.clone()),
                    version: Some(version.clone()),
                    group_priority_minimum: group_priority,
                    version_priority,
                    ..APIServiceSpec::default()
                }),
                status: None,
            };
            (name, service)
        })
        .collect()
}

/// The `Available` condition `service` should report, keeping the
/// transition time of one that says the same.
pub fn available(service: &APIService, now: Timestamp) -> APIServiceCondition {
    let local = service.spec.as_ref().is_none_or(|s| s.service.is_none());
    let (status, reason, message) = if local {
        ("True", "Local", "Local APIServices are always available")
    } else {
        (
            "False",
            "FailedDiscoveryCheck",
            "skiff does not proxy aggregated APIs; only local APIServices are served",
        )
    };
    let since = service
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    APIServiceCondition {
        type_: "Available".into(),
        status: status.into(),
        last_transition_time: Some(since),
        reason: Some(reason.into()),
        message: Some(message.into()),
    }
}

/// Runs the loop until the task is dropped.
pub async fn run(client: kube::Client) {
    let mut tick = tokio::time::interval(RESYNC);
    loop {
        tick.tick().await;
        if let Err(error) = sync(&client).await {
            tracing::debug!(%error, "apiservice registration: retrying");
        }
    }
}

async fn sync(client: &kube::Client) -> Result<()> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let served: BTreeSet<GroupVersion> = discovery
        .groups()
        .flat_map(|g| {
            g.versions()
                .map(|v| (g.name().to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let custom: BTreeSet<GroupVersion> = crds
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .flat_map(|crd| {
            crd.spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| (crd.spec.group.clone(), v.name.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let wanted = wanted(&served, &custom);
    let api: Api<APIService> = Api::all(client.clone());
    let existing = api.list(&ListParams::default()).await?.items;
    for service in &existing {
        let automanaged = service.labels().contains_key(AUTOMANAGED);
        if automanaged && !wanted.contains_key(&service.name_any()) {
            match api.delete(&service.name_any(), &DeleteParams::default()).await {
                Err(e) if !is_not_found(&e) => return Err(e.into()),
                _ => {}
            }
        }
    }
    let names: BTreeSet<String> = existing.iter().map(ResourceExt::name_any).collect();
    let mut services = existing;
    for (name, service) in wanted {
        if names.contains(&name) {
            continue;
        }
        match api.create(&PostParams::default(), &service).await {
            Ok(created) => services.push(created),
            Err(e) if crate::error::is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let now = Timestamp::now();
    for service in &services {
        let condition = available(service, now);
        let current = service.status.as_ref().and_then(|s| s.conditions.as_ref());
        if current.is_some_and(|c| c.len() == 1 && c[0] == condition) {
            continue;
        }
        let status = APIServiceStatus {
            conditions: Some(vec![condition]),
        };
        crate::patch_status(&api, &service.name_any(), &status).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gv(group: &str, version: &str) -> GroupVersion {
        (group.to_string(), version.to_string())
    }

    #[test]
    fn served_group_versions_are_registered_as_kube_apiserver_names_them() {
        let served = BTreeSet::from([gv("", "v1"), gv("apps", "v1"), gv("skiff.dev", "v1alpha1")]);
        let custom = BTreeSet::from([gv("skiff.dev", "v1alpha1")]);
        let wanted = wanted(&served, &custom);
        assert_eq!(
            wanted.keys().collect::<Vec<_>>(),
            ["v1.", "v1.apps", "v1alpha1.skiff.dev"]
        );
        let core = wanted["v1."].spec.clone().unwrap();
        assert_eq!(
            (core.group, core.group_priority_minimum, core.version_priority),
            (None, 18000, 1)
        );
        let apps = wanted["v1.apps"].spec.clone().unwrap();
        assert_eq!((apps.group_priority_minimum, apps.version_priority), (17800, 15));
        let custom = &wanted["v1alpha1.skiff.dev"];
        assert_eq!(custom.labels()[AUTOMANAGED], "true");
        assert_eq!(wanted["v1.apps"].labels()[AUTOMANAGED], "onstart");
        let spec = custom.spec.clone().unwrap();
        assert_eq!((spec.group_priority_minimum, spec.version_priority), (1000, 100));
    }

    #[test]
    fn local_services_are_available_and_keep_their_transition_time() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let later = Timestamp::from_second(2_000_000).unwrap();
        let mut local = wanted(&BTreeSet::from([gv("apps", "v1")]), &BTreeSet::new())["v1.apps"].clone();
        let first = available(&local, now);
        assert_eq!(
            (first.status.as_str(), first.reason.as_deref()),
            ("True", Some("Local"))
        );
        local.status = Some(APIServiceStatus {
            conditions: Some(vec![first.clone()]),
        });
        assert_eq!(available(&local, later), first, "unchanged, so not rewritten");

        let mut remote = local.clone();
        if let Some(spec) = remote.spec.as_mut() {
            spec.service = Some(Default::default());
        }
        let condition = available(&remote, later);
        assert_eq!(condition.status, "False");
        assert_eq!(condition.last_transition_time, Some(Time(later)));
    }
}
