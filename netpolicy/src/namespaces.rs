//! The labels of the cluster's namespaces, which `namespaceSelector` peers
//! select on.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use crate::selector::Selector;

/// The label kube-apiserver gives every namespace, set to its name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespace name → labels.
#[derive(Clone, Debug, Default)]
pub(crate) struct Namespaces(BTreeMap<String, BTreeMap<String, String>>);

impl Namespaces {
    pub(crate) fn new(namespaces: &[Arc<Namespace>]) -> Namespaces {
        Namespaces(
            namespaces
                .iter()
                .filter_map(|ns| {
                    let name = ns.metadata.name.clone()?;
                    Some((name, ns.metadata.labels.clone().unwrap_or_default()))
                })
                .collect(),
        )
    }

    /// Whether `selector` selects `namespace`. [`NAME_LABEL`] is always the
    /// namespace's name, as kube-apiserver keeps it, even for a namespace
    /// this set was not given.
    pub(crate) fn selects<'a>(&'a self, selector: &Selector, namespace: &'a str) -> bool {
        let labels = self.0.get(namespace);
        selector.matches_with(|key| {
            if key == NAME_LABEL {
                Some(namespace)
            } else {
                labels.and_then(|l| l.get(key)).map(String::as_str)
            }
        })
    }
}
