//! One port, two protocols: plain HTTP for clients that send a bearer
//! token over it (kube-rs does), TLS for kubectl, which attaches
//! credentials only to TLS connections (client-go's `clientcmd` leaves
//! them out for `http://` servers). Each connection's first byte tells:
//! 0x16 opens a TLS handshake.
//!
//! The certificate (for `127.0.0.1` and `localhost`, signed by a test CA,
//! valid 2000–2100) is in `tls/`; see `tls/README.md` for how it was made.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The test CA's certificate (PEM), for a kubeconfig's
/// `certificate-authority-data`.
pub(crate) const CA_PEM: &str = include_str!("tls/ca.pem");
const SERVER_PEM: &str = include_str!("tls/server.pem");
const SERVER_KEY: &str = include_str!("tls/server.key");

/// A connection, plain or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Connections sorted by protocol, handshakes done, for `axum::serve`.
pub(crate) struct DualListener {
    rx: mpsc::Receiver<(Conn, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for DualListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

fn server_config() -> rustls::ServerConfig {
    let certs = CertificateDer::pem_slice_iter(SERVER_PEM.as_bytes())
        .chain(CertificateDer::pem_slice_iter(CA_PEM.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .expect("the double's certificates parse");
    let key =
        PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("the double's key parses");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the double's certificate and key match");
    // The server speaks HTTP/1.1 only; without ALPN a Go client would
    // still try HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Accepts on `listener`, sorting each connection (in its own task, so a
/// silent client holds up no other) into plain or TLS.
pub(crate) fn dual(listener: TcpListener) -> (DualListener, JoinHandle<()>) {
    let addr = listener.local_addr().expect("local_addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config()));
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                let wait = Duration::from_secs(10);
                let conn = match tokio::time::timeout(wait, tcp.peek(&mut first)).await {
                    Ok(Ok(1)) if first[0] == 0x16 => {
                        match tokio::time::timeout(wait, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Conn::Tls(Box::new(tls)),
                            _ => return,
                        }
                    }
                    Ok(Ok(1)) => Conn::Plain(tcp),
                    _ => return,
                };
                let _ = tx.send((conn, peer)).await;
            });
        }
    });
    (DualListener { rx, addr }, task)
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
