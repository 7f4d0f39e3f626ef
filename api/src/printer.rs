//! What the kinds' printers share: the [`Column`] type, the columns many
//! kinds print (name, age, a workload's containers and images), and the
//! helpers that turn an object's fields into cells the way kube-apiserver's
//! printers do: human durations (`3m2s`, `2d3h`), label and selector
//! strings, truncated lists.
//!
//! Everything here is pure; the current time is a parameter, in
//! nanoseconds since the epoch. Timestamps are parsed and formatted with
//! `jiff`; only Kubernetes' own short durations are written here.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::selector::LabelSelector;

/// One column of a Table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Header as sent (kubectl upper-cases it).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `name` for the column holding the object's name, else empty.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for the default view, 1 for `-o wide` only.
    pub priority: u8,
}

/// A column a CRD version declares in `additionalPrinterColumns`: its
/// cells come from a JSONPath into each object. The path is Kubernetes'
/// form (`.status.conditions[?(@.type=="Ready")].status`), evaluated as
/// RFC 9535 JSONPath (by `serde_json_path`) once `$` is put in front, which
/// covers the paths CRDs use; the first match is the cell.
#[derive(Clone, Debug)]
pub struct CustomColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    path: serde_json_path::JsonPath,
}

impl CustomColumn {
    /// The column `column` (one entry of `additionalPrinterColumns`)
    /// declares; `Err` says why its `jsonPath` does not parse.
    pub fn parse(column: &Value) -> Result<CustomColumn, String> {
        let text = |field: &str| {
            column
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let json_path = text("jsonPath");
        let path = serde_json_path::JsonPath::parse(&format!("${json_path}")).map_err(|e| e.to_string())?;
        Ok(CustomColumn {
            name: text("name"),
            type_: text("type"),
            format: text("format"),
            description: text("description"),
            priority: column.get("priority").and_then(Value::as_i64).unwrap_or(0),
            path,
        })
    }

    /// The cell of `object` as of `now`, typed as the column says (a
    /// `date` shown as an age, as kube-apiserver shows it); null (kubectl's
    /// `<none>`) when the path finds nothing or a value of another type.
    pub fn cell(&self, object: &Value, now: i128) -> Value {
        let Some(found) = self.path.query(object).first() else {
            return Value::Null;
        };
        match (self.type_.as_str(), found) {
            ("string", Value::String(_)) => found.clone(),
            ("string", other) => json!(other.to_string()),
            ("integer", Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => found.clone(),
            ("date", Value::String(at)) => match parse_rfc3339(at) {
                Some(t) => json!(human_duration(now - t)),
                None => json!("<invalid>"),
            },
            _ => Value::Null,
        }
    }
}

// --- column sets ----------------------------------------------------------

/// A column of the default view.
pub const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown only by `kubectl get -o wide`.
pub const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

pub const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: "Name of the object, unique within its namespace.",
    priority: 0,
};
pub const AGE: Column = col("Age", "string", "Time since the object was created.");
pub const CREATED_AT: Column = col("Created At", "date", "When the object was created (UTC).");
pub const CONTAINERS: Column = wide("Containers", "string", "Names of the containers in the pod template.");
pub const IMAGES: Column = wide("Images", "string", "Images of the containers in the pod template.");
pub const SELECTOR: Column = wide("Selector", "string", "Label selector for the pods managed.");

/// Name and creation time, the printer of RBAC roles and CRDs.
pub const NAME_CREATED_AT: &[Column] = &[NAME, CREATED_AT];

/// The row of [`NAME_CREATED_AT`].
pub fn created_at_row(obj: &Value, _now: i128) -> Vec<Value> {
    let created = str_at(obj, &["metadata", "creationTimestamp"])
        .and_then(parse_rfc3339)
        .map(format_rfc3339)
        .unwrap_or_default();
    vec![name(obj), json!(created)]
}

// --- time -----------------------------------------------------------------

/// Nanoseconds in a second.
pub const NANOS: i128 = 1_000_000_000;

/// Nanoseconds since the epoch of a time.
pub fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp
/// (`2024-05-01T10:00:00Z`, optional fraction, `Z` or `±hh:mm`).
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    s.parse::<jiff::Timestamp>().ok().map(jiff::Timestamp::as_nanosecond)
}

/// `2006-01-02T15:04:05Z` for nanoseconds since the epoch (whole seconds).
pub fn format_rfc3339(nanos: i128) -> String {
    let seconds = i64::try_from(nanos.div_euclid(NANOS)).unwrap_or(0);
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
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
pub fn since(timestamp: Option<&str>, now: i128) -> String {
    match timestamp.and_then(parse_rfc3339) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_owned(),
    }
}

// --- JSON access ------------------------------------------------------------

pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// Like [`str_at`], treating `""` as absent.
pub fn non_empty<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    str_at(v, path).filter(|s| !s.is_empty())
}

pub fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

pub fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

pub fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Entries of an array or object (0 when absent).
pub fn len_at(v: &Value, path: &[&str]) -> usize {
    match at(v, path) {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(o)) => o.len(),
        _ => 0,
    }
}

pub fn name(obj: &Value) -> Value {
    json!(str_at(obj, &["metadata", "name"]).unwrap_or(""))
}

pub fn age(obj: &Value, now: i128) -> Value {
    json!(since(str_at(obj, &["metadata", "creationTimestamp"]), now))
}

/// `replicas` defaults to 1 when the object carries none.
pub fn desired_replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1)
}

pub fn condition_true(status: &Value, kind: &str) -> bool {
    list_at(status, &["conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == Some(kind) && str_at(c, &["status"]) == Some("True"))
}

/// `k1=v1,k2=v2` of a string map, sorted; `<none>` when empty.
pub fn format_labels(v: Option<&Value>) -> String {
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
pub fn selector_string(v: Option<&Value>) -> String {
    match LabelSelector::from_json(v.unwrap_or(&Value::Null)) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".to_owned(),
    }
}

/// Like [`selector_string`], but `<none>` when empty and `<error>` when bad.
pub fn format_label_selector(v: Option<&Value>) -> String {
    match LabelSelector::from_json(v.unwrap_or(&Value::Null)) {
        Ok(s) if s.requirements().is_empty() => "<none>".to_owned(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".to_owned(),
    }
}

/// Comma-separated container names and images of a pod spec.
pub fn containers_and_images(pod_spec: Option<&Value>) -> (Value, Value) {
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
pub fn list_with_more(items: &[String], total: usize, empty: &str) -> String {
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
pub fn load_balancer_addresses(status: Option<&Value>) -> String {
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

pub fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2024-05-01T12:00:00Z
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_714_564_800)
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
}
