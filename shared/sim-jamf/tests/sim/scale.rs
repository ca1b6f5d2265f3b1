//! Fleets at ring scale: generated Macs, receipts in inventory, Macs deleted mid-rollout,
//! a missing privilege, and the latency every answer takes.

use std::time::Duration;

use eucora_sim_jamf::{ComputerOutcome, FleetMix, RouteMatch, SimComputer, SimConfig};
use serde_json::Value;

use crate::helpers::{Sim, policy_xml, second_paragraph};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_generated_fleet_is_deterministic_and_has_the_mix_asked_for() {
    let mix = FleetMix {
        failed_per_mille: 50,
        never_check_in_per_mille: 100,
        within: Duration::from_secs(3600),
        seed: 3,
    };
    let fleet = SimComputer::generate(10_000, 10_000, &mix);
    assert_eq!(fleet.len(), 10_000);
    assert_eq!(fleet[0].id, 10_000);
    assert_eq!(fleet[9_999].id, 19_999);
    assert_eq!(fleet, SimComputer::generate(10_000, 10_000, &mix));
    let count = |o: ComputerOutcome| fleet.iter().filter(|c| c.outcome == o).count();
    assert!((800..1200).contains(&count(ComputerOutcome::NeverCheckIn)));
    assert!((350..650).contains(&count(ComputerOutcome::Failed)));
    assert!(
        fleet
            .iter()
            .all(|c| c.after > Duration::ZERO && c.after <= Duration::from_secs(3600))
    );
}

async fn inventory(sim: &Sim, query: &str) -> Value {
    let response = sim
        .get(&format!("/api/v3/computers-inventory?{query}"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn receipts_reach_inventory_at_once_with_recon_and_a_day_later_without() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(
        10,
        "Ring 1",
        true,
        vec![
            SimComputer::new(1, ComputerOutcome::Completed, 10 * MINUTE),
            SimComputer::new(2, ComputerOutcome::Failed, 10 * MINUTE),
        ],
    );
    sim.handle.add_computer_group(
        11,
        "Ring 2",
        true,
        vec![SimComputer::new(3, ComputerOutcome::Completed, 10 * MINUTE)],
    );
    let with_recon = sim.create_uploaded_package("Slack-4.41").await;
    let without = sim.create_uploaded_package("Zoom-6.1").await;
    let recon = policy_xml("Slack", 10, &with_recon, "").replace(
        "</policy>",
        "<maintenance><recon>true</recon></maintenance></policy>",
    );
    sim.create_policy(&recon).await;
    sim.create_policy(&policy_xml("Zoom", 11, &without, ""))
        .await;
    sim.handle.advance(15 * MINUTE);

    let page = inventory(
        &sim,
        "section=GENERAL&section=PACKAGE_RECEIPTS&sort=id:asc&filter=id%3Din%3D(1,2,3)",
    )
    .await;
    let receipts = |i: usize| page["results"][i]["packageReceipts"]["installedByJamfPro"].clone();
    assert_eq!(receipts(0), serde_json::json!(["Slack-4.41.pkg"]));
    assert_eq!(
        receipts(1),
        serde_json::json!([]),
        "a failed run leaves none"
    );
    assert_eq!(
        receipts(2),
        serde_json::json!([]),
        "not before the next inventory"
    );
    assert_eq!(page["results"][0]["applications"], Value::Null);

    sim.handle.advance(24 * 60 * MINUTE);
    let page = inventory(&sim, "section=PACKAGE_RECEIPTS&filter=id%3D%3D3").await;
    assert_eq!(
        page["results"][0]["packageReceipts"]["installedByJamfPro"],
        serde_json::json!(["Zoom-6.1.pkg"])
    );
}

#[tokio::test]
async fn macs_that_check_in_keep_a_recent_last_contact_and_the_others_do_not() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(
        10,
        "Ring 1",
        true,
        vec![
            SimComputer::new(1, ComputerOutcome::Completed, MINUTE),
            SimComputer::new(2, ComputerOutcome::NeverCheckIn, MINUTE),
        ],
    );
    let before = inventory(&sim, "sort=id:asc").await;
    sim.handle.advance(10 * 24 * 60 * MINUTE);
    let after = inventory(&sim, "sort=id:asc").await;
    let contact = |page: &Value, i: usize| {
        page["results"][i]["general"]["lastContactTime"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(contact(&after, 0) > contact(&before, 0), "checked in since");
    assert_eq!(contact(&after, 1), contact(&before, 1), "never checks in");
}

#[tokio::test]
async fn a_mac_deleted_mid_rollout_is_gone_from_inventory_and_history_but_not_the_group() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(
        10,
        "Ring 1",
        true,
        SimComputer::generate(1, 5, &FleetMix::default()),
    );
    assert!(sim.handle.delete_computer(3));
    assert!(!sim.handle.delete_computer(3));
    let members: Value = sim
        .get("/api/v3/computer-groups/smart-group-membership/10")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["members"], serde_json::json!([1, 2, 3, 4, 5]));
    let page = inventory(&sim, "filter=id%3Din%3D(1,2,3,4,5)").await;
    assert_eq!(page["totalCount"], 4);
    assert_eq!(
        sim.get("/JSSResource/computerhistory/id/3/subset/PolicyLogs")
            .await
            .status(),
        404
    );
    assert_eq!(
        sim.get("/api/v3/computers-inventory-detail/3")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_missing_privilege_is_401_on_the_classic_api_and_403_on_the_jamf_pro_api() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(
        10,
        "Ring 1",
        true,
        SimComputer::generate(1, 2, &FleetMix::default()),
    );
    sim.handle
        .revoke_privilege(RouteMatch::Path("/JSSResource/computerhistory".into()));
    sim.handle
        .revoke_privilege(RouteMatch::Path("/api/v3/computers-inventory".into()));
    let classic = sim
        .get("/JSSResource/computerhistory/id/1/subset/PolicyLogs")
        .await;
    assert_eq!(classic.status(), 401);
    assert_eq!(
        second_paragraph(&classic.text().await.unwrap()),
        "The request requires user authentication",
        "the very page a bad token gets: it names no privilege"
    );
    let pro = sim.get("/api/v3/computers-inventory").await;
    assert_eq!(pro.status(), 403);
    let body: Value = pro.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "INVALID_PRIVILEGE");
    assert_eq!(
        sim.get("/JSSResource/policies").await.status(),
        200,
        "other privileges stay"
    );
    sim.handle.restore_privileges();
    assert_eq!(
        sim.get("/JSSResource/computerhistory/id/1/subset/PolicyLogs")
            .await
            .status(),
        200
    );

    // A role without a privilege, by Jamf's name: the same answers.
    sim.handle
        .set_client_privileges(Some(&["Read Computers", "Read Smart Computer Groups"]));
    assert_eq!(
        sim.get("/JSSResource/computerhistory/id/1/subset/PolicyLogs")
            .await
            .status(),
        200
    );
    let policies = sim.get("/JSSResource/policies").await;
    assert_eq!(policies.status(), 401, "no Read Policies");
    assert_eq!(
        sim.get("/api/v1/packages").await.status(),
        403,
        "no Read Packages"
    );
    sim.handle.set_client_privileges(None);
    assert_eq!(sim.get("/JSSResource/policies").await.status(), 200);
}

#[tokio::test]
async fn ten_thousand_macs_page_at_2000_at_most() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(
        10,
        "Ring 4",
        true,
        SimComputer::generate(1, 10_000, &FleetMix::default()),
    );
    let page = inventory(&sim, "page-size=5000&sort=id:asc&page=4").await;
    assert_eq!(page["totalCount"], 10_000);
    let results = page["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        2000,
        "an oversized page is clamped, not refused"
    );
    assert_eq!(results[0]["id"], "8001");
}

#[tokio::test]
async fn the_default_latency_is_realistic_and_instant_has_none() {
    let config = SimConfig::default();
    assert!(
        config.latency >= Duration::from_millis(150)
            && config.latency <= Duration::from_millis(300)
    );
    assert!(config.latency_per_record > Duration::ZERO);
    let instant = SimConfig::instant();
    assert_eq!(instant.latency, Duration::ZERO);
    assert_eq!(instant.latency_per_record, Duration::ZERO);
}

#[tokio::test]
async fn the_peak_can_be_measured_afresh() {
    let sim = Sim::with(SimConfig {
        latency: Duration::from_millis(50),
        ..SimConfig::instant()
    })
    .await;
    let a = sim.get("/api/v1/packages");
    let b = sim.get("/api/v1/categories");
    let (a, b) = tokio::join!(a, b);
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(sim.handle.peak_concurrency(), 2);
    assert_eq!(sim.handle.in_flight(), 0);
    sim.handle.reset_peak_concurrency();
    assert_eq!(sim.handle.peak_concurrency(), 0);
    sim.get("/api/v1/packages").await;
    assert_eq!(sim.handle.peak_concurrency(), 1);
}
