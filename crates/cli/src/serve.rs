//! `freshen serve` and `freshen watch [--serve]`: the HTTP server and the
//! daemon over one [`App`], started and stopped together (SIGTERM or
//! Ctrl-C; a server that fails stops the daemon too).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use freshen_app::App;

/// The API's router over `app`, with the config's webhook receivers when
/// it has any.
async fn router(app: &Arc<App>) -> Result<axum::Router> {
    let settings = &app.loaded().config.server;
    if settings.write_tokens.is_empty() {
        tracing::warn!("no server.write_tokens in the config: POST/PUT/DELETE are refused");
    }
    let queries = app.queries().await?;
    let receivers = app.receivers().await?;
    if receivers.is_empty() {
        return Ok(freshen_server::router(queries, settings));
    }
    let hooks = freshen_server::Hooks::new(receivers, Arc::new(Intake(app.clone())));
    Ok(freshen_server::router_with_hooks(queries, settings, hooks))
}

/// The server's webhook endpoints hand their notices to the app.
struct Intake(Arc<App>);

impl freshen_server::HookSink for Intake {
    fn take<'a>(
        &'a self,
        receiver: &'a str,
        notice: freshen_receive::Notice,
    ) -> futures::future::BoxFuture<'a, freshen_server::HookAnswer> {
        Box::pin(async move {
            match self.0.take_notice(receiver, notice).await {
                Ok(taken) => freshen_server::HookAnswer {
                    retry: taken.retry(),
                    body: serde_json::to_value(&taken).expect("the answer serialises"),
                },
                // The receivers were validated when the router was built,
                // so this is not expected; the sender may retry.
                Err(e) => freshen_server::HookAnswer {
                    retry: true,
                    body: serde_json::json!({ "error": e.to_string() }),
                },
            }
        })
    }
}

/// `freshen serve`: the API (and webhook receivers) until SIGTERM.
pub async fn serve(app: Arc<App>, listen: Option<SocketAddr>) -> Result<u8> {
    let addr = listen.unwrap_or(app.loaded().config.server.listen);
    // The store first: an unreachable database is said before the address.
    app.queries().await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if !app.loaded().config.receivers.is_empty() {
        eprintln!(
            "freshen: receiving webhooks; their triggers are delivered by `freshen watch` (or run `freshen watch --serve` alone)"
        );
    }
    let router = router(&app).await?;
    eprintln!("freshen: serving on http://{}", listener.local_addr()?);
    freshen_server::serve(listener, router, shutdown_signal()).await?;
    Ok(0)
}

/// `freshen watch [--serve ADDR]`: the daemon, and the server beside it.
pub async fn watch(app: Arc<App>, serve: Option<SocketAddr>) -> Result<u8> {
    let watcher = app.watcher(serve.is_some()).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = Arc::new(tx);
    let server = match serve {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let router = router(&app).await?;
            eprintln!("freshen: serving on http://{}", listener.local_addr()?);
            let mut stop = rx.clone();
            let failed = tx.clone();
            Some(tokio::spawn(async move {
                let served = freshen_server::serve(listener, router, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
                // Without its server, `watch --serve` would miss every
                // webhook unnoticed: stop the daemon too.
                if let Err(e) = &served {
                    tracing::error!(error = %e, "the API server failed: stopping");
                    let _ = failed.send(true);
                }
                served
            }))
        }
        None => None,
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("signal received: finishing in-flight work");
        let _ = tx.send(true);
    });
    watcher.run(rx).await?;
    if let Some(server) = server {
        server.await??;
    }
    Ok(0)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
