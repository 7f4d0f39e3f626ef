//! The roles and bindings every cluster starts with.
//!
//! [`policy`] returns two sets of objects, all labelled
//! [`BOOTSTRAPPING_LABEL`]` = rbac-defaults` and annotated
//! [`AUTOUPDATE_ANNOTATION`]` = "true"`, as kube-apiserver marks the ones it
//! reconciles on start:
//!
//! * **Kubernetes' own**, as v1.33 defines them with its default feature
//!   gates: the same names, rules, labels, aggregation selectors and
//!   subjects, so `kubectl get clusterrole view -o yaml` reads as on any
//!   cluster. `admin`, `edit` and `view` are stored, as Kubernetes stores
//!   them, with no rules of their own: aggregation fills them from the
//!   `system:aggregate-to-*` roles and from any role a CRD's author labels
//!   to join them. Only what skiff has a use for is here: the user-facing
//!   and discovery roles, the roles of nodes and of joining nodes, of the
//!   scheduler, the controller manager and the service proxy, and the
//!   Roles in `kube-system` (leader locking, the authentication ConfigMap)
//!   and `kube-public` (the bootstrap signer's). Left out: Kubernetes'
//!   per-controller roles (skiff's controllers share one identity),
//!   `system:heapster`, `system:kube-dns`, `system:kube-aggregator`,
//!   `system:monitoring`, `system:kubelet-api-admin`,
//!   `system:node-problem-detector`, `system:persistent-volume-provisioner`,
//!   the CSR approvers but the kubelet-client one, and the `kube-system`
//!   Roles of the bootstrap signer, token cleaner and cloud provider.
//! * **skiff's additions**, all named `skiff:…`: for each of skiff's
//!   components, what its API calls need beyond the Kubernetes roles its
//!   identity already holds (found by surveying every call each makes; the
//!   tests below replay them), and bindings Kubernetes leaves to
//!   installers: anonymous discovery, and join tokens as kubeadm binds
//!   them.
//!
//! One deviation from Kubernetes: `skiff:anonymous-discovery` lets
//! unauthenticated clients read discovery, which Kubernetes stopped
//! allowing in 1.14.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::csr;
use crate::user::names;

/// The label kube-apiserver puts on every object it bootstraps.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";

/// The annotation saying the object is reconciled on start; an
/// administrator sets it to `"false"` to keep their own edits.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

const RBAC_DEFAULTS: &str = "rbac-defaults";
const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The group whose members may scrape metrics (`system:monitoring`).
const MONITORING: &str = "system:monitoring";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const CERTIFICATES_GROUP: &str = "certificates.k8s.io";
const CORE: &str = "";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const LIST_WATCH: &[&str] = &["list", "watch"];

const KUBE_SYSTEM: &str = "kube-system";
const KUBE_PUBLIC: &str = "kube-public";

/// The Lease skiff's scheduler and controllers are elected on
/// (`skiff server`).
const CONTROLLERS_LEASE: &str = "skiff-controllers";
/// The user the plugin manager authenticates as.
const PLUGIN_MANAGER: &str = "skiff:plugin-manager";

/// The bootstrap policy: what kube-apiserver reconciles on start, plus the
/// roles of skiff's own components.
#[derive(Clone, Debug, Default)]
pub struct BootstrapPolicy {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// Namespaced roles (in `kube-system`, `kube-public`).
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

/// Every bootstrap object, Kubernetes' and skiff's.
pub fn policy() -> BootstrapPolicy {
    BootstrapPolicy {
        cluster_roles: vec![
            // Users, and whoever else asks.
            cluster_admin(),
            admin(),
            edit(),
            view(),
            aggregate_to_admin(),
            aggregate_to_edit(),
            aggregate_to_view(),
            basic_user(),
            discovery(),
            public_info_viewer(),
            monitoring(),
            aggregated_metrics_reader(),
            service_account_issuer_discovery(),
            auth_delegator(),
            // Nodes, and the nodes joining.
            node(),
            skiff_node(),
            node_bootstrapper(),
            node_client_csr(),
            self_node_client_csr(),
            kubelet_client_approver(),
            // The scheduler.
            kube_scheduler(),
            volume_scheduler(),
            // The controllers.
            kube_controller_manager(),
            skiff_kube_controller_manager(),
            // The service proxy.
            node_proxier(),
            skiff_node_proxier(),
            // The plugin manager.
            skiff_plugin_manager(),
        ],
        cluster_role_bindings: cluster_role_bindings(),
        roles: roles(),
        role_bindings: role_bindings(),
    }
}

// Users.

/// `cluster-admin`: for `system:masters`; anything, anywhere.
fn cluster_admin() -> ClusterRole {
    cluster_role(
        "cluster-admin",
        vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
    )
}

/// `admin`: for a namespace's administrators (bound per namespace);
/// `edit` plus Roles and RoleBindings.
fn admin() -> ClusterRole {
    aggregated("admin", AGGREGATE_TO_ADMIN)
}

/// `edit`: for a namespace's developers; `view` plus writing workloads
/// and reading Secrets.
fn edit() -> ClusterRole {
    aggregates_to(aggregated("edit", AGGREGATE_TO_EDIT), AGGREGATE_TO_ADMIN)
}

/// `view`: for a namespace's readers; everything but Secrets and RBAC.
fn view() -> ClusterRole {
    aggregates_to(aggregated("view", AGGREGATE_TO_VIEW), AGGREGATE_TO_EDIT)
}

/// `system:aggregate-to-admin`: what `admin` adds to `edit`.
fn aggregate_to_admin() -> ClusterRole {
    let role = cluster_role(
        "system:aggregate-to-admin",
        vec![
            rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
            rule(&[RBAC_GROUP], &["rolebindings", "roles"], READ_WRITE),
        ],
    );
    aggregates_to(role, AGGREGATE_TO_ADMIN)
}

/// `system:aggregate-to-edit`: what `edit` adds to `view`.
fn aggregate_to_edit() -> ClusterRole {
    let role = cluster_role(
        "system:aggregate-to-edit",
        vec![
            rule(
                &[CORE],
                &[
                    "pods/attach",
                    "pods/exec",
                    "pods/portforward",
                    "pods/proxy",
                    "secrets",
                    "services/proxy",
                ],
                READ,
            ),
            rule(&[CORE], &["serviceaccounts"], &["impersonate"]),
            rule(
                &[CORE],
                &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
                WRITE,
            ),
            rule(&[CORE], &["pods/eviction"], &["create"]),
            rule(
                &[CORE],
                &[
                    "configmaps",
                    "events",
                    "persistentvolumeclaims",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "secrets",
                    "serviceaccounts",
                    "services",
                    "services/proxy",
                ],
                WRITE,
            ),
            rule(&[CORE], &["serviceaccounts/token"], &["create"]),
            rule(
                &["apps"],
                &[
                    "daemonsets",
                    "deployments",
                    "deployments/rollback",
                    "deployments/scale",
                    "replicasets",
                    "replicasets/scale",
                    "statefulsets",
                    "statefulsets/scale",
                ],
                WRITE,
            ),
            rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
            rule(&["batch"], &["cronjobs", "jobs"], WRITE),
            rule(
                &["extensions"],
                &[
                    "daemonsets",
                    "deployments",
                    "deployments/rollback",
                    "deployments/scale",
                    "ingresses",
                    "networkpolicies",
                    "replicasets",
                    "replicasets/scale",
                    "replicationcontrollers/scale",
                ],
                WRITE,
            ),
            rule(&["policy"], &["poddisruptionbudgets"], WRITE),
            rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], WRITE),
            rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
        ],
    );
    aggregates_to(role, AGGREGATE_TO_EDIT)
}

/// `system:aggregate-to-view`: what `view` reads.
fn aggregate_to_view() -> ClusterRole {
    let role = cluster_role(
        "system:aggregate-to-view",
        vec![
            rule(
                &[CORE],
                &[
                    "configmaps",
                    "endpoints",
                    "persistentvolumeclaims",
                    "persistentvolumeclaims/status",
                    "pods",
                    "replicationcontrollers",
                    "replicationcontrollers/scale",
                    "serviceaccounts",
                    "services",
                    "services/status",
                ],
                READ,
            ),
            rule(
                &[CORE],
                &[
                    "bindings",
                    "events",
                    "limitranges",
                    "namespaces/status",
                    "pods/log",
                    "pods/status",
                    "replicationcontrollers/status",
                    "resourcequotas",
                    "resourcequotas/status",
                ],
                READ,
            ),
            rule(&[CORE], &["namespaces"], READ),
            rule(&["discovery.k8s.io"], &["endpointslices"], READ),
            rule(
                &["apps"],
                &[
                    "controllerrevisions",
                    "daemonsets",
                    "daemonsets/status",
                    "deployments",
                    "deployments/scale",
                    "deployments/status",
                    "replicasets",
                    "replicasets/scale",
                    "replicasets/status",
                    "statefulsets",
                    "statefulsets/scale",
                    "statefulsets/status",
                ],
                READ,
            ),
            rule(
                &["autoscaling"],
                &["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
                READ,
            ),
            rule(
                &["batch"],
                &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                READ,
            ),
            rule(
                &["extensions"],
                &[
                    "daemonsets",
                    "daemonsets/status",
                    "deployments",
                    "deployments/scale",
                    "deployments/status",
                    "ingresses",
                    "ingresses/status",
                    "networkpolicies",
                    "replicasets",
                    "replicasets/scale",
                    "replicasets/status",
                    "replicationcontrollers/scale",
                ],
                READ,
            ),
            rule(
                &["policy"],
                &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                READ,
            ),
            rule(
                &["networking.k8s.io"],
                &["ingresses", "ingresses/status", "networkpolicies"],
                READ,
            ),
        ],
    );
    aggregates_to(role, AGGREGATE_TO_VIEW)
}

/// `system:basic-user`: for every authenticated user; asking what they
/// may do and who they are.
fn basic_user() -> ClusterRole {
    cluster_role(
        "system:basic-user",
        vec![
            rule(
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                &["create"],
            ),
            rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
        ],
    )
}

/// `system:discovery`: for every client (anonymous ones too, in skiff);
/// API discovery, OpenAPI, health and version.
fn discovery() -> ClusterRole {
    cluster_role(
        "system:discovery",
        vec![urls(
            &[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
            &["get"],
        )],
    )
}

/// `system:aggregated-metrics-reader`: the Metrics API, for whoever may
/// view a namespace (`kubectl top`). metrics-server installs this role
/// beside its API; skiff serves that API itself, so it has the role from
/// the start, with metrics-server's name, rules and aggregation labels.
fn aggregated_metrics_reader() -> ClusterRole {
    let role = cluster_role(
        "system:aggregated-metrics-reader",
        vec![rule(&["metrics.k8s.io"], &["nodes", "pods"], READ)],
    );
    let role = aggregates_to(role, AGGREGATE_TO_VIEW);
    let role = aggregates_to(role, AGGREGATE_TO_EDIT);
    aggregates_to(role, AGGREGATE_TO_ADMIN)
}

/// `system:monitoring`: what a monitoring system scrapes and probes
/// (metrics, health), bound to the group of the same name as Kubernetes
/// binds it.
fn monitoring() -> ClusterRole {
    cluster_role(
        "system:monitoring",
        vec![urls(
            &[
                "/healthz",
                "/healthz/*",
                "/livez",
                "/livez/*",
                "/metrics",
                "/metrics/slis",
                "/readyz",
                "/readyz/*",
            ],
            &["get"],
        )],
    )
}

/// `system:public-info-viewer`: for every client, anonymous ones too;
/// health and version.
fn public_info_viewer() -> ClusterRole {
    cluster_role(
        "system:public-info-viewer",
        vec![urls(
            &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            &["get"],
        )],
    )
}

/// `system:service-account-issuer-discovery`: for ServiceAccounts; the
/// OIDC discovery document and signing keys of their tokens.
fn service_account_issuer_discovery() -> ClusterRole {
    cluster_role(
        "system:service-account-issuer-discovery",
        vec![urls(
            &[
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ],
            &["get"],
        )],
    )
}

/// `system:auth-delegator`: for servers that delegate authentication and
/// authorization to the API (bound by their installers).
fn auth_delegator() -> ClusterRole {
    cluster_role(
        "system:auth-delegator",
        vec![
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
        ],
    )
}

// Nodes.

/// `system:node`: for node agents, through the Node authorizer (no
/// binding names it), which narrows it to the node's own objects.
fn node() -> ClusterRole {
    cluster_role(
        "system:node",
        vec![
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(
                &["authorization.k8s.io"],
                &["localsubjectaccessreviews", "subjectaccessreviews"],
                &["create"],
            ),
            rule(&[CORE], &["services"], READ),
            rule(&[CORE], &["nodes"], &["create", "get", "list", "watch"]),
            rule(&[CORE], &["nodes/status"], &["patch", "update"]),
            rule(&[CORE], &["nodes"], &["patch", "update"]),
            rule(&[CORE], &["events"], &["create", "patch", "update"]),
            rule(&[CORE], &["pods"], READ),
            rule(&[CORE], &["pods"], &["create", "delete"]),
            rule(&[CORE], &["pods/status"], &["patch", "update"]),
            rule(&[CORE], &["pods/eviction"], &["create"]),
            rule(&[CORE], &["configmaps", "secrets"], READ),
            rule(&[CORE], &["persistentvolumeclaims", "persistentvolumes"], &["get"]),
            rule(&[CORE], &["endpoints"], &["get"]),
            rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            ),
            rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["create", "delete", "get", "patch", "update"],
            ),
            rule(&["storage.k8s.io"], &["volumeattachments"], &["get"]),
            rule(&[CORE], &["serviceaccounts/token"], &["create"]),
            rule(&[CORE], &["persistentvolumeclaims/status"], &["get", "patch", "update"]),
            rule(&["storage.k8s.io"], &["csidrivers"], READ),
            rule(
                &["storage.k8s.io"],
                &["csinodes"],
                &["create", "delete", "get", "patch", "update"],
            ),
            rule(&["node.k8s.io"], &["runtimeclasses"], READ),
        ],
    )
}

/// `skiff:node`: for skiff's node agent, what it needs beyond
/// `system:node`. Not bound: the Node authorizer applies it together with
/// `system:node`. Empty today: every call the agent makes is in
/// `system:node`, or (Secrets, ConfigMaps) the Node authorizer's to grant.
fn skiff_node() -> ClusterRole {
    cluster_role("skiff:node", Vec::new())
}

/// `system:node-bootstrapper`: for join tokens; asking for a node's
/// client certificate.
fn node_bootstrapper() -> ClusterRole {
    cluster_role(
        "system:node-bootstrapper",
        vec![rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        )],
    )
}

/// `…:certificatesigningrequests:nodeclient`: for join tokens; has the
/// first node client certificate approved automatically.
fn node_client_csr() -> ClusterRole {
    cluster_role(
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        vec![rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests/nodeclient"],
            &["create"],
        )],
    )
}

/// `…:certificatesigningrequests:selfnodeclient`: for nodes; has the
/// renewal of their own client certificate approved automatically.
fn self_node_client_csr() -> ClusterRole {
    cluster_role(
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        vec![rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests/selfnodeclient"],
            &["create"],
        )],
    )
}

/// `…:kube-apiserver-client-kubelet-approver`: for whoever approves
/// kubelet client certificates (the CSR approver).
fn kubelet_client_approver() -> ClusterRole {
    cluster_role(
        "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
        vec![named(
            rule(&[CERTIFICATES_GROUP], &["signers"], &["approve"]),
            &[csr::KUBE_APISERVER_CLIENT_KUBELET],
        )],
    )
}

// The scheduler. skiff's needs no role of its own: it watches Nodes and
// Pods, binds pods, patches their status and records Events, all of which
// `system:kube-scheduler` grants.

/// `system:kube-scheduler`: for the scheduler.
fn kube_scheduler() -> ClusterRole {
    cluster_role(
        "system:kube-scheduler",
        vec![
            events(),
            rule(&["coordination.k8s.io"], &["leases"], &["create"]),
            named(
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["get", "list", "update", "watch"],
                ),
                &["kube-scheduler"],
            ),
            rule(&["coordination.k8s.io"], &["leasecandidates"], READ_WRITE),
            rule(&[CORE], &["nodes"], READ),
            rule(&[CORE], &["pods"], &["delete", "get", "list", "watch"]),
            rule(&[CORE], &["bindings", "pods/binding"], &["create"]),
            rule(&[CORE], &["pods/status"], &["patch", "update"]),
            rule(&[CORE], &["replicationcontrollers", "services"], READ),
            rule(&["apps", "extensions"], &["replicasets"], READ),
            rule(&["apps"], &["statefulsets"], READ),
            rule(&["policy"], &["poddisruptionbudgets"], READ),
            rule(&[CORE], &["persistentvolumeclaims", "persistentvolumes"], READ),
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
            rule(&["storage.k8s.io"], &["csinodes"], READ),
            rule(&["storage.k8s.io"], &["volumeattachments"], READ),
            rule(&[CORE], &["namespaces"], READ),
            rule(&["storage.k8s.io"], &["csidrivers"], READ),
            rule(&["storage.k8s.io"], &["csistoragecapacities"], READ),
        ],
    )
}

/// `system:volume-scheduler`: for the scheduler; binding volumes.
fn volume_scheduler() -> ClusterRole {
    cluster_role(
        "system:volume-scheduler",
        vec![
            rule(
                &[CORE],
                &["persistentvolumes"],
                &["get", "list", "patch", "update", "watch"],
            ),
            rule(&["storage.k8s.io"], &["storageclasses"], READ),
            rule(
                &[CORE],
                &["persistentvolumeclaims"],
                &["get", "list", "patch", "update", "watch"],
            ),
        ],
    )
}

// The controllers.

/// `system:kube-controller-manager`: for the controller manager; in
/// Kubernetes only enough to start, each controller having a role of its own.
fn kube_controller_manager() -> ClusterRole {
    cluster_role(
        "system:kube-controller-manager",
        vec![
            events(),
            rule(&["coordination.k8s.io"], &["leases"], &["create"]),
            named(
                rule(&["coordination.k8s.io"], &["leases"], &["get", "update"]),
                &["kube-controller-manager"],
            ),
            rule(&[CORE], &["secrets", "serviceaccounts"], &["create"]),
            rule(&[CORE], &["secrets"], &["delete"]),
            rule(
                &[CORE],
                &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                &["get"],
            ),
            rule(&[CORE], &["secrets", "serviceaccounts"], &["update"]),
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
            rule(&["*"], &["*"], LIST_WATCH),
            rule(&[CORE], &["serviceaccounts/token"], &["create"]),
        ],
    )
}

/// `skiff:kube-controller-manager`: for skiff's controllers, which all run
/// as `system:kube-controller-manager`; what they need beyond that role
/// (which already lists and watches everything, records Events, creates
/// Leases and ServiceAccounts).
fn skiff_kube_controller_manager() -> ClusterRole {
    cluster_role(
        "skiff:kube-controller-manager",
        vec![
            // The garbage collector reads owners of any kind, patches
            // ownerReferences and finalizers and deletes dependents; the
            // namespace controller deletes everything in a namespace. A `*`
            // resource matches subresources too, so this also covers every
            // other controller's patches (`…/status` included) and deletes.
            rule(&["*"], &["*"], &["delete", "deletecollection", "get", "patch"]),
            // ReplicaSet, ReplicationController, DaemonSet, StatefulSet and
            // Job pods; the ServiceAccount controller's `kube-root-ca.crt`;
            // the endpoints controller's server-side applies, which create.
            rule(&[CORE], &["configmaps", "endpoints", "pods"], &["create"]),
            rule(&["discovery.k8s.io"], &["endpointslices"], &["create"]),
            // Deployments' ReplicaSets, CronJobs' Jobs.
            rule(&["apps"], &["replicasets"], &["create"]),
            rule(&["batch"], &["jobs"], &["create"]),
            // The APIService controller.
            rule(&["apiregistration.k8s.io"], &["apiservices"], &["create"]),
            // The namespace controller, when a namespace is empty.
            rule(&[CORE], &["namespaces/finalize"], &["update"]),
            // Leader election of the controllers and the scheduler.
            named(
                rule(&["coordination.k8s.io"], &["leases"], &["get", "update"]),
                &[CONTROLLERS_LEASE],
            ),
            // The certificate approver and signer, as Kubernetes'
            // `system:controller:certificate-controller`: approving through
            // the approval subresource, issuing through status, as the
            // approver and signer of node and proxy client certificates.
            // (SubjectAccessReviews, which the approver asks, are
            // `system:kube-controller-manager`'s.)
            rule(
                &[CERTIFICATES_GROUP],
                &[
                    "certificatesigningrequests/approval",
                    "certificatesigningrequests/status",
                ],
                &["update"],
            ),
            named(
                rule(&[CERTIFICATES_GROUP], &["signers"], &["approve", "sign"]),
                &[csr::KUBE_APISERVER_CLIENT_KUBELET, csr::KUBE_APISERVER_CLIENT],
            ),
        ],
    )
}

// The service proxy.

/// `system:node-proxier`: for the service proxy.
fn node_proxier() -> ClusterRole {
    cluster_role(
        "system:node-proxier",
        vec![
            rule(&[CORE], &["endpoints", "services"], LIST_WATCH),
            rule(&[CORE], &["nodes"], READ),
            events(),
            rule(&["networking.k8s.io"], &["servicecidrs"], LIST_WATCH),
            rule(&["discovery.k8s.io"], &["endpointslices"], LIST_WATCH),
        ],
    )
}

/// `skiff:node-proxier`: for skiff's service proxy, what it needs beyond
/// `system:node-proxier`. Its Ingress listeners take certificates from
/// `kubernetes.io/tls` Secrets in every namespace, which RBAC cannot
/// narrow by type: this reads all Secrets. It enforces NetworkPolicies,
/// as a CNI plugin's node agent does: it reads them, the Namespaces'
/// labels and every pod's labels and address. It wakes workloads
/// autoscalers took to zero through their `scale` subresource.
fn skiff_node_proxier() -> ClusterRole {
    cluster_role(
        "skiff:node-proxier",
        vec![
            rule(&["networking.k8s.io"], &["ingresses"], LIST_WATCH),
            rule(&["networking.k8s.io"], &["ingresses/status"], &["patch"]),
            rule(&[CORE], &["secrets"], LIST_WATCH),
            rule(&["networking.k8s.io"], &["networkpolicies"], LIST_WATCH),
            rule(&[CORE], &["namespaces", "pods"], LIST_WATCH),
            // Scale from zero (`skiff_proxy::wake`): the autoscalers that
            // may take a workload to zero, and their targets' scale, which
            // admission lets it take from 0 replicas to 1 only.
            rule(&["autoscaling"], &["horizontalpodautoscalers"], LIST_WATCH),
            rule(&["*"], &["*/scale"], &["get", "patch"]),
        ],
    )
}

// The plugin manager.

/// `skiff:plugin-manager`: for the plugin manager; WasmPlugins and their
/// status, and Namespaces for admission plugins' namespace selectors.
fn skiff_plugin_manager() -> ClusterRole {
    cluster_role(
        "skiff:plugin-manager",
        vec![
            rule(&["skiff.dev"], &["wasmplugins"], LIST_WATCH),
            rule(&["skiff.dev"], &["wasmplugins/status"], &["patch"]),
            rule(&[CORE], &["namespaces"], LIST_WATCH),
        ],
    )
}

fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let kcm = || user(names::KUBE_CONTROLLER_MANAGER);
    let scheduler = || user(names::KUBE_SCHEDULER);
    vec![
        // Kubernetes'.
        binds("cluster-admin", vec![group(names::MASTERS)]),
        binds("system:basic-user", vec![group(names::AUTHENTICATED)]),
        binds("system:discovery", vec![group(names::AUTHENTICATED)]),
        binds("system:monitoring", vec![group(MONITORING)]),
        binds(
            "system:public-info-viewer",
            vec![group(names::AUTHENTICATED), group(names::UNAUTHENTICATED)],
        ),
        binds(
            "system:service-account-issuer-discovery",
            vec![group(names::SERVICE_ACCOUNTS)],
        ),
        // Bound to no one: the Node authorizer grants it.
        binds("system:node", Vec::new()),
        binds("system:node-proxier", vec![user(names::KUBE_PROXY)]),
        binds("system:kube-scheduler", vec![scheduler()]),
        binds("system:volume-scheduler", vec![scheduler()]),
        binds("system:kube-controller-manager", vec![kcm()]),
        // skiff's components.
        binds("skiff:kube-controller-manager", vec![kcm()]),
        binds("skiff:node-proxier", vec![user(names::KUBE_PROXY)]),
        binds("skiff:plugin-manager", vec![user(PLUGIN_MANAGER)]),
        // Anonymous clients may read discovery.
        cluster_binding(
            "skiff:anonymous-discovery",
            "system:discovery",
            vec![group(names::UNAUTHENTICATED)],
        ),
        // Join tokens ask for a node client certificate, approved on
        // sight; nodes renew theirs likewise (kubeadm's bindings).
        cluster_binding(
            "skiff:node-bootstrapper",
            "system:node-bootstrapper",
            vec![group(names::BOOTSTRAPPERS)],
        ),
        cluster_binding(
            "skiff:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![group(names::BOOTSTRAPPERS)],
        ),
        cluster_binding(
            "skiff:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![group(names::NODES)],
        ),
    ]
}

fn roles() -> Vec<Role> {
    vec![
        authentication_reader(),
        leader_locking("kube-controller-manager"),
        leader_locking("kube-scheduler"),
        bootstrap_signer(),
        plugin_pull_secrets(),
    ]
}

/// `kube-system/skiff:plugin-manager`: the plugin manager reads the pull
/// secrets WasmPlugins name, which live in `kube-system`.
fn plugin_pull_secrets() -> Role {
    role(
        KUBE_SYSTEM,
        "skiff:plugin-manager",
        vec![rule(&[CORE], &["secrets"], &["get"])],
    )
}

/// `kube-system/extension-apiserver-authentication-reader`: for the
/// controller manager and the scheduler, as servers delegating
/// authentication; the client CA they are to trust.
fn authentication_reader() -> Role {
    role(
        KUBE_SYSTEM,
        "extension-apiserver-authentication-reader",
        vec![named(
            rule(&[CORE], &["configmaps"], READ),
            &["extension-apiserver-authentication"],
        )],
    )
}

/// `kube-system/system::leader-locking-<component>`: for the controller
/// manager's or the scheduler's leader election.
fn leader_locking(component: &str) -> Role {
    let lock_verbs = &["create", "get", "list", "update", "watch"];
    role(
        KUBE_SYSTEM,
        &format!("system::leader-locking-{component}"),
        vec![
            rule(&[CORE], &["configmaps"], &["watch"]),
            named(rule(&[CORE], &["configmaps"], &["get", "update"]), &[component]),
            rule(&["coordination.k8s.io"], &["leases"], lock_verbs),
            rule(&["coordination.k8s.io"], &["leasecandidates"], lock_verbs),
        ],
    )
}

/// `kube-public/system:controller:bootstrap-signer`: for the bootstrap
/// signer, which signs the public `cluster-info` ConfigMap joining nodes
/// read.
fn bootstrap_signer() -> Role {
    role(
        KUBE_PUBLIC,
        "system:controller:bootstrap-signer",
        vec![
            rule(&[CORE], &["configmaps"], READ),
            named(rule(&[CORE], &["configmaps"], &["update"]), &["cluster-info"]),
            events(),
        ],
    )
}

fn role_bindings() -> Vec<RoleBinding> {
    vec![
        role_binding(
            KUBE_SYSTEM,
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![user(names::KUBE_CONTROLLER_MANAGER), user(names::KUBE_SCHEDULER)],
        ),
        role_binding(
            KUBE_SYSTEM,
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![
                user(names::KUBE_CONTROLLER_MANAGER),
                service_account(KUBE_SYSTEM, "kube-controller-manager"),
                service_account(KUBE_SYSTEM, "leader-election-controller"),
            ],
        ),
        role_binding(
            KUBE_SYSTEM,
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![
                user(names::KUBE_SCHEDULER),
                service_account(KUBE_SYSTEM, "kube-scheduler"),
            ],
        ),
        role_binding(
            KUBE_PUBLIC,
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![service_account(KUBE_SYSTEM, "bootstrap-signer")],
        ),
        role_binding(
            KUBE_SYSTEM,
            "skiff:plugin-manager",
            "skiff:plugin-manager",
            vec![user(PLUGIN_MANAGER)],
        ),
    ]
}

/// A rule on resources; lists sorted, as Kubernetes stores them.
fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(sorted(groups)),
        resources: Some(sorted(resources)),
        verbs: sorted(verbs),
        ..PolicyRule::default()
    }
}

/// `rule` limited to the objects named `names`.
fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
    rule.resource_names = Some(sorted(names));
    rule
}

/// A rule on non-resource paths.
fn urls(paths: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(sorted(paths)),
        verbs: sorted(verbs),
        ..PolicyRule::default()
    }
}

/// Recording Events, in either API group.
fn events() -> PolicyRule {
    rule(&[CORE, "events.k8s.io"], &["events"], &["create", "patch", "update"])
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut items: Vec<String> = items.iter().map(|s| (*s).to_string()).collect();
    items.sort();
    items
}

/// Metadata of a bootstrap object: its name, and the label and annotation
/// every one carries.
fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([(
            BOOTSTRAPPING_LABEL.to_string(),
            RBAC_DEFAULTS.to_string(),
        )])),
        annotations: Some(BTreeMap::from([(
            AUTOUPDATE_ANNOTATION.to_string(),
            "true".to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(None, name),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

/// A role with no rules of its own, holding those of every ClusterRole
/// labelled `label: "true"`.
fn aggregated(name: &str, label: &str) -> ClusterRole {
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(label.to_string(), "true".to_string())])),
        match_expressions: None,
    };
    ClusterRole {
        metadata: meta(None, name),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![selector]),
        }),
    }
}

/// Labels `role` to join the role aggregating on `label`.
fn aggregates_to(mut role: ClusterRole, label: &str) -> ClusterRole {
    role.metadata
        .labels
        .get_or_insert_default()
        .insert(label.to_string(), "true".to_string());
    role
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(Some(namespace), name),
        rules: Some(rules),
    }
}

/// A binding named after the ClusterRole it binds, as Kubernetes names its
/// own.
fn binds(role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    cluster_binding(role, role, subjects)
}

/// Binds the ClusterRole `role` to `subjects` (none: a binding Kubernetes
/// keeps for its role without granting it to anyone).
fn cluster_binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(None, name),
        role_ref: role_ref("ClusterRole", role),
        subjects: (!subjects.is_empty()).then_some(subjects),
    }
}

/// Binds the Role `role` of `namespace` to `subjects`.
fn role_binding(namespace: &str, name: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some(namespace), name),
        role_ref: role_ref("Role", role),
        subjects: Some(subjects),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: RBAC_GROUP.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
    }
}

fn user(name: &str) -> Subject {
    Subject {
        api_group: Some(RBAC_GROUP.to_string()),
        kind: "User".to_string(),
        name: name.to_string(),
        namespace: None,
    }
}

fn group(name: &str) -> Subject {
    Subject {
        kind: "Group".to_string(),
        ..user(name)
    }
}

fn service_account(namespace: &str, name: &str) -> Subject {
    Subject {
        api_group: None,
        kind: "ServiceAccount".to_string(),
        name: name.to_string(),
        namespace: Some(namespace.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::rbac::{Objects, Policy, rule_allows, selector_matches};
    use crate::{Attributes, ResourceAttributes, Target, UserInfo};

    fn is_reconciled_default(meta: &ObjectMeta) -> bool {
        let label = meta.labels.as_ref().and_then(|l| l.get(BOOTSTRAPPING_LABEL));
        let annotation = meta.annotations.as_ref().and_then(|a| a.get(AUTOUPDATE_ANNOTATION));
        label.map(String::as_str) == Some("rbac-defaults") && annotation.map(String::as_str) == Some("true")
    }

    /// (namespace, name): what names an object of one kind.
    fn key(meta: &ObjectMeta) -> (String, String) {
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    fn find_cluster_role<'a>(policy: &'a BootstrapPolicy, name: &str) -> &'a ClusterRole {
        policy
            .cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no ClusterRole {name}"))
    }

    fn objects(policy: &BootstrapPolicy) -> Objects {
        Objects {
            cluster_roles: policy
                .cluster_roles
                .iter()
                .map(|r| (key(&r.metadata).1, r.clone()))
                .collect(),
            cluster_role_bindings: policy
                .cluster_role_bindings
                .iter()
                .map(|b| (key(&b.metadata).1, b.clone()))
                .collect(),
            roles: policy.roles.iter().map(|r| (key(&r.metadata), r.clone())).collect(),
            role_bindings: policy
                .role_bindings
                .iter()
                .map(|b| (key(&b.metadata), b.clone()))
                .collect(),
        }
    }

    /// `verb` on `resource` (`pods/status` naming a subresource) of
    /// `group`, in `namespace` (empty: cluster-wide), of the object `name`.
    fn request(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> (String, Target) {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let target = Target::Resource(ResourceAttributes {
            namespace: namespace.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            name: name.to_string(),
        });
        (verb.to_string(), target)
    }

    fn path(verb: &str, path: &str) -> (String, Target) {
        (verb.to_string(), Target::NonResource(path.to_string()))
    }

    fn allowed(policy: &Policy, user: &UserInfo, (verb, target): &(String, Target)) -> bool {
        policy
            .authorize(&Attributes {
                user: user.clone(),
                verb: verb.clone(),
                target: target.clone(),
            })
            .is_allowed()
    }

    fn assert_allowed(policy: &Policy, user: &UserInfo, calls: &[(String, Target)]) {
        let refused: Vec<_> = calls.iter().filter(|c| !allowed(policy, user, c)).collect();
        assert!(refused.is_empty(), "{} is refused {refused:#?}", user.name);
    }

    fn assert_refused(policy: &Policy, user: &UserInfo, calls: &[(String, Target)]) {
        let granted: Vec<_> = calls.iter().filter(|c| allowed(policy, user, c)).collect();
        assert!(granted.is_empty(), "{} is granted {granted:#?}", user.name);
    }

    fn system_user(name: &str) -> UserInfo {
        UserInfo::new(name, [names::AUTHENTICATED])
    }

    #[test]
    fn every_object_is_a_reconciled_default() {
        let policy = policy();
        let metas = policy
            .cluster_roles
            .iter()
            .map(|r| &r.metadata)
            .chain(policy.cluster_role_bindings.iter().map(|b| &b.metadata))
            .chain(policy.roles.iter().map(|r| &r.metadata))
            .chain(policy.role_bindings.iter().map(|b| &b.metadata));
        for meta in metas {
            assert!(
                is_reconciled_default(meta),
                "{:?} lacks the label or annotation",
                meta.name
            );
        }
    }

    #[test]
    fn names_are_unique_per_kind() {
        let policy = policy();
        let unique = |names: Vec<(String, String)>| {
            let set: BTreeSet<_> = names.iter().collect();
            assert_eq!(set.len(), names.len(), "duplicates in {names:?}");
        };
        unique(policy.cluster_roles.iter().map(|r| key(&r.metadata)).collect());
        unique(policy.cluster_role_bindings.iter().map(|b| key(&b.metadata)).collect());
        unique(policy.roles.iter().map(|r| key(&r.metadata)).collect());
        unique(policy.role_bindings.iter().map(|b| key(&b.metadata)).collect());
        let namespaces = policy.roles.iter().map(|r| &r.metadata.namespace);
        let mut namespaces = namespaces.chain(policy.role_bindings.iter().map(|b| &b.metadata.namespace));
        assert!(namespaces.all(|n| [Some(KUBE_SYSTEM), Some(KUBE_PUBLIC)].contains(&n.as_deref())));
    }

    #[test]
    fn every_binding_names_a_role_of_the_policy() {
        let policy = policy();
        let cluster_roles: BTreeSet<_> = policy.cluster_roles.iter().map(|r| key(&r.metadata).1).collect();
        let roles: BTreeSet<_> = policy.roles.iter().map(|r| key(&r.metadata)).collect();
        for binding in &policy.cluster_role_bindings {
            assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
            assert_eq!(binding.role_ref.kind, "ClusterRole", "{:?}", binding.metadata.name);
            assert!(
                cluster_roles.contains(&binding.role_ref.name),
                "{:?} names {}",
                binding.metadata.name,
                binding.role_ref.name
            );
        }
        for binding in &policy.role_bindings {
            let (namespace, _) = key(&binding.metadata);
            let found = match binding.role_ref.kind.as_str() {
                "Role" => roles.contains(&(namespace, binding.role_ref.name.clone())),
                "ClusterRole" => cluster_roles.contains(&binding.role_ref.name),
                _ => false,
            };
            assert!(found, "{:?} names {:?}", binding.metadata.name, binding.role_ref);
        }
    }

    #[test]
    fn admin_edit_and_view_aggregate_the_roles_labelled_for_them() {
        let policy = policy();
        let gathered = |aggregate: &str| -> BTreeSet<String> {
            let role = find_cluster_role(&policy, aggregate);
            assert_eq!(role.rules, None, "{aggregate} is stored without rules of its own");
            let selectors = role
                .aggregation_rule
                .as_ref()
                .and_then(|a| a.cluster_role_selectors.clone())
                .unwrap_or_default();
            policy
                .cluster_roles
                .iter()
                .filter(|r| {
                    let labels = r.metadata.labels.clone().unwrap_or_default();
                    selectors.iter().any(|s| selector_matches(s, &labels))
                })
                .map(|r| key(&r.metadata).1)
                .collect()
        };
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let metrics = "system:aggregated-metrics-reader";
        assert_eq!(gathered("admin"), set(&["edit", metrics, "system:aggregate-to-admin"]));
        assert_eq!(gathered("edit"), set(&[metrics, "system:aggregate-to-edit", "view"]));
        assert_eq!(gathered("view"), set(&[metrics, "system:aggregate-to-view"]));
    }

    #[test]
    fn cluster_admin_may_do_anything() {
        let policy = policy();
        let role = find_cluster_role(&policy, "cluster-admin");
        let everything = PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..PolicyRule::default()
        };
        let every_path = PolicyRule {
            non_resource_urls: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..PolicyRule::default()
        };
        assert_eq!(role.rules, Some(vec![everything, every_path]));
        let binding = policy
            .cluster_role_bindings
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some("cluster-admin"))
            .and_then(|b| b.subjects.clone());
        assert_eq!(binding, Some(vec![group(names::MASTERS)]));
    }

    #[test]
    fn aggregation_gives_namespace_roles_their_kubernetes_meaning() {
        let mut objects = objects(&policy());
        for role in ["admin", "edit", "view"] {
            let binding = RoleBinding {
                metadata: meta(Some("team"), role),
                role_ref: role_ref("ClusterRole", role),
                subjects: Some(vec![user(role)]),
            };
            objects.role_bindings.insert(("team".into(), role.into()), binding);
        }
        let policy = Policy::new(&objects);
        let (admin, edit, view) = (system_user("admin"), system_user("edit"), system_user("view"));
        let read = [
            request("list", "", "pods", "team", ""),
            request("get", "apps", "deployments/scale", "team", "web"),
        ];
        let write = [
            request("create", "", "pods", "team", ""),
            request("patch", "apps", "deployments", "team", "web"),
            request("get", "", "secrets", "team", "db"),
        ];
        let administer = [request("create", RBAC_GROUP, "rolebindings", "team", "")];
        assert_allowed(&policy, &view, &read);
        assert_refused(&policy, &view, &write);
        assert_allowed(&policy, &edit, &[&read[..], &write[..]].concat());
        assert_refused(&policy, &edit, &administer);
        assert_allowed(&policy, &admin, &[&read[..], &write[..], &administer[..]].concat());
        // Since 1.22 no default role writes Endpoints (CVE-2021-25740).
        assert_refused(&policy, &admin, &[request("create", "", "endpoints", "team", "")]);
        assert_refused(&policy, &admin, &[request("list", "", "pods", "elsewhere", "")]);
    }

    /// Every call the scheduler makes (see the survey of components' API
    /// calls): all within Kubernetes' own roles.
    #[test]
    fn the_scheduler_may_make_its_calls() {
        let policy = Policy::new(&objects(&policy()));
        let scheduler = system_user(names::KUBE_SCHEDULER);
        let calls = [
            request("list", "", "nodes", "", ""),
            request("watch", "", "nodes", "", ""),
            request("list", "", "pods", "", ""),
            request("watch", "", "pods", "", ""),
            request("patch", "", "pods/status", "team", "web-1"),
            request("create", "", "pods/binding", "team", "web-1"),
            request("create", "", "events", "team", ""),
        ];
        assert_allowed(&policy, &scheduler, &calls);
        assert_refused(&policy, &scheduler, &[request("delete", "", "nodes", "", "n1")]);
    }

    #[test]
    fn the_controllers_may_make_their_calls() {
        let policy = Policy::new(&objects(&policy()));
        let controllers = system_user(names::KUBE_CONTROLLER_MANAGER);
        let mut calls = Vec::new();
        // Watches: each controller's kinds, and the garbage collector's
        // every kind.
        for (group, resource, namespace) in [
            ("apps", "replicasets", ""),
            ("", "replicationcontrollers", ""),
            ("", "pods", ""),
            ("apps", "deployments", ""),
            ("apps", "daemonsets", ""),
            ("", "nodes", ""),
            ("apps", "statefulsets", ""),
            ("batch", "jobs", ""),
            ("batch", "cronjobs", ""),
            ("", "services", ""),
            ("", "namespaces", ""),
            ("", "serviceaccounts", ""),
            ("", "configmaps", ""),
            ("", "secrets", ""),
            ("example.com", "widgets", ""),
            ("coordination.k8s.io", "leases", "kube-node-lease"),
        ] {
            calls.push(request("list", group, resource, namespace, ""));
            calls.push(request("watch", group, resource, namespace, ""));
        }
        // Each kind's own writes.
        for (group, resource) in [
            ("", "pods"),
            ("apps", "replicasets"),
            ("batch", "jobs"),
            ("", "configmaps"),
            ("", "serviceaccounts"),
            ("", "endpoints"),
            ("discovery.k8s.io", "endpointslices"),
            ("", "events"),
        ] {
            calls.push(request("create", group, resource, "team", ""));
        }
        for (verb, group, resource, name) in [
            ("list", "", "pods", ""),
            ("list", "apps", "replicasets", ""),
            ("list", "batch", "jobs", ""),
            ("get", "apps", "replicasets", "web-5d8"),
            ("get", "", "serviceaccounts", "default"),
            ("get", "", "configmaps", "kube-root-ca.crt"),
            ("patch", "", "configmaps", "kube-root-ca.crt"),
            ("patch", "", "pods", "web-5d8-x"),
            ("patch", "apps", "replicasets", "web-5d8"),
            ("patch", "apps", "deployments", "web"),
            ("patch", "", "endpoints", "web"),
            ("patch", "discovery.k8s.io", "endpointslices", "web"),
            ("patch", "", "pods/status", "web-5d8-x"),
            ("patch", "apps", "replicasets/status", "web-5d8"),
            ("patch", "", "replicationcontrollers/status", "old"),
            ("patch", "apps", "deployments/status", "web"),
            ("patch", "apps", "daemonsets/status", "agent"),
            ("patch", "apps", "statefulsets/status", "db"),
            ("patch", "batch", "jobs/status", "once"),
            ("patch", "batch", "cronjobs/status", "nightly"),
            ("delete", "", "pods", "web-5d8-x"),
            ("delete", "apps", "replicasets", "web-5d8"),
            ("delete", "batch", "jobs", "once"),
            // The namespace controller, emptying a namespace.
            ("list", "example.com", "widgets", ""),
            ("deletecollection", "", "secrets", ""),
            ("deletecollection", "example.com", "widgets", ""),
            ("delete", "example.com", "widgets", "w"),
            // The garbage collector.
            ("get", "example.com", "widgets", "w"),
            ("patch", "example.com", "widgets", "w"),
        ] {
            calls.push(request(verb, group, resource, "team", name));
        }
        // Cluster-scoped.
        for (verb, group, resource, name) in [
            ("list", "", "pods", ""),
            ("get", "", "nodes", "n1"),
            ("patch", "", "nodes", "n1"),
            ("patch", "", "nodes/status", "n1"),
            ("patch", "", "namespaces/status", "team"),
            ("update", "", "namespaces/finalize", "team"),
            ("list", "apiextensions.k8s.io", "customresourcedefinitions", ""),
            ("list", "apiregistration.k8s.io", "apiservices", ""),
            ("create", "apiregistration.k8s.io", "apiservices", ""),
            ("delete", "apiregistration.k8s.io", "apiservices", "v1.apps"),
            ("patch", "apiregistration.k8s.io", "apiservices/status", "v1.apps"),
            ("get", RBAC_GROUP, "clusterroles", "view"),
            ("patch", RBAC_GROUP, "clusterroles", "view"),
            ("delete", "example.com", "gizmos", "g"),
        ] {
            calls.push(request(verb, group, resource, "", name));
        }
        // Leader election, and the Events of cluster-scoped objects.
        calls.push(request(
            "get",
            "coordination.k8s.io",
            "leases",
            "kube-system",
            CONTROLLERS_LEASE,
        ));
        calls.push(request("create", "coordination.k8s.io", "leases", "kube-system", ""));
        calls.push(request(
            "update",
            "coordination.k8s.io",
            "leases",
            "kube-system",
            CONTROLLERS_LEASE,
        ));
        calls.push(request("create", "", "events", "default", ""));
        // The certificate approver and signer.
        for (verb, resource, name) in [
            ("list", "certificatesigningrequests", ""),
            ("watch", "certificatesigningrequests", ""),
            ("update", "certificatesigningrequests/approval", "node-csr-1"),
            ("update", "certificatesigningrequests/status", "node-csr-1"),
            ("approve", "signers", csr::KUBE_APISERVER_CLIENT_KUBELET),
            ("sign", "signers", csr::KUBE_APISERVER_CLIENT_KUBELET),
            ("approve", "signers", csr::KUBE_APISERVER_CLIENT),
            ("sign", "signers", csr::KUBE_APISERVER_CLIENT),
        ] {
            calls.push(request(verb, CERTIFICATES_GROUP, resource, "", name));
        }
        calls.push(request(
            "create",
            "authorization.k8s.io",
            "subjectaccessreviews",
            "",
            "",
        ));
        // Discovery.
        calls.extend(["/api", "/api/v1", "/apis", "/apis/apps/v1"].map(|p| path("get", p)));
        assert_allowed(&policy, &controllers, &calls);
        assert_refused(
            &policy,
            &controllers,
            &[
                request("update", "apps", "deployments", "team", "web"),
                request("create", RBAC_GROUP, "clusterrolebindings", "", ""),
                request("update", "coordination.k8s.io", "leases", "team", "someone-elses"),
                request("approve", CERTIFICATES_GROUP, "signers", "", "example.com/anything"),
                request(
                    "sign",
                    CERTIFICATES_GROUP,
                    "signers",
                    "",
                    "kubernetes.io/kubelet-serving",
                ),
            ],
        );
    }

    #[test]
    fn the_proxy_may_make_its_calls() {
        let policy = Policy::new(&objects(&policy()));
        let proxy = system_user(names::KUBE_PROXY);
        let mut calls = Vec::new();
        for (group, resource) in [
            ("", "services"),
            ("", "endpoints"),
            ("", "nodes"),
            ("networking.k8s.io", "ingresses"),
            ("", "secrets"),
            ("networking.k8s.io", "networkpolicies"),
            ("", "namespaces"),
            ("", "pods"),
        ] {
            calls.push(request("list", group, resource, "", ""));
            calls.push(request("watch", group, resource, "", ""));
        }
        calls.push(request("patch", "networking.k8s.io", "ingresses/status", "team", "web"));
        calls.push(request("create", "", "events", "team", ""));
        calls.push(request("list", "autoscaling", "horizontalpodautoscalers", "", ""));
        calls.push(request("watch", "autoscaling", "horizontalpodautoscalers", "", ""));
        calls.push(request("get", "apps", "deployments/scale", "team", "web"));
        calls.push(request("patch", "apps", "deployments/scale", "team", "web"));
        assert_allowed(&policy, &proxy, &calls);
        assert_refused(
            &policy,
            &proxy,
            &[
                request("create", "", "secrets", "team", ""),
                request("patch", "networking.k8s.io", "ingresses", "team", "web"),
                request("list", "networking.k8s.io", "ingressclasses", "", ""),
                request("patch", "apps", "deployments", "team", "web"),
            ],
        );
    }

    #[test]
    fn the_plugin_manager_may_make_its_calls() {
        let policy = Policy::new(&objects(&policy()));
        let manager = system_user(PLUGIN_MANAGER);
        let calls = [
            request("list", "skiff.dev", "wasmplugins", "", ""),
            request("watch", "skiff.dev", "wasmplugins", "", ""),
            request("patch", "skiff.dev", "wasmplugins/status", "", "deny-latest"),
            request("list", "", "namespaces", "", ""),
            request("watch", "", "namespaces", "", ""),
            request("get", "", "secrets", "kube-system", "registry"),
        ];
        assert_allowed(&policy, &manager, &calls);
        assert_refused(
            &policy,
            &manager,
            &[
                request("patch", "skiff.dev", "wasmplugins", "", "deny-latest"),
                request("list", "", "pods", "", ""),
                request("get", "", "secrets", "team", "pull"),
            ],
        );
    }

    /// The node agent's calls, against the rules the Node authorizer holds
    /// (it grants referenced Secrets and ConfigMaps itself).
    #[test]
    fn the_node_agent_may_make_its_calls() {
        let policy = Policy::new(&objects(&policy()));
        let rules: Vec<PolicyRule> = ["system:node", "skiff:node"]
            .iter()
            .flat_map(|name| policy.cluster_role(name).unwrap_or_default().to_vec())
            .collect();
        let calls = [
            request("create", "", "nodes", "", ""),
            request("patch", "", "nodes", "", "n1"),
            request("patch", "", "nodes/status", "", "n1"),
            request("create", "coordination.k8s.io", "leases", "kube-node-lease", ""),
            request("patch", "coordination.k8s.io", "leases", "kube-node-lease", "n1"),
            request("list", "", "pods", "", ""),
            request("watch", "", "pods", "", ""),
            request("delete", "", "pods", "team", "web-1"),
            request("patch", "", "pods/status", "team", "web-1"),
            request("create", "", "events", "team", ""),
        ];
        for (verb, target) in &calls {
            assert!(rules.iter().any(|r| rule_allows(r, verb, target)), "{verb} {target:?}");
        }
        // Nothing binds the node roles: a node holds them only through the
        // Node authorizer.
        assert_refused(&policy, &UserInfo::node("n1"), &calls[..1]);
    }

    #[test]
    fn anonymous_clients_may_read_discovery_and_nothing_else() {
        let policy = Policy::new(&objects(&policy()));
        let anonymous = UserInfo::anonymous();
        let discovery = ["/api", "/apis/apps/v1", "/openapi/v3", "/version", "/healthz"].map(|p| path("get", p));
        assert_allowed(&policy, &anonymous, &discovery);
        assert_refused(
            &policy,
            &anonymous,
            &[
                path("get", "/metrics"),
                path("post", "/api"),
                request("list", "", "namespaces", "", ""),
                request("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", ""),
            ],
        );
    }

    #[test]
    fn join_tokens_may_ask_for_a_node_certificate() {
        let policy = Policy::new(&objects(&policy()));
        let token = UserInfo::new("system:bootstrap:abcdef", [names::BOOTSTRAPPERS, names::AUTHENTICATED]);
        assert_allowed(
            &policy,
            &token,
            &[
                request("create", "certificates.k8s.io", "certificatesigningrequests", "", ""),
                request("get", "certificates.k8s.io", "certificatesigningrequests", "", "csr-1"),
                request(
                    "create",
                    "certificates.k8s.io",
                    "certificatesigningrequests/nodeclient",
                    "",
                    "",
                ),
            ],
        );
        assert_refused(&policy, &token, &[request("list", "", "pods", "", "")]);
        let node = UserInfo::node("n1");
        assert_allowed(
            &policy,
            &node,
            &[request(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests/selfnodeclient",
                "",
                "",
            )],
        );
    }
}
