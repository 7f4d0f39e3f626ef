//! `skiff server --apply FILE`: manifests applied at start, the way a
//! cluster comes up with its add-ons already in place.
//!
//! Each file may hold several YAML documents. Every object is applied
//! server-side (field manager `skiff-server`, forcing conflicts), so
//! applying the same files on every start is harmless and edits made
//! since with kubectl to fields the manifest does not set survive.

use std::path::Path;

use anyhow::Context;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde::Deserialize;

const FIELD_MANAGER: &str = "skiff-server";

/// Applies every object in `files`; returns `kind/name` of each.
pub async fn apply(client: &kube::Client, files: &[impl AsRef<Path>]) -> anyhow::Result<Vec<String>> {
    let mut objects = Vec::new();
    for file in files {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .with_context(|| format!("{} is not valid YAML", file.display()))?;
            if value.is_null() {
                continue;
            }
            let object: DynamicObject = serde_yaml::from_value(value)
                .with_context(|| format!("{} holds something that is not a Kubernetes object", file.display()))?;
            objects.push((file.display().to_string(), object));
        }
    }
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("cannot discover the API's kinds")?;
    let mut applied = Vec::new();
    for (file, object) in objects {
        let types = object
            .types
            .clone()
            .with_context(|| format!("an object in {file} has no apiVersion/kind"))?;
        let gvk = GroupVersionKind::try_from(&types).with_context(|| format!("{file}: bad apiVersion"))?;
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("{file}: the API serves no {}/{}", types.api_version, types.kind))?;
        let name = object
            .metadata
            .name
            .clone()
            .with_context(|| format!("{file}: a {} without a name", types.kind))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let namespace = object.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                Api::namespaced_with(client.clone(), &namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("{file}: cannot apply {}/{name}", types.kind))?;
        applied.push(format!("{}/{name}", types.kind.to_lowercase()));
    }
    Ok(applied)
}
