//! Who is asking, and may they: the first two links of the chain every
//! request passes, authentication → authorization → admission → registry.
//!
//! Authentication is a trait with one implementation today, bearer tokens
//! from a static table (the admin token in the data directory). Authorization
//! is a trait too: [`AllowAdmins`] lets members of `system:masters` do
//! everything and refuses everyone else; RBAC plugs in behind the same trait.

use std::collections::HashMap;

use http::HeaderMap;

use crate::request::ResourceRequest;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl Default for User {
    /// Nobody in particular: `system:anonymous`.
    fn default() -> User {
        User::anonymous()
    }
}

impl User {
    /// The API server itself, for writes it makes on its own behalf.
    pub fn apiserver() -> User {
        User {
            name: "system:apiserver".into(),
            groups: vec!["system:masters".into()],
        }
    }

    pub fn admin() -> User {
        User {
            name: "skiff-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }
}

/// Finds the user a request speaks for.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// `None` when the request carries no credentials this authenticator
    /// recognises.
    fn authenticate(&self, headers: &HeaderMap) -> Option<User>;
}

/// Bearer tokens from a fixed table.
#[derive(Clone, Debug, Default)]
pub struct TokenAuthenticator {
    tokens: HashMap<String, User>,
}

impl TokenAuthenticator {
    pub fn new() -> TokenAuthenticator {
        TokenAuthenticator::default()
    }

    pub fn with_token(mut self, token: impl Into<String>, user: User) -> TokenAuthenticator {
        self.tokens.insert(token.into(), user);
        self
    }
}

impl Authenticator for TokenAuthenticator {
    fn authenticate(&self, headers: &HeaderMap) -> Option<User> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        // Compare against every token without short-circuiting on the
        // first differing byte.
        let token = token.trim().as_bytes();
        let mut found = None;
        for (known, user) in &self.tokens {
            if constant_time_eq(known.as_bytes(), token) {
                found = Some(user.clone());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What an authorizer decides about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

/// Decides whether a user may make a resource request.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    fn authorize(&self, user: &User, request: &ResourceRequest) -> Decision;
}

/// `system:masters` may do anything; nobody else may do anything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAdmins;

impl Authorizer for AllowAdmins {
    fn authorize(&self, user: &User, request: &ResourceRequest) -> Decision {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Decision::Allow;
        }
        let resource = match &request.subresource {
            Some(sub) => format!("{}/{sub}", request.resource),
            None => request.resource.clone(),
        };
        let group = if request.group.is_empty() {
            String::new()
        } else {
            format!(" in API group \"{}\"", request.group)
        };
        let scope = match &request.namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".into(),
        };
        Decision::Deny(format!(
            "{} \"{}\" is forbidden: User \"{}\" cannot {} resource \"{resource}\"{group}{scope}",
            resource,
            request.name.as_deref().unwrap_or_default(),
            user.name,
            request.verb.as_str(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_authenticate() {
        let authn = TokenAuthenticator::new().with_token("secret", User::admin());
        let mut headers = HeaderMap::new();
        assert_eq!(authn.authenticate(&headers), None);
        headers.insert(http::header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        assert_eq!(authn.authenticate(&headers), Some(User::admin()));
        headers.insert(http::header::AUTHORIZATION, "Bearer secreT".parse().unwrap());
        assert_eq!(authn.authenticate(&headers), None);
        headers.insert(http::header::AUTHORIZATION, "Basic secret".parse().unwrap());
        assert_eq!(authn.authenticate(&headers), None);
    }

    #[test]
    fn only_admins_are_allowed() {
        let request = crate::request::parse(&http::Method::GET, "/api/v1/namespaces/a/pods/p", false).unwrap();
        assert_eq!(AllowAdmins.authorize(&User::admin(), &request), Decision::Allow);
        let Decision::Deny(message) = AllowAdmins.authorize(&User::anonymous(), &request) else {
            panic!("anonymous allowed")
        };
        assert_eq!(
            message,
            "pods \"p\" is forbidden: User \"system:anonymous\" cannot get resource \"pods\" in the namespace \"a\""
        );
    }
}
