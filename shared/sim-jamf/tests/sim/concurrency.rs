//! The peak number of requests in flight, made measurable by holding each request until all are
//! in flight.

use std::time::Duration;

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
    let sim = Sim::start().await;
    // Every request is held at the server until all `parallel` are in flight at once, however
    // slowly the machine gets them there.
    sim.handle.hold_requests();
    let requests: Vec<_> = (0..parallel)
        .map(|_| {
            let request = sim
                .http
                .get(sim.url("/api/v1/packages"))
                .bearer_auth(&sim.token);
            async move { request.send().await.unwrap().status() }
        })
        .collect();
    let requests = tokio::spawn(join_all(requests));
    wait_for_in_flight(&sim, parallel).await;
    sim.handle.release_requests();
    let statuses = requests.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200));
    sim.handle.peak_concurrency()
}

/// Waits until `n` requests are in flight (a minute at most, against a hang only).
async fn wait_for_in_flight(sim: &Sim, n: usize) {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while sim.handle.in_flight() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{n} requests never were in flight at once (now {})",
        sim.handle.in_flight()
    );
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
