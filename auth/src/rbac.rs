//! Role-based access control as `rbac.authorization.k8s.io/v1` defines it.
//!
//! A [`Policy`] is built from the four kinds' objects and never changes;
//! whoever watches the objects builds a new one when they change and swaps
//! it in. Building resolves what is expensive once: ClusterRole
//! aggregation (a ClusterRole with an `aggregationRule` holds the rules of
//! every ClusterRole its selectors match, recursively), and an index from
//! each subject (user, group, ServiceAccount) to the bindings naming it.
//! Deciding a request then walks only the rules bound to that user.
//!
//! The rules, as Kubernetes applies them:
//! * a ClusterRoleBinding grants its ClusterRole everywhere: every
//!   namespace, cluster-scoped resources and non-resource URLs;
//! * a RoleBinding grants its Role, or a ClusterRole, in its own namespace
//!   only;
//! * a rule matches when its verbs, API groups and resources (or
//!   non-resource URLs) match, `*` matching anything; `*/sub` matches that
//!   subresource of any resource; `resourceNames`, when present, limit it to
//!   requests that name one of them (so never a list or a create);
//! * a ServiceAccount subject without a namespace means the binding's.
//!
//! [`covers`] is the escalation check: a user may write a role, or bind
//! one, only if the user already holds every right it grants.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::user::service_account_user;
use crate::{Attributes, Decision, ResourceAttributes, Target, UserInfo};

/// The RBAC objects a policy is built from, keyed by (namespace, name).
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub roles: BTreeMap<(String, String), Role>,
    pub cluster_roles: BTreeMap<String, ClusterRole>,
    pub role_bindings: BTreeMap<(String, String), RoleBinding>,
    pub cluster_role_bindings: BTreeMap<String, ClusterRoleBinding>,
}

/// Whom a binding names, as the index keys it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum SubjectKey {
    User(String),
    Group(String),
}

/// The rules one binding grants.
type Grant = Arc<[PolicyRule]>;

/// An immutable, indexed snapshot of the RBAC objects.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Cluster-wide grants by subject.
    cluster: HashMap<SubjectKey, Vec<Grant>>,
    /// Grants in one namespace, by namespace and subject.
    namespaced: HashMap<String, HashMap<SubjectKey, Vec<Grant>>>,
    /// Each ClusterRole's rules, aggregation resolved.
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    /// Each Role's rules, by namespace and name.
    roles: HashMap<(String, String), Arc<[PolicyRule]>>,
    /// Bindings whose role does not exist, so refusals can say why.
    dangling: Vec<String>,
}

impl Policy {
    pub fn new(objects: &Objects) -> Policy {
        let cluster_roles = aggregate(&objects.cluster_roles);
        let roles: HashMap<(&str, &str), Arc<[PolicyRule]>> = objects
            .roles
            .iter()
            .map(|((ns, name), role)| {
                (
                    (ns.as_str(), name.as_str()),
                    role.rules.clone().unwrap_or_default().into(),
                )
            })
            .collect();
        let mut policy = Policy {
            cluster_roles,
            ..Default::default()
        };
        for (name, binding) in &objects.cluster_role_bindings {
            // A ClusterRoleBinding may only name a ClusterRole.
            let role = match binding.role_ref.kind.as_str() {
                "ClusterRole" => policy.cluster_roles.get(&binding.role_ref.name).cloned(),
                _ => None,
            };
            let Some(role) = role else {
                policy.dangling.push(missing(&binding.role_ref, "", name));
                continue;
            };
            for key in subject_keys(binding.subjects.as_deref().unwrap_or_default(), "") {
                policy.cluster.entry(key).or_default().push(role.clone());
            }
        }
        for ((namespace, name), binding) in &objects.role_bindings {
            let role = match binding.role_ref.kind.as_str() {
                "ClusterRole" => policy.cluster_roles.get(&binding.role_ref.name).cloned(),
                "Role" => roles
                    .get(&(namespace.as_str(), binding.role_ref.name.as_str()))
                    .cloned(),
                _ => None,
            };
            let Some(role) = role else {
                policy.dangling.push(missing(&binding.role_ref, namespace, name));
                continue;
            };
            let index = policy.namespaced.entry(namespace.clone()).or_default();
            for key in subject_keys(binding.subjects.as_deref().unwrap_or_default(), namespace) {
                index.entry(key).or_default().push(role.clone());
            }
        }
        policy
    }

    /// Allows what some rule bound to the user matches; otherwise no
    /// opinion, for the next authorizer (there is none after RBAC).
    pub fn authorize(&self, attributes: &Attributes) -> Decision {
        let namespace = match &attributes.target {
            Target::Resource(r) => r.namespace.as_str(),
            Target::NonResource(_) => "",
        };
        let mut allowed = false;
        self.visit(&attributes.user, namespace, |rule| {
            allowed = rule_allows(rule, &attributes.verb, &attributes.target);
            allowed
        });
        if allowed {
            Decision::Allow
        } else {
            Decision::NoOpinion(self.dangling_reason())
        }
    }

    /// Every rule the user holds in `namespace` (cluster-wide ones when
    /// empty): what SelfSubjectRulesReview lists and what [`covers`]
    /// checks a role against.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        self.visit(user, namespace, |rule| {
            rules.push(rule.clone());
            false
        });
        rules
    }

    /// A ClusterRole's rules, aggregation resolved.
    pub fn cluster_role(&self, name: &str) -> Option<&[PolicyRule]> {
        self.cluster_roles.get(name).map(|rules| &rules[..])
    }

    /// A Role's rules.
    pub fn role(&self, namespace: &str, name: &str) -> Option<&[PolicyRule]> {
        self.roles
            .get(&(namespace.to_string(), name.to_string()))
            .map(|rules| &rules[..])
    }

    /// Calls `visit` with each rule bound to `user` that applies in
    /// `namespace`, until it returns true.
    fn visit(&self, user: &UserInfo, namespace: &str, mut visit: impl FnMut(&PolicyRule) -> bool) {
        let keys = std::iter::once(SubjectKey::User(user.name.clone()))
            .chain(user.groups.iter().map(|g| SubjectKey::Group(g.clone())))
            .collect::<Vec<_>>();
        let mut indexes = vec![&self.cluster];
        if let Some(index) = (!namespace.is_empty())
            .then(|| self.namespaced.get(namespace))
            .flatten()
        {
            indexes.push(index);
        }
        for index in indexes {
            for key in &keys {
                for grant in index.get(key).into_iter().flatten() {
                    for rule in grant.iter() {
                        if visit(rule) {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn dangling_reason(&self) -> String {
        match self.dangling.as_slice() {
            [] => String::new(),
            dangling => format!("RBAC: {}", dangling.join(", ")),
        }
    }
}

fn missing(role: &RoleRef, namespace: &str, binding: &str) -> String {
    let kind = role.kind.to_lowercase();
    let at = if namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {namespace:?}")
    };
    format!(
        "{kind}.rbac.authorization.k8s.io {:?} not found (bound by {binding:?}{at})",
        role.name
    )
}

/// The index keys of a binding's subjects; `namespace` is the binding's.
fn subject_keys<'a>(subjects: &'a [Subject], namespace: &'a str) -> impl Iterator<Item = SubjectKey> + 'a {
    subjects.iter().filter_map(move |subject| match subject.kind.as_str() {
        "User" => Some(SubjectKey::User(subject.name.clone())),
        "Group" => Some(SubjectKey::Group(subject.name.clone())),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|ns| !ns.is_empty())
                .unwrap_or(namespace);
            (!ns.is_empty()).then(|| SubjectKey::User(service_account_user(ns, &subject.name)))
        }
        _ => None,
    })
}

/// Whether `rule` allows `verb` on `target`.
pub fn rule_allows(rule: &PolicyRule, verb: &str, target: &Target) -> bool {
    if !has(&rule.verbs, verb) {
        return false;
    }
    match target {
        Target::Resource(r) => resource_matches(rule, r),
        Target::NonResource(path) => rule
            .non_resource_urls
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|url| url_matches(url, path)),
    }
}

fn resource_matches(rule: &PolicyRule, r: &ResourceAttributes) -> bool {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    if !groups.iter().any(|g| g == "*" || *g == r.group) {
        return false;
    }
    let resources = rule.resources.as_deref().unwrap_or_default();
    let resource_ok = resources.iter().any(|name| {
        name == "*"
            || (r.subresource.is_empty() && *name == r.resource)
            || (!r.subresource.is_empty()
                && (name
                    .split_once('/')
                    .is_some_and(|(res, sub)| (res == "*" || res == r.resource) && sub == r.subresource)))
    });
    if !resource_ok {
        return false;
    }
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.contains(&r.name),
    }
}

/// `*` matches every path, `/apis/*` every path under `/apis/`.
fn url_matches(rule: &str, path: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule == path,
    }
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|v| v == "*" || v == wanted)
}

/// Each ClusterRole's rules: its own, or for an aggregated role the union
/// of its own and those of every role its selectors match, recursively.
fn aggregate(roles: &BTreeMap<String, ClusterRole>) -> HashMap<String, Arc<[PolicyRule]>> {
    fn resolve(
        name: &str,
        roles: &BTreeMap<String, ClusterRole>,
        done: &mut HashMap<String, Arc<[PolicyRule]>>,
        visiting: &mut HashSet<String>,
    ) -> Arc<[PolicyRule]> {
        if let Some(rules) = done.get(name) {
            return rules.clone();
        }
        let Some(role) = roles.get(name) else {
            return Arc::from([]);
        };
        let own = role.rules.clone().unwrap_or_default();
        let selectors = role
            .aggregation_rule
            .as_ref()
            .and_then(|a| a.cluster_role_selectors.clone())
            .unwrap_or_default();
        if selectors.is_empty() {
            let rules: Arc<[PolicyRule]> = own.into();
            done.insert(name.to_string(), rules.clone());
            return rules;
        }
        if !visiting.insert(name.to_string()) {
            // A cycle of aggregations: this role's own rules end it.
            return own.into();
        }
        let mut rules = own;
        for (other, candidate) in roles {
            if other == name {
                continue;
            }
            let labels = candidate.metadata.labels.clone().unwrap_or_default();
            if selectors.iter().any(|s| selector_matches(s, &labels)) {
                for rule in resolve(other, roles, done, visiting).iter() {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
            }
        }
        visiting.remove(name);
        let rules: Arc<[PolicyRule]> = rules.into();
        done.insert(name.to_string(), rules.clone());
        rules
    }
    let mut done = HashMap::new();
    for name in roles.keys() {
        resolve(name, roles, &mut done, &mut HashSet::new());
    }
    done
}

/// A label selector as Kubernetes matches it; an empty one matches
/// nothing here, as an aggregation rule's empty selector does.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector.match_labels.clone().unwrap_or_default();
    let expressions = selector.match_expressions.as_deref().unwrap_or_default();
    if match_labels.is_empty() && expressions.is_empty() {
        return false;
    }
    match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && expressions.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
}

/// Whether `owner` rules grant everything `wanted` rules do; `Err` lists
/// the rights that are missing, one verb, group, resource and name each.
pub fn covers(owner: &[PolicyRule], wanted: &[PolicyRule]) -> Result<(), Vec<PolicyRule>> {
    let missing: Vec<PolicyRule> = wanted
        .iter()
        .flat_map(atoms)
        .filter(|atom| !owner.iter().any(|rule| rule_covers(rule, atom)))
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(missing) }
}

/// A rule broken into rules of one verb and one resource (or URL) each.
fn atoms(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |v: &str| Some(vec![v.to_string()]);
    let mut atoms = Vec::new();
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.as_deref().unwrap_or_default() {
            atoms.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                let names = rule.resource_names.as_deref().unwrap_or_default();
                if names.is_empty() {
                    atoms.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        ..Default::default()
                    });
                }
                for name in names {
                    atoms.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..Default::default()
                    });
                }
            }
        }
    }
    atoms
}

/// Whether `owner` grants the single right `atom` names. A wildcard in the
/// atom is covered only by the same wildcard.
fn rule_covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let single = |list: &Option<Vec<String>>| list.as_deref().and_then(|l| l.first().cloned()).unwrap_or_default();
    if !has(&owner.verbs, &atom.verbs[0]) {
        return false;
    }
    if atom.non_resource_urls.is_some() {
        let url = single(&atom.non_resource_urls);
        return owner
            .non_resource_urls
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == &url || o.strip_suffix('*').is_some_and(|prefix| url.starts_with(prefix)));
    }
    let group = single(&atom.api_groups);
    let resource = single(&atom.resources);
    let name = single(&atom.resource_names);
    let groups = owner.api_groups.as_deref().unwrap_or_default();
    if !groups.iter().any(|g| g == "*" || *g == group) {
        return false;
    }
    let resources = owner.resources.as_deref().unwrap_or_default();
    let resource_ok = resources.iter().any(|o| {
        o == "*"
            || *o == resource
            || resource
                .split_once('/')
                .is_some_and(|(_, sub)| o.strip_prefix("*/").is_some_and(|s| s == sub))
    });
    if !resource_ok {
        return false;
    }
    match owner.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => !name.is_empty() && names.contains(&name),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let list = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: list(groups),
            resources: list(resources),
            ..Default::default()
        }
    }

    fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
        rule.resource_names = Some(names.iter().map(|s| s.to_string()).collect());
        rule
    }

    fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            non_resource_urls: Some(urls.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..Default::default()
        }
    }

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(Into::into),
            api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn request(
        user: &UserInfo,
        verb: &str,
        ns: &str,
        group: &str,
        resource: &str,
        sub: &str,
        name: &str,
    ) -> Attributes {
        Attributes::resource(
            user.clone(),
            verb,
            ResourceAttributes {
                namespace: ns.into(),
                group: group.into(),
                resource: resource.into(),
                subresource: sub.into(),
                name: name.into(),
            },
        )
    }

    struct Fixture {
        objects: Objects,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                objects: Objects::default(),
            }
        }

        fn cluster_role(mut self, name: &str, rules: Vec<PolicyRule>) -> Fixture {
            self.objects.cluster_roles.insert(
                name.into(),
                ClusterRole {
                    metadata: meta(None, name),
                    rules: Some(rules),
                    ..Default::default()
                },
            );
            self
        }

        fn role(mut self, ns: &str, name: &str, rules: Vec<PolicyRule>) -> Fixture {
            self.objects.roles.insert(
                (ns.into(), name.into()),
                Role {
                    metadata: meta(Some(ns), name),
                    rules: Some(rules),
                },
            );
            self
        }

        fn cluster_binding(mut self, name: &str, role: &str, subjects: Vec<Subject>) -> Fixture {
            self.objects.cluster_role_bindings.insert(
                name.into(),
                ClusterRoleBinding {
                    metadata: meta(None, name),
                    role_ref: role_ref("ClusterRole", role),
                    subjects: Some(subjects),
                },
            );
            self
        }

        fn binding(mut self, ns: &str, name: &str, kind: &str, role: &str, subjects: Vec<Subject>) -> Fixture {
            self.objects.role_bindings.insert(
                (ns.into(), name.into()),
                RoleBinding {
                    metadata: meta(Some(ns), name),
                    role_ref: role_ref(kind, role),
                    subjects: Some(subjects),
                },
            );
            self
        }

        fn policy(&self) -> Policy {
            Policy::new(&self.objects)
        }
    }

    #[test]
    fn role_bindings_grant_in_their_namespace_only() {
        let jane = UserInfo::new("jane", ["system:authenticated"]);
        let policy = Fixture::new()
            .role("a", "reader", vec![rule(&["get", "list"], &[""], &["pods"])])
            .binding("a", "jane-reads", "Role", "reader", vec![subject("User", "jane", None)])
            .policy();
        assert!(
            policy
                .authorize(&request(&jane, "get", "a", "", "pods", "", "p"))
                .is_allowed()
        );
        assert!(
            policy
                .authorize(&request(&jane, "list", "a", "", "pods", "", ""))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&jane, "get", "b", "", "pods", "", "p"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&jane, "get", "", "", "pods", "", ""))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&jane, "delete", "a", "", "pods", "", "p"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&jane, "get", "a", "", "pods", "log", "p"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&jane, "get", "a", "apps", "pods", "", "p"))
                .is_allowed()
        );
    }

    #[test]
    fn a_role_binding_may_name_a_cluster_role_for_its_namespace() {
        let jane = UserInfo::new("jane", ["system:authenticated"]);
        let policy = Fixture::new()
            .cluster_role("edit", vec![rule(&["*"], &["", "apps"], &["*"])])
            .binding(
                "a",
                "jane-edits",
                "ClusterRole",
                "edit",
                vec![subject("User", "jane", None)],
            )
            .policy();
        assert!(
            policy
                .authorize(&request(&jane, "delete", "a", "apps", "deployments", "scale", "d"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&jane, "delete", "b", "apps", "deployments", "", "d"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&jane, "list", "", "", "nodes", "", ""))
                .is_allowed()
        );
    }

    #[test]
    fn subresources_and_names() {
        let u = UserInfo::new("u", Vec::<String>::new());
        let policy = Fixture::new()
            .cluster_role(
                "r",
                vec![
                    rule(&["get"], &[""], &["pods/log"]),
                    rule(&["update"], &["*"], &["*/status"]),
                    named(rule(&["get", "update"], &[""], &["configmaps"]), &["settings"]),
                ],
            )
            .cluster_binding("b", "r", vec![subject("User", "u", None)])
            .policy();
        assert!(
            policy
                .authorize(&request(&u, "get", "x", "", "pods", "log", "p"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&u, "get", "x", "", "pods", "", "p"))
                .is_allowed()
        );
        assert!(
            policy
                .authorize(&request(&u, "update", "x", "apps", "deployments", "status", "d"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&u, "update", "x", "apps", "deployments", "", "d"))
                .is_allowed()
        );
        assert!(
            policy
                .authorize(&request(&u, "get", "x", "", "configmaps", "", "settings"))
                .is_allowed()
        );
        assert!(
            !policy
                .authorize(&request(&u, "get", "x", "", "configmaps", "", "other"))
                .is_allowed()
        );
        // A rule with names never allows what names nothing.
        assert!(
            !policy
                .authorize(&request(&u, "list", "x", "", "configmaps", "", ""))
                .is_allowed()
        );
    }

    #[test]
    fn groups_service_accounts_and_urls() {
        let policy = Fixture::new()
            .cluster_role("public", vec![urls(&["get"], &["/healthz", "/version", "/livez/*"])])
            .cluster_role("pods", vec![rule(&["list"], &[""], &["pods"])])
            .cluster_binding(
                "public",
                "public",
                vec![subject("Group", "system:unauthenticated", None)],
            )
            .binding(
                "apps",
                "sa",
                "ClusterRole",
                "pods",
                vec![subject("ServiceAccount", "builder", None)],
            )
            .policy();
        let anonymous = UserInfo::anonymous();
        let get = |path: &str| Attributes::non_resource(anonymous.clone(), "get", path);
        assert!(policy.authorize(&get("/healthz")).is_allowed());
        assert!(policy.authorize(&get("/livez/ping")).is_allowed());
        assert!(!policy.authorize(&get("/livez")).is_allowed());
        assert!(
            !policy
                .authorize(&Attributes::non_resource(anonymous, "post", "/healthz"))
                .is_allowed()
        );
        let builder = UserInfo::service_account("apps", "builder", "uid");
        assert!(
            policy
                .authorize(&request(&builder, "list", "apps", "", "pods", "", ""))
                .is_allowed()
        );
        let other = UserInfo::service_account("other", "builder", "uid");
        assert!(
            !policy
                .authorize(&request(&other, "list", "other", "", "pods", "", ""))
                .is_allowed()
        );
    }

    #[test]
    fn a_missing_role_grants_nothing_and_says_so() {
        let u = UserInfo::new("u", Vec::<String>::new());
        let policy = Fixture::new()
            .cluster_binding("b", "gone", vec![subject("User", "u", None)])
            .policy();
        let Decision::NoOpinion(reason) = policy.authorize(&request(&u, "get", "", "", "nodes", "", "n")) else {
            panic!("allowed")
        };
        assert!(
            reason.contains("clusterrole.rbac.authorization.k8s.io \"gone\" not found"),
            "{reason}"
        );
    }

    #[test]
    fn aggregation_is_resolved_recursively() {
        let labels = |name: &str, label: &str| {
            let mut role = ClusterRole {
                metadata: meta(None, name),
                ..Default::default()
            };
            role.metadata.labels = Some(BTreeMap::from([(label.to_string(), "true".to_string())]));
            role
        };
        let selector = |label: &str| LabelSelector {
            match_labels: Some(BTreeMap::from([(label.to_string(), "true".to_string())])),
            ..Default::default()
        };
        let mut objects = Objects::default();
        let mut admin = labels("admin", "none");
        admin.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![selector("to-admin")]),
        });
        let mut edit = labels("edit", "to-admin");
        edit.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![selector("to-edit")]),
        });
        let mut pieces = labels("edit-pieces", "to-edit");
        pieces.rules = Some(vec![rule(&["create"], &["apps"], &["deployments"])]);
        let mut admin_pieces = labels("admin-pieces", "to-admin");
        admin_pieces.rules = Some(vec![rule(
            &["create"],
            &["rbac.authorization.k8s.io"],
            &["rolebindings"],
        )]);
        for role in [admin, edit, pieces, admin_pieces] {
            objects
                .cluster_roles
                .insert(role.metadata.name.clone().unwrap_or_default(), role);
        }
        let policy = Policy::new(&objects);
        assert_eq!(policy.cluster_role("edit").map(<[_]>::len), Some(1));
        assert_eq!(policy.cluster_role("admin").map(<[_]>::len), Some(2));
    }

    #[test]
    fn selectors_match_as_kubernetes_does() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(selector_matches(&expr("a", "In", &["1", "2"]), &labels));
        assert!(!selector_matches(&expr("a", "NotIn", &["1"]), &labels));
        assert!(selector_matches(&expr("b", "DoesNotExist", &[]), &labels));
        assert!(!selector_matches(&LabelSelector::default(), &labels));
    }

    #[test]
    fn covering_rules() {
        let owner = vec![
            rule(&["get", "list"], &[""], &["pods", "services"]),
            rule(&["update"], &["*"], &["*/status"]),
            named(rule(&["get"], &[""], &["secrets"]), &["a"]),
            urls(&["get"], &["/logs/*"]),
        ];
        assert_eq!(covers(&owner, &[rule(&["get"], &[""], &["pods"])]), Ok(()));
        assert_eq!(
            covers(&owner, &[rule(&["update"], &["apps"], &["deployments/status"])]),
            Ok(())
        );
        assert_eq!(
            covers(&owner, &[named(rule(&["get"], &[""], &["secrets"]), &["a"])]),
            Ok(())
        );
        assert_eq!(covers(&owner, &[urls(&["get"], &["/logs/x"])]), Ok(()));
        let Err(missing) = covers(&owner, &[rule(&["get", "delete"], &[""], &["pods"])]) else {
            panic!("escalation allowed")
        };
        assert_eq!(missing, vec![rule(&["delete"], &[""], &["pods"])]);
        // Names grant only those names; a wildcard only a wildcard.
        assert!(covers(&owner, &[rule(&["get"], &[""], &["secrets"])]).is_err());
        assert!(covers(&owner, &[rule(&["get"], &[""], &["*"])]).is_err());
        assert_eq!(
            covers(&[rule(&["*"], &["*"], &["*"])], &[rule(&["get"], &[""], &["*"])]),
            Ok(())
        );
    }
}
