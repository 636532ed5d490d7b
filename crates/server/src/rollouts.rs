//! `/rollouts`: the stored roll-outs, a dry run, and a roll-out started
//! by a token holder.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use freshen_app::RolloutRequest;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::{AppState, query};

/// Query parameters of `GET /rollouts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<i64>,
}

/// `GET /rollouts`: roll-outs, newest first.
pub(crate) async fn list(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params: ListParams = query(&uri)?;
    let list = st.app.rollouts(params.limit.unwrap_or(20)).await?;
    Ok(axum::Json(list).into_response())
}

/// `GET /rollouts/{id}`: one roll-out and its workloads.
pub(crate) async fn show(
    State(st): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let _: crate::routes::NoParams = query(&uri)?;
    match st.app.rollout_report(&id).await {
        Ok(r) => Ok(axum::Json(r).into_response()),
        Err(freshen_app::AppError::Refused(m)) => Err(ApiError::new(StatusCode::NOT_FOUND, m)),
        Err(e) => Err(e.into()),
    }
}

/// The body of `POST /rollouts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    /// An image, `repo:tag@sha256:…` or `repo:tag`.
    image: Option<String>,
    /// A rebuild run's id.
    run: Option<String>,
    /// Only say what would move.
    #[serde(default)]
    plan: bool,
}

/// `POST /rollouts`: a dry run (`plan: true`) or a roll-out, answered
/// when it has ended (a roll-out waits for each workload's rollout).
pub(crate) async fn start(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    st.auth.check(&headers)?;
    let start: Start = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a roll-out request: {e}")))?;
    let request = match (start.image, start.run) {
        (Some(image), None) => RolloutRequest::Image(image),
        (None, Some(run)) => RolloutRequest::Run(run),
        _ => {
            return Err(ApiError::bad_request(
                "give either `image` or `run`, not both and not neither",
            ));
        }
    };
    if start.plan {
        let plan = st.app.rollout_plan(&request).await?;
        return Ok(axum::Json(plan).into_response());
    }
    // In its own task: a client that hangs up must not cancel a roll-out
    // halfway (workloads patched and never watched or put back).
    let app = st.app.clone();
    let report = tokio::spawn(async move { app.rollout(&request, None).await })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the roll-out task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (the server log has the detail)",
            )
        })??;
    tracing::info!(rollout = %report.rollout.id, state = %report.rollout.state, "roll-out through the API");
    Ok((StatusCode::CREATED, axum::Json(report)).into_response())
}

/// The OpenAPI paths of `/rollouts`.
pub(crate) fn paths() -> Value {
    let r = |name: &str| json!({ "$ref": format!("#/components/responses/{name}") });
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    json!({
        "/rollouts": {
            "get": {
                "tags": ["rollouts"],
                "operationId": "listRollouts",
                "summary": "Roll-outs, newest first",
                "parameters": [
                    { "name": "limit", "in": "query", "required": false, "description": "At most this many (default 20).", "schema": { "type": "integer", "minimum": 1 } }
                ],
                "responses": {
                    "200": { "description": "The roll-outs.", "content": { "application/json": { "schema": { "type": "array", "items": schema("Rollout") } } } },
                    "400": r("BadRequest"),
                    "500": r("InternalError")
                }
            },
            "post": {
                "tags": ["rollouts"],
                "operationId": "startRollout",
                "summary": "Move the workloads that run an image (or what a rebuild run rebuilt) to the new digest; with `plan: true`, only say what would move",
                "description": "Needs a write token. Answers when every workload's rollout has ended (done, rolled back, failed or skipped): give the client a timeout above `rollout.timeout`.",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema("RolloutRequest") } } },
                "responses": {
                    "200": { "description": "The plan (`plan: true`).", "content": { "application/json": { "schema": schema("RolloutPlan") } } },
                    "201": { "description": "The roll-out as it ended.", "content": { "application/json": { "schema": schema("RolloutReport") } } },
                    "400": r("BadRequest"),
                    "401": r("Unauthorized"),
                    "403": r("Forbidden"),
                    "500": r("InternalError"),
                    "502": { "description": "A cluster or the registry could not be reached.", "content": { "application/json": { "schema": schema("Error") } } }
                }
            }
        },
        "/rollouts/{id}": {
            "parameters": [{ "name": "id", "in": "path", "required": true, "description": "The roll-out's id (UUID v7).", "schema": { "type": "string" } }],
            "get": {
                "tags": ["rollouts"],
                "operationId": "getRollout",
                "summary": "One roll-out and each workload's outcome and timings",
                "responses": {
                    "200": { "description": "The roll-out.", "content": { "application/json": { "schema": schema("RolloutReport") } } },
                    "400": r("BadRequest"),
                    "404": r("NotFound"),
                    "500": r("InternalError")
                }
            }
        }
    })
}

/// The OpenAPI schemas of `/rollouts`.
pub(crate) fn schemas() -> Value {
    let time = json!({ "type": ["string", "null"], "format": "date-time" });
    let change = json!({
        "type": "object",
        "required": ["container", "old", "new"],
        "properties": {
            "container": { "type": "string" },
            "init": { "type": "boolean", "description": "An init container." },
            "old": { "type": "string", "description": "The image it ran, as written." },
            "new": { "type": "string", "description": "The image it is moved to: the same name pinned to the new digest." }
        }
    });
    let workload = json!({
        "type": "object",
        "required": ["cluster", "kind", "namespace", "name"],
        "properties": {
            "cluster": { "type": "string" },
            "kind": { "type": "string", "enum": ["Deployment", "StatefulSet", "DaemonSet", "CronJob"] },
            "namespace": { "type": "string" },
            "name": { "type": "string" }
        }
    });
    json!({
        "RolloutRequest": {
            "type": "object",
            "properties": {
                "image": { "type": "string", "description": "`repo:tag@sha256:…`, or `repo:tag` (its digest read now)." },
                "run": { "type": "string", "description": "A rebuild run's id." },
                "plan": { "type": "boolean", "description": "Only say what would move." }
            }
        },
        "Rollout": {
            "type": "object",
            "required": ["id", "trigger", "state", "created_at"],
            "properties": {
                "id": { "type": "string" },
                "trigger": { "type": "object", "description": "What was rolled out: `{run, event}` or `{image, digest}`." },
                "run_id": { "type": ["string", "null"] },
                "state": { "type": "string", "enum": ["running", "done", "failed"] },
                "created_at": { "type": "string", "format": "date-time" },
                "finished_at": time
            }
        },
        "RolloutItem": {
            "type": "object",
            "required": ["workload", "cluster", "kind", "namespace", "name", "wave", "containers", "state"],
            "properties": {
                "workload": { "type": "string", "description": "cluster/namespace/kind/name" },
                "cluster": { "type": "string" },
                "kind": { "type": "string" },
                "namespace": { "type": "string" },
                "name": { "type": "string" },
                "wave": { "type": "integer" },
                "containers": { "type": "array", "items": change },
                "state": { "type": "string", "enum": ["pending", "rolling", "done", "rolled_back", "failed", "skipped"] },
                "detail": { "type": ["string", "null"] },
                "started_at": time,
                "finished_at": time
            }
        },
        "RolloutReport": {
            "type": "object",
            "required": ["rollout", "items"],
            "properties": {
                "rollout": { "$ref": "#/components/schemas/Rollout" },
                "items": { "type": "array", "items": { "$ref": "#/components/schemas/RolloutItem" } }
            }
        },
        "RolloutPlan": {
            "type": "object",
            "required": ["images", "changes", "current"],
            "properties": {
                "images": { "type": "array", "items": {
                    "type": "object",
                    "required": ["image", "digest", "wave"],
                    "properties": { "image": { "type": "string" }, "digest": { "type": "string" }, "wave": { "type": "integer" } }
                } },
                "changes": { "type": "array", "items": {
                    "type": "object",
                    "required": ["workload", "wave", "containers"],
                    "properties": { "workload": workload, "wave": { "type": "integer" }, "containers": { "type": "array", "items": change } }
                } },
                "current": { "type": "array", "items": {
                    "type": "object",
                    "required": ["workload", "containers"],
                    "properties": { "workload": workload, "containers": { "type": "array", "items": { "type": "string" } } }
                } }
            }
        }
    })
}

/// Query parameters of `GET /approvals`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalParams {
    /// `false`: decided and expired ones too.
    pending: Option<bool>,
    limit: Option<i64>,
}

/// `GET /approvals`: approvals, newest first (pending only by default).
pub(crate) async fn approvals(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params: ApprovalParams = query(&uri)?;
    let list = st
        .app
        .approvals(params.pending.unwrap_or(true), params.limit.unwrap_or(50))
        .await?;
    Ok(axum::Json(list).into_response())
}

/// `GET /approvals/{id}`: one approval (the link announcements carry).
pub(crate) async fn approval(
    State(st): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let _: crate::routes::NoParams = query(&uri)?;
    match st.app.approval(&id).await? {
        Some(a) => Ok(axum::Json(a).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no approval {id:?}"),
        )),
    }
}

/// The body of `POST /approvals/{id}/approve|reject`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// Who decides; default `api`.
    by: Option<String>,
    /// A note (approve) or the reason (reject; required).
    comment: Option<String>,
    /// The reason of a rejection (same as `comment`).
    reason: Option<String>,
}

/// `POST /approvals/{id}/approve` and `/reject`.
pub(crate) async fn decide(
    State(st): State<AppState>,
    axum::extract::Path((id, verb)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    st.auth.check(&headers)?;
    let approve = match verb.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no action {other:?} on an approval: approve or reject"),
            ));
        }
    };
    let d: Decision = if body.is_empty() {
        Decision::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not a decision: {e}")))?
    };
    let comment = match (d.reason, d.comment) {
        (Some(r), Some(c)) => Some(format!("{r} ({c})")),
        (r, c) => r.or(c),
    };
    if !approve && comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(ApiError::bad_request("a rejection needs a `reason`"));
    }
    let by = d.by.unwrap_or_else(|| "api".into());
    match st.app.decide(&id, approve, &by, comment.as_deref()).await {
        Ok(a) => Ok(axum::Json(a).into_response()),
        Err(freshen_app::AppError::Refused(m)) if m.starts_with("no approval") => {
            Err(ApiError::new(StatusCode::NOT_FOUND, m))
        }
        Err(freshen_app::AppError::Refused(m)) => Err(ApiError::new(StatusCode::CONFLICT, m)),
        Err(e) => Err(e.into()),
    }
}

/// The OpenAPI paths of `/approvals`.
pub(crate) fn approval_paths() -> Value {
    let r = |name: &str| json!({ "$ref": format!("#/components/responses/{name}") });
    let approval = json!({ "$ref": "#/components/schemas/Approval" });
    json!({
        "/approvals": {
            "get": {
                "tags": ["approvals"],
                "operationId": "listApprovals",
                "summary": "Approvals, newest first: pending ones, or all with pending=false",
                "parameters": [
                    { "name": "pending", "in": "query", "required": false, "description": "Only those waiting (default true).", "schema": { "type": "boolean" } },
                    { "name": "limit", "in": "query", "required": false, "description": "At most this many (default 50).", "schema": { "type": "integer", "minimum": 1 } }
                ],
                "responses": {
                    "200": { "description": "The approvals.", "content": { "application/json": { "schema": { "type": "array", "items": approval } } } },
                    "400": r("BadRequest"),
                    "500": r("InternalError")
                }
            }
        },
        "/approvals/{id}": {
            "parameters": [{ "name": "id", "in": "path", "required": true, "description": "The approval's id.", "schema": { "type": "string" } }],
            "get": {
                "tags": ["approvals"],
                "operationId": "getApproval",
                "summary": "One approval: what it holds, who asks, its state (the link announcements carry)",
                "responses": {
                    "200": { "description": "The approval.", "content": { "application/json": { "schema": approval.clone() } } },
                    "400": r("BadRequest"),
                    "404": r("NotFound"),
                    "500": r("InternalError")
                }
            }
        },
        "/approvals/{id}/{action}": {
            "parameters": [
                { "name": "id", "in": "path", "required": true, "description": "The approval's id.", "schema": { "type": "string" } },
                { "name": "action", "in": "path", "required": true, "description": "approve or reject.", "schema": { "type": "string", "enum": ["approve", "reject"] } }
            ],
            "post": {
                "tags": ["approvals"],
                "operationId": "decideApproval",
                "summary": "Approve or reject a pending approval; the held cascade or roll-out goes on (or not) at once",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": {
                        "by": { "type": "string", "description": "Who decides (default `api`)." },
                        "comment": { "type": "string", "description": "A note." },
                        "reason": { "type": "string", "description": "Why (required to reject)." }
                    }
                } } } },
                "responses": {
                    "200": { "description": "The approval as decided.", "content": { "application/json": { "schema": approval } } },
                    "400": r("BadRequest"),
                    "401": r("Unauthorized"),
                    "403": r("Forbidden"),
                    "404": r("NotFound"),
                    "409": { "description": "Decided already, or expired.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "500": r("InternalError")
                }
            }
        }
    })
}

/// The OpenAPI schema of an approval.
pub(crate) fn approval_schemas() -> Value {
    let time = json!({ "type": ["string", "null"], "format": "date-time" });
    let text = json!({ "type": ["string", "null"] });
    json!({
        "Approval": {
            "type": "object",
            "required": ["id", "stage", "subject", "event_id", "reference", "reason", "state", "requested_at", "expires_at"],
            "properties": {
                "id": { "type": "string" },
                "stage": { "type": "string", "enum": ["cascade", "rollout"] },
                "subject": { "type": "string", "description": "The change event (cascade) or rebuild run (rollout) held." },
                "event_id": { "type": "string" },
                "reference": { "type": "string" },
                "reason": { "type": "string", "description": "Who asks: `watch <ref>` or `policy <name>`." },
                "state": { "type": "string", "enum": ["pending", "approved", "rejected", "expired"] },
                "requested_at": { "type": "string", "format": "date-time" },
                "expires_at": { "type": "string", "format": "date-time" },
                "decided_at": time,
                "decided_by": text,
                "comment": text
            }
        }
    })
}
