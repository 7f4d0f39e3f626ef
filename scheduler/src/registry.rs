//! Plugin factories by name: how a configuration file's plugin names
//! become plugin values.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::framework::Plugin;
use crate::plugins::{self, *};
use crate::{Error, Result};

/// Makes a plugin from its `pluginConfig` arguments (`Value::Null` when
/// the configuration gives none).
pub type Factory = Arc<dyn Fn(&Value) -> Result<Arc<dyn Plugin>> + Send + Sync>;

/// The plugins a configuration may name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("plugins", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A factory for a plugin that takes no arguments.
fn without_args<P: Plugin + Default + 'static>(name: &'static str) -> Factory {
    Arc::new(move |args: &Value| {
        let empty = args.is_null() || args.as_object().is_some_and(|m| m.is_empty());
        if !empty {
            return Err(Error::config(format!("plugin {name} takes no arguments")));
        }
        Ok(Arc::new(P::default()) as Arc<dyn Plugin>)
    })
}

/// Decodes `args` (absent arguments decode as an empty object).
pub fn decode_args<T: DeserializeOwned>(plugin: &str, args: &Value) -> Result<T> {
    let args = if args.is_null() {
        Value::Object(Default::default())
    } else {
        args.clone()
    };
    serde_json::from_value(args).map_err(|source| Error::PluginArgs {
        plugin: plugin.to_string(),
        source,
    })
}

impl Registry {
    /// A registry with no plugins.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// Every built-in plugin.
    pub fn builtin() -> Registry {
        let mut registry = Registry::empty();
        registry.insert(
            plugins::NODE_UNSCHEDULABLE,
            without_args::<NodeUnschedulable>(plugins::NODE_UNSCHEDULABLE),
        );
        registry.insert(plugins::NODE_NAME, without_args::<NodeName>(plugins::NODE_NAME));
        registry.insert(
            plugins::TAINT_TOLERATION,
            without_args::<TaintToleration>(plugins::TAINT_TOLERATION),
        );
        registry.insert(
            plugins::NODE_AFFINITY,
            without_args::<NodeAffinity>(plugins::NODE_AFFINITY),
        );
        registry.insert(
            plugins::RUNTIME_SUPPORT,
            without_args::<RuntimeSupport>(plugins::RUNTIME_SUPPORT),
        );
        registry.insert(plugins::NODE_PORTS, without_args::<NodePorts>(plugins::NODE_PORTS));
        registry.insert(
            plugins::POD_TOPOLOGY_SPREAD,
            without_args::<PodTopologySpread>(plugins::POD_TOPOLOGY_SPREAD),
        );
        registry.insert(
            plugins::BALANCED_ALLOCATION,
            without_args::<BalancedAllocation>(plugins::BALANCED_ALLOCATION),
        );
        registry.insert(
            plugins::IMAGE_LOCALITY,
            without_args::<ImageLocality>(plugins::IMAGE_LOCALITY),
        );
        registry.insert(
            plugins::DEFAULT_BINDER,
            without_args::<DefaultBinder>(plugins::DEFAULT_BINDER),
        );
        registry.insert(
            plugins::NODE_RESOURCES_FIT,
            Arc::new(|args: &Value| {
                let args: NodeResourcesFitArgs = decode_args(plugins::NODE_RESOURCES_FIT, args)?;
                let plugin = NodeResourcesFit::new(args)
                    .map_err(|problem| Error::config(format!("plugin {}: {problem}", plugins::NODE_RESOURCES_FIT)))?;
                Ok(Arc::new(plugin) as Arc<dyn Plugin>)
            }),
        );
        registry
    }

    /// Adds (or replaces) the factory for `name`.
    pub fn insert(&mut self, name: impl Into<String>, factory: Factory) {
        self.factories.insert(name.into(), factory);
    }

    /// Adds (or replaces) `name` with a factory closure.
    pub fn register<F>(&mut self, name: impl Into<String>, factory: F)
    where
        F: Fn(&Value) -> Result<Arc<dyn Plugin>> + Send + Sync + 'static,
    {
        self.insert(name, Arc::new(factory));
    }

    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// Makes the plugin `name` with `args`.
    pub fn instantiate(&self, name: &str, args: &Value) -> Result<Arc<dyn Plugin>> {
        let factory = self.factories.get(name).ok_or_else(|| {
            Error::config(format!(
                "unknown plugin {name:?} (known plugins: {})",
                self.names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        factory(args)
    }
}
