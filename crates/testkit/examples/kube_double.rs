//! The Kubernetes API double as a process, for benchmarks (`bench/rollout.sh`):
//! `kube_double DIR N IMAGE [DELAY_MS]` serves N Deployments in namespace
//! `bench` (`web-0` … `web-N-1`, 3 replicas, one container `app` running
//! IMAGE), each rollout completing DELAY_MS after its patch, writes a
//! kubeconfig in DIR (TLS, the test CA, a bearer token), prints `ready <kubeconfig path>`, and
//! serves until killed.

use std::time::Duration;

use freshen_testkit::{KubeApi, Rollout};
use serde_json::json;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, n, image, rest @ ..] = args.as_slice() else {
        eprintln!("usage: kube_double DIR N IMAGE [DELAY_MS]");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let delay: u64 = rest
        .first()
        .map_or(200, |d| d.parse().expect("DELAY_MS is a number"));
    let api = KubeApi::start().await;
    api.on_image(
        "",
        Rollout::Complete {
            after: Duration::from_millis(delay),
        },
    );
    for i in 0..n {
        api.create(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": format!("web-{i}"), "namespace": "bench", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}
                }
            }
        }));
    }
    let kubeconfig = api.kubeconfig_https(std::path::Path::new(dir), "bench", "bench");
    println!("ready {}", kubeconfig.display());
    std::future::pending::<()>().await;
}
