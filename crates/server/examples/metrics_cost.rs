//! Benchmark (not a test): what the metrics of one steady-state check cost
//! with the Prometheus recorder installed, as `freshen watch` and `serve`
//! install it. One check counts a registry request (a counter with three
//! labels and a histogram, the registry's name copied into each) and the
//! check (a counter with two labels and a histogram), as
//! `freshen_registry::telemetry` and `freshen_watch::telemetry` do; a
//! scrape renders the lot. `bench/metrics-cost.sh` runs it.
//!
//!     cargo run --release -p freshen-server --example metrics_cost -- [CHECKS] [REGISTRIES]

use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

fn main() {
    let mut args = std::env::args().skip(1);
    let checks: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("CHECKS"));
    let registries: usize = args.next().map_or(4, |a| a.parse().expect("REGISTRIES"));
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ],
        )
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let names: Vec<String> = (0..registries)
        .map(|i| format!("registry-{i}.example:5000"))
        .collect();
    let took = Duration::from_micros(800);
    let one = |i: usize| {
        let registry = names[i % names.len()].as_str();
        metrics::counter!("freshen_registry_requests_total", "registry" => registry.to_string(), "method" => "HEAD".to_string(), "code" => 200.to_string()).increment(1);
        metrics::histogram!("freshen_registry_request_duration_seconds", "registry" => registry.to_string()).record(took);
        metrics::counter!("freshen_checks_total", "source" => "poll", "result" => "unchanged")
            .increment(1);
        metrics::histogram!("freshen_check_duration_seconds", "result" => "unchanged").record(took);
    };
    // Warm up: the series exist, as in a daemon that has run a while.
    for i in 0..10_000 {
        one(i);
    }
    let cpu = cpu_seconds();
    let started = Instant::now();
    for i in 0..checks {
        one(i);
        // The daemon's upkeep folds histogram samples every 5 s; here
        // every 100,000 checks, so samples never pile up.
        if i % 100_000 == 0 {
            handle.run_upkeep();
        }
    }
    let wall = started.elapsed();
    let cpu = cpu_seconds() - cpu;
    let render = Instant::now();
    let text = handle.render();
    let render = render.elapsed();
    println!(
        "{checks} checks, {registries} registries: {:.0} ns wall, {:.0} ns CPU per check (metrics only); \
         a scrape renders {} bytes in {:.2} ms",
        wall.as_nanos() as f64 / checks as f64,
        cpu * 1e9 / checks as f64,
        text.len(),
        render.as_secs_f64() * 1e3
    );
}

/// This process's user + system CPU time, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .expect("stat format")
        .1
        .split(' ')
        .collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}
