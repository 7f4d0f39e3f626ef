//! The audit policy: kube-apiserver's `audit.k8s.io/v1` `Policy`, read
//! from YAML or JSON, and the pure decision of how much of a request to
//! record.
//!
//! Rules are tried in order and the first that matches decides; a request
//! no rule matches is not audited (level `None`). A rule matches when every
//! list it sets matches (an empty list matches anything), as
//! kube-apiserver's policy checker decides:
//!
//! * `users`, `userGroups`: the authenticated user, before impersonation
//!   (kube-apiserver evaluates the policy before it impersonates). A
//!   request whose authentication failed has no user, so rules that name
//!   users or groups never match it.
//! * `verbs`: the Kubernetes verb, or a non-resource URL's lower-cased
//!   HTTP method.
//! * `namespaces`, `resources`: resource requests only. `""` in
//!   `namespaces` matches cluster-scoped requests. In `resources`, the
//!   group must equal the request's (`""` is the core group); an empty
//!   `resources` list takes the whole group; `pods` matches pods but not
//!   `pods/log`, `pods/log` matches that subresource, `*` matches every
//!   resource and subresource, `pods/*` every subresource of pods, `*/scale`
//!   the `scale` subresource of anything; `resourceNames` narrows by name.
//! * `nonResourceURLs`: non-resource requests only, by path: exact, `*`
//!   for all, or a prefix before a trailing `*`.
//!
//! `omitStages` of the policy and of the matching rule add up;
//! `omitManagedFields` of the rule, when set, overrides the policy's.
//!
//! Whatever the rules say, [`Policy::decide`] caps the level at
//! `Metadata` for requests whose bodies hold credentials (see
//! [`super::sensitive`]); no policy can lift that.
//!
//! Loading is stricter than kube-apiserver's in one way: unknown fields
//! are refused (a misspelt `usrs:` would otherwise silently match
//! everyone). The checks kube-apiserver's validation makes are made too:
//! at least one rule, known levels and stages, no rule that names both
//! resources and non-resource URLs, `*` only at the end of a URL,
//! `resourceNames` only with `resources`, lower-case DNS group names.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use skiff_auth::{Target, UserInfo};

use super::Error;

/// How much of a request an event records, from least to most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Level {
    /// Nothing: the request is not audited.
    #[default]
    None,
    /// Who, what, when and the result, without bodies.
    Metadata,
    /// Metadata and the request's body.
    Request,
    /// Metadata and both bodies.
    RequestResponse,
}

/// When in a request's life an event is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Stage {
    /// As soon as the request is authenticated, before anything is done.
    RequestReceived,
    /// When a long-running request (a watch, a log stream, exec) has sent
    /// its headers; its body follows.
    ResponseStarted,
    /// When the response is complete.
    ResponseComplete,
    /// When the handler panicked.
    Panic,
}

/// A policy, checked and ready to decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: BTreeSet<Stage>,
    omit_managed_fields: bool,
}

/// The file's form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFile {
    api_version: String,
    kind: String,
    /// Accepted and ignored, as a `metav1.ObjectMeta`.
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<serde_yaml::Value>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    omit_stages: BTreeSet<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// One rule of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: BTreeSet<Stage>,
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// Resources of one API group that a rule covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupResources {
    /// `""` is the core group.
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// What the policy says about one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: BTreeSet<Stage>,
    pub omit_managed_fields: bool,
}

impl Decision {
    /// Whether an event is written at `stage`.
    pub fn records(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(&stage)
    }
}

/// The request a decision is about.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The authenticated user; `None` when authentication failed.
    pub user: Option<&'a UserInfo>,
    pub verb: &'a str,
    pub target: &'a Target,
}

impl Policy {
    /// Reads and checks the policy file at `path`.
    pub fn load(path: &Path) -> Result<Policy, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadPolicy {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text).map_err(|problem| problem.at(path))
    }

    /// [`Policy::load`] for a command-line flag: the path as given.
    pub fn load_flag(path: &str) -> Result<Policy, Error> {
        Policy::load(Path::new(path))
    }

    /// Parses a policy from YAML or JSON text.
    pub fn parse(text: &str) -> Result<Policy, Problem> {
        let file: PolicyFile = serde_yaml::from_str(text).map_err(Problem::Syntax)?;
        let mut problems = Vec::new();
        if file.api_version != "audit.k8s.io/v1" {
            problems.push(format!(
                "apiVersion: {:?} is not supported; use \"audit.k8s.io/v1\"",
                file.api_version
            ));
        }
        if file.kind != "Policy" {
            problems.push(format!("kind: {:?} is not \"Policy\"", file.kind));
        }
        if file.rules.is_empty() {
            problems.push("rules: a policy needs at least one rule".into());
        }
        for (i, rule) in file.rules.iter().enumerate() {
            rule.check(&format!("rules[{i}]"), &mut problems);
        }
        if !problems.is_empty() {
            return Err(Problem::Invalid(Invalid(problems)));
        }
        Ok(Policy {
            rules: file.rules,
            omit_stages: file.omit_stages,
            omit_managed_fields: file.omit_managed_fields,
        })
    }

    /// How `subject` is audited: the first matching rule's level (capped
    /// for credentials), or `None`.
    pub fn decide(&self, subject: &Subject<'_>) -> Decision {
        let Some(rule) = self.rules.iter().find(|rule| rule.matches(subject)) else {
            return Decision::default();
        };
        Decision {
            level: super::sensitive::cap(rule.level, subject.target),
            omit_stages: self.omit_stages.union(&rule.omit_stages).copied().collect(),
            omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
        }
    }
}

/// What is wrong with a policy's text.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Syntax(#[source] serde_yaml::Error),
    #[error("{0}")]
    Invalid(#[source] Invalid),
}

impl Problem {
    fn at(self, path: &Path) -> Error {
        let path = path.to_path_buf();
        match self {
            Problem::Syntax(source) => Error::ParsePolicy { path, source },
            Problem::Invalid(source) => Error::InvalidPolicy { path, source },
        }
    }
}

/// Every rule a policy breaks, one per entry.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Invalid(pub Vec<String>);

impl Rule {
    fn check(&self, at: &str, problems: &mut Vec<String>) {
        if !self.non_resource_urls.is_empty() && (!self.resources.is_empty() || !self.namespaces.is_empty()) {
            problems.push(format!(
                "{at}: a rule cannot name both resources (or namespaces) and nonResourceURLs"
            ));
        }
        for (i, url) in self.non_resource_urls.iter().enumerate() {
            if url == "*" {
                continue;
            }
            if !url.starts_with('/') {
                problems.push(format!("{at}.nonResourceURLs[{i}]: {url:?} must begin with '/'"));
            }
            if url.char_indices().any(|(at, c)| c == '*' && at + 1 != url.len()) {
                problems.push(format!(
                    "{at}.nonResourceURLs[{i}]: {url:?}: '*' may only be the last character"
                ));
            }
        }
        for (i, group) in self.resources.iter().enumerate() {
            if !group.group.is_empty() && !is_dns_subdomain(&group.group) {
                problems.push(format!(
                    "{at}.resources[{i}].group: {:?} is not a lower-case DNS subdomain (a group name has no version)",
                    group.group
                ));
            }
            if !group.resource_names.is_empty() && group.resources.is_empty() {
                problems.push(format!(
                    "{at}.resources[{i}].resourceNames: needs at least one resource"
                ));
            }
        }
    }

    fn matches(&self, subject: &Subject<'_>) -> bool {
        if !self.users.is_empty() && !subject.user.is_some_and(|u| self.users.contains(&u.name)) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !subject
                .user
                .is_some_and(|u| u.groups.iter().any(|g| self.user_groups.contains(g)))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.iter().any(|v| v == subject.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(subject.target);
        }
        if !self.non_resource_urls.is_empty() {
            return match subject.target {
                Target::NonResource(path) => self.non_resource_urls.iter().any(|spec| path_matches(path, spec)),
                Target::Resource(_) => false,
            };
        }
        true
    }

    fn matches_resource(&self, target: &Target) -> bool {
        let Target::Resource(r) = target else {
            return false;
        };
        if !self.namespaces.is_empty() && !self.namespaces.contains(&r.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = r.combined();
        self.resources.iter().filter(|g| g.group == r.group).any(|g| {
            if g.resources.is_empty() {
                return true;
            }
            if !g.resource_names.is_empty() && !g.resource_names.contains(&r.name) {
                return false;
            }
            g.resources.iter().any(|spec| {
                if spec == "*" || *spec == combined {
                    return true;
                }
                // `*/scale`: that subresource of any resource.
                if let Some(sub) = spec.strip_prefix("*/") {
                    return !r.subresource.is_empty() && sub == r.subresource;
                }
                // `pods/*`: any subresource of pods (and, as in
                // kube-apiserver, pods themselves).
                spec.strip_suffix("/*").is_some_and(|resource| resource == r.resource)
            })
        })
    }
}

/// A non-resource URL rule: `*`, the exact path, or a prefix with `*`.
fn path_matches(path: &str, spec: &str) -> bool {
    if spec == "*" || spec == path {
        return true;
    }
    spec.strip_suffix('*')
        .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use skiff_auth::ResourceAttributes;

    use super::*;

    fn policy(rules: &str) -> Policy {
        Policy::parse(&format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{rules}")).unwrap()
    }

    fn resource(group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Target {
        Target::Resource(ResourceAttributes {
            namespace: namespace.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            name: name.into(),
        })
    }

    fn level(policy: &Policy, user: Option<&UserInfo>, verb: &str, target: &Target) -> Level {
        policy.decide(&Subject { user, verb, target }).level
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_is_none() {
        let p =
            policy("rules:\n- level: RequestResponse\n  verbs: [create]\n- level: Metadata\n  verbs: [get, create]\n");
        let pods = resource("", "pods", "", "default", "p");
        let alice = UserInfo::new("alice", ["devs"]);
        assert_eq!(level(&p, Some(&alice), "create", &pods), Level::RequestResponse);
        assert_eq!(level(&p, Some(&alice), "get", &pods), Level::Metadata);
        assert_eq!(level(&p, Some(&alice), "delete", &pods), Level::None);
        assert!(
            !p.decide(&Subject {
                user: Some(&alice),
                verb: "delete",
                target: &pods
            })
            .records(Stage::ResponseComplete)
        );
    }

    #[test]
    fn users_and_groups_match_the_authenticated_user() {
        let p = policy(
            "rules:\n- level: None\n  users: [system:kube-proxy]\n- level: Request\n  userGroups: [system:masters]\n- level: Metadata\n",
        );
        let target = resource("", "endpoints", "", "default", "");
        let proxy = UserInfo::new("system:kube-proxy", ["system:authenticated"]);
        let admin = UserInfo::admin();
        let jane = UserInfo::new("jane", ["devs"]);
        assert_eq!(level(&p, Some(&proxy), "watch", &target), Level::None);
        assert_eq!(level(&p, Some(&admin), "watch", &target), Level::Request);
        assert_eq!(level(&p, Some(&jane), "watch", &target), Level::Metadata);
        // Failed authentication: no user, so only the catch-all matches.
        assert_eq!(level(&p, None, "get", &target), Level::Metadata);
    }

    #[test]
    fn resources_match_with_subresources_and_wildcards() {
        let p = policy(
            r#"rules:
- level: None
  resources: [{group: "", resources: ["pods/log"]}]
- level: RequestResponse
  resources: [{group: "", resources: ["pods"]}]
- level: Request
  resources: [{group: "apps", resources: ["*/scale"]}]
- level: Request
  resources: [{group: "", resources: ["nodes/*"]}]
- level: Metadata
  resources: [{group: "", resources: ["configmaps"], resourceNames: ["controller-leader"]}]
- level: RequestResponse
  resources: [{group: "batch"}]
- level: Request
  resources: [{group: "rbac.authorization.k8s.io", resources: ["*"]}]
"#,
        );
        let user = UserInfo::admin();
        let at = |target: Target| level(&p, Some(&user), "get", &target);
        assert_eq!(at(resource("", "pods", "log", "a", "p")), Level::None);
        assert_eq!(at(resource("", "pods", "", "a", "p")), Level::RequestResponse);
        // `pods` does not cover its subresources.
        assert_eq!(at(resource("", "pods", "status", "a", "p")), Level::None);
        assert_eq!(at(resource("apps", "deployments", "scale", "a", "d")), Level::Request);
        assert_eq!(at(resource("apps", "deployments", "", "a", "d")), Level::None);
        // The group must be the request's: `*/scale` of apps is not core's.
        assert_eq!(
            at(resource("", "replicationcontrollers", "scale", "a", "r")),
            Level::None
        );
        assert_eq!(at(resource("", "nodes", "status", "", "n")), Level::Request);
        assert_eq!(at(resource("", "nodes", "", "", "n")), Level::Request);
        assert_eq!(
            at(resource("", "configmaps", "", "kube-system", "controller-leader")),
            Level::Metadata
        );
        assert_eq!(at(resource("", "configmaps", "", "kube-system", "other")), Level::None);
        assert_eq!(
            at(resource("batch", "jobs", "status", "a", "j")),
            Level::RequestResponse
        );
        assert_eq!(
            at(resource("rbac.authorization.k8s.io", "roles", "", "a", "r")),
            Level::Request
        );
        // A resource rule never matches a non-resource URL.
        assert_eq!(at(Target::NonResource("/api".into())), Level::None);
    }

    #[test]
    fn namespaces_match_and_empty_means_cluster_scope() {
        let p = policy(
            "rules:\n- level: Request\n  namespaces: [kube-system, \"\"]\n- level: Metadata\n  namespaces: [default]\n",
        );
        let user = UserInfo::admin();
        let at = |target: Target| level(&p, Some(&user), "list", &target);
        assert_eq!(at(resource("", "pods", "", "kube-system", "")), Level::Request);
        assert_eq!(at(resource("", "nodes", "", "", "")), Level::Request);
        assert_eq!(at(resource("", "pods", "", "default", "")), Level::Metadata);
        assert_eq!(at(resource("", "pods", "", "other", "")), Level::None);
        assert_eq!(at(Target::NonResource("/version".into())), Level::None);
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let p = policy(
            "rules:\n- level: None\n  nonResourceURLs: [/healthz*, /version]\n- level: Metadata\n  nonResourceURLs: [\"*\"]\n",
        );
        let user = UserInfo::admin();
        let at = |path: &str| level(&p, Some(&user), "get", &Target::NonResource(path.into()));
        assert_eq!(at("/healthz"), Level::None);
        assert_eq!(at("/healthz/etcd"), Level::None);
        assert_eq!(at("/version"), Level::None);
        assert_eq!(at("/version/"), Level::Metadata);
        assert_eq!(at("/apis"), Level::Metadata);
        assert_eq!(
            level(&p, Some(&user), "get", &resource("", "pods", "", "", "")),
            Level::None
        );
    }

    #[test]
    fn omitted_stages_add_up_and_managed_fields_follow_the_rule() {
        let p = policy(
            "omitStages: [RequestReceived]\nomitManagedFields: true\nrules:\n- level: Metadata\n  verbs: [watch]\n  omitStages: [ResponseStarted]\n  omitManagedFields: false\n- level: Metadata\n",
        );
        let user = UserInfo::admin();
        let target = resource("", "pods", "", "", "");
        let watch = p.decide(&Subject {
            user: Some(&user),
            verb: "watch",
            target: &target,
        });
        assert!(!watch.records(Stage::RequestReceived));
        assert!(!watch.records(Stage::ResponseStarted));
        assert!(watch.records(Stage::ResponseComplete));
        assert!(!watch.omit_managed_fields);
        let get = p.decide(&Subject {
            user: Some(&user),
            verb: "get",
            target: &target,
        });
        assert!(!get.records(Stage::RequestReceived));
        assert!(get.records(Stage::ResponseStarted));
        assert!(get.omit_managed_fields);
    }

    #[test]
    fn json_policies_load_too() {
        let p = Policy::parse(
            r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Request","verbs":["create"]}]}"#,
        )
        .unwrap();
        let target = resource("", "configmaps", "", "a", "");
        assert_eq!(level(&p, Some(&UserInfo::admin()), "create", &target), Level::Request);
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        let refused = |text: &str| match Policy::parse(text) {
            Err(problem) => problem.to_string(),
            Ok(_) => panic!("accepted:\n{text}"),
        };
        let head = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";
        assert!(refused(&format!("{head}rules:\n- level: Verbose\n")).contains("unknown variant `Verbose`"));
        assert!(refused(&format!("{head}rules:\n- level: None\n  usrs: [a]\n")).contains("unknown field `usrs`"));
        assert!(refused(&format!("{head}rules: []\n")).contains("at least one rule"));
        assert!(refused(&format!("{head}rules:\n- verbs: [get]\n")).contains("missing field `level`"));
        assert!(
            refused(&format!("{head}omitStages: [Never]\nrules:\n- level: None\n")).contains("unknown variant `Never`")
        );
        assert!(
            refused(&format!(
                "{head}rules:\n- level: None\n  nonResourceURLs: [/x]\n  namespaces: [a]\n"
            ))
            .contains("both resources")
        );
        assert!(
            refused(&format!("{head}rules:\n- level: None\n  nonResourceURLs: [/a*b]\n")).contains("last character")
        );
        assert!(
            refused(&format!("{head}rules:\n- level: None\n  nonResourceURLs: [healthz]\n")).contains("begin with '/'")
        );
        assert!(
            refused(&format!(
                "{head}rules:\n- level: None\n  resources: [{{group: apps/v1}}]\n"
            ))
            .contains("DNS subdomain")
        );
        assert!(
            refused(&format!(
                "{head}rules:\n- level: None\n  resources: [{{resourceNames: [x]}}]\n"
            ))
            .contains("needs at least one resource")
        );
        assert!(
            refused("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: None\n")
                .contains("not supported")
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let error = Policy::load(Path::new("/nonexistent/policy.yaml")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/policy.yaml"), "{error}");
    }
}
