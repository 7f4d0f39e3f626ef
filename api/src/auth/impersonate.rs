//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): a user with
//! the `impersonate` verb on `users`, `groups`, `serviceaccounts`, `uids`
//! or `userextras/<key>` may act as someone else. Each header value is
//! authorized on its own, as kube-apiserver does; the request then runs as
//! the impersonated user alone.

use std::collections::BTreeMap;

use http::HeaderMap;
use skiff_auth::user::{names, parse_service_account_user};
use skiff_auth::{Attributes, ResourceAttributes, UserInfo};

use super::{Authorizer, forbidden_message};
use crate::error::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Who a request asks to act as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Requested {
    user: Option<String>,
    uid: Option<String>,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
}

fn requested(headers: &HeaderMap) -> Result<Option<Requested>, ApiError> {
    let text = |value: &http::HeaderValue| {
        value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::BadRequest("impersonation headers must be text".into()))
    };
    let mut requested = Requested::default();
    let mut any = false;
    for (name, value) in headers {
        let name = name.as_str();
        if name == USER {
            requested.user = Some(text(value)?);
        } else if name == GROUP {
            requested.groups.push(text(value)?);
        } else if name == UID {
            requested.uid = Some(text(value)?);
        } else if let Some(key) = name.strip_prefix(EXTRA_PREFIX) {
            // Keys are percent-encoded in header names.
            let key = percent_decode(key);
            requested.extra.entry(key).or_default().push(text(value)?);
        } else {
            continue;
        }
        any = true;
    }
    if !any {
        return Ok(None);
    }
    if requested.user.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest(
            "requested impersonation of groups, a UID or extras without impersonating a user".into(),
        ));
    }
    Ok(Some(requested))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The user a request runs as: `real`, or whom it impersonates if `real`
/// may impersonate every part of that user.
pub fn resolve(authorizer: &Authorizer, real: UserInfo, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let Some(requested) = requested(headers)? else {
        return Ok(real);
    };
    let name = requested.user.clone().unwrap_or_default();
    let check = |resource: ResourceAttributes| {
        let attributes = Attributes::resource(real.clone(), "impersonate", resource);
        match authorizer.authorize(&attributes) {
            skiff_auth::Decision::Allow => Ok(()),
            skiff_auth::Decision::NoOpinion(reason) | skiff_auth::Decision::Deny(reason) => {
                Err(ApiError::Forbidden(forbidden_message(&attributes, &reason)))
            }
        }
    };
    let mut groups = requested.groups.clone();
    match parse_service_account_user(&name) {
        Some((namespace, account)) => {
            check(ResourceAttributes {
                namespace: namespace.into(),
                resource: "serviceaccounts".into(),
                name: account.into(),
                ..Default::default()
            })?;
            if groups.is_empty() {
                groups.push(names::SERVICE_ACCOUNTS.into());
                groups.push(format!("{}:{namespace}", names::SERVICE_ACCOUNTS));
            }
        }
        None => check(ResourceAttributes {
            resource: "users".into(),
            name: name.clone(),
            ..Default::default()
        })?,
    }
    for group in &requested.groups {
        check(ResourceAttributes {
            resource: "groups".into(),
            name: group.clone(),
            ..Default::default()
        })?;
    }
    if let Some(uid) = &requested.uid {
        check(ResourceAttributes {
            group: "authentication.k8s.io".into(),
            resource: "uids".into(),
            name: uid.clone(),
            ..Default::default()
        })?;
    }
    for (key, values) in &requested.extra {
        for value in values {
            check(ResourceAttributes {
                group: "authentication.k8s.io".into(),
                resource: "userextras".into(),
                subresource: key.clone(),
                name: value.clone(),
                ..Default::default()
            })?;
        }
    }
    if name != names::ANONYMOUS && !groups.iter().any(|g| g == names::AUTHENTICATED) {
        groups.push(names::AUTHENTICATED.into());
    }
    if name == names::ANONYMOUS && !groups.iter().any(|g| g == names::UNAUTHENTICATED) {
        groups.push(names::UNAUTHENTICATED.into());
    }
    Ok(UserInfo {
        name,
        uid: requested.uid.unwrap_or_default(),
        groups,
        extra: requested.extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_and_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested(&headers).unwrap(), None);
        headers.append(GROUP, "devs".parse().unwrap());
        assert!(matches!(requested(&headers), Err(ApiError::BadRequest(_))));
        headers.append(USER, "jane".parse().unwrap());
        headers.append(GROUP, "ops".parse().unwrap());
        headers.append("impersonate-extra-scopes%2fa", "x".parse().unwrap());
        let got = requested(&headers).unwrap().unwrap();
        assert_eq!(got.user.as_deref(), Some("jane"));
        assert_eq!(got.groups, vec!["devs", "ops"]);
        assert_eq!(got.extra["scopes/a"], vec!["x".to_string()]);
    }

    #[test]
    fn only_those_allowed_may_impersonate() {
        let authorizer = Authorizer::masters_only();
        let mut headers = HeaderMap::new();
        headers.append(USER, "jane".parse().unwrap());
        let user = resolve(&authorizer, UserInfo::admin(), &headers).unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, vec!["system:authenticated"]);
        let Err(ApiError::Forbidden(message)) = resolve(&authorizer, UserInfo::new("bob", ["x"]), &headers) else {
            panic!("bob impersonated jane")
        };
        assert!(
            message.starts_with("users \"jane\" is forbidden: User \"bob\" cannot impersonate resource \"users\""),
            "{message}"
        );
    }
}
