//! Classic API policies: create, read, partial update, the revision count, the error pages, what
//! Jamf drops, and the retries of a run that failed.

use std::time::Duration;

use eucora_sim_jamf::{ComputerOutcome, SimComputer};

use crate::helpers::{Sim, between, policy_xml, second_paragraph};

async fn sim_with_group_and_package() -> (Sim, String) {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(
        10,
        "Ring 1 - Canary",
        true,
        vec![SimComputer::new(
            1,
            ComputerOutcome::Completed,
            Duration::from_secs(60),
        )],
    );
    let package = sim.create_package("Firefox-128.0").await;
    (sim, package)
}

#[tokio::test]
async fn create_answers_201_with_the_id_document() {
    let (sim, package) = sim_with_group_and_package().await;
    let response = sim
        .post_xml(
            "/JSSResource/policies/id/0",
            &policy_xml("Firefox", 10, &package, "pin:128.0"),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><policy><id>1</id></policy>"#
    );

    let policies = sim.handle.policies();
    assert_eq!(policies.len(), 1);
    let policy = &policies[0];
    assert_eq!(policy.id, 1);
    assert_eq!(policy.name, "Firefox");
    assert!(policy.enabled && policy.trigger_checkin);
    assert_eq!(policy.category.as_deref(), Some("control-plane-auto"));
    assert_eq!(policy.scope_group_ids, [10]);
    assert_eq!(policy.package_ids, [package.parse::<u32>().unwrap()]);
    assert_eq!(
        (policy.retry_event.as_str(), policy.retry_attempts),
        ("check-in", 3)
    );
    assert!(!policy.notify_on_each_failed_retry);
    assert_eq!(policy.revision, 1);
    // Jamf's policy has neither notes nor a package priority: both are dropped.
    assert!(!policy.xml.contains("notes") && !policy.xml.contains("priority"));
}

#[tokio::test]
async fn get_by_id_and_by_name_answer_the_policy() {
    let (sim, package) = sim_with_group_and_package().await;
    let id = sim
        .create_policy(&policy_xml("Firefox ESR", 10, &package, "pin:128.0"))
        .await;
    for path in [
        format!("/JSSResource/policies/id/{id}"),
        "/JSSResource/policies/name/Firefox%20ESR".to_owned(),
    ] {
        let response = sim.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        let xml = response.text().await.unwrap();
        assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><policy><general><id>1</id><name>Firefox ESR</name>"#), "{xml}");
        assert!(xml.contains("<enabled>true</enabled>"));
        assert!(xml.contains("<trigger_checkin>true</trigger_checkin>"));
        assert!(xml.contains("<frequency>Once per computer</frequency><retry_event>check-in</retry_event><retry_attempts>3</retry_attempts><notify_on_each_failed_retry>false</notify_on_each_failed_retry>"));
        assert!(xml.contains("<category><id>1</id><name>control-plane-auto</name></category>"));
        assert!(!xml.contains("<notes>"));
        assert!(
            xml.contains(
                "<computer_group><id>10</id><name>Ring 1 - Canary</name></computer_group>"
            )
        );
        assert!(xml.contains(&format!(
            "<package><id>{package}</id><name>Firefox-128.0</name><action>Install</action>"
        )));
        assert!(!xml.contains("<priority>"));
    }
    let general = sim
        .get(&format!("/JSSResource/policies/id/{id}/subset/General"))
        .await
        .text()
        .await
        .unwrap();
    assert!(general.contains("<general>") && !general.contains("<scope>"));
    let list = sim.get("/JSSResource/policies").await.text().await.unwrap();
    assert!(
        list.contains("<size>1</size><policy><id>1</id><name>Firefox ESR</name></policy>"),
        "{list}"
    );
}

#[tokio::test]
async fn put_is_a_partial_update_and_counts_a_revision() {
    let (sim, package) = sim_with_group_and_package().await;
    let id = sim
        .create_policy(&policy_xml("Firefox", 10, &package, "pin:128.0"))
        .await;
    let update = "<policy><general><retry_attempts>5</retry_attempts><enabled>false</enabled>\
                  <unknown>x</unknown></general><unknown_section/></policy>";
    let response = sim
        .put_xml(&format!("/JSSResource/policies/id/{id}"), update)
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.text().await.unwrap(),
        format!(r#"<?xml version="1.0" encoding="UTF-8"?><policy><id>{id}</id></policy>"#)
    );

    let policy = &sim.handle.policies()[0];
    assert_eq!(policy.revision, 2);
    assert_eq!(policy.retry_attempts, 5);
    assert_eq!(policy.retry_event, "check-in", "untouched elements stay");
    assert!(
        !policy.xml.contains("unknown"),
        "unknown elements are dropped"
    );
    assert!(!policy.enabled);
    assert_eq!(policy.name, "Firefox", "untouched elements stay");
    assert_eq!(policy.scope_group_ids, [10]);
    assert_eq!(policy.package_ids.len(), 1);
    assert_eq!(policy.category.as_deref(), Some("control-plane-auto"));

    let exclude = "<policy><scope><computer_groups><computer_group><id>10</id></computer_group>\
                   </computer_groups><exclusions><computers><computer><id>1</id></computer></computers>\
                   </exclusions></scope></policy>";
    assert_eq!(
        sim.put_xml("/JSSResource/policies/name/Firefox", exclude)
            .await
            .status(),
        201
    );
    let policy = &sim.handle.policies()[0];
    assert_eq!(policy.revision, 3);
    assert_eq!(policy.scope_group_ids, [10]);
    assert_eq!(policy.excluded_computer_ids, [1]);
    let by_name = "<policy><scope><computer_groups/></scope></policy>";
    assert_eq!(
        sim.put_xml("/JSSResource/policies/name/Firefox", by_name)
            .await
            .status(),
        201
    );
    let policy = &sim.handle.policies()[0];
    assert_eq!(policy.revision, 4);
    assert!(policy.scope_group_ids.is_empty());
    assert!(
        policy.excluded_computer_ids.is_empty(),
        "a scope given replaces the whole scope, exclusions included"
    );
}

#[tokio::test]
async fn a_duplicate_name_is_409_with_the_reason_in_the_second_paragraph() {
    let (sim, package) = sim_with_group_and_package().await;
    sim.create_policy(&policy_xml("Firefox", 10, &package, "pin:128.0"))
        .await;
    let response = sim
        .post_xml(
            "/JSSResource/policies/id/0",
            &policy_xml("firefox", 10, &package, "pin:x"),
        )
        .await;
    assert_eq!(response.status(), 409);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert_eq!(second_paragraph(&html), "Error: Duplicate name");
    assert!(html.contains(">Conflict</p>"));
    let policies = sim.handle.policies();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].revision, 1, "a refused create is no revision");

    let other = sim
        .create_policy(&policy_xml("Slack", 10, &package, "pin:4"))
        .await;
    let rename = "<policy><general><name>Firefox</name></general></policy>";
    let response = sim
        .put_xml(&format!("/JSSResource/policies/id/{other}"), rename)
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        sim.handle.policies()[1].revision,
        1,
        "a refused update is no revision"
    );
}

#[tokio::test]
async fn malformed_xml_unknown_ids_and_missing_references_are_refused() {
    let (sim, package) = sim_with_group_and_package().await;
    let response = sim
        .post_xml(
            "/JSSResource/policies/id/0",
            "<policy><general><name>x</general></policy>",
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(second_paragraph(&response.text().await.unwrap()).starts_with("Error:"));

    let response = sim.get("/JSSResource/policies/id/42").await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains(">Not Found</p>"));
    assert_eq!(
        sim.put_xml("/JSSResource/policies/id/42", "<policy/>")
            .await
            .status(),
        404
    );

    let no_category = policy_xml("A", 10, &package, "").replace("control-plane-auto", "missing");
    let response = sim
        .post_xml("/JSSResource/policies/id/0", &no_category)
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        second_paragraph(&response.text().await.unwrap()),
        "Error: Problem with category"
    );

    let no_group = policy_xml("B", 99, &package, "");
    assert_eq!(
        sim.post_xml("/JSSResource/policies/id/0", &no_group)
            .await
            .status(),
        409
    );
    let no_package = policy_xml("C", 10, "99", "");
    assert_eq!(
        sim.post_xml("/JSSResource/policies/id/0", &no_package)
            .await
            .status(),
        409
    );
    assert!(sim.handle.policies().is_empty());
}

#[tokio::test]
async fn the_revision_counter_counts_every_successful_write() {
    let (sim, package) = sim_with_group_and_package().await;
    let id = sim
        .create_policy(&policy_xml("Firefox", 10, &package, "pin:1"))
        .await;
    for n in 2..=5 {
        let update =
            format!("<policy><general><retry_attempts>{n}</retry_attempts></general></policy>");
        assert_eq!(
            sim.put_xml(&format!("/JSSResource/policies/id/{id}"), &update)
                .await
                .status(),
            201
        );
    }
    assert_eq!(
        sim.put_xml(&format!("/JSSResource/policies/id/{id}"), "<oops>")
            .await
            .status(),
        400
    );
    let policy = &sim.handle.policies()[0];
    assert_eq!(policy.revision, 5);
    assert_eq!(policy.retry_attempts, 5);
    let xml = sim
        .get(&format!("/JSSResource/policies/id/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(between(&xml, "<retry_attempts>", "</retry_attempts>"), "5");
    assert_eq!(
        sim.put_xml(
            &format!("/JSSResource/policies/id/{id}"),
            "<policy><general><retry_attempts>11</retry_attempts></general></policy>"
        )
        .await
        .status(),
        409,
        "1 to 10, or -1"
    );
}
