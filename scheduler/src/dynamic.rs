//! Plugins added and removed while the scheduler runs.
//!
//! Wasm plugins come and go with API objects, so they cannot be part of a
//! profile built once at start. [`DynamicPlugins`] is a shared, versioned
//! list of them: whoever loads plugins [`set`](DynamicPlugins::set)s and
//! [`remove`](DynamicPlugins::remove)s them, and the running scheduler
//! enables the current list in every profile, after the profile's own
//! plugins, from its next cycle on. A change also retries the pods
//! waiting as unschedulable, since what rejected them may be gone.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::framework::Plugin;
use crate::profile::Profile;

/// One dynamic plugin and its Score weight.
#[derive(Clone, Debug)]
pub struct DynamicPlugin {
    pub plugin: Arc<dyn Plugin>,
    pub weight: i64,
}

/// The shared list. Cheap to clone; clones share one list.
#[derive(Clone, Debug)]
pub struct DynamicPlugins {
    plugins: Arc<RwLock<Vec<DynamicPlugin>>>,
    /// Bumped on every change; the scheduler watches it.
    version: watch::Sender<u64>,
}

impl Default for DynamicPlugins {
    fn default() -> Self {
        DynamicPlugins {
            plugins: Arc::default(),
            version: watch::Sender::new(0),
        }
    }
}

impl DynamicPlugins {
    pub fn new() -> DynamicPlugins {
        DynamicPlugins::default()
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Adds `plugin`, or replaces the one of the same name, atomically:
    /// a cycle sees either the old plugin or the new one.
    pub fn set(&self, plugin: Arc<dyn Plugin>, weight: i64) {
        {
            let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
            let entry = DynamicPlugin { plugin, weight };
            match plugins.iter_mut().find(|p| p.plugin.name() == entry.plugin.name()) {
                Some(slot) => *slot = entry,
                None => plugins.push(entry),
            }
        }
        self.changed();
    }

    /// Removes the plugin called `name`, if there is one.
    pub fn remove(&self, name: &str) {
        let removed = {
            let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
            let before = plugins.len();
            plugins.retain(|p| p.plugin.name() != name);
            plugins.len() != before
        };
        if removed {
            self.changed();
        }
    }

    /// The names of the current plugins.
    pub fn names(&self) -> Vec<String> {
        self.current().iter().map(|p| p.plugin.name().to_string()).collect()
    }

    /// The current plugins.
    pub fn current(&self) -> Vec<DynamicPlugin> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The change counter, for the scheduler to follow.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// `base` with the current plugins enabled at every point each
    /// implements, after the profile's own plugins.
    pub(crate) fn apply(&self, base: &Profile) -> Profile {
        let mut profile = base.clone();
        for dynamic in self.current() {
            profile.enable_everywhere(dynamic.plugin, dynamic.weight.max(1));
        }
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::NodeName;
    use crate::profile::ExtensionPoint;

    #[test]
    fn plugins_are_set_replaced_removed_and_applied_after_the_profile() {
        let filters = |profile: &Profile| -> Vec<String> {
            profile
                .plugin_names(ExtensionPoint::Filter)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        let default = Profile::default_profile().unwrap();
        let dynamic = DynamicPlugins::new();
        let version = dynamic.subscribe();
        assert_eq!(filters(&dynamic.apply(&default)), filters(&default));

        let base = Profile::builder("test")
            .plugin(Arc::new(crate::plugins::TaintToleration), 1)
            .build()
            .unwrap();
        let plugin: Arc<dyn Plugin> = Arc::new(NodeName);
        let name = plugin.name().to_string();
        dynamic.set(plugin.clone(), 3);
        dynamic.set(plugin, 3);
        assert_eq!(dynamic.names(), std::slice::from_ref(&name));
        assert_eq!(
            filters(&dynamic.apply(&base)),
            ["TaintToleration".to_string(), name.clone()]
        );
        assert_eq!(*version.borrow(), 2);

        dynamic.remove(&name);
        dynamic.remove(&name);
        assert!(dynamic.names().is_empty());
        assert_eq!(*version.borrow(), 3, "removing nothing is no change");
    }
}
