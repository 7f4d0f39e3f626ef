//! Scale from zero: a request to a Service none of whose pods runs is
//! held while one replica is brought up, then forwarded, so nothing is
//! lost when an idle workload was scaled to zero.
//!
//! A workload opts in with a HorizontalPodAutoscaler of `minReplicas: 0`
//! (the autoscaler takes it to zero when its metrics, say
//! `requests-per-second`, fall to nothing). When an HTTP request finds no
//! endpoint, the proxy looks for such an autoscaler in the Service's
//! namespace whose target's `scale` selector covers the Service's
//! selector (every `key=value` of the Service's is in it) and, if the
//! target has no replicas, sets them to one through its `scale`
//! subresource. One wake per target at a time; the request then waits
//! for an endpoint to appear in the proxy's table, up to [`HOLD`], and
//! is answered 503 if none does.
//!
//! The proxy's identity (`system:kube-proxy`) may get and patch any
//! `scale` subresource for this, and admission lets it only take a target
//! from zero to one replica (`skiff_api`'s `ScaleFromZero` plugin).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::reflector::Store;

/// How long a request waits for a woken workload's first endpoint.
pub const HOLD: Duration = Duration::from_secs(60);

type Waking = Shared<BoxFuture<'static, Result<bool, String>>>;

/// Wakes workloads that autoscalers took to zero.
pub struct Waker {
    client: kube::Client,
    services: Store<Service>,
    autoscalers: Store<HorizontalPodAutoscaler>,
    /// Wakes under way, by namespace and target name.
    waking: Mutex<HashMap<(String, String), Waking>>,
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}

/// `key=value` pairs of a selector string; `None` for any other form
/// (set-based requirements), which is never taken to cover a Service.
fn pairs(selector: &str) -> Option<BTreeMap<&str, &str>> {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|term| {
            let (key, value) = term.split_once('=')?;
            let value = value.strip_prefix('=').unwrap_or(value);
            (!key.ends_with('!')).then_some((key.trim(), value.trim()))
        })
        .collect()
}

/// Whether a target whose pods the scale `selector` picks is what the
/// Service selecting `service` fronts.
pub fn covers(selector: &str, service: &BTreeMap<String, String>) -> bool {
    let Some(target) = pairs(selector) else { return false };
    !service.is_empty() && service.iter().all(|(k, v)| target.get(k.as_str()) == Some(&v.as_str()))
}

impl Waker {
    pub fn new(client: kube::Client, services: Store<Service>, autoscalers: Store<HorizontalPodAutoscaler>) -> Waker {
        Waker {
            client,
            services,
            autoscalers,
            waking: Mutex::default(),
        }
    }

    /// Whether any autoscaler may take a workload in `namespace` to zero:
    /// only then is a request held.
    pub fn may_wake(&self, namespace: &str) -> bool {
        self.autoscalers.state().iter().any(|hpa| {
            hpa.metadata.namespace.as_deref() == Some(namespace)
                && hpa.spec.as_ref().and_then(|s| s.min_replicas) == Some(0)
        })
    }

    /// Brings the Service `namespace/name`'s workload up from zero, if an
    /// autoscaler took it there; `Ok(false)` when none did.
    pub async fn wake(self: &Arc<Self>, namespace: &str, name: &str) -> Result<bool, String> {
        let Some(service) =
            self.services.state().into_iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace) && s.metadata.name.as_deref() == Some(name)
            })
        else {
            return Ok(false);
        };
        let selector = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let candidates: Vec<Arc<HorizontalPodAutoscaler>> = self
            .autoscalers
            .state()
            .into_iter()
            .filter(|hpa| {
                hpa.metadata.namespace.as_deref() == Some(namespace)
                    && hpa.spec.as_ref().and_then(|s| s.min_replicas) == Some(0)
            })
            .collect();
        let mut woke = false;
        for hpa in candidates {
            let Some(spec) = hpa.spec.as_ref() else { continue };
            let target = spec.scale_target_ref.clone();
            let key = (namespace.to_string(), format!("{}/{}", target.kind, target.name));
            let waking = {
                let mut waking = self.waking.lock().unwrap_or_else(PoisonError::into_inner);
                waking
                    .entry(key.clone())
                    .or_insert_with(|| {
                        let this = self.clone();
                        let namespace = namespace.to_string();
                        let selector = selector.clone();
                        async move {
                            let result = this.scale_up(&namespace, &target, &selector).await;
                            this.waking.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
                            result
                        }
                        .boxed()
                        .shared()
                    })
                    .clone()
            };
            match waking.await {
                Ok(true) => woke = true,
                Ok(false) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(woke)
    }

    /// Sets the target's replicas to one if its scale selector covers the
    /// Service's and it has none; `Ok(false)` when it is not the
    /// Service's workload.
    async fn scale_up(
        &self,
        namespace: &str,
        target: &k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference,
        service: &BTreeMap<String, String>,
    ) -> Result<bool, String> {
        let api_version = target.api_version.clone().unwrap_or_else(|| "v1".into());
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &target.kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| format!("cannot find {}: {e}", target.kind))?;
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource);
        let scale = api
            .get_scale(&target.name)
            .await
            .map_err(|e| format!("cannot read the scale of {} {}: {e}", target.kind, target.name))?;
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if !covers(&selector, service) {
            return Ok(false);
        }
        if scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0 {
            return Ok(true);
        }
        tracing::info!(namespace, target = %target.name, "a request woke a workload scaled to zero");
        let patch = Patch::Merge(serde_json::json!({"spec": {"replicas": 1}}));
        api.patch_scale(&target.name, &PatchParams::default(), &patch)
            .await
            .map_err(|e| format!("cannot scale {} {} up from zero: {e}", target.kind, target.name))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_target_covers_a_service_whose_every_label_its_selector_names() {
        assert!(covers("app=hello", &labels(&[("app", "hello")])));
        assert!(covers("app=hello,tier=web", &labels(&[("app", "hello")])));
        assert!(covers("app==hello", &labels(&[("app", "hello")])));
        assert!(!covers("app=hello", &labels(&[("app", "hello"), ("tier", "web")])));
        assert!(!covers("app=other", &labels(&[("app", "hello")])));
        assert!(!covers("app in (hello)", &labels(&[("app", "hello")])));
        assert!(!covers("app!=hello", &labels(&[("app", "hello")])));
        assert!(!covers("app=hello", &labels(&[])));
    }
}
