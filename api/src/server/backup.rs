//! `GET /skiff/v1/backup`: a backup of the store, streamed to the caller
//! (`skiff snapshot save`).
//!
//! The store writes it (`skiff_store::backup`: one revision, every write
//! acknowledged before the request included, writes going on meanwhile)
//! into a file beside its database, which is unlinked once opened and
//! streamed from there, so memory stays flat whatever the store's size.
//! The revision is in the `Skiff-Backup-Revision` header. Access is
//! RBAC's: a non-resource URL, which only `cluster-admin` (and
//! `system:masters`) may get by default.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;

use super::ApiServer;
use crate::error::ApiError;

/// The path.
pub const PATH: &str = "/skiff/v1/backup";

/// The header that carries the backup's revision.
pub const REVISION_HEADER: &str = "skiff-backup-revision";

pub(super) async fn serve(State(server): State<Arc<ApiServer>>) -> Response {
    let store = server.registry.store();
    let file = store
        .config()
        .data_dir
        .join(format!("backup-{}.partial", uuid::Uuid::new_v4().simple()));
    let saved = store.save_backup(&file).await;
    let opened = match saved {
        Ok(info) => tokio::fs::File::open(&file).await.map(|f| (f, info)),
        Err(error) => {
            let _ = tokio::fs::remove_file(&file).await;
            tracing::warn!(%error, "cannot take a backup");
            return ApiError::from(error).into_response();
        }
    };
    // Unlinked once open: the data lives until the stream drops it.
    let _ = tokio::fs::remove_file(&file).await;
    let (file, info) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            tracing::warn!(%error, "cannot read the backup back");
            return ApiError::Internal.into_response();
        }
    };
    let chunks = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut chunk = vec![0u8; 1 << 20];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)), Some(file)))
            }
            Err(error) => Some((Err(error), None)),
        }
    });
    let mut response = (StatusCode::OK, Body::from_stream(chunks)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&info.revision.to_string()) {
        headers.insert(REVISION_HEADER, value);
    }
    response
}
