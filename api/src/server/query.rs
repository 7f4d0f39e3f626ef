//! Query parameters of resource requests, parsed once.

use std::time::Duration;

use crate::error::{ApiError, Result};
use crate::options::{DeleteOptions, FieldValidation, ListOptions, Propagation, WriteOptions};
use crate::selector::{FieldSelector, LabelSelector};

/// The raw `key=value` pairs of a query string, in order.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// The longest watch a client may ask for.
const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(60 * 60);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None | Some("false" | "0" | "") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!("invalid value for {key}: {other:?}"))),
        }
    }

    pub fn watch(&self) -> bool {
        self.flag("watch").unwrap_or(false)
    }

    pub fn dry_run(&self) -> Result<bool> {
        match self.pairs.iter().find(|(k, _)| k == "dryRun").map(|(_, v)| v.as_str()) {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    pub fn field_validation(&self) -> Result<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other:?}"
            ))),
        }
    }

    pub fn write_options(&self) -> Result<WriteOptions> {
        let field_manager = self.get("fieldManager").filter(|m| !m.is_empty()).map(String::from);
        if let Some(manager) = &field_manager
            && (manager.len() > 128 || manager.chars().any(char::is_control))
        {
            return Err(ApiError::BadRequest(
                "fieldManager must be at most 128 printable characters".into(),
            ));
        }
        Ok(WriteOptions {
            dry_run: self.dry_run()?,
            field_manager,
            ..WriteOptions::default()
        })
    }

    pub fn list_options(&self) -> Result<ListOptions> {
        let label_selector = match self.get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => Some(LabelSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?),
            None => None,
        };
        let field_selector = match self.get("fieldSelector").filter(|s| !s.is_empty()) {
            Some(s) => Some(FieldSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?),
            None => None,
        };
        let limit = match self.get("limit").filter(|s| !s.is_empty()) {
            Some(l) => Some(
                l.parse::<i64>()
                    .map_err(|_| ApiError::BadRequest(format!("invalid limit: {l:?}")))?
                    .max(0) as usize,
            ),
            None => None,
        };
        Ok(ListOptions {
            label_selector,
            field_selector,
            limit,
            continue_token: self.get("continue").filter(|s| !s.is_empty()).map(String::from),
            resource_version: self.get("resourceVersion").map(String::from),
            resource_version_match: self
                .get("resourceVersionMatch")
                .filter(|s| !s.is_empty())
                .map(String::from),
        })
    }

    pub fn allow_bookmarks(&self) -> bool {
        self.flag("allowWatchBookmarks").unwrap_or(false)
    }

    pub fn timeout(&self) -> Result<Option<Duration>> {
        match self.get("timeoutSeconds").filter(|s| !s.is_empty()) {
            Some(s) => {
                let seconds: u64 = s
                    .parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds: {s:?}")))?;
                Ok(Some(Duration::from_secs(seconds).min(MAX_WATCH_TIMEOUT)))
            }
            None => Ok(None),
        }
    }

    /// DeleteOptions from the query; a body, when present, takes precedence.
    pub fn delete_options(&self) -> Result<DeleteOptions> {
        let grace_period_seconds = match self.get("gracePeriodSeconds").filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds: {s:?}")))?,
            ),
            None => None,
        };
        let propagation = match self.get("propagationPolicy").filter(|s| !s.is_empty()) {
            Some(p) => Some(parse_propagation(p)?),
            None => match self.get("orphanDependents") {
                Some("true") => Some(Propagation::Orphan),
                // Said explicitly, which overrides a kind's default to orphan.
                Some("false") => Some(Propagation::Background),
                _ => None,
            },
        };
        Ok(DeleteOptions {
            user: Default::default(),
            dry_run: self.dry_run()?,
            propagation,
            grace_period_seconds,
            precondition_uid: None,
            precondition_resource_version: None,
        })
    }
}

pub fn parse_propagation(value: &str) -> Result<Propagation> {
    match value {
        "Orphan" => Ok(Propagation::Orphan),
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        other => Err(ApiError::BadRequest(format!(
            "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

/// Merges a `DeleteOptions` body into options taken from the query.
pub fn merge_delete_body(mut options: DeleteOptions, body: &serde_json::Value) -> Result<DeleteOptions> {
    if let Some(p) = body.get("propagationPolicy").and_then(|v| v.as_str()) {
        options.propagation = Some(parse_propagation(p)?);
    } else if let Some(orphan) = body.get("orphanDependents").and_then(serde_json::Value::as_bool) {
        options.propagation = Some(if orphan {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
    }
    if let Some(grace) = body.get("gracePeriodSeconds").and_then(serde_json::Value::as_i64) {
        options.grace_period_seconds = Some(grace);
    }
    if let Some(dry_run) = body.get("dryRun").and_then(|v| v.as_array()) {
        options.dry_run |= dry_run.iter().any(|v| v == "All");
    }
    if let Some(pre) = body.get("preconditions") {
        options.precondition_uid = pre.get("uid").and_then(|v| v.as_str()).map(String::from);
        options.precondition_resource_version = pre.get("resourceVersion").and_then(|v| v.as_str()).map(String::from);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&limit=2&fieldValidation=Strict&dryRun=All&watch=1",
        ));
        assert!(q.watch());
        assert!(q.dry_run().unwrap());
        assert_eq!(q.field_validation().unwrap(), FieldValidation::Strict);
        let list = q.list_options().unwrap();
        assert_eq!(list.limit, Some(2));
        assert!(list.label_selector.is_some());
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
        assert!(Query::parse(Some("fieldValidation=Loose")).field_validation().is_err());
        assert!(Query::parse(Some("labelSelector=a%20in%20(")).list_options().is_err());
        assert!(
            Query::parse(Some("propagationPolicy=Sideways"))
                .delete_options()
                .is_err()
        );
        let body = serde_json::json!({"propagationPolicy": "Foreground", "preconditions": {"uid": "u"}});
        let merged = merge_delete_body(DeleteOptions::default(), &body).unwrap();
        assert_eq!(merged.propagation, Some(Propagation::Foreground));
        assert_eq!(merged.precondition_uid.as_deref(), Some("u"));
    }
}
