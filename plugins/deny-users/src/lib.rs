//! `deny-users`: an admission Validate plugin that refuses every request
//! the `WasmPlugin`'s match rules send when it comes from one of the users
//! or groups its configuration names, whatever RBAC would allow them. The
//! user is the one the API server authenticated (after impersonation).
//!
//! Configuration: `{"users": ["jane"], "groups": ["contractors"]}`; at
//! least one name.

use std::cell::RefCell;

use serde_json::Value;

wit_bindgen::generate!({
    path: "../../wit",
    world: "admission-validate",
});

use skiff::plugins::admission::Denial;

/// Whom the plugin refuses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Denied {
    users: Vec<String>,
    groups: Vec<String>,
}

thread_local! {
    static DENIED: RefCell<Denied> = RefCell::new(Denied::default());
}

fn names(config: &Value, field: &str) -> Result<Vec<String>, String> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| format!("config.{field} must hold non-empty strings, not {item}"))
            })
            .collect(),
        Some(other) => Err(format!("config.{field} must be a list of names, not {other}")),
    }
}

fn parse_config(config: &str) -> Result<Denied, String> {
    let config: Value = serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    if !config.is_object() {
        return Err("config must be a JSON object".to_string());
    }
    let denied = Denied {
        users: names(&config, "users")?,
        groups: names(&config, "groups")?,
    };
    if denied.users.is_empty() && denied.groups.is_empty() {
        return Err("config names no users and no groups".to_string());
    }
    Ok(denied)
}

fn decide(denied: &Denied, request: &Request) -> Verdict {
    let user = &request.user;
    let why = if denied.users.contains(&user.username) {
        format!("user {:?}", user.username)
    } else if let Some(group) = user.groups.iter().find(|g| denied.groups.contains(g)) {
        format!("user {:?} (group {group:?})", user.username)
    } else {
        return Verdict::Allowed;
    };
    let what = match request.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{} in namespace {ns:?}", request.resource),
        _ => request.resource.clone(),
    };
    Verdict::Denied(Denial {
        message: format!("{why} may not {} {what}", request.operation_name()),
        code: Some(403),
    })
}

impl Request {
    fn operation_name(&self) -> &'static str {
        use skiff::plugins::admission::Operation;
        match self.operation {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

struct DenyUsers;

impl Guest for DenyUsers {
    fn init(config: String) -> Result<(), String> {
        let denied = parse_config(&config)?;
        DENIED.with(|d| *d.borrow_mut() = denied);
        Ok(())
    }

    fn validate(request: Request) -> Result<Verdict, String> {
        Ok(DENIED.with(|d| decide(&d.borrow(), &request)))
    }
}

export!(DenyUsers);

#[cfg(test)]
mod tests {
    use super::*;
    use skiff::plugins::admission::{Operation, UserInfo};

    fn request(username: &str, groups: &[&str]) -> Request {
        Request {
            operation: Operation::Create,
            group: String::new(),
            version: "v1".into(),
            kind: "Secret".into(),
            resource: "secrets".into(),
            sub_resource: None,
            namespace: Some("shop".into()),
            name: "s".into(),
            user: UserInfo {
                username: username.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
            dry_run: false,
            object: Some("{}".into()),
            old_object: None,
        }
    }

    #[test]
    fn named_users_and_groups_are_denied() {
        let denied = parse_config(r#"{"users": ["jane"], "groups": ["contractors"]}"#).unwrap();
        let Verdict::Denied(denial) = decide(&denied, &request("jane", &[])) else {
            panic!("jane allowed")
        };
        assert_eq!(denial.message, r#"user "jane" may not create secrets in namespace "shop""#);
        assert_eq!(denial.code, Some(403));
        assert!(matches!(decide(&denied, &request("bob", &["contractors"])), Verdict::Denied(_)));
        assert!(matches!(decide(&denied, &request("bob", &["staff"])), Verdict::Allowed));
    }

    #[test]
    fn a_config_must_name_someone() {
        assert!(parse_config("{}").is_err());
        assert!(parse_config(r#"{"users": [""]}"#).is_err());
        assert!(parse_config(r#"{"groups": "x"}"#).is_err());
    }
}
