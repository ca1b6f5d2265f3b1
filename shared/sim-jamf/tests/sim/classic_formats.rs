//! Every Classic API `GET` the simulator serves, in both of the real API's formats: XML by
//! default or for `Accept: application/xml`, JSON for `Accept: application/json` (the same
//! document, the root element as the one key, lists as arrays even with one item). Writes stay XML.

use std::time::Duration;

use eucora_sim_jamf::{ComputerOutcome, SimComputer};
use reqwest::Response;
use serde_json::Value;

use crate::helpers::{Sim, between, policy_xml};

/// A server with a category, a one-computer static group, a smart group with a criterion, a
/// package known to both APIs, a policy scoped to the static group and its log on the computer.
async fn populated() -> (Sim, String) {
    let sim = Sim::start().await;
    sim.handle.add_category(1, "control-plane-auto");
    sim.handle.add_computer_group(
        10,
        "Ring 1 - Canary",
        false,
        vec![SimComputer::new(
            7,
            ComputerOutcome::Completed,
            Duration::from_secs(60),
        )],
    );
    let smart = "<computer_group><name>Smart &amp; Co</name><is_smart>true</is_smart><criteria>\
        <criterion><name>Operating System Version</name><priority>0</priority><and_or>and</and_or>\
        <search_type>like</search_type><value>15</value><opening_paren>false</opening_paren>\
        <closing_paren>false</closing_paren></criterion></criteria></computer_group>";
    let created = sim
        .post_xml("/JSSResource/computergroups/id/0", smart)
        .await;
    assert_eq!(created.status(), 201);
    let classic_package = sim
        .post_xml(
            "/JSSResource/packages/id/0",
            "<package><name>Tool 1.0</name><filename>Tool-1.0.pkg</filename><priority>5</priority></package>",
        )
        .await;
    assert_eq!(classic_package.status(), 201);
    let package = sim.create_uploaded_package("Firefox-128.0").await;
    sim.create_policy(&policy_xml("Firefox", 10, &package, "pin"))
        .await;
    sim.handle.advance(Duration::from_secs(3600));
    (sim, package)
}

async fn get_as(sim: &Sim, path: &str, accept: Option<&str>) -> Response {
    let mut request = sim.http.get(sim.url(path)).bearer_auth(&sim.token);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.unwrap()
}

fn content_type(response: &Response) -> String {
    response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The XML answer (twice: without `Accept` and with `application/xml`), then the JSON one; the
/// JSON's one key is the XML's root element. Answers the JSON document's value.
async fn both_formats(sim: &Sim, path: &str, root: &str) -> Value {
    let mut xml_bodies = Vec::new();
    for accept in [None, Some("application/xml"), Some("text/xml, */*")] {
        let response = get_as(sim, path, accept).await;
        assert_eq!(response.status(), 200, "{path} with {accept:?}");
        assert!(
            content_type(&response).starts_with("text/xml"),
            "{path} with {accept:?}"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.starts_with(&format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><{root}>"#
            )),
            "{path} with {accept:?}: {body}"
        );
        xml_bodies.push(body);
    }
    assert!(xml_bodies.windows(2).all(|w| w[0] == w[1]));

    let response = get_as(sim, path, Some("application/json")).await;
    assert_eq!(response.status(), 200, "{path} as JSON");
    assert!(
        content_type(&response).starts_with("application/json"),
        "{path} as JSON"
    );
    let json: Value = response.json().await.unwrap();
    let object = json.as_object().expect("a JSON object");
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        [root],
        "{path}: one key, the root"
    );
    json[root].clone()
}

#[tokio::test]
async fn policies_in_xml_and_json() {
    let (sim, package) = populated().await;
    let list = both_formats(&sim, "/JSSResource/policies", "policies").await;
    assert_eq!(list, serde_json::json!([{"id": 1, "name": "Firefox"}]));

    for path in [
        "/JSSResource/policies/id/1",
        "/JSSResource/policies/name/Firefox",
    ] {
        let policy = both_formats(&sim, path, "policy").await;
        assert_eq!(policy["general"]["id"], 1);
        assert_eq!(policy["general"]["name"], "Firefox");
        assert_eq!(policy["general"]["enabled"], true);
        assert_eq!(
            policy["general"]["category"],
            serde_json::json!({"id": 1, "name": "control-plane-auto"})
        );
        assert_eq!(
            policy["scope"]["computer_groups"],
            serde_json::json!([{"id": 10, "name": "Ring 1 - Canary"}]),
            "a single group is still an array"
        );
        assert_eq!(policy["scope"]["computers"], serde_json::json!([]));
        assert_eq!(
            policy["scope"]["exclusions"]["computer_groups"],
            serde_json::json!([])
        );
        let packages = policy["package_configuration"]["packages"]
            .as_array()
            .unwrap();
        assert_eq!(packages.len(), 1, "size dropped, one package");
        assert_eq!(packages[0]["id"], package.parse::<u64>().unwrap());
        assert_eq!(packages[0]["action"], "Install");
    }

    let subset = both_formats(
        &sim,
        "/JSSResource/policies/id/1/subset/General&Scope",
        "policy",
    )
    .await;
    let keys: Vec<&String> = subset.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["general", "scope"]);
}

#[tokio::test]
async fn computer_groups_in_xml_and_json() {
    let (sim, _) = populated().await;
    let list = both_formats(&sim, "/JSSResource/computergroups", "computer_groups").await;
    assert_eq!(
        list,
        serde_json::json!([
            {"id": 10, "name": "Ring 1 - Canary", "is_smart": false},
            {"id": 11, "name": "Smart & Co", "is_smart": true},
        ])
    );
    for path in [
        "/JSSResource/computergroups/id/10",
        "/JSSResource/computergroups/name/Ring%201%20-%20Canary",
    ] {
        let group = both_formats(&sim, path, "computer_group").await;
        assert_eq!(group["id"], 10);
        assert_eq!(group["is_smart"], false);
        assert_eq!(group["site"], serde_json::json!({"id": -1, "name": "None"}));
        assert_eq!(group["criteria"], serde_json::json!([]));
        let computers = group["computers"].as_array().unwrap();
        assert_eq!(computers.len(), 1, "a single member is still an array");
        assert_eq!(computers[0]["id"], 7);
        assert_eq!(computers[0]["name"], "mac-0007");
        assert!(computers[0]["serial_number"].is_string());
    }
    let smart = both_formats(&sim, "/JSSResource/computergroups/id/11", "computer_group").await;
    assert_eq!(smart["name"], "Smart & Co");
    assert_eq!(
        smart["criteria"],
        serde_json::json!([{"name": "Operating System Version", "priority": 0, "and_or": "and",
            "search_type": "like", "value": "15", "opening_paren": false, "closing_paren": false}]),
        "a criterion's value stays text, its priority is a number"
    );
}

#[tokio::test]
async fn computer_history_in_xml_and_json() {
    let (sim, _) = populated().await;
    let xml = get_as(&sim, "/JSSResource/computerhistory/id/7", None)
        .await
        .text()
        .await
        .unwrap();
    let udid = between(&xml, "<udid>", "</udid>").to_owned();
    for path in [
        "/JSSResource/computerhistory/id/7".to_owned(),
        "/JSSResource/computerhistory/name/mac-0007".to_owned(),
        format!("/JSSResource/computerhistory/udid/{udid}"),
    ] {
        let history = both_formats(&sim, &path, "computer_history").await;
        assert_eq!(history["general"]["id"], 7);
        for list in [
            "computer_usage_logs",
            "audits",
            "casper_remote_logs",
            "screen_sharing_logs",
            "user_location",
        ] {
            assert_eq!(history[list], serde_json::json!([]), "{list}");
        }
        assert_eq!(
            history["commands"],
            serde_json::json!({"completed": [], "pending": [], "failed": []})
        );
        assert_eq!(history["policy_logs"].as_array().unwrap().len(), 1);
    }
    let logs = both_formats(
        &sim,
        "/JSSResource/computerhistory/id/7/subset/PolicyLogs",
        "computer_history",
    )
    .await;
    let keys: Vec<&String> = logs.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["policy_logs"]);
    let log = &logs["policy_logs"][0];
    assert_eq!(log["policy_id"], 1);
    assert_eq!(log["policy_name"], "Firefox");
    assert_eq!(log["status"], "Completed");
    assert!(log["date_time_epoch"].is_i64());
    assert!(log["date_time_utc"].is_string());
}

#[tokio::test]
async fn categories_in_xml_and_json() {
    let (sim, _) = populated().await;
    let list = both_formats(&sim, "/JSSResource/categories", "categories").await;
    assert_eq!(
        list,
        serde_json::json!([{"id": 1, "name": "control-plane-auto"}])
    );
    for path in [
        "/JSSResource/categories/id/1",
        "/JSSResource/categories/name/control-plane-auto",
    ] {
        let category = both_formats(&sim, path, "category").await;
        assert_eq!(
            category,
            serde_json::json!({"id": 1, "name": "control-plane-auto", "priority": 9})
        );
    }
}

#[tokio::test]
async fn packages_in_xml_and_json() {
    let (sim, _) = populated().await;
    let list = both_formats(&sim, "/JSSResource/packages", "packages").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Tool 1.0", "Firefox-128.0"]);
    assert!(list[0]["id"].is_u64());
    for path in [
        "/JSSResource/packages/id/1",
        "/JSSResource/packages/name/Tool%201.0",
    ] {
        let package = both_formats(&sim, path, "package").await;
        assert_eq!(package["id"], 1);
        assert_eq!(package["name"], "Tool 1.0");
        assert_eq!(package["filename"], "Tool-1.0.pkg");
        assert_eq!(package["priority"], 5);
        assert_eq!(package["reboot_required"], false);
        assert_eq!(package["category"], "No category assigned");
    }
}

#[tokio::test]
async fn the_accept_header_is_read_with_its_qualities_and_writes_stay_xml() {
    let (sim, _) = populated().await;
    let path = "/JSSResource/categories/id/1";
    for (accept, json) in [
        ("application/json, application/xml", true),
        ("application/xml, application/json", false),
        ("application/xml;q=0.5, application/json", true),
        ("application/json;q=0.2, text/xml", false),
        ("application/json;q=0", false),
        ("*/*", false),
    ] {
        let response = get_as(&sim, path, Some(accept)).await;
        assert_eq!(
            content_type(&response).starts_with("application/json"),
            json,
            "{accept}"
        );
    }
    // A create asking for JSON still answers the XML id document.
    let response = sim
        .http
        .post(sim.url("/JSSResource/categories/id/0"))
        .bearer_auth(&sim.token)
        .header("content-type", "application/xml")
        .header("accept", "application/json")
        .body("<category><name>Other</name></category>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(content_type(&response).starts_with("text/xml"));
    // Errors stay the HTML status page.
    let missing = get_as(
        &sim,
        "/JSSResource/policies/id/99",
        Some("application/json"),
    )
    .await;
    assert_eq!(missing.status(), 404);
    assert!(content_type(&missing).starts_with("text/html"));
}
