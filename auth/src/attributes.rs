//! What a request asks, as authorizers see it (`authorizer.Attributes`).

use crate::UserInfo;

/// A user asking to do `verb` to a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    /// A resource verb (`get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete`, `deletecollection`, or a special one such as
    /// `impersonate`, `bind`, `escalate`, `approve`), or for a
    /// non-resource path the lower-cased HTTP method.
    pub verb: String,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Resource(ResourceAttributes),
    /// A path outside the resource tree, such as `/healthz` or `/apis`.
    NonResource(String),
}

/// A resource, as a request path names it. Empty strings stand for
/// "none": the core group, a cluster-scoped request, no subresource, no
/// name (lists and creates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl ResourceAttributes {
    /// `resource` or `resource/subresource`, as rules name them.
    pub fn combined(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

impl Attributes {
    pub fn resource(user: UserInfo, verb: impl Into<String>, resource: ResourceAttributes) -> Attributes {
        Attributes {
            user,
            verb: verb.into(),
            target: Target::Resource(resource),
        }
    }

    pub fn non_resource(user: UserInfo, verb: impl Into<String>, path: impl Into<String>) -> Attributes {
        Attributes {
            user,
            verb: verb.into(),
            target: Target::NonResource(path.into()),
        }
    }

    /// The sentence kube-apiserver's Forbidden message starts with, e.g.
    /// `User "jane" cannot list resource "pods" in API group "" in the
    /// namespace "default"`.
    pub fn refusal(&self) -> String {
        match &self.target {
            Target::Resource(r) => {
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace \"{}\"", r.namespace)
                };
                format!(
                    "User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
                    self.user.name,
                    self.verb,
                    r.combined(),
                    r.group
                )
            }
            Target::NonResource(path) => format!("User \"{}\" cannot {} path \"{path}\"", self.user.name, self.verb),
        }
    }
}
