//! `freshen serve`: the HTTP API over the application ([`App`]): every
//! handler parses, calls one of its actions and answers.
//!
//! JSON in and out; errors are `{"error": "<one line>"}` with the status.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /packages/{name}?ecosystem=&version=` | every version and the images holding it (`[]` when none) |
//! | `GET /images/{ref}` | digest per platform, OS, base edges, scanned at |
//! | `GET /images/{ref}/packages` | packages per platform |
//! | `GET /images/{ref}/children?recursive=true` | children, or all descendants with depth |
//! | `POST /images/{ref}` | register (201; 409 when known) |
//! | `PUT /images/{ref}` | register or replace (200) |
//! | `DELETE /images/{ref}` | remove (204; 404 when unknown) |
//! | `GET /openapi.json` | the OpenAPI 3.1 document |
//! | `POST /hooks/{kind}/{key}` | a registry webhook (`dockerhub`, `registry`, `harbor`, `generic`): what each pushed tag set off |
//! | `GET /metrics` | Prometheus metrics of the whole pipeline (the README lists them) |
//! | `GET /healthz` | `{"status":"ok"}`, no I/O |
//! | `GET /readyz` | `{"status":"ready"}`, or 503 with the reason when the database doesn't answer or lacks a migration |
//! | `GET /`, `/ui/packages`, `/ui/children` | a small HTML page with lookup forms |
//!
//! References in paths are URL-encoded (`localhost%3A5000%2Fapp%3A1`);
//! raw slashes work too. Writes need `Authorization: Bearer <token>` with a
//! token from [`ServerSettings::write_tokens`]; without tokens they get 403.
//! **Reads are open**: keep the loopback default or put the server behind
//! an authenticating proxy. Tokens never appear in logs or answers.

mod auth;
mod error;
mod hooks;
mod openapi;
mod rollouts;
mod routes;
mod settings;
mod telemetry;
mod ui;

mod run;

use std::future::Future;
use std::sync::Arc;

use freshen_app::{App, AppError};

pub use run::{Bound, ServeError, run_daemon};
pub use settings::ServerSettings;

/// The OpenAPI 3.1 document the server serves at `/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    openapi::document()
}

/// The API's router over `app`, configured by the config's `server:`
/// (write tokens, body limit; `listen` is the caller's to bind), with
/// webhook receivers at `POST /hooks/{kind}/{key}` when the config has any
/// (they are validated here).
pub async fn router(app: Arc<App>) -> Result<axum::Router, AppError> {
    if app.loaded().config.server.write_tokens.is_empty() {
        tracing::warn!("no server.write_tokens in the config: POST/PUT/DELETE are refused");
    }
    telemetry::install();
    let receivers = app.receivers().await?;
    let hooks =
        (!receivers.is_empty()).then(|| Arc::new(hooks::Hooks::new(receivers, app.clone())));
    Ok(routes::build(app, hooks))
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for requests in flight to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if addr.ip().is_loopback() {
        tracing::info!(%addr, "serving the inventory API");
    } else {
        tracing::warn!(
            %addr,
            "serving the inventory API on a non-loopback address: reads are open to anyone who can reach it"
        );
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!(%addr, "the inventory API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn documented() -> BTreeSet<(String, String)> {
        let doc = openapi_document();
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path} has no responses"
                );
                ops.insert((method.clone(), path.clone()));
            }
        }
        ops
    }

    #[test]
    fn every_route_is_documented_and_every_operation_is_routed() {
        let routed: BTreeSet<(String, String)> = routes::table()
            .iter()
            .flat_map(|r| {
                r.operations
                    .iter()
                    .map(|(m, p)| (m.to_string(), p.to_string()))
            })
            .collect();
        assert_eq!(routed, documented());
        // Each route's axum path matches the OpenAPI paths it claims.
        for r in routes::table() {
            let prefix = r.path.split('{').next().unwrap();
            for (_, p) in r.operations {
                assert!(p.starts_with(prefix), "{} does not serve {p}", r.path);
            }
        }
    }

    #[test]
    fn document_is_openapi_3_1_with_resolvable_refs() {
        let doc = openapi_document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = piece.split('"').next().unwrap();
            let pointer = target.strip_prefix('#').expect("local refs only");
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
        }
        // Every path template parameter is declared.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for name in path
                .split('{')
                .skip(1)
                .map(|s| s.split('}').next().unwrap())
            {
                let declared = |params: &serde_json::Value| {
                    params.as_array().is_some_and(|ps| {
                        ps.iter().any(|p| {
                            let p = match p.get("$ref").and_then(|r| r.as_str()) {
                                Some(r) => doc.pointer(r.strip_prefix('#').unwrap()).unwrap(),
                                None => p,
                            };
                            p["name"] == name && p["in"] == "path"
                        })
                    })
                };
                for (method, op) in item.as_object().unwrap() {
                    if method != "parameters" {
                        assert!(
                            declared(&item["parameters"]) || declared(&op["parameters"]),
                            "{method} {path}: {{{name}}} is not declared"
                        );
                    }
                }
            }
        }
    }
}
