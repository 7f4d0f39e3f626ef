//! Encryption at rest, as an operator sees it (`skiff secrets-encrypt`):
//!
//! * `GET /skiff/v1/encryption`: for each resource the configuration
//!   encrypts, the form it is written in now and the forms its stored
//!   objects are in (`aesgcm:key1: 12`, `identity: 1`), read through
//!   without changing anything.
//! * `POST /skiff/v1/encryption/reencrypt`: writes again every stored
//!   object whose form is not the current one (`skiff_store::Store::
//!   reseal`), the last step of a key rotation; then the old key can go.
//!
//! Both are non-resource URLs: RBAC gives them to `cluster-admin` only,
//! unless a role names them. Each server answers for its own
//! configuration, so a rotation is finished when every server writes the
//! new key (restarted with the rotated file) and a reencrypt has run.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiServer;
use crate::error::ApiError;

pub const STATUS_PATH: &str = "/skiff/v1/encryption";
pub const REENCRYPT_PATH: &str = "/skiff/v1/encryption/reencrypt";

/// One encrypted resource prefix's state.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixStatus {
    /// The store key prefix (`/registry/core/secrets/`).
    pub prefix: String,
    /// The form new writes take (`aesgcm:key2`, or `identity`).
    pub write_form: String,
    /// Stored objects by form, before any rewrite.
    pub stored: std::collections::BTreeMap<String, u64>,
    /// Objects rewritten in the current form (reencrypt only).
    pub rewritten: u64,
}

async fn walk(server: &ApiServer, rewrite: bool) -> Result<Vec<PrefixStatus>, ApiError> {
    let store = server.registry.store();
    let mut out = Vec::new();
    for (prefix, write_form) in &server.encrypted {
        let report = store
            .reseal(skiff_store::KeyRange::prefix(prefix.as_bytes().to_vec()), !rewrite)
            .await?;
        out.push(PrefixStatus {
            prefix: prefix.clone(),
            write_form: write_form.clone(),
            stored: report.forms,
            rewritten: report.rewritten,
        });
    }
    Ok(out)
}

fn answer(result: Result<Vec<PrefixStatus>, ApiError>) -> Response {
    match result {
        Ok(prefixes) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"kind": "EncryptionStatus", "resources": prefixes})),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

pub(super) async fn status(State(server): State<Arc<ApiServer>>) -> Response {
    answer(walk(&server, false).await)
}

pub(super) async fn reencrypt(State(server): State<Arc<ApiServer>>) -> Response {
    let result = walk(&server, true).await;
    if let Ok(prefixes) = &result {
        let rewritten: u64 = prefixes.iter().map(|p| p.rewritten).sum();
        tracing::info!(rewritten, "re-encrypted stored objects with the current keys");
    }
    answer(result)
}
