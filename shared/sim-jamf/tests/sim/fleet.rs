//! Computer groups, the inventory, and policy logs over simulated time.

use std::time::Duration;

use eucora_sim_jamf::{ComputerOutcome, SimComputer};
use serde_json::Value;

use crate::helpers::{Sim, between, policy_xml};

const MINUTE: Duration = Duration::from_secs(60);

fn ring(first_id: u32) -> Vec<SimComputer> {
    vec![
        SimComputer::new(first_id, ComputerOutcome::Completed, 10 * MINUTE),
        SimComputer::new(first_id + 1, ComputerOutcome::Failed, 30 * MINUTE),
        SimComputer::new(first_id + 2, ComputerOutcome::NeverCheckIn, MINUTE),
    ]
}

#[tokio::test]
async fn groups_added_by_the_harness_are_listed_with_members() {
    let sim = Sim::start().await;
    sim.handle
        .add_computer_group(10, "Ring 1 - Canary", true, ring(1));
    sim.handle
        .add_computer_group(11, "Ring 2 - Pilot", false, ring(4));
    let list = sim
        .get("/JSSResource/computergroups")
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("<size>2</size>"));
    assert!(list.contains("<computer_group><id>10</id><name>Ring 1 - Canary</name><is_smart>true</is_smart></computer_group>"));
    let group = sim
        .get("/JSSResource/computergroups/id/11")
        .await
        .text()
        .await
        .unwrap();
    assert!(group.contains("<is_smart>false</is_smart>"));
    assert!(
        group.contains("<computers><size>3</size><computer><id>4</id><name>mac-0004</name>"),
        "{group}"
    );
    assert_eq!(
        sim.get("/JSSResource/computergroups/name/Ring%201%20-%20Canary")
            .await
            .status(),
        200
    );
    assert_eq!(
        sim.get("/JSSResource/computergroups/id/99").await.status(),
        404
    );
}

#[tokio::test]
async fn the_jamf_pro_api_lists_groups_and_smart_group_members() {
    let sim = Sim::start().await;
    sim.handle
        .add_computer_group(10, "Ring 1 - Canary", true, ring(1));
    sim.handle.add_computer_group(11, "Lab", false, ring(4));
    let groups: Value = sim
        .get("/api/v1/computer-groups")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(groups[0]["id"], "10");
    assert_eq!(groups[0]["smartGroup"], true);
    assert_eq!(groups[1]["name"], "Lab");
    let members: Value = sim
        .get("/api/v2/computer-groups/smart-group-membership/10")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["members"], serde_json::json!([1, 2, 3]));
    let status = sim
        .get("/api/v2/computer-groups/smart-group-membership/11")
        .await
        .status();
    assert_eq!(status, 404, "a static group is not a smart group");
}

#[tokio::test]
async fn static_groups_can_be_created_and_changed_through_the_api() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(10, "All", false, ring(1));
    let xml = "<computer_group><name>Lab</name><is_smart>false</is_smart>\
               <computers><computer><id>1</id></computer><computer><name>mac-0002</name></computer></computers></computer_group>";
    let response = sim.post_xml("/JSSResource/computergroups/id/0", xml).await;
    assert_eq!(response.status(), 201);
    let id = between(&response.text().await.unwrap(), "<id>", "</id>").to_owned();
    assert_eq!(id, "11", "ids continue after the harness's");
    let group = sim
        .get(&format!("/JSSResource/computergroups/id/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(group.contains("<computers><size>2</size>"));

    let change = "<computer_group><computer_deletions><computer><id>1</id></computer></computer_deletions>\
                  <computer_additions><computer><id>3</id></computer></computer_additions></computer_group>";
    assert_eq!(
        sim.put_xml(&format!("/JSSResource/computergroups/id/{id}"), change)
            .await
            .status(),
        201
    );
    let group = sim
        .get(&format!("/JSSResource/computergroups/id/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        group.contains("<id>2</id>")
            && group.contains("<id>3</id>")
            && !group.contains("<computer><id>1</id>")
    );

    assert_eq!(
        sim.post_xml("/JSSResource/computergroups/id/0", xml)
            .await
            .status(),
        409,
        "duplicate name"
    );
    let unknown = "<computer_group><name>X</name><computers><computer><id>77</id></computer></computers></computer_group>";
    assert_eq!(
        sim.post_xml("/JSSResource/computergroups/id/0", unknown)
            .await
            .status(),
        409
    );
}

#[tokio::test]
async fn computers_run_scoped_policies_by_the_simulated_clock() {
    let sim = Sim::start().await;
    sim.handle
        .add_computer_group(10, "Ring 1 - Canary", true, ring(1));
    let package = sim.create_uploaded_package("Firefox-128.0").await;
    let start = sim.handle.sim_now();
    let id = sim
        .create_policy(&policy_xml("Firefox", 10, &package, "pin:128.0"))
        .await;

    let history =
        |computer: u32| format!("/JSSResource/computerhistory/id/{computer}/subset/PolicyLogs");
    let empty = sim.get(&history(1)).await.text().await.unwrap();
    assert!(
        empty.contains("<computer_history><policy_logs/></computer_history>"),
        "{empty}"
    );

    sim.handle.advance(15 * MINUTE);
    let logs = sim.handle.policy_logs(1);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].status, "Completed");
    assert_eq!(logs[0].at, start + 10 * MINUTE);
    assert!(
        sim.handle.policy_logs(2).is_empty(),
        "not due before 30 minutes"
    );

    sim.handle.advance(30 * MINUTE);
    let xml = sim.get(&history(2)).await.text().await.unwrap();
    assert!(
        xml.contains(&format!(
            "<policy_log><policy_id>{id}</policy_id><policy_name>Firefox</policy_name><username>"
        )),
        "{xml}"
    );
    assert!(xml.contains("<status>Failed</status>"));
    assert!(xml.contains("<date_time_utc>") && xml.contains("+0000</date_time_utc>"));
    let xml = sim.get(&history(1)).await.text().await.unwrap();
    assert!(xml.contains("<status>Completed</status>"));
    let xml = sim.get(&history(3)).await.text().await.unwrap();
    assert!(
        xml.contains("<policy_logs/>"),
        "a computer that never checks in runs nothing"
    );

    sim.handle.advance(24 * 60 * MINUTE);
    assert_eq!(sim.handle.policy_logs(1).len(), 1, "once per computer");
    assert_eq!(
        sim.handle.policy_logs(2).len(),
        4,
        "a failing Mac retries at its next 3 check-ins, as the policy's retry_attempts says"
    );

    // A new package (a new version) acts as a log flush: the ring runs the policy again.
    let next = sim.create_uploaded_package("Firefox-128.1").await;
    let update = format!(
        "<policy><package_configuration><packages><package><id>{next}</id></package></packages></package_configuration></policy>"
    );
    assert_eq!(
        sim.put_xml(&format!("/JSSResource/policies/id/{id}"), &update)
            .await
            .status(),
        201
    );
    sim.handle.advance(60 * MINUTE);
    assert_eq!(sim.handle.policy_logs(1).len(), 2);
    assert_eq!(
        sim.handle.policy_logs(2).len(),
        4 + 3,
        "again after 30 minutes, then at the check-ins 15 and 30 minutes later"
    );
    assert_eq!(
        sim.get("/JSSResource/computerhistory/id/99/subset/PolicyLogs")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn disabled_or_unscoped_policies_do_not_run() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(10, "Ring 1", true, ring(1));
    sim.handle.add_computer_group(
        20,
        "Ring 2",
        true,
        vec![SimComputer::new(9, ComputerOutcome::Completed, MINUTE)],
    );
    let package = sim.create_uploaded_package("Firefox-128.0").await;
    let disabled = policy_xml("Off", 10, &package, "")
        .replace("<enabled>true</enabled>", "<enabled>false</enabled>");
    sim.create_policy(&disabled).await;
    let no_checkin = policy_xml("Manual", 10, &package, "")
        .replace("<trigger_checkin>true", "<trigger_checkin>false");
    sim.create_policy(&no_checkin).await;
    sim.handle.advance(60 * MINUTE);
    assert!(sim.handle.policy_logs(1).is_empty());

    // Widening the scope to the next ring later starts that ring's clock then.
    let id = sim
        .create_policy(&policy_xml("Firefox", 10, &package, ""))
        .await;
    sim.handle.advance(60 * MINUTE);
    assert!(sim.handle.policy_logs(9).is_empty());
    let widen = "<policy><scope><computer_groups><computer_group><id>10</id></computer_group>\
                 <computer_group><name>Ring 2</name></computer_group></computer_groups></scope></policy>";
    assert_eq!(
        sim.put_xml(&format!("/JSSResource/policies/id/{id}"), widen)
            .await
            .status(),
        201
    );
    let widened_at = sim.handle.sim_now();
    sim.handle.advance(5 * MINUTE);
    let logs = sim.handle.policy_logs(9);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].at, widened_at + MINUTE);
}

#[tokio::test]
async fn the_inventory_pages_sorts_and_filters() {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(10, "Ring 1", true, ring(1));
    sim.handle.add_computer_group(11, "Ring 2", true, ring(4));
    for version in ["v1", "v3"] {
        let all: Value = sim
            .get(&format!(
                "/api/{version}/computers-inventory?section=GENERAL"
            ))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(all["totalCount"], 6);
        let first = &all["results"][0];
        assert_eq!(first["id"], "1");
        assert!(first["udid"].is_string());
        assert_eq!(first["general"]["name"], "mac-0001");
        assert_eq!(first["general"]["platform"], "Mac");
        assert!(
            first["general"]["lastContactTime"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert!(first["general"]["reportDate"].is_string());
    }
    let one: Value = sim
        .get("/api/v3/computers-inventory?filter=general.name%3D%3D%22mac-0002%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["totalCount"], 1);
    assert_eq!(one["results"][0]["id"], "2");
    let some: Value = sim
        .get("/api/v3/computers-inventory?filter=id=in=(1,5,6)&sort=id:desc")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = some["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["6", "5", "1"]);
    let page: Value = sim
        .get("/api/v3/computers-inventory?page=1&page-size=4&sort=id:asc")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalCount"], 6);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        sim.get("/api/v3/computers-inventory?filter=bogus==1")
            .await
            .status(),
        400
    );

    let detail: Value = sim
        .get("/api/v3/computers-inventory-detail/4")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["general"]["name"], "mac-0004");
    assert_eq!(detail["groupMemberships"][0]["groupId"], "11");
    assert_eq!(
        sim.get("/api/v3/computers-inventory-detail/99")
            .await
            .status(),
        404
    );

    // A computer that never checks in last made contact a month ago; the others when they were added.
    let never: Value = sim
        .get("/api/v3/computers-inventory-detail/3")
        .await
        .json()
        .await
        .unwrap();
    let ran: Value = sim
        .get("/api/v3/computers-inventory-detail/1")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        never["general"]["lastContactTime"].as_str() < ran["general"]["lastContactTime"].as_str()
    );
}
