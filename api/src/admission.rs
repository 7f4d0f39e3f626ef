//! Admission: the third link of the request chain (authentication →
//! authorization → admission → registry).
//!
//! The registry calls [`Admission::admit`] for every create, update and
//! delete, after the kind's defaults are applied and before anything is
//! written: mutating plugins run first, in order, each seeing the previous
//! one's result; the kind's own validation then runs again on the mutated
//! object; validating plugins run last and may only refuse. Plugins are
//! added and removed at run time (Wasm plugins are loaded from API
//! objects), so the chain is behind a lock and cheap to read.
//!
//! A refusal reaches the client as Kubernetes reports a webhook denial:
//! `admission webhook "<name>" denied the request: <reason>`, code 400
//! unless the plugin says otherwise.

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::auth::UserInfo;
use crate::catalog::Resource;
use crate::error::ApiError;

/// What is being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// Everything a plugin may base its decision on besides the objects.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    pub operation: Operation,
    pub resource: &'a Resource,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub user: &'a UserInfo,
    pub dry_run: bool,
}

/// A plugin's refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub message: String,
    /// The HTTP code to answer with; 400 when the plugin gives none.
    pub code: Option<u16>,
}

impl Denial {
    pub fn new(message: impl Into<String>) -> Denial {
        Denial {
            message: message.into(),
            code: None,
        }
    }
}

/// Changes objects on their way in.
pub trait MutatingPlugin: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    /// Whether the plugin wants to see this request at all.
    fn handles(&self, attributes: &Attributes<'_>) -> bool;
    /// Mutates `object` (the new state; for a delete, the stored one).
    fn mutate(&self, attributes: &Attributes<'_>, object: &mut Value, old: Option<&Value>) -> Result<(), Denial>;
}

/// Accepts or refuses objects on their way in.
pub trait ValidatingPlugin: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    fn handles(&self, attributes: &Attributes<'_>) -> bool;
    fn validate(&self, attributes: &Attributes<'_>, object: &Value, old: Option<&Value>) -> Result<(), Denial>;
}

/// A compiled-in admission step, as kube-apiserver's built-in plugins
/// (NodeRestriction, the RBAC escalation check): it runs before the
/// validating plugins, on every create, update and delete, and its
/// refusal reaches the client as it is.
pub trait BuiltinPlugin: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    fn validate(&self, attributes: &Attributes<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError>;
}

#[derive(Debug, Default)]
struct Chain {
    builtin: Vec<Arc<dyn BuiltinPlugin>>,
    mutating: Vec<Arc<dyn MutatingPlugin>>,
    validating: Vec<Arc<dyn ValidatingPlugin>>,
}

/// The live admission chain. Cheap to clone; all clones share one chain.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    chain: Arc<RwLock<Chain>>,
}

fn denied(plugin: &str, denial: Denial) -> ApiError {
    ApiError::Denied {
        plugin: plugin.to_string(),
        message: denial.message,
        code: denial.code.filter(|c| *c >= 400).unwrap_or(400),
    }
}

impl Admission {
    pub fn new() -> Admission {
        Admission::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Chain> {
        self.chain.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Chain> {
        self.chain.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a built-in step, replacing one of the same name in place.
    pub fn add_builtin(&self, plugin: Arc<dyn BuiltinPlugin>) {
        let mut chain = self.write();
        match chain.builtin.iter_mut().find(|p| p.name() == plugin.name()) {
            Some(slot) => *slot = plugin,
            None => chain.builtin.push(plugin),
        }
    }

    /// Adds a mutating plugin, replacing one of the same name in place.
    pub fn add_mutating(&self, plugin: Arc<dyn MutatingPlugin>) {
        let mut chain = self.write();
        match chain.mutating.iter_mut().find(|p| p.name() == plugin.name()) {
            Some(slot) => *slot = plugin,
            None => chain.mutating.push(plugin),
        }
    }

    /// Adds a validating plugin, replacing one of the same name in place.
    pub fn add_validating(&self, plugin: Arc<dyn ValidatingPlugin>) {
        let mut chain = self.write();
        match chain.validating.iter_mut().find(|p| p.name() == plugin.name()) {
            Some(slot) => *slot = plugin,
            None => chain.validating.push(plugin),
        }
    }

    /// Removes the mutating plugin called `name`.
    pub fn remove_mutating(&self, name: &str) {
        self.write().mutating.retain(|p| p.name() != name);
    }

    /// Removes the validating plugin called `name`.
    pub fn remove_validating(&self, name: &str) {
        self.write().validating.retain(|p| p.name() != name);
    }

    /// Removes every plugin called `name`.
    pub fn remove(&self, name: &str) {
        let mut chain = self.write();
        chain.mutating.retain(|p| p.name() != name);
        chain.validating.retain(|p| p.name() != name);
    }

    /// Runs the mutating plugins; returns whether any of them ran.
    pub fn mutate(
        &self,
        attributes: &Attributes<'_>,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<bool, ApiError> {
        let plugins: Vec<_> = self.read().mutating.clone();
        let mut ran = false;
        for plugin in plugins.iter().filter(|p| p.handles(attributes)) {
            plugin
                .mutate(attributes, object, old)
                .map_err(|denial| denied(plugin.name(), denial))?;
            ran = true;
        }
        Ok(ran)
    }

    /// Runs the built-in steps, then the validating plugins.
    pub fn validate(&self, attributes: &Attributes<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let builtin: Vec<_> = self.read().builtin.clone();
        for step in &builtin {
            step.validate(attributes, object, old)?;
        }
        let plugins: Vec<_> = self.read().validating.clone();
        for plugin in plugins.iter().filter(|p| p.handles(attributes)) {
            plugin
                .validate(attributes, object, old)
                .map_err(|denial| denied(plugin.name(), denial))?;
        }
        Ok(())
    }
}
