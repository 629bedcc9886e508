//! `/v1/snapshot`: save (`GET`, with `?stale`) and restore (`PUT`) the whole state as an archive
//! (Consul HTTP API, "Snapshots"; the archive format is Concord's, see
//! [`crate::state::archive`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::query::meta_headers;
use super::ApiError;
use crate::server::snapshot::{RestoreError, MAX_ARCHIVE_BYTES};
use crate::server::Server;
use crate::structs::QueryOptions;

/// Routes of `/v1/snapshot`; the restore body may be as large as an archive may be.
pub fn routes() -> axum::Router<Arc<Server>> {
    axum::Router::new()
        .route("/v1/snapshot", axum::routing::get(save).put(restore))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ARCHIVE_BYTES + 1))
}

/// `GET /v1/snapshot` → the archive (`application/octet-stream`) with `X-Consul-Index`.
pub async fn save(State(server): State<Arc<Server>>, opts: QueryOptions) -> Result<Response, ApiError> {
    server.check_datacenter(&opts)?;
    let answer = server.snapshot_save(opts, false).await?;
    let mut headers = meta_headers(&answer.meta);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok((StatusCode::OK, headers, answer.value.into_vec()).into_response())
}

/// `PUT /v1/snapshot` with an archive as the body → 200 once every server will apply it.
/// Errors: 400 for a truncated, tampered or foreign archive (nothing applied), 500 from the write
/// path.
pub async fn restore(State(server): State<Arc<Server>>, opts: QueryOptions, body: Bytes) -> Result<Response, ApiError> {
    server.check_datacenter(&opts)?;
    match server.snapshot_restore(&body).await {
        Ok(_) => Ok(StatusCode::OK.into_response()),
        Err(RestoreError::Invalid(m)) => Err(ApiError::bad_request(m)),
        Err(RestoreError::Write(e)) => Err(e.into()),
    }
}
