//! Integration tests of the testkit parts against the real tools.

mod db;
mod jenkins;
mod kubernetes;
mod proxy;
mod registry;
mod shared;
mod webhook;

use std::time::Duration;

/// A reqwest client for the tests (plain HTTP, no redirects followed).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}
