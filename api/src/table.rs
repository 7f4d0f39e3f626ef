//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks
//! for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! [`table`] assembles the whole response from a kind's
//! [`Printer`](crate::kinds::Printer): its columns (those with
//! `priority: 1` appear only under `kubectl get -o wide`; the server always
//! sends them) and each object's cells, which live with the kind under
//! [`crate::kinds`]. Custom resources print NAME and the columns their CRD
//! version declares (`additionalPrinterColumns`, see
//! [`CustomColumn`](crate::printer::CustomColumn)), or NAME and AGE when it
//! declares none.
//!
//! Printing assumes the defaults the API server applies on create (one
//! replica, Secret type `Opaque`, Service type `ClusterIP`, port protocol
//! `TCP`) for objects stored without them. Everything here is pure; the
//! current time is a parameter.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::catalog::{Resource, Shape};
use crate::kinds::Printer;
use crate::printer::{Column, CustomColumn, NAME, name, unix_nanos};

/// What each row's `object` carries (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No `object`.
    None,
    /// A `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter value (`None`, `Metadata`, `Object`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// The `PartialObjectMetadata` form of an object: kind, apiVersion and its
/// metadata.
pub fn partial_object_metadata(obj: &Value) -> Value {
    let metadata = obj
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

/// A `meta.k8s.io/v1` Table, serialized with kube-apiserver's field order
/// (`kind`, `apiVersion`, `metadata`, `columnDefinitions`, `rows`; in a row
/// `cells`, `conditions`, `object`), since clients may compare its text.
#[derive(Debug, Serialize)]
pub struct Table<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: ListMeta,
    #[serde(rename = "columnDefinitions")]
    column_definitions: Vec<ColumnDefinition<'a>>,
    rows: Vec<Row>,
}

/// A `TableColumnDefinition`, from a kind's [`Column`] or a CRD's
/// [`CustomColumn`].
#[derive(Debug, Serialize)]
struct ColumnDefinition<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    type_: &'a str,
    format: &'a str,
    description: &'a str,
    priority: i64,
}

impl<'a> From<&'a Column> for ColumnDefinition<'a> {
    fn from(c: &'a Column) -> Self {
        ColumnDefinition {
            name: c.name,
            type_: c.type_,
            format: c.format,
            description: c.description,
            priority: i64::from(c.priority),
        }
    }
}

impl<'a> From<&'a CustomColumn> for ColumnDefinition<'a> {
    fn from(c: &'a CustomColumn) -> Self {
        ColumnDefinition {
            name: &c.name,
            type_: &c.type_,
            format: &c.format,
            description: &c.description,
            priority: c.priority,
        }
    }
}

/// How a resource's objects print.
#[derive(Clone, Copy)]
pub enum Printing<'a> {
    /// With the kind's printer (built-in kinds, and custom resources
    /// whose CRD declares no columns: NAME and AGE).
    Kind(&'a Printer),
    /// NAME, then the columns a CRD version declares.
    Custom(&'a [CustomColumn]),
}

impl std::fmt::Debug for Printing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Printing::Kind(printer) => f.debug_tuple("Kind").field(&printer.columns.len()).finish(),
            Printing::Custom(columns) => f.debug_tuple("Custom").field(columns).finish(),
        }
    }
}

impl<'a> Printing<'a> {
    pub fn of(resource: &'a Resource) -> Printing<'a> {
        match &resource.shape {
            Shape::Custom { columns, .. } if !columns.is_empty() => Printing::Custom(columns),
            _ => Printing::Kind(&resource.ops.printer),
        }
    }
}

#[derive(Debug, Serialize)]
struct ListMeta {
    #[serde(rename = "resourceVersion", skip_serializing_if = "String::is_empty")]
    resource_version: String,
    #[serde(rename = "continue", skip_serializing_if = "String::is_empty")]
    continue_token: String,
}

#[derive(Debug, Serialize)]
struct Row {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<Value>,
    /// `null` under `includeObject=None`, as Go writes an empty
    /// `RawExtension`.
    object: Option<Value>,
}

impl Table<'_> {
    /// The same table without `columnDefinitions`, as in watch events after
    /// the first.
    pub fn without_column_definitions(mut self) -> Self {
        self.column_definitions.clear();
        self
    }

    /// The JSON text, without a trailing newline.
    pub fn json(&self) -> Vec<u8> {
        // Strings, numbers and JSON values always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// As a JSON value (whose keys are sorted), for tests and inspection.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A complete `meta.k8s.io/v1` Table of `items`, printed as of now.
pub fn table<'a>(
    printing: Printing<'a>,
    items: &[Value],
    include_object: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Table<'a> {
    table_at(
        printing,
        items,
        include_object,
        resource_version,
        continue_token,
        SystemTime::now(),
    )
}

/// [`table`] as of `now`.
pub fn table_at<'a>(
    printing: Printing<'a>,
    items: &[Value],
    include_object: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
    now: SystemTime,
) -> Table<'a> {
    let now = unix_nanos(now);
    let rows = items
        .iter()
        .map(|item| {
            let (cells, conditions) = match printing {
                Printing::Kind(printer) => ((printer.row)(item, now), (printer.conditions)(item)),
                Printing::Custom(columns) => {
                    let cells = std::iter::once(name(item)).chain(columns.iter().map(|c| c.cell(item, now)));
                    (cells.collect(), None)
                }
            };
            Row {
                cells,
                conditions,
                object: match include_object {
                    IncludeObject::None => None,
                    IncludeObject::Metadata => Some(partial_object_metadata(item)),
                    IncludeObject::Object => Some(item.clone()),
                },
            }
        })
        .collect();
    let column_definitions = match printing {
        Printing::Kind(printer) => printer.columns.iter().map(ColumnDefinition::from).collect(),
        Printing::Custom(columns) => std::iter::once(ColumnDefinition::from(&NAME))
            .chain(columns.iter().map(ColumnDefinition::from))
            .collect(),
    };
    Table {
        kind: "Table",
        api_version: "meta.k8s.io/v1",
        metadata: ListMeta {
            resource_version: resource_version.to_string(),
            continue_token: continue_token.unwrap_or_default().to_string(),
        },
        column_definitions,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::kinds::{self, KindOps};
    use crate::printer::{NAME, NANOS, format_rfc3339};
    use std::time::{Duration, UNIX_EPOCH};

    /// The ops of a kind: served ones from the catalog, custom ones shared.
    fn ops(group: &str, kind: &str) -> &'static KindOps {
        match Catalog::new().by_kind(group, kind) {
            Some(resource) => resource.ops,
            None if (group, kind) == ("events.k8s.io", "Event") => &kinds::event::EVENTS_V1.ops,
            None => &kinds::custom::OPS,
        }
    }

    fn columns(group: &str, kind: &str) -> &'static [Column] {
        ops(group, kind).printer.columns
    }

    fn row(group: &str, kind: &str, obj: &Value, now: SystemTime) -> Vec<Value> {
        (ops(group, kind).printer.row)(obj, unix_nanos(now))
    }

    fn pods() -> &'static Printer {
        &ops("", "Pod").printer
    }

    /// 2024-05-01T12:00:00Z
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_714_564_800)
    }

    /// RFC 3339 for `secs` seconds before [`now`].
    fn ago(secs: i64) -> String {
        format_rfc3339(unix_nanos(now()) - i128::from(secs) * NANOS)
    }

    fn cells(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
        let cells = row(group, kind, obj, now());
        assert_eq!(cells.len(), columns(group, kind).len(), "{kind}: {cells:?}");
        cells
    }

    fn pod(status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(300)},
            "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "log", "image": "busybox"}]},
            "status": status,
        })
    }

    #[test]
    fn pod_running() {
        let mut p = pod(json!({
            "phase": "Running",
            "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}},
                {"name": "log", "ready": true, "restartCount": 1, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}},
            ],
        }));
        p["spec"]["nodeName"] = json!("node-1");
        assert_eq!(
            cells("", "Pod", &p),
            [
                json!("web"),
                json!("2/2"),
                json!("Running"),
                json!("3 (90s ago)"),
                json!("5m"),
                json!("10.0.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_pending_and_waiting() {
        let p = pod(json!({"phase": "Pending"}));
        let c = cells("", "Pod", &p);
        assert_eq!(&c[1..4], [json!("0/2"), json!("Pending"), json!("0")]);
        assert_eq!(&c[5..7], [json!("<none>"), json!("<none>")]);

        let p = pod(json!({
            "phase": "Pending",
            "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ErrImagePull"}}},
                {"name": "log", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
        }));
        // The first container's reason wins: statuses are walked backwards.
        assert_eq!(cells("", "Pod", &p)[2], json!("ErrImagePull"));

        let p = pod(json!({
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3600 * 5)}}},
                {"name": "log", "ready": true, "restartCount": 0, "state": {"running": {}}},
            ],
        }));
        let c = cells("", "Pod", &p);
        assert_eq!(&c[1..4], [json!("1/2"), json!("CrashLoopBackOff"), json!("4 (5h ago)")]);
    }

    #[test]
    fn pod_terminated_states() {
        let p = pod(json!({
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "log", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            ],
        }));
        assert_eq!(cells("", "Pod", &p)[2], json!("Completed"));
        let t = table_at(Printing::Kind(pods()), &[p], IncludeObject::None, "", None, now()).to_value();
        assert_eq!(t["rows"][0]["conditions"][0]["type"], json!("Completed"));

        let p = pod(json!({
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}},
                {"name": "log", "state": {"terminated": {"exitCode": 2}}},
            ],
        }));
        assert_eq!(cells("", "Pod", &p)[2], json!("Signal:9"));

        // One container done, one still running and ready.
        let p = pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "state": {"running": {}}},
                {"name": "log", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            ],
        }));
        assert_eq!(cells("", "Pod", &p)[2], json!("NotReady"));
    }

    #[test]
    fn pod_terminating() {
        let mut p = pod(json!({
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "ready": true, "state": {"running": {}}},
                {"name": "log", "ready": true, "state": {"running": {}}},
            ],
        }));
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells("", "Pod", &p)[2], json!("Terminating"));
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells("", "Pod", &p)[2], json!("Unknown"));
        // A finished pod being deleted keeps its phase.
        let mut p = pod(json!({"phase": "Failed"}));
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells("", "Pod", &p)[2], json!("Failed"));
    }

    #[test]
    fn pod_init_containers() {
        let mut p = pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "migrate", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
                {"name": "seed", "restartCount": 0, "state": {"running": {}}},
            ],
            "containerStatuses": [
                {"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}},
                {"name": "log", "state": {"waiting": {"reason": "PodInitializing"}}},
            ],
        }));
        p["spec"]["initContainers"] = json!([{"name": "migrate"}, {"name": "seed"}, {"name": "warm"}]);
        assert_eq!(cells("", "Pod", &p)[2], json!("Init:1/3"));

        p["status"]["initContainerStatuses"][1]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        p["status"]["initContainerStatuses"][1]["restartCount"] = json!(3);
        let c = cells("", "Pod", &p);
        assert_eq!(c[2], json!("Init:CrashLoopBackOff"));
        assert_eq!(c[3], json!("3"));

        p["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 3}});
        assert_eq!(cells("", "Pod", &p)[2], json!("Init:ExitCode:3"));
        p["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(cells("", "Pod", &p)[2], json!("Init:Error"));
    }

    #[test]
    fn pod_sidecar_counts_as_container() {
        let mut p = pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [
                {"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                 "state": {"running": {}}},
            ],
            "containerStatuses": [
                {"name": "app", "ready": true, "state": {"running": {}}},
                {"name": "log", "ready": true, "state": {"running": {}}},
            ],
        }));
        p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        let c = cells("", "Pod", &p);
        assert_eq!(&c[1..4], [json!("3/3"), json!("Running"), json!("1")]);
    }

    #[test]
    fn pod_readiness_gates_and_gating() {
        let mut p = pod(json!({
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
                {"type": "example.com/lb", "status": "True"},
            ],
            "nominatedNodeName": "node-9",
        }));
        p["spec"]["readinessGates"] = json!([{"conditionType": "example.com/lb"}, {"conditionType": "x/y"}]);
        let c = cells("", "Pod", &p);
        assert_eq!(c[2], json!("SchedulingGated"));
        assert_eq!(c[7], json!("node-9"));
        assert_eq!(c[8], json!("1/2"));
    }

    #[test]
    fn deployment_row_and_columns() {
        let names: Vec<_> = columns("apps", "Deployment").iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let obj = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(2 * 86_400 + 3 * 3600)},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "nginx:1.27"}, {"name": "side", "image": "envoy"}]}},
            },
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            cells("apps", "Deployment", &obj),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d3h"),
                json!("app,side"),
                json!("nginx:1.27,envoy"),
                json!("app=web"),
            ]
        );
        // Fresh object: nothing reported yet, replicas defaulted.
        let fresh = json!({"metadata": {"name": "x", "creationTimestamp": ago(4)}, "spec": {}});
        let c = cells("apps", "Deployment", &fresh);
        assert_eq!(&c[1..5], [json!("0/1"), json!(0), json!(0), json!("4s")]);
    }

    #[test]
    fn service_rows() {
        let names: Vec<_> = columns("", "Service").iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(600)},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"tier": "front", "app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
        });
        assert_eq!(
            cells("", "Service", &svc),
            [
                json!("web"),
                json!("ClusterIP"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80/TCP,53/UDP"),
                json!("10m"),
                json!("app=web,tier=front"),
            ]
        );
        let np = json!({"metadata": {"name": "np"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.11",
                     "ports": [{"port": 80, "nodePort": 30080}]}});
        let c = cells("", "Service", &np);
        assert_eq!(&c[3..5], [json!("<none>"), json!("80:30080/TCP")]);
        assert_eq!(c[5], json!("<unknown>"));
        assert_eq!(c[6], json!("<none>"));
        let lb = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": []}});
        assert_eq!(cells("", "Service", &lb)[3..5], [json!("<pending>"), json!("<none>")]);
        let mut lb2 = lb.clone();
        lb2["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "a.example"}]}});
        lb2["spec"]["externalIPs"] = json!(["198.51.100.1"]);
        assert_eq!(
            cells("", "Service", &lb2)[3],
            json!("203.0.113.9,a.example,198.51.100.1")
        );
        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        assert_eq!(
            cells("", "Service", &headless)[1..3],
            [json!("ClusterIP"), json!("None")]
        );
        let ext = json!({"metadata": {"name": "e"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        assert_eq!(
            cells("", "Service", &ext)[2..4],
            [json!("<none>"), json!("db.example.com")]
        );
    }

    #[test]
    fn workload_rows() {
        let rs = json!({"metadata": {"name": "web-abc"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}});
        let c = cells("apps", "ReplicaSet", &rs);
        assert_eq!(&c[1..4], [json!(3), json!(3), json!(1)]);
        assert_eq!(c[7], json!("app=web,pod-template-hash=abc"));

        let ds = json!({"metadata": {"name": "agent"},
            "spec": {"selector": {}, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 2,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}});
        let c = cells("apps", "DaemonSet", &ds);
        assert_eq!(
            &c[1..7],
            [
                json!(2),
                json!(2),
                json!(2),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux")
            ]
        );
        assert_eq!(c[10], json!("<none>"));

        let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(cells("apps", "StatefulSet", &sts)[1], json!("3/3"));

        let job = json!({"metadata": {"name": "pi", "creationTimestamp": ago(100)},
            "spec": {"completions": 1},
            "status": {"succeeded": 1, "startTime": ago(100), "completionTime": ago(60),
                       "conditions": [{"type": "Complete", "status": "True"}]}});
        let c = cells("batch", "Job", &job);
        assert_eq!(&c[1..5], [json!("Complete"), json!("1/1"), json!("40s"), json!("100s")]);
        let running = json!({"metadata": {"name": "p"}, "spec": {"parallelism": 3},
            "status": {"startTime": ago(30)}});
        assert_eq!(
            cells("batch", "Job", &running)[1..4],
            [json!("Running"), json!("0/1 of 3"), json!("30s")]
        );

        let cj = json!({"metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "suspend": false,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(7200)}});
        let c = cells("batch", "CronJob", &cj);
        assert_eq!(
            &c[1..6],
            [
                json!("0 3 * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("120m")
            ]
        );
    }

    #[test]
    fn other_rows() {
        let node = json!({"metadata": {"name": "n1", "labels": {
                "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian"}}});
        let c = cells("", "Node", &node);
        assert_eq!(
            &c[1..3],
            [json!("Ready,SchedulingDisabled"), json!("control-plane,worker")]
        );
        assert_eq!(
            &c[4..9],
            [
                json!("v1.33.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian"),
                json!("<unknown>")
            ]
        );

        let event = json!({"metadata": {"name": "web.1"}, "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "n1"},
            "message": "Back-off restarting\n", "count": 5,
            "firstTimestamp": ago(600), "lastTimestamp": ago(30)});
        assert_eq!(
            cells("", "Event", &event),
            [
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, n1"),
                json!("Back-off restarting"),
                json!("10m"),
                json!(5),
                json!("web.1")
            ]
        );
        let new_event = json!({"metadata": {"name": "e"}, "eventTime": "2024-05-01T11:59:00.000000Z",
            "regarding": {"kind": "Node", "name": "n1"}, "note": "hi", "reportingController": "skiff"});
        let c = cells("events.k8s.io", "Event", &new_event);
        assert_eq!(&c[..1], [json!("60s")]);
        assert_eq!(
            &c[3..9],
            [
                json!("node/n1"),
                json!(""),
                json!("skiff"),
                json!("hi"),
                json!("60s"),
                json!(1)
            ]
        );

        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        assert_eq!(cells("", "ConfigMap", &cm)[1], json!(3));
        let secret =
            json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells("", "Secret", &secret)[1..3],
            [json!("kubernetes.io/tls"), json!(2)]
        );
        let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        assert_eq!(cells("", "Namespace", &ns)[1], json!("Active"));

        let ep = json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}],
            "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            cells("", "Endpoints", &ep)[1],
            json!("10.0.0.1:80,10.0.0.2:80,[fd00::3]:80 + 3 more...")
        );
        assert_eq!(
            cells("", "Endpoints", &json!({"metadata": {"name": "x"}}))[1],
            json!("<none>")
        );

        let slice = json!({"metadata": {"name": "web-x"}, "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "metrics"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
        assert_eq!(
            cells("discovery.k8s.io", "EndpointSlice", &slice)[1..4],
            [json!("IPv4"), json!("80,metrics"), json!("10.0.0.1,10.0.0.2")]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
        assert_eq!(
            cells("discovery.k8s.io", "EndpointSlice", &empty)[2..4],
            [json!("<unset>"), json!("<unset>")]
        );

        let ing = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example"}, {}], "tls": [{}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        assert_eq!(
            cells("networking.k8s.io", "Ingress", &ing)[1..5],
            [json!("nginx"), json!("a.example"), json!("192.0.2.1"), json!("80, 443")]
        );

        let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                         {"kind": "User", "name": "bob"}]});
        let c = cells("rbac.authorization.k8s.io", "RoleBinding", &rb);
        assert_eq!(c[1], json!("ClusterRole/view"));
        assert_eq!(&c[3..6], [json!("alice, bob"), json!("devs"), json!("build/ci")]);

        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2024-01-02T03:04:05Z"}});
        assert_eq!(
            cells("rbac.authorization.k8s.io", "ClusterRole", &role)[1],
            json!("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            columns("apiextensions.k8s.io", "CustomResourceDefinition")[1].name,
            "Created At"
        );

        let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "node-1"}});
        assert_eq!(cells("coordination.k8s.io", "Lease", &lease)[1], json!("node-1"));
        let rc = json!({"metadata": {"name": "wasm"}, "handler": "wasmtime"});
        assert_eq!(cells("node.k8s.io", "RuntimeClass", &rc)[1], json!("wasmtime"));
        let sa = json!({"metadata": {"name": "default"}});
        assert_eq!(cells("", "ServiceAccount", &sa)[1], json!(0));

        let cr = json!({"metadata": {"name": "w", "creationTimestamp": ago(42)}});
        assert_eq!(cells("example.com", "Widget", &cr), [json!("w"), json!("42s")]);
    }

    #[test]
    fn wide_columns_have_priority_one() {
        let wide: Vec<_> = columns("", "Pod")
            .iter()
            .filter(|c| c.priority == 1)
            .map(|c| c.name)
            .collect();
        assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
        let shown: Vec<_> = columns("", "Event")
            .iter()
            .filter(|c| c.priority == 0)
            .map(|c| c.name)
            .collect();
        assert_eq!(shown, ["Last Seen", "Type", "Reason", "Object", "Message"]);
        assert_eq!(columns("", "Pod")[0].format, "name");
    }

    #[test]
    fn full_table() {
        let p = pod(json!({"phase": "Pending"}));
        let t = table_at(
            Printing::Kind(pods()),
            std::slice::from_ref(&p),
            IncludeObject::Metadata,
            "17",
            Some("tok"),
            now(),
        );
        let text = String::from_utf8(t.json()).unwrap();
        assert!(
            text.starts_with("{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{\"resourceVersion\":\"17\",\"continue\":\"tok\"},\"columnDefinitions\":[{\"name\":\"Name\",\"type\":\"string\",\"format\":\"name\",\"description\":"),
            "kube-apiserver's field order: {text}"
        );
        assert!(text.contains("\"rows\":[{\"cells\":[\"web\","), "{text}");
        let t = t.to_value();
        assert_eq!(t["kind"], json!("Table"));
        assert_eq!(t["apiVersion"], json!("meta.k8s.io/v1"));
        assert_eq!(t["metadata"], json!({"resourceVersion": "17", "continue": "tok"}));
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name",
                   "description": NAME.description, "priority": 0})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(t["rows"][0]["cells"][0], json!("web"));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]})
        );
        assert!(t["rows"][0].get("conditions").is_none());

        let t = table_at(
            Printing::Kind(pods()),
            std::slice::from_ref(&p),
            IncludeObject::Object,
            "",
            None,
            now(),
        )
        .to_value();
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], p);
        let t = table_at(Printing::Kind(pods()), &[p], IncludeObject::None, "", None, now());
        assert_eq!(t.to_value()["rows"][0]["object"], Value::Null);
        assert_eq!(
            t.without_column_definitions().to_value()["columnDefinitions"],
            json!([])
        );

        let t = table(Printing::Kind(pods()), &[], IncludeObject::default(), "1", None).to_value();
        assert_eq!(t["rows"], json!([]));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("bogus"), None);
        assert_eq!(
            partial_object_metadata(&json!({})),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {}})
        );
    }
}
