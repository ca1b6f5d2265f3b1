//! Windows and macOS in one deployment, through both connectors and their simulators: one
//! correlation id on every call, install telemetry from both platforms normalised into one gate
//! decision, and a breaker per platform that isolates one platform's failures from the other.

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::breaker::{BreakerPolicy, BreakerStatus};
use eucora_connector::testing;
use eucora_domain::audit::AuditKind;
use eucora_domain::evidence::Platform;
use eucora_domain::gates::Verdict;
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{Clock, Ring};
use eucora_service::memory::Memory;
use eucora_service::ports::{DeploymentStore, QueueName};
use eucora_service::usecases::Services;
use eucora_service::usecases::gates::{RunLimits, run};
use eucora_system_tests::platforms::Platforms;
use eucora_system_tests::{VirtualQueue, drain};

/// Moves the messages the use cases sent onto the connectors' queues.
fn route(svc: &Services<Memory, Memory>, windows: &VirtualQueue, macos: &VirtualQueue) {
    for (q, e) in svc.queue.drain() {
        match q {
            QueueName::Connector(Platform::Windows) => windows.send(e.to_json()),
            QueueName::Connector(Platform::Macos) => macos.send(e.to_json()),
            QueueName::Scoring => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deployment_on_windows_and_macos_one_correlation_id_one_gate() {
    let clock = eucora_system_tests::test_clock();
    let svc = testing::services();
    let artifacts = MemoryArtifacts::default();
    let p = Platforms::start(&svc.store, &artifacts, 20, &clock).await;
    let record = testing::dispatched(
        &svc,
        &artifacts,
        "multi-platform",
        "dep-multi",
        "dp-multi-1",
        |platform, payload| match platform {
            Platform::Windows => eucora_intune::intunewin::build("setup.exe", payload),
            Platform::Macos => payload.to_vec(),
        },
    )
    .await;
    let (win_q, mac_q) = (VirtualQueue::new(50, &clock), VirtualQueue::new(50, &clock));
    route(&svc, &win_q, &mac_q);
    drain(&win_q, &p.intune).await;
    drain(&mac_q, &p.jamf).await;
    // The rollback gate reads a validation record (by a publisher), not the packager's claim.
    eucora_service::usecases::rollback::record_validation(
        &svc,
        &eucora_service::Actor::new(
            eucora_domain::ActorId::parse("publisher-pat").unwrap(),
            [eucora_domain::cab::Role::Publisher],
        ),
        &record.id,
        eucora_domain::rollback::ValidationInput {
            devices: vec!["lab-device-01".into()],
            result: eucora_domain::rollback::RollbackResult::Passed,
            notes: None,
        },
        clock.now(),
    )
    .await
    .unwrap();
    let now = svc.store.get(&record.id).await.unwrap().unwrap();
    assert_eq!(
        now.lifecycle.state,
        DeploymentState::InRing { ring: Ring::Canary }
    );

    // One correlation id on every external call of both platforms, and in the audit trail.
    assert!(
        p.intune_sim
            .requests()
            .iter()
            .all(|r| r.header("x-correlation-id") == Some("dp-multi-1"))
    );
    assert!(
        p.jamf_sim
            .requests()
            .iter()
            .all(|r| r.header("x-correlation-id") == Some("dp-multi-1"))
    );
    let trail = svc.store.audit_trail(&record.id).await.unwrap();
    assert!(
        trail
            .iter()
            .all(|e| e.correlation_id.as_str() == "dp-multi-1")
    );
    let calls: Vec<&str> = trail
        .iter()
        .filter(|e| e.kind == AuditKind::ConnectorCall)
        .filter_map(|e| e.detail["platform"].as_str())
        .collect();
    assert!(calls.contains(&"windows") && calls.contains(&"macos"));
    assert!(
        trail
            .iter()
            .filter(|e| e.kind == AuditKind::ConnectorCall)
            .all(|e| e.detail["call"]["status"].is_number()
                || e.detail["call"]["error_class"].is_string())
    );

    // Devices install; each gate run asks both connectors for status; the next run decides.
    // The one clock moves: the simulators' devices report, the gate runs read the same time.
    let t = |h: i64| now.ring_entered_at.unwrap().plus(time::Duration::hours(h));
    clock.advance_to(t(1));
    run(&svc, "test-run", clock.now(), RunLimits::default())
        .await
        .unwrap();
    route(&svc, &win_q, &mac_q);
    drain(&win_q, &p.intune).await;
    drain(&mac_q, &p.jamf).await;
    clock.advance_to(t(49));
    let report = run(&svc, "test-run", clock.now(), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(
        report.evaluated[0].verdict,
        Some(Verdict::Promote),
        "{report:?}"
    );
    let after = svc.store.get(&record.id).await.unwrap().unwrap();
    let gate = after.last_gate.unwrap();
    // One decision over both platforms' 40 devices.
    assert_eq!(
        gate["checks"][0]["detail"], "40 of 40 reported; 40 installed, 0 pending, 0 failed of 40",
        "{gate}"
    );
    assert_eq!(
        after.lifecycle.state,
        DeploymentState::Dispatching { ring: Ring::Pilot }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_platform_trips_its_own_breaker_and_leaves_the_other_alone() {
    let clock = eucora_system_tests::test_clock();
    let svc = testing::services();
    let artifacts = MemoryArtifacts::default();
    let p = Platforms::start(&svc.store, &artifacts, 2, &clock).await;
    let wrap = |platform: Platform, payload: &[u8]| match platform {
        Platform::Windows => eucora_intune::intunewin::build("setup.exe", payload),
        Platform::Macos => payload.to_vec(),
    };
    for i in 0..3 {
        testing::dispatched(
            &svc,
            &artifacts,
            "multi-platform",
            &format!("dep-{i}"),
            &format!("dp-par-{i}"),
            wrap,
        )
        .await;
    }
    let (win_q, mac_q) = (VirtualQueue::new(50, &clock), VirtualQueue::new(50, &clock));
    route(&svc, &win_q, &mac_q);

    // Intune is down: every Graph request answers 503.
    p.intune_sim.faults().fail_next(
        eucora_sim_intune::RouteMatch::Path("/v1.0".into()),
        eucora_sim_intune::Fault::ServiceUnavailable,
        1000,
    );
    for _ in 0..3 {
        if let Some(event) = win_q.receive(5) {
            eucora_aws::connector_lambda::handle_batch(&p.intune, &win_q, event, win_q.now()).await;
        }
    }
    let at = win_q.now();
    assert_eq!(
        p.intune
            .breaker
            .state(Platform::Windows)
            .status(at, &BreakerPolicy::default()),
        BreakerStatus::Open
    );
    let graph_calls = p
        .intune_sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1.0"))
        .count();
    assert_eq!(
        graph_calls, 5,
        "the breaker opened after 5 consecutive failures"
    );
    // Jamf is unaffected: its deployments are published.
    drain(&mac_q, &p.jamf).await;
    assert_eq!(p.jamf_sim.policies().len(), 3);
    assert_eq!(
        p.jamf
            .breaker
            .state(Platform::Macos)
            .status(at, &BreakerPolicy::default()),
        BreakerStatus::Closed
    );
    // Intune recovers: after 60 s the half-open probe succeeds and the queue drains.
    p.intune_sim.faults().clear();
    drain(&win_q, &p.intune).await;
    assert_eq!(p.intune_sim.apps().len(), 3);
    for i in 0..3 {
        let d = svc
            .store
            .get(&eucora_domain::DeploymentId::parse(format!("dep-{i}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            d.lifecycle.state,
            DeploymentState::InRing { ring: Ring::Canary }
        );
    }
}
