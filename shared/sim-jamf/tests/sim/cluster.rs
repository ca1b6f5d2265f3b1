//! The two nodes behind the load balancer, and the `jpro-ingress` cookie.

use std::time::Duration;

use eucora_sim_jamf::SimConfig;
use serde_json::Value;

use crate::helpers::{Sim, bare_policy_xml, package, unpinned_client};

#[tokio::test]
async fn every_answer_sets_the_ingress_cookie() {
    let sim = Sim::start().await;
    let [a, b] = sim.handle.node_cookies();
    for path in [
        "/api/v1/packages",
        "/JSSResource/policies",
        "/JSSResource/policies/id/42",
        "/nowhere",
    ] {
        let response = unpinned_client()
            .get(sim.url(path))
            .bearer_auth(&sim.token)
            .send()
            .await
            .unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.starts_with("jpro-ingress="), "{path}: {cookie}");
        assert!(cookie.contains(&a) || cookie.contains(&b));
    }
}

#[tokio::test]
async fn without_the_cookie_create_then_use_can_land_on_a_node_that_has_not_seen_it() {
    let sim = Sim::with_client(SimConfig::instant(), unpinned_client()).await;
    // The token request went to node A; the create goes to node B, the read to node A.
    let id = sim.create_package("Firefox-128.0").await;
    let response = sim.get(&format!("/api/v1/packages/{id}")).await;
    assert_eq!(
        response.status(),
        404,
        "node A has not seen the package yet"
    );
    let response = sim.get(&format!("/api/v1/packages/{id}")).await;
    assert_eq!(response.status(), 200, "node B created it");
    let response = sim.get(&format!("/api/v1/packages/{id}")).await;
    assert_eq!(
        response.status(),
        404,
        "node A still has not, within the minute"
    );
    sim.handle.advance(Duration::from_secs(60));
    let response = sim.get(&format!("/api/v1/packages/{id}")).await;
    assert_eq!(response.status(), 200, "a minute later node B has it too");

    let requests = sim.handle.requests();
    let nodes: Vec<usize> = requests.iter().map(|r| r.node).collect();
    assert_eq!(nodes, [0, 1, 0, 1, 0, 1]);

    // The same with a Classic API policy: the update lands on the node that has not seen it.
    let policy = sim.create_policy(&bare_policy_xml("Firefox")).await;
    let update = "<policy><general><enabled>false</enabled></general></policy>";
    assert_eq!(
        sim.put_xml(&format!("/JSSResource/policies/id/{policy}"), update)
            .await
            .status(),
        404
    );
    assert_eq!(sim.handle.policies()[0].revision, 1);
}

#[tokio::test]
async fn without_the_cookie_a_read_after_an_update_can_answer_the_old_version() {
    let sim = Sim::with_client(SimConfig::instant(), unpinned_client()).await;
    let policy = sim.create_policy(&bare_policy_xml("Firefox")).await;
    sim.handle.advance(Duration::from_secs(60));
    let path = format!("/JSSResource/policies/id/{policy}");
    // The update goes to one node, the next read to the other.
    let update = "<policy><general><enabled>false</enabled></general></policy>";
    assert_eq!(sim.put_xml(&path, update).await.status(), 201);
    let stale = sim.get(&path).await.text().await.unwrap();
    assert!(stale.contains("<enabled>true</enabled>"), "{stale}");
    let fresh = sim.get(&path).await.text().await.unwrap();
    assert!(fresh.contains("<enabled>false</enabled>"), "{fresh}");
    sim.handle.advance(Duration::from_secs(60));
    for _ in 0..2 {
        let caught_up = sim.get(&path).await.text().await.unwrap();
        assert!(caught_up.contains("<enabled>false</enabled>"));
    }
    assert!(
        !sim.handle.policies()[0].enabled,
        "the database has the update"
    );
}

#[tokio::test]
async fn with_the_cookie_create_then_use_always_works() {
    let sim = Sim::start().await;
    for n in 0..6 {
        let id = sim.create_package(&format!("App-{n}")).await;
        assert_eq!(
            sim.get(&format!("/api/v1/packages/{id}")).await.status(),
            200
        );
        let filter = format!("/api/v1/packages?filter=packageName==\"App-{n}\"");
        let found: Value = sim.get(&filter).await.json().await.unwrap();
        assert_eq!(found["totalCount"], 1);
    }
    let requests = sim.handle.requests();
    let first = requests[0].node;
    assert!(
        requests.iter().all(|r| r.node == first),
        "one node served everything"
    );
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.cookie("jpro-ingress").is_some()),
        "the cookie came back"
    );
}

#[tokio::test]
async fn duplicate_checks_are_cluster_wide() {
    let sim = Sim::with_client(SimConfig::instant(), unpinned_client()).await;
    sim.create_package("Firefox-128.0").await;
    // This lands on the node that cannot list it yet, but the database refuses the duplicate.
    let response = sim
        .post_json("/api/v1/packages", &package("Firefox-128.0"))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn the_other_node_catches_up_after_a_minute_of_the_simulators_clock() {
    let sim = Sim::with_client(SimConfig::instant(), unpinned_client()).await;
    let id = sim.create_package("Firefox-128.0").await;
    sim.handle.advance(Duration::from_secs(59));
    assert_eq!(
        sim.get(&format!("/api/v1/packages/{id}")).await.status(),
        404
    );
    sim.handle.advance(Duration::from_secs(1));
    for _ in 0..2 {
        assert_eq!(
            sim.get(&format!("/api/v1/packages/{id}")).await.status(),
            200
        );
    }
}

#[tokio::test]
async fn replication_lag_can_be_turned_off() {
    let sim = Sim::with_client(SimConfig::instant(), unpinned_client()).await;
    sim.handle.set_replication_lag(false);
    let id = sim.create_package("Firefox-128.0").await;
    assert_eq!(
        sim.get(&format!("/api/v1/packages/{id}")).await.status(),
        200
    );
}
