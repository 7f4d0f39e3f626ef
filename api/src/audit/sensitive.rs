//! Credentials never reach the audit log: the one decision here that no
//! policy can override.
//!
//! kube-apiserver logs whatever its policy asks for, Secrets included;
//! its documentation only advises a `Metadata` rule for them. skiff makes
//! that advice the law, in code: an event about a request whose bodies
//! hold credentials is written at `Metadata` at most, so neither the
//! request nor the response body is ever in the log, whatever the policy
//! says. Those requests are:
//!
//! * anything on core `secrets`: a Secret, a list or watch of Secrets, a
//!   deletecollection's answer (the deleted Secrets), a patch to one;
//! * core `serviceaccounts/token` (a TokenRequest's answer is a bearer
//!   token) and `authentication.k8s.io` `tokenreviews` (its request is
//!   one), which kube-apiserver's own example policies keep at Metadata.
//!
//! And, by content rather than by path: a body that is a Secret or a list
//! holding one, whatever path it was sent to (a Secret posted to the
//! wrong resource is refused, but its body would still be logged at
//! `Request`), lowers the event to `Metadata` and drops both bodies
//! ([`carries_secret`]).

use serde_json::Value;
use skiff_auth::Target;

use super::policy::Level;

/// `level`, capped at `Metadata` when `target` is a request whose bodies
/// hold credentials.
pub fn cap(level: Level, target: &Target) -> Level {
    if holds_credentials(target) {
        level.min(Level::Metadata)
    } else {
        level
    }
}

/// Whether requests for `target` carry credentials in their bodies.
pub fn holds_credentials(target: &Target) -> bool {
    let Target::Resource(r) = target else {
        return false;
    };
    matches!(
        (r.group.as_str(), r.resource.as_str(), r.subresource.as_str()),
        ("", "secrets", _) | ("", "serviceaccounts", "token") | ("authentication.k8s.io", "tokenreviews", _)
    )
}

/// Whether `body` is a Secret, or a list (of any kind) with a Secret in
/// its items.
pub fn carries_secret(body: &Value) -> bool {
    let is_secret = |v: &Value| matches!(v.get("kind").and_then(Value::as_str), Some("Secret" | "SecretList"));
    is_secret(body)
        || body
            .get("items")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(is_secret))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use skiff_auth::{ResourceAttributes, UserInfo};

    use super::*;
    use crate::audit::policy::{Policy, Subject};

    fn target(group: &str, resource: &str, subresource: &str) -> Target {
        Target::Resource(ResourceAttributes {
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: "default".into(),
            ..Default::default()
        })
    }

    #[test]
    fn no_policy_lifts_secrets_above_metadata() {
        let Ok(policy) = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n  resources: [{group: \"\", resources: [secrets]}]\n- level: RequestResponse\n",
        ) else {
            unreachable!("the policy parses")
        };
        let admin = UserInfo::admin();
        let level = |target: &Target, verb: &str| {
            policy
                .decide(&Subject {
                    user: Some(&admin),
                    verb,
                    target,
                })
                .level
        };
        for verb in [
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        ] {
            assert_eq!(level(&target("", "secrets", ""), verb), Level::Metadata, "{verb}");
        }
        assert_eq!(
            level(&target("", "serviceaccounts", "token"), "create"),
            Level::Metadata
        );
        assert_eq!(
            level(&target("authentication.k8s.io", "tokenreviews", ""), "create"),
            Level::Metadata
        );
        // Other things keep their level, as do `secrets` of other groups.
        assert_eq!(level(&target("", "configmaps", ""), "create"), Level::RequestResponse);
        assert_eq!(
            level(&target("", "serviceaccounts", ""), "create"),
            Level::RequestResponse
        );
        assert_eq!(
            level(&target("example.dev", "secrets", ""), "get"),
            Level::RequestResponse
        );
        assert_eq!(
            level(&Target::NonResource("/api".into()), "get"),
            Level::RequestResponse
        );
        // A lower level stays lower.
        assert_eq!(cap(Level::None, &target("", "secrets", "")), Level::None);
    }

    #[test]
    fn secret_bodies_are_recognised_wherever_they_are_sent() {
        assert!(carries_secret(&json!({"kind": "Secret", "data": {"a": "Yg=="}})));
        assert!(carries_secret(&json!({"kind": "SecretList", "items": []})));
        assert!(carries_secret(
            &json!({"kind": "List", "items": [{"kind": "ConfigMap"}, {"kind": "Secret"}]})
        ));
        assert!(!carries_secret(
            &json!({"kind": "ConfigMap", "data": {"kind": "Secret"}})
        ));
        assert!(!carries_secret(
            &json!({"kind": "List", "items": [{"kind": "ConfigMap"}]})
        ));
    }
}
