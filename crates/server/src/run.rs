//! Running the API: bound to its address, alone (`freshen serve`) or
//! beside the daemon (`freshen watch --serve`), until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use freshen_app::{App, AppError, Watcher};

/// Why the API or the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address can't be listened on (in use, not ours, no permission).
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed after it started.
    #[error("the API server failed")]
    Io(#[from] std::io::Error),
    /// The application could not be opened (the store, the receivers) or
    /// the daemon failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The server's task ended abnormally (a panic).
    #[error("the API server's task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// The API bound to its address, with its router built: ready to serve.
pub struct Bound {
    listener: tokio::net::TcpListener,
    router: axum::Router,
}

impl Bound {
    /// Opens `app`'s store (so an unreachable database is said before
    /// anything else), binds `addr` and builds the router.
    pub async fn new(app: Arc<App>, addr: SocketAddr) -> Result<Bound, ServeError> {
        app.open().await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        let router = crate::router(app).await?;
        Ok(Bound { listener, router })
    }

    /// Like [`Bound::new`], serving only `/metrics`, `/healthz` and
    /// `/readyz`: `freshen watch --metrics` without the API.
    pub async fn metrics(app: Arc<App>, addr: SocketAddr) -> Result<Bound, ServeError> {
        app.open().await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        let router = crate::telemetry::router(app);
        Ok(Bound { listener, router })
    }

    /// The address bound (with the port the system chose for `:0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets requests in flight
    /// finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        Ok(crate::serve(self.listener, self.router, shutdown).await?)
    }
}

/// Runs the daemon `watcher` until `shutdown` completes, with the API
/// `api` beside it when given. A server that fails stops the daemon too:
/// without it, `watch --serve` would miss every webhook unnoticed.
pub async fn run_daemon(
    watcher: Watcher,
    api: Option<Bound>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = Arc::new(tx);
    let server = api.map(|api| {
        let mut stop = rx.clone();
        let failed = tx.clone();
        tokio::spawn(async move {
            let served = api
                .serve(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = &served {
                tracing::error!(error = %e, "the API server failed: stopping");
                let _ = failed.send(true);
            }
            served
        })
    });
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("signal received: finishing in-flight work");
        let _ = tx.send(true);
    });
    watcher.run(rx).await?;
    if let Some(server) = server {
        server.await??;
    }
    Ok(())
}
