//! The peak number of requests in flight, made measurable by holding each request.

use std::time::Duration;

use eucora_sim_jamf::SimConfig;
use futures_util_free::join_all;

use crate::helpers::Sim;

/// Joins futures without a futures crate: spawn each, await each.
mod futures_util_free {
    pub async fn join_all<F>(futures: Vec<F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    }
}

async fn peak_for(parallel: usize) -> usize {
    let config = SimConfig {
        max_concurrency_delay: Duration::from_millis(400),
        ..SimConfig::instant()
    };
    let sim = Sim::with(config).await;
    let requests: Vec<_> = (0..parallel)
        .map(|_| {
            let request = sim
                .http
                .get(sim.url("/api/v1/packages"))
                .bearer_auth(&sim.token);
            async move { request.send().await.unwrap().status() }
        })
        .collect();
    let statuses = join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200));
    sim.handle.peak_concurrency()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_parallel_requests_peak_at_eight() {
    assert_eq!(peak_for(8).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_parallel_requests_peak_at_three() {
    assert_eq!(peak_for(3).await, 3);
}

#[tokio::test]
async fn sequential_requests_peak_at_one() {
    let sim = Sim::start().await;
    for _ in 0..5 {
        assert_eq!(sim.get("/api/v1/packages").await.status(), 200);
    }
    assert_eq!(sim.handle.peak_concurrency(), 1);
}
