//! Users as authenticators find them and authorizers see them
//! (`user.Info` in Kubernetes).

use std::collections::BTreeMap;

/// The groups and names Kubernetes gives fixed meanings.
pub mod names {
    pub const MASTERS: &str = "system:masters";
    pub const AUTHENTICATED: &str = "system:authenticated";
    pub const UNAUTHENTICATED: &str = "system:unauthenticated";
    pub const ANONYMOUS: &str = "system:anonymous";
    pub const NODES: &str = "system:nodes";
    pub const NODE_PREFIX: &str = "system:node:";
    pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
    pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
    pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
    pub const KUBE_SCHEDULER: &str = "system:kube-scheduler";
    pub const KUBE_CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
    pub const KUBE_PROXY: &str = "system:kube-proxy";
    pub const APISERVER: &str = "system:apiserver";
}

/// An authenticated (or anonymous) user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    /// Empty when the authenticator knows none (static tokens, certificates).
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes, such as `authentication.kubernetes.io/pod-name`.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = impl Into<String>>) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// The API server itself, for writes it makes on its own behalf.
    pub fn apiserver() -> UserInfo {
        UserInfo::new(names::APISERVER, [names::MASTERS, names::AUTHENTICATED])
    }

    /// The cluster's administrator, as the admin kubeconfig authenticates.
    pub fn admin() -> UserInfo {
        UserInfo::new("skiff-admin", [names::MASTERS, names::AUTHENTICATED])
    }

    /// Whoever sent no credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo::new(names::ANONYMOUS, [names::UNAUTHENTICATED])
    }

    /// The user a node agent is: `system:node:<node>` in `system:nodes`.
    pub fn node(node: &str) -> UserInfo {
        UserInfo::new(
            format!("{}{node}", names::NODE_PREFIX),
            [names::NODES, names::AUTHENTICATED],
        )
    }

    /// The user a ServiceAccount's token authenticates as.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> UserInfo {
        UserInfo {
            name: service_account_user(namespace, name),
            uid: uid.into(),
            groups: vec![
                names::SERVICE_ACCOUNTS.into(),
                format!("{}:{namespace}", names::SERVICE_ACCOUNTS),
                names::AUTHENTICATED.into(),
            ],
            extra: BTreeMap::new(),
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == names::ANONYMOUS
    }

    /// The node this user is, for `system:node:<name>` in `system:nodes`.
    pub fn node_name(&self) -> Option<&str> {
        let node = self.name.strip_prefix(names::NODE_PREFIX)?;
        (self.in_group(names::NODES) && !node.is_empty()).then_some(node)
    }

    /// The namespace and name of the ServiceAccount this user is.
    pub fn service_account_of(&self) -> Option<(&str, &str)> {
        parse_service_account_user(&self.name)
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{}{namespace}:{name}", names::SERVICE_ACCOUNT_PREFIX)
}

/// The namespace and name in `system:serviceaccount:<namespace>:<name>`.
pub fn parse_service_account_user(user: &str) -> Option<(&str, &str)> {
    let (namespace, name) = user.strip_prefix(names::SERVICE_ACCOUNT_PREFIX)?.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names_round_trip() {
        let user = UserInfo::service_account("apps", "builder", "u-1");
        assert_eq!(user.name, "system:serviceaccount:apps:builder");
        assert_eq!(user.service_account_of(), Some(("apps", "builder")));
        assert!(user.in_group("system:serviceaccounts:apps"));
        assert_eq!(parse_service_account_user("system:serviceaccount:apps"), None);
        assert_eq!(parse_service_account_user("system:serviceaccount:a:b:c"), None);
    }

    #[test]
    fn nodes_need_the_group() {
        assert_eq!(UserInfo::node("n1").node_name(), Some("n1"));
        assert_eq!(
            UserInfo::new("system:node:n1", ["system:authenticated"]).node_name(),
            None
        );
    }
}
