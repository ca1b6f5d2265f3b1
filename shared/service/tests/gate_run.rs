//! The scheduled gate run at scale: 500 deployments in flight, a run cut short, overlapping runs.

use std::collections::BTreeMap;

use eucora_domain::cab::Role;
use eucora_domain::{ActorId, DeploymentId, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::{GateRunStore, RunLease};
use eucora_service::usecases::Services;
use eucora_service::usecases::gates::{RunLimits, run};
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};
use time::Duration;

fn t(minutes: i64) -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z")
        .unwrap()
        .plus(Duration::minutes(minutes))
}

/// `n` low-risk deployments, scored, so in flight (dispatching Ring 1).
async fn in_flight(n: usize) -> Services<Memory, Memory> {
    let m = Memory::new();
    let s = Services {
        store: m.clone(),
        queue: m,
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let body = std::fs::read_to_string(format!(
        "{}/../../events/deployments/low-risk.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let packager = Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]);
    for i in 0..n {
        let body = body.replace("dp-20261123-0001", &format!("dp-20261123-{i:04}"));
        let id = DeploymentId::parse(format!("dep-{i:04}")).unwrap();
        submit(
            &s,
            &packager,
            SubmitInput {
                body: &body,
                idempotency_key: None,
                new_id: id.clone(),
                now: t(0),
            },
        )
        .await
        .unwrap();
        score(&s, &id, t(0)).await.unwrap();
    }
    s.queue.drain();
    s
}

#[tokio::test]
async fn five_hundred_deployments_in_flight_are_all_evaluated_in_one_run() {
    let s = in_flight(500).await;
    let report = run(&s, "run-1", t(5), RunLimits::default()).await.unwrap();
    assert_eq!(report.evaluated.len(), 500);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.deferred, 0);
    assert!(report.overlapped.is_none());
}

#[tokio::test]
async fn a_run_cut_short_leaves_the_rest_first_in_line_for_the_next_and_starves_none() {
    let s = in_flight(500).await;
    let limits = RunLimits {
        max_per_run: Some(120),
        ..RunLimits::default()
    };
    let mut seen: BTreeMap<DeploymentId, usize> = BTreeMap::new();
    for k in 0..5 {
        let report = run(&s, &format!("run-{k}"), t(5 * (k + 1)), limits)
            .await
            .unwrap();
        assert_eq!(report.evaluated.len(), 120, "run {k}");
        assert_eq!(report.deferred, 380, "run {k}");
        for e in report.evaluated {
            *seen.entry(e.deployment_id).or_default() += 1;
        }
        if k == 3 {
            // Four runs of 120: nobody evaluated twice while others waited.
            assert!(seen.values().all(|&n| n == 1));
        }
    }
    // The fifth run evaluated the last 20, then went round to the first ones.
    assert_eq!(seen.len(), 500, "every deployment evaluated");
    assert_eq!(seen.values().filter(|&&n| n == 2).count(), 100);
}

#[tokio::test]
async fn a_run_while_another_holds_the_lease_does_nothing() {
    let s = in_flight(3).await;
    // A run that started a minute ago and holds the lease for 90 seconds.
    assert_eq!(
        s.store
            .begin_run("slow-run", t(4), t(4).plus(Duration::seconds(90)))
            .await
            .unwrap(),
        RunLease::Taken { cursor: None }
    );
    let report = run(&s, "next-run", t(5), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(report.overlapped, Some(t(4).plus(Duration::seconds(90))));
    assert!(report.evaluated.is_empty());

    // The slow run gives the lease up: the next one runs.
    s.store.end_run("slow-run", None).await.unwrap();
    let report = run(&s, "next-run", t(6), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(report.evaluated.len(), 3);

    // A run that died holding the lease holds nothing once the lease has passed.
    s.store
        .begin_run("dead-run", t(7), t(7).plus(Duration::seconds(90)))
        .await
        .unwrap();
    let report = run(&s, "later-run", t(9), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(report.evaluated.len(), 3);
}
