//! `require-team-label`: an admission Validate plugin. Every object the
//! `WasmPlugin`'s match rules send (typically Deployments) must carry a
//! non-empty metadata label, `team` unless the configuration's `label`
//! names another; the denial names the label and the object.
//!
//! Deletes (no object) are allowed.
//!
//! Configuration: `{"label": "team"}` (all fields optional).

use std::cell::RefCell;

use serde_json::Value;

wit_bindgen::generate!({
    path: "../../wit",
    world: "admission-validate",
});

use skiff::plugins::admission::Denial;

const DEFAULT_LABEL: &str = "team";

thread_local! {
    static LABEL: RefCell<String> = RefCell::new(DEFAULT_LABEL.to_string());
}

fn parse_config(config: &str) -> Result<String, String> {
    let config: Value = serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    let Some(fields) = config.as_object() else {
        return Err("config must be a JSON object".to_string());
    };
    match fields.get("label") {
        None | Some(Value::Null) => Ok(DEFAULT_LABEL.to_string()),
        Some(Value::String(label)) if !label.is_empty() => Ok(label.clone()),
        Some(other) => Err(format!("config.label must be a non-empty string, not {other}")),
    }
}

/// How the denial names the object: `Deployment "web" in namespace "shop"`.
fn describe(request: &Request, object: &Value) -> String {
    let name = match request.name.as_str() {
        "" => object["metadata"]["name"]
            .as_str()
            .or_else(|| object["metadata"]["generateName"].as_str())
            .unwrap_or(""),
        name => name,
    };
    match request.namespace.as_deref() {
        Some(namespace) if !namespace.is_empty() => format!("{} {name:?} in namespace {namespace:?}", request.kind),
        _ => format!("{} {name:?}", request.kind),
    }
}

fn decide(label: &str, request: &Request) -> Result<Verdict, String> {
    let Some(text) = &request.object else {
        return Ok(Verdict::Allowed);
    };
    let object: Value = serde_json::from_str(text).map_err(|e| format!("the object is not JSON: {e}"))?;
    let value = object["metadata"]["labels"][label].as_str().unwrap_or("");
    if !value.is_empty() {
        return Ok(Verdict::Allowed);
    }
    Ok(Verdict::Denied(Denial {
        message: format!(
            "{} must carry the label {label:?} (metadata.labels.{label}) naming its owner",
            describe(request, &object)
        ),
        code: None,
    }))
}

struct RequireTeamLabel;

impl Guest for RequireTeamLabel {
    fn init(config: String) -> Result<(), String> {
        let label = parse_config(&config)?;
        LABEL.with(|l| *l.borrow_mut() = label);
        Ok(())
    }

    fn validate(request: Request) -> Result<Verdict, String> {
        LABEL.with(|l| decide(&l.borrow(), &request))
    }
}

export!(RequireTeamLabel);

#[cfg(test)]
mod tests {
    use super::*;
    use skiff::plugins::admission::{Operation, UserInfo};

    fn request(object: Option<&str>) -> Request {
        Request {
            operation: Operation::Create,
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            resource: "deployments".into(),
            sub_resource: None,
            namespace: Some("shop".into()),
            name: "web".into(),
            user: UserInfo {
                username: "admin".into(),
                groups: Vec::new(),
            },
            dry_run: false,
            object: object.map(str::to_string),
            old_object: None,
        }
    }

    #[test]
    fn a_labelled_object_is_allowed() {
        let verdict = decide("team", &request(Some(r#"{"metadata":{"labels":{"team":"pay"}}}"#))).unwrap();
        assert!(matches!(verdict, Verdict::Allowed));
    }

    #[test]
    fn a_missing_or_empty_label_is_denied_with_names() {
        for object in [r#"{"metadata":{}}"#, r#"{"metadata":{"labels":{"team":""}}}"#] {
            let Verdict::Denied(denial) = decide("team", &request(Some(object))).unwrap() else {
                panic!("{object} was allowed");
            };
            assert_eq!(
                denial.message,
                r#"Deployment "web" in namespace "shop" must carry the label "team" (metadata.labels.team) naming its owner"#
            );
        }
    }

    #[test]
    fn deletes_are_allowed_and_garbage_is_an_error() {
        assert!(matches!(decide("team", &request(None)).unwrap(), Verdict::Allowed));
        assert!(decide("team", &request(Some("{"))).is_err());
    }

    #[test]
    fn the_config_may_name_another_label() {
        assert_eq!(parse_config("{}").unwrap(), "team");
        assert_eq!(parse_config(r#"{"label":"owner"}"#).unwrap(), "owner");
        assert!(parse_config(r#"{"label":""}"#).is_err());
    }
}
