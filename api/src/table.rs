//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks
//! for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! [`columns`] names the columns of a kind and [`row`] computes one object's
//! cells, both matching what a real API server prints for the built-in kinds
//! (columns with `priority: 1` appear only under `kubectl get -o wide`; the
//! server always sends them). [`table`] assembles the whole response.
//! Kinds without a printer get NAME and AGE, as custom resources without
//! printer columns do.
//!
//! Printing assumes the defaults the API server applies on create (one
//! replica, Secret type `Opaque`, Service type `ClusterIP`, port protocol
//! `TCP`) for objects stored without them. Everything here is pure; the
//! current time is a parameter.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::selector::LabelSelector;

/// One column of a Table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header as sent (kubectl upper-cases it).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`.
    pub type_: &'static str,
    /// `name` for the column holding the object's name, else empty.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for the default view, 1 for `-o wide` only.
    pub priority: u8,
}

impl Column {
    /// The `columnDefinitions` entry.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

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

// --- column sets ----------------------------------------------------------

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: "Name of the object, unique within its namespace.",
    priority: 0,
};
const AGE: Column = col("Age", "string", "Time since the object was created.");
const CREATED_AT: Column = col("Created At", "date", "When the object was created (UTC).");
const CONTAINERS: Column = wide("Containers", "string", "Names of the containers in the pod template.");
const IMAGES: Column = wide("Images", "string", "Images of the containers in the pod template.");
const SELECTOR: Column = wide("Selector", "string", "Label selector for the pods managed.");

const POD: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready containers out of all containers."),
    col("Status", "string", "Summary of the pod's state."),
    col(
        "Restarts",
        "string",
        "Container restarts, and how long ago the last one was.",
    ),
    AGE,
    wide("IP", "string", "The pod's first IP address."),
    wide("Node", "string", "Node the pod is bound to."),
    wide(
        "Nominated Node",
        "string",
        "Node the scheduler nominated while preempting.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "Readiness gates that are true, out of all gates.",
    ),
];
const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready pods out of desired pods."),
    col("Up-to-date", "integer", "Pods running the current template."),
    col("Available", "integer", "Pods available to serve."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const REPLICA_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", "Number of pods wanted."),
    col("Current", "integer", "Number of pods that exist."),
    col("Ready", "integer", "Number of ready pods."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const DAEMON_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", "Nodes that should run the daemon pod."),
    col("Current", "integer", "Nodes running at least one daemon pod."),
    col("Ready", "integer", "Nodes whose daemon pod is ready."),
    col("Up-to-date", "integer", "Nodes running the current template."),
    col("Available", "integer", "Nodes whose daemon pod is available."),
    col("Node Selector", "string", "Node labels the pods require."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const STATEFUL_SET: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready pods out of desired pods."),
    AGE,
    CONTAINERS,
    IMAGES,
];
const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Summary of the job's state."),
    col("Completions", "string", "Succeeded pods out of required completions."),
    col("Duration", "string", "How long the job ran or has been running."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string", "Cron schedule."),
    col("Timezone", "string", "Time zone of the schedule."),
    col("Suspend", "boolean", "Whether new runs are suspended."),
    col("Active", "integer", "Jobs currently running."),
    col("Last Schedule", "string", "Time since a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", "How the service is exposed."),
    col("Cluster-IP", "string", "Virtual IP inside the cluster."),
    col("External-IP", "string", "Addresses reachable from outside the cluster."),
    col("Port(s)", "string", "Ports exposed, with node ports."),
    AGE,
    wide("Selector", "string", "Labels of the pods the service routes to."),
];
const ENDPOINTS: &[Column] = &[NAME, col("Endpoints", "string", "Ready addresses and ports."), AGE];
const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", "Address family of the endpoints."),
    col("Ports", "string", "Ports of the endpoints."),
    col("Endpoints", "string", "Addresses of the endpoints."),
    AGE,
];
const CONFIG_MAP: &[Column] = &[NAME, col("Data", "integer", "Number of data entries."), AGE];
const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", "Type of the secret."),
    col("Data", "integer", "Number of data entries."),
    AGE,
];
const NAMESPACE: &[Column] = &[NAME, col("Status", "string", "Phase of the namespace."), AGE];
const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "Readiness and schedulability of the node."),
    col("Roles", "string", "Roles from node-role labels."),
    AGE,
    col("Version", "string", "Kubelet version."),
    wide("Internal-IP", "string", "First internal address."),
    wide("External-IP", "string", "First external address."),
    wide("OS-Image", "string", "Operating system image."),
    wide("Kernel-Version", "string", "Kernel version."),
    wide("Container-Runtime", "string", "Container runtime and version."),
];
const EVENT: &[Column] = &[
    col("Last Seen", "string", "Time since the event was last observed."),
    col("Type", "string", "Normal or Warning."),
    col("Reason", "string", "Short machine-readable reason."),
    col("Object", "string", "The object the event is about."),
    wide("Subobject", "string", "Part of the object the event is about."),
    wide("Source", "string", "Component that reported the event."),
    col("Message", "string", "Human-readable description."),
    wide("First Seen", "string", "Time since the event was first observed."),
    wide("Count", "integer", "Number of occurrences."),
    Column { priority: 1, ..NAME },
];
const SERVICE_ACCOUNT: &[Column] = &[NAME, col("Secrets", "integer", "Number of secrets listed."), AGE];
const LEASE: &[Column] = &[NAME, col("Holder", "string", "Current holder of the lease."), AGE];
const INGRESS: &[Column] = &[
    NAME,
    col("Class", "string", "Ingress class."),
    col("Hosts", "string", "Hosts the rules match."),
    col("Address", "string", "Load balancer addresses."),
    col("Ports", "string", "Ports served."),
    AGE,
];
const RUNTIME_CLASS: &[Column] = &[NAME, col("Handler", "string", "Runtime handler."), AGE];
const NAME_CREATED_AT: &[Column] = &[NAME, CREATED_AT];
const ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string", "The role bound."),
    AGE,
    wide("Users", "string", "Users bound."),
    wide("Groups", "string", "Groups bound."),
    wide("ServiceAccounts", "string", "Service accounts bound."),
];
const DEFAULT: &[Column] = &[NAME, col("Age", "date", "Time since the object was created.")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    Service,
    Endpoints,
    EndpointSlice,
    ConfigMap,
    Secret,
    Namespace,
    Node,
    Event,
    ServiceAccount,
    Lease,
    Ingress,
    RuntimeClass,
    CreatedAt,
    RoleBinding,
    Default,
}

fn printer(group: &str, kind: &str) -> Printer {
    match (group, kind) {
        ("", "Pod") => Printer::Pod,
        ("apps", "Deployment") => Printer::Deployment,
        ("apps", "ReplicaSet") => Printer::ReplicaSet,
        ("apps", "DaemonSet") => Printer::DaemonSet,
        ("apps", "StatefulSet") => Printer::StatefulSet,
        ("batch", "Job") => Printer::Job,
        ("batch", "CronJob") => Printer::CronJob,
        ("", "Service") => Printer::Service,
        ("", "Endpoints") => Printer::Endpoints,
        ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
        ("", "ConfigMap") => Printer::ConfigMap,
        ("", "Secret") => Printer::Secret,
        ("", "Namespace") => Printer::Namespace,
        ("", "Node") => Printer::Node,
        ("" | "events.k8s.io", "Event") => Printer::Event,
        ("", "ServiceAccount") => Printer::ServiceAccount,
        ("coordination.k8s.io", "Lease") => Printer::Lease,
        ("networking.k8s.io", "Ingress") => Printer::Ingress,
        ("node.k8s.io", "RuntimeClass") => Printer::RuntimeClass,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole")
        | ("apiextensions.k8s.io", "CustomResourceDefinition") => Printer::CreatedAt,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => Printer::RoleBinding,
        _ => Printer::Default,
    }
}

/// The columns of kind `group`/`kind` (`""` for the core group).
pub fn columns(group: &str, kind: &str) -> &'static [Column] {
    match printer(group, kind) {
        Printer::Pod => POD,
        Printer::Deployment => DEPLOYMENT,
        Printer::ReplicaSet => REPLICA_SET,
        Printer::DaemonSet => DAEMON_SET,
        Printer::StatefulSet => STATEFUL_SET,
        Printer::Job => JOB,
        Printer::CronJob => CRON_JOB,
        Printer::Service => SERVICE,
        Printer::Endpoints => ENDPOINTS,
        Printer::EndpointSlice => ENDPOINT_SLICE,
        Printer::ConfigMap => CONFIG_MAP,
        Printer::Secret => SECRET,
        Printer::Namespace => NAMESPACE,
        Printer::Node => NODE,
        Printer::Event => EVENT,
        Printer::ServiceAccount => SERVICE_ACCOUNT,
        Printer::Lease => LEASE,
        Printer::Ingress => INGRESS,
        Printer::RuntimeClass => RUNTIME_CLASS,
        Printer::CreatedAt => NAME_CREATED_AT,
        Printer::RoleBinding => ROLE_BINDING,
        Printer::Default => DEFAULT,
    }
}

/// One object's cells, one per entry of [`columns`], as of `now`.
pub fn row(group: &str, kind: &str, obj: &Value, now: SystemTime) -> Vec<Value> {
    let now = unix_nanos(now);
    match printer(group, kind) {
        Printer::Pod => pod_row(obj, now),
        Printer::Deployment => deployment_row(obj, now),
        Printer::ReplicaSet => replica_set_row(obj, now),
        Printer::DaemonSet => daemon_set_row(obj, now),
        Printer::StatefulSet => stateful_set_row(obj, now),
        Printer::Job => job_row(obj, now),
        Printer::CronJob => cron_job_row(obj, now),
        Printer::Service => service_row(obj, now),
        Printer::Endpoints => endpoints_row(obj, now),
        Printer::EndpointSlice => endpoint_slice_row(obj, now),
        Printer::ConfigMap => {
            let n = len_at(obj, &["data"]) + len_at(obj, &["binaryData"]);
            vec![name(obj), json!(n), age(obj, now)]
        }
        Printer::Secret => vec![
            name(obj),
            json!(str_at(obj, &["type"]).unwrap_or("Opaque")),
            json!(len_at(obj, &["data"])),
            age(obj, now),
        ],
        Printer::Namespace => vec![
            name(obj),
            json!(str_at(obj, &["status", "phase"]).unwrap_or("Active")),
            age(obj, now),
        ],
        Printer::Node => node_row(obj, now),
        Printer::Event => event_row(obj, now),
        Printer::ServiceAccount => {
            vec![name(obj), json!(len_at(obj, &["secrets"])), age(obj, now)]
        }
        Printer::Lease => vec![
            name(obj),
            json!(str_at(obj, &["spec", "holderIdentity"]).unwrap_or("")),
            age(obj, now),
        ],
        Printer::Ingress => ingress_row(obj, now),
        Printer::RuntimeClass => vec![name(obj), json!(str_at(obj, &["handler"]).unwrap_or("")), age(obj, now)],
        Printer::CreatedAt => {
            let created = str_at(obj, &["metadata", "creationTimestamp"])
                .and_then(parse_rfc3339)
                .map(format_rfc3339)
                .unwrap_or_default();
            vec![name(obj), json!(created)]
        }
        Printer::RoleBinding => role_binding_row(obj, now),
        Printer::Default => vec![name(obj), age(obj, now)],
    }
}

/// The row conditions Kubernetes attaches (a finished pod is `Completed`),
/// if any.
fn row_conditions(group: &str, kind: &str, obj: &Value) -> Option<Value> {
    if printer(group, kind) != Printer::Pod {
        return None;
    }
    let (reason, message) = match str_at(obj, &["status", "phase"]) {
        Some("Succeeded") => ("Succeeded", "The pod completed successfully."),
        Some("Failed") => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
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

/// A complete `meta.k8s.io/v1` Table of `items`, printed as of now.
pub fn table(
    group: &str,
    kind: &str,
    items: &[Value],
    include_object: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    table_at(
        group,
        kind,
        items,
        include_object,
        resource_version,
        continue_token,
        SystemTime::now(),
    )
}

/// [`table`] as of `now`.
pub fn table_at(
    group: &str,
    kind: &str,
    items: &[Value],
    include_object: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
    now: SystemTime,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), json!(token));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(row(group, kind, item, now)));
            if let Some(conditions) = row_conditions(group, kind, item) {
                r.insert("conditions".into(), conditions);
            }
            match include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    r.insert("object".into(), partial_object_metadata(item));
                }
                IncludeObject::Object => {
                    r.insert("object".into(), item.clone());
                }
            }
            Value::Object(r)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(group, kind).iter().map(Column::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// Empties a Table's `columnDefinitions`, as in watch events after the first.
pub fn omit_column_definitions(table: &mut Value) {
    if let Some(defs) = table.get_mut("columnDefinitions") {
        *defs = Value::Array(Vec::new());
    }
}

// --- time -----------------------------------------------------------------

const NANOS: i128 = 1_000_000_000;

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp
/// (`2024-05-01T10:00:00Z`, optional fraction, `Z` or `±hh:mm`).
fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + i128::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            frac *= 10;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    Some(i128::from(seconds) * NANOS + frac)
}

/// `2006-01-02T15:04:05Z` for nanoseconds since the epoch.
fn format_rfc3339(nanos: i128) -> String {
    let secs = i64::try_from(nanos.div_euclid(NANOS)).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The short duration Kubernetes prints for ages: exact up to two minutes,
/// then progressively coarser (`3m2s`, `15m`, `5h3m`, `20h`, `2d3h`, `30d`,
/// `2y45d`, `9y`). Up to a second in the future reads `0s`; further is
/// `<invalid>`.
pub fn human_duration(nanos: i128) -> String {
    let seconds = nanos / NANOS;
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// Time since an RFC 3339 timestamp, `<unknown>` when absent or unparsable.
fn since(timestamp: Option<&str>, now: i128) -> String {
    match timestamp.and_then(parse_rfc3339) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_owned(),
    }
}

// --- JSON access ------------------------------------------------------------

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// Like [`str_at`], treating `""` as absent.
fn non_empty<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    str_at(v, path).filter(|s| !s.is_empty())
}

fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Entries of an array or object (0 when absent).
fn len_at(v: &Value, path: &[&str]) -> usize {
    match at(v, path) {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(o)) => o.len(),
        _ => 0,
    }
}

fn name(obj: &Value) -> Value {
    json!(str_at(obj, &["metadata", "name"]).unwrap_or(""))
}

fn age(obj: &Value, now: i128) -> Value {
    json!(since(str_at(obj, &["metadata", "creationTimestamp"]), now))
}

/// `replicas` defaults to 1 when the object carries none.
fn desired_replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1)
}

fn condition_true(status: &Value, kind: &str) -> bool {
    list_at(status, &["conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == Some(kind) && str_at(c, &["status"]) == Some("True"))
}

/// `k1=v1,k2=v2` of a string map, sorted; `<none>` when empty.
fn format_labels(v: Option<&Value>) -> String {
    let pairs: Vec<String> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        "<none>".to_owned()
    } else {
        let mut pairs = pairs;
        pairs.sort();
        pairs.join(",")
    }
}

/// A `metav1.LabelSelector` as a string: `""` when empty, `<invalid>` when it
/// does not convert.
fn selector_string(v: Option<&Value>) -> String {
    match LabelSelector::from_json(v.unwrap_or(&Value::Null)) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".to_owned(),
    }
}

/// Like [`selector_string`], but `<none>` when empty and `<error>` when bad.
fn format_label_selector(v: Option<&Value>) -> String {
    match LabelSelector::from_json(v.unwrap_or(&Value::Null)) {
        Ok(s) if s.requirements().is_empty() => "<none>".to_owned(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".to_owned(),
    }
}

/// Comma-separated container names and images of a pod spec.
fn containers_and_images(pod_spec: Option<&Value>) -> (Value, Value) {
    let containers = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let field = |key: &str| {
        containers
            .iter()
            .map(|c| str_at(c, &[key]).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (json!(field("name")), json!(field("image")))
}

/// `a,b,c + N more...` after three items; `empty` when there are none.
fn list_with_more(items: &[String], total: usize, empty: &str) -> String {
    if items.is_empty() {
        return empty.to_owned();
    }
    let shown = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if total > 3 {
        format!("{shown} + {} more...", total - 3)
    } else {
        shown
    }
}

/// Load-balancer ingress addresses (IP, else hostname), sorted and unique.
fn load_balancer_addresses(status: Option<&Value>) -> String {
    let ingress = status
        .and_then(|s| s.get("ingress"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let set: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|i| non_empty(i, &["ip"]).or_else(|| non_empty(i, &["hostname"])))
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

// --- printers ---------------------------------------------------------------

fn pod_row(pod: &Value, now: i128) -> Vec<Value> {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let status = pod.get("status").unwrap_or(&Value::Null);
    let init_specs = list_at(spec, &["initContainers"]);
    let is_sidecar = |name: Option<&str>| {
        init_specs
            .iter()
            .any(|c| str_at(c, &["name"]) == name && str_at(c, &["restartPolicy"]) == Some("Always"))
    };
    let finished_at = |cs: &Value| str_at(cs, &["lastState", "terminated", "finishedAt"]).and_then(parse_rfc3339);

    let total = list_at(spec, &["containers"]).len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, &["restartPolicy"]) == Some("Always"))
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<i128> = None;
    let mut last_sidecar_restart: Option<i128> = None;

    let phase = str_at(status, &["phase"]).unwrap_or("");
    let mut reason = non_empty(status, &["reason"]).unwrap_or(phase).to_owned();
    let gated = list_at(status, &["conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == Some("PodScheduled") && str_at(c, &["reason"]) == Some("SchedulingGated"));
    if gated {
        reason = "SchedulingGated".to_owned();
    }

    let mut initializing = false;
    for (i, cs) in list_at(status, &["initContainerStatuses"]).iter().enumerate() {
        let count = int_at(cs, &["restartCount"]);
        restarts += count;
        last_restart = last_restart.max(finished_at(cs));
        let sidecar = is_sidecar(str_at(cs, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = last_sidecar_restart.max(finished_at(cs));
        }
        let terminated = at(cs, &["state", "terminated"]).filter(|t| t.is_object());
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_at(cs, &["started"]) {
            if bool_at(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        let waiting = non_empty(cs, &["state", "waiting", "reason"]);
        reason = if let Some(t) = terminated {
            match non_empty(t, &["reason"]) {
                Some(r) => format!("Init:{r}"),
                None if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                None => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
            }
        } else if let Some(w) = waiting.filter(|w| *w != "PodInitializing") {
            format!("Init:{w}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(status, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in list_at(status, &["containerStatuses"]).iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            last_restart = last_restart.max(finished_at(cs));
            let terminated = at(cs, &["state", "terminated"]).filter(|t| t.is_object());
            if let Some(w) = non_empty(cs, &["state", "waiting", "reason"]) {
                reason = w.to_owned();
            } else if let Some(t) = terminated {
                reason = match non_empty(t, &["reason"]) {
                    Some(r) => r.to_owned(),
                    None if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    None => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                };
            } else if bool_at(cs, &["ready"]) && at(cs, &["state", "running"]).is_some_and(Value::is_object) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(status, "Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }

    let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null());
    if deleting && str_at(status, &["reason"]) == Some("NodeLost") {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };

    let ip = list_at(status, &["podIPs"])
        .first()
        .and_then(|ip| non_empty(ip, &["ip"]))
        .or_else(|| non_empty(status, &["podIP"]))
        .unwrap_or("<none>");
    let node = non_empty(spec, &["nodeName"]).unwrap_or("<none>");
    let nominated = non_empty(status, &["nominatedNodeName"]).unwrap_or("<none>");
    let gates = list_at(spec, &["readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let conditions = list_at(status, &["conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let wanted = str_at(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == wanted)
                    .is_some_and(|c| str_at(c, &["status"]) == Some("True"))
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(pod, now),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates_cell),
    ]
}

fn deployment_row(obj: &Value, now: i128) -> Vec<Value> {
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )),
        json!(int_at(obj, &["status", "updatedReplicas"])),
        json!(int_at(obj, &["status", "availableReplicas"])),
        age(obj, now),
        containers,
        images,
        json!(selector_string(at(obj, &["spec", "selector"]))),
    ]
}

fn replica_set_row(obj: &Value, now: i128) -> Vec<Value> {
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    vec![
        name(obj),
        json!(desired_replicas(obj)),
        json!(int_at(obj, &["status", "replicas"])),
        json!(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
        containers,
        images,
        json!(format_label_selector(at(obj, &["spec", "selector"]))),
    ]
}

fn daemon_set_row(obj: &Value, now: i128) -> Vec<Value> {
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    let status = |key: &str| json!(int_at(obj, &["status", key]));
    vec![
        name(obj),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        json!(format_labels(at(obj, &["spec", "template", "spec", "nodeSelector"]))),
        age(obj, now),
        containers,
        images,
        json!(format_label_selector(at(obj, &["spec", "selector"]))),
    ]
}

fn stateful_set_row(obj: &Value, now: i128) -> Vec<Value> {
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )),
        age(obj, now),
        containers,
        images,
    ]
}

fn job_row(obj: &Value, now: i128) -> Vec<Value> {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    let completions = match at(obj, &["spec", "completions"]).and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(obj, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = str_at(obj, &["status", "startTime"]).and_then(parse_rfc3339);
    let end = str_at(obj, &["status", "completionTime"]).and_then(parse_rfc3339);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(e)) => human_duration(e - s),
    };
    let status = obj.get("status").unwrap_or(&Value::Null);
    let deleting = at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null());
    let state = if condition_true(status, "Complete") {
        "Complete"
    } else if condition_true(status, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if condition_true(status, "Suspended") {
        "Suspended"
    } else if condition_true(status, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(status, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    vec![
        name(obj),
        json!(state),
        json!(completions),
        json!(duration),
        age(obj, now),
        containers,
        images,
        json!(selector_string(at(obj, &["spec", "selector"]))),
    ]
}

fn cron_job_row(obj: &Value, now: i128) -> Vec<Value> {
    let suspend = match at(obj, &["spec", "suspend"]).and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = match str_at(obj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_owned(),
    };
    let job_spec = at(obj, &["spec", "jobTemplate", "spec"]);
    let (containers, images) = containers_and_images(job_spec.and_then(|s| at(s, &["template", "spec"])));
    vec![
        name(obj),
        json!(str_at(obj, &["spec", "schedule"]).unwrap_or("")),
        json!(str_at(obj, &["spec", "timeZone"]).unwrap_or("<none>")),
        json!(suspend),
        json!(len_at(obj, &["status", "active"])),
        json!(last),
        age(obj, now),
        containers,
        images,
        json!(format_label_selector(job_spec.and_then(|s| s.get("selector")))),
    ]
}

fn service_row(obj: &Value, now: i128) -> Vec<Value> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let kind = non_empty(spec, &["type"]).unwrap_or("ClusterIP");
    let cluster_ip = list_at(spec, &["clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| non_empty(spec, &["clusterIP"]))
        .unwrap_or("<none>");
    let external: Vec<&str> = list_at(spec, &["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(at(obj, &["status", "loadBalancer"]));
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(spec, &["externalName"]).unwrap_or("").to_owned(),
        _ => "<unknown>".to_owned(),
    };
    let ports: Vec<String> = list_at(spec, &["ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = non_empty(p, &["protocol"]).unwrap_or("TCP");
            match int_at(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    vec![
        name(obj),
        json!(kind),
        json!(cluster_ip),
        json!(external_ip),
        json!(ports),
        age(obj, now),
        json!(format_labels(spec.get("selector"))),
    ]
}

fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn endpoints_row(obj: &Value, now: i128) -> Vec<Value> {
    let subsets = list_at(obj, &["subsets"]);
    let cell = if subsets.is_empty() {
        "<none>".to_owned()
    } else {
        let mut list = Vec::new();
        let mut total = 0;
        for subset in subsets {
            let ips: Vec<&str> = list_at(subset, &["addresses"])
                .iter()
                .map(|a| str_at(a, &["ip"]).unwrap_or(""))
                .collect();
            let ports = list_at(subset, &["ports"]);
            if ports.is_empty() {
                total += ips.len();
                list.extend(ips.iter().map(|ip| (*ip).to_owned()));
            } else {
                for port in ports {
                    total += ips.len();
                    let p = int_at(port, &["port"]);
                    list.extend(ips.iter().map(|ip| host_port(ip, p)));
                }
            }
        }
        list_with_more(&list, total, "")
    };
    vec![name(obj), json!(cell), age(obj, now)]
}

fn endpoint_slice_row(obj: &Value, now: i128) -> Vec<Value> {
    let ports: Vec<String> = list_at(obj, &["ports"])
        .iter()
        .map(|p| match at(p, &["port"]).and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => str_at(p, &["name"]).unwrap_or("*").to_owned(),
        })
        .collect();
    let addresses: Vec<String> = list_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| list_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect();
    vec![
        name(obj),
        json!(str_at(obj, &["addressType"]).unwrap_or("")),
        json!(list_with_more(&ports, ports.len(), "<unset>")),
        json!(list_with_more(&addresses, addresses.len(), "<unset>")),
        age(obj, now),
    ]
}

fn node_row(obj: &Value, now: i128) -> Vec<Value> {
    let status = obj.get("status").unwrap_or(&Value::Null);
    let mut state: Vec<&str> = Vec::new();
    if let Some(c) = list_at(status, &["conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == Some("Ready"))
    {
        state.push(if str_at(c, &["status"]) == Some("True") {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        state.push("Unknown");
    }
    if bool_at(obj, &["spec", "unschedulable"]) {
        state.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_owned());
                }
            } else if let Some(v) = value.as_str().filter(|v| !v.is_empty() && key == "kubernetes.io/role") {
                roles.insert(v.to_owned());
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |kind: &str| {
        list_at(status, &["addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == Some(kind))
            .and_then(|a| str_at(a, &["address"]))
            .unwrap_or("<none>")
            .to_owned()
    };
    let info = |key: &str| non_empty(status, &["nodeInfo", key]).unwrap_or("<unknown>");
    vec![
        name(obj),
        json!(state.join(",")),
        json!(roles),
        age(obj, now),
        json!(str_at(status, &["nodeInfo", "kubeletVersion"]).unwrap_or("")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// Core/v1 and events.k8s.io/v1 Events print alike; the latter renames
/// fields (`regarding`, `note`, `deprecated*`).
fn event_row(obj: &Value, now: i128) -> Vec<Value> {
    let field = |core: &str, events: &str| obj.get(core).or_else(|| obj.get(events));
    let time = |core: &str, events: &str| field(core, events).and_then(Value::as_str).filter(|s| !s.is_empty());
    let first = match time("firstTimestamp", "deprecatedFirstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(non_empty(obj, &["eventTime"]), now),
    };
    let mut last = match time("lastTimestamp", "deprecatedLastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = field("count", "deprecatedCount").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = obj.get("series").filter(|s| s.is_object()) {
        last = since(str_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let regarding = field("involvedObject", "regarding").unwrap_or(&Value::Null);
    let kind = str_at(regarding, &["kind"]).unwrap_or("").to_lowercase();
    let target = match non_empty(regarding, &["name"]) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let source = field("source", "deprecatedSource").unwrap_or(&Value::Null);
    let reporting = |core: &str, events: &str| field(core, events).and_then(Value::as_str).unwrap_or("");
    let component = non_empty(source, &["component"]).unwrap_or(reporting("reportingComponent", "reportingController"));
    let instance = non_empty(source, &["host"]).unwrap_or(reporting("reportingInstance", "reportingInstance"));
    let source_cell = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    let message = field("message", "note").and_then(Value::as_str).unwrap_or("").trim();
    vec![
        json!(last),
        json!(str_at(obj, &["type"]).unwrap_or("")),
        json!(str_at(obj, &["reason"]).unwrap_or("")),
        json!(target),
        json!(str_at(regarding, &["fieldPath"]).unwrap_or("")),
        json!(source_cell),
        json!(message),
        json!(first),
        json!(count),
        name(obj),
    ]
}

fn ingress_row(obj: &Value, now: i128) -> Vec<Value> {
    let rules = list_at(obj, &["spec", "rules"]);
    // The first three non-empty hosts; "more" once a rule is left over.
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        more |= hosts.len() == 3;
        if !more {
            hosts.extend(non_empty(rule, &["host"]));
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_owned(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
        (false, false) => hosts.join(","),
    };
    let ports = if list_at(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        json!(str_at(obj, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        json!(hosts),
        json!(load_balancer_addresses(at(obj, &["status", "loadBalancer"]))),
        json!(ports),
        age(obj, now),
    ]
}

fn role_binding_row(obj: &Value, now: i128) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(obj, &["roleRef", "kind"]).unwrap_or(""),
        str_at(obj, &["roleRef", "name"]).unwrap_or("")
    );
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list_at(obj, &["subjects"]) {
        let name = str_at(subject, &["name"]).unwrap_or("");
        match str_at(subject, &["kind"]) {
            Some("User") => users.push(name.to_owned()),
            Some("Group") => groups.push(name.to_owned()),
            Some("ServiceAccount") => {
                accounts.push(format!("{}/{name}", str_at(subject, &["namespace"]).unwrap_or("")))
            }
            _ => {}
        }
    }
    vec![
        name(obj),
        json!(role),
        age(obj, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(accounts.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    fn d(secs: i64) -> String {
        human_duration(i128::from(secs) * NANOS)
    }

    #[test]
    fn human_duration_boundaries() {
        assert_eq!(human_duration(-2 * NANOS), "<invalid>");
        assert_eq!(human_duration(-NANOS - 1), "0s");
        assert_eq!(human_duration(-NANOS), "0s");
        assert_eq!(d(0), "0s");
        assert_eq!(d(5), "5s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(120), "2m");
        assert_eq!(d(182), "3m2s");
        assert_eq!(d(599), "9m59s");
        assert_eq!(d(600), "10m");
        assert_eq!(d(659), "10m");
        assert_eq!(d(3 * 3600 - 1), "179m");
        assert_eq!(d(3 * 3600), "3h");
        assert_eq!(d(3 * 3600 + 60), "3h1m");
        assert_eq!(d(8 * 3600 - 1), "7h59m");
        assert_eq!(d(8 * 3600), "8h");
        assert_eq!(d(48 * 3600 - 1), "47h");
        assert_eq!(d(48 * 3600), "2d");
        assert_eq!(d(51 * 3600), "2d3h");
        assert_eq!(d(8 * 86_400 - 1), "7d23h");
        assert_eq!(d(8 * 86_400), "8d");
        assert_eq!(d(2 * 365 * 86_400 - 1), "729d");
        assert_eq!(d(2 * 365 * 86_400), "2y");
        assert_eq!(d(2 * 365 * 86_400 + 45 * 86_400), "2y45d");
        assert_eq!(d(8 * 365 * 86_400 - 1), "7y364d");
        assert_eq!(d(8 * 365 * 86_400), "8y");
        assert_eq!(d(9 * 365 * 86_400 + 100 * 86_400), "9y");
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00Z"), Some(unix_nanos(now())));
        assert_eq!(parse_rfc3339("2024-05-01T14:00:00+02:00"), Some(unix_nanos(now())));
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.250000Z"),
            Some(unix_nanos(now()) + NANOS / 4)
        );
        assert_eq!(parse_rfc3339("2024-05-01"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(format_rfc3339(unix_nanos(now())), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(parse_rfc3339("2000-02-29T23:59:59Z").unwrap()),
            "2000-02-29T23:59:59Z"
        );
        assert_eq!(since(None, 0), "<unknown>");
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
        let t = table_at("", "Pod", &[p], IncludeObject::None, "", None, now());
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
            "",
            "Pod",
            std::slice::from_ref(&p),
            IncludeObject::Metadata,
            "17",
            Some("tok"),
            now(),
        );
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
            "",
            "Pod",
            std::slice::from_ref(&p),
            IncludeObject::Object,
            "",
            None,
            now(),
        );
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], p);
        let mut t = table_at("", "Pod", &[p], IncludeObject::None, "", None, now());
        assert!(t["rows"][0].get("object").is_none());
        omit_column_definitions(&mut t);
        assert_eq!(t["columnDefinitions"], json!([]));

        let t = table("", "Pod", &[], IncludeObject::default(), "1", None);
        assert_eq!(t["rows"], json!([]));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("bogus"), None);
        assert_eq!(
            partial_object_metadata(&json!({})),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {}})
        );
    }
}
