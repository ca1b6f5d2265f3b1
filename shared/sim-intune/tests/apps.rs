//! Win32 LOB apps end to end: create, content upload, commit, publish, assign (replace), and the
//! install status reports fed by devices on the simulated clock.

mod common;

use std::time::Duration;

use common::{
    APPS, Api, assign, encryption_info, group_assignment, publish, sim, start_upload,
    upload_blocks, win32_app,
};
use eucora_sim_intune::{PublishingState, SimDevice};
use reqwest::Method;
use serde_json::{Value, json};

const REPORT: &str = "/v1.0/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport";
const MINUTE: Duration = Duration::from_secs(60);

fn ring_devices() -> Vec<SimDevice> {
    vec![
        SimDevice::installed("dev-1", "PC-01", 10 * MINUTE),
        SimDevice::installed("dev-2", "PC-02", 10 * MINUTE),
        SimDevice::installed("dev-3", "PC-03", 12 * MINUTE),
        SimDevice::failed("dev-4", "PC-04", -2_016_345_060, 20 * MINUTE),
        SimDevice::silent("dev-5", "PC-05"),
    ]
}

async fn report(api: &Api, path: &str, app_id: &str, extra: &Value) -> Value {
    let mut body = json!({"filter": format!("(ApplicationId eq '{app_id}')")});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let answer = api.post(path, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.header("content-type"),
        Some("application/octet-stream")
    );
    answer.json()
}

/// `{DeviceId: InstallState}` from a report selected with those two columns.
/// The rows' (device, state), sorted: the report promises no order.
fn states(report: &Value) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = report["Values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn the_whole_flow_from_create_to_install_report() {
    let sim = sim().await;
    sim.add_group("ring-1", ring_devices());
    let api = Api::new(&sim).await;

    let app_id = publish(&api, "Contoso Tool", "2.1.0").await;
    let app = sim.app(&app_id).unwrap();
    assert_eq!(app.publishing_state, PublishingState::Published);
    assert_eq!(app.committed_content_version.as_deref(), Some("1"));
    assert_eq!(app.display_version.as_deref(), Some("2.1.0"));

    let assigned = assign(&api, &app_id, vec![group_assignment("required", "ring-1")]).await;
    assert_eq!(assigned.status, 204, "{}", assigned.text);

    let select = json!({"select": ["DeviceId", "InstallState"]});
    let pending = report(&api, REPORT, &app_id, &select).await;
    assert_eq!(pending["TotalRowCount"], 5);
    assert!(
        states(&pending).iter().all(|(_, s)| *s == 5),
        "all pendingInstall: {pending}"
    );

    sim.advance(11 * MINUTE);
    let partial = states(&report(&api, REPORT, &app_id, &select).await);
    assert_eq!(
        partial,
        [
            ("dev-1".into(), 1),
            ("dev-2".into(), 1),
            ("dev-3".into(), 5),
            ("dev-4".into(), 5),
            ("dev-5".into(), 5)
        ]
    );

    sim.advance(10 * MINUTE);
    let full = report(&api, REPORT, &app_id, &json!({"select": ["DeviceId", "InstallState", "ErrorCode", "HexErrorCode", "AppInstallState"]})).await;
    let columns: Vec<&str> = full["Schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Column"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "DeviceId",
            "InstallState",
            "ErrorCode",
            "HexErrorCode",
            "AppInstallState",
            "AppInstallState_loc"
        ]
    );
    assert_eq!(full["Schema"][1]["PropertyType"], "Int32");
    let row = |device: &str| {
        full["Values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == device)
            .unwrap()
            .clone()
    };
    let failed = row("dev-4");
    assert_eq!(failed[1], 2);
    assert_eq!(failed[2], -2_016_345_060);
    assert_eq!(failed[3], "0x87D1041C");
    assert_eq!(failed[5], "Failed");
    assert_eq!(row("dev-1")[5], "Installed");
    assert_eq!(
        row("dev-5")[1],
        5,
        "a device that never reports stays pending"
    );

    // Uninstall replaces the required assignment; installed devices report notInstalled after their delay.
    let uninstall = assign(&api, &app_id, vec![group_assignment("uninstall", "ring-1")]).await;
    assert_eq!(uninstall.status, 204);
    sim.advance(11 * MINUTE);
    let after = states(&report(&api, REPORT, &app_id, &select).await);
    assert_eq!(after[0], ("dev-1".into(), 3));
    assert_eq!(
        after[2],
        ("dev-3".into(), 1),
        "not due yet: still installed"
    );
    sim.advance(10 * MINUTE);
    let after = states(&report(&api, REPORT, &app_id, &select).await);
    assert_eq!(after[2], ("dev-3".into(), 3));
    assert_eq!(
        after[3],
        ("dev-4".into(), 4),
        "a failing device fails its uninstall too"
    );
    assert_eq!(
        after.len(),
        4,
        "the silent device has never reported and is no longer targeted"
    );
}

#[tokio::test]
async fn the_report_pages_with_skip_and_top_on_both_actions() {
    let sim = sim().await;
    sim.add_group("ring-1", ring_devices());
    let api = Api::new(&sim).await;
    let app_id = publish(&api, "Paged", "1.0").await;
    assign(&api, &app_id, vec![group_assignment("required", "ring-1")]).await;
    sim.advance(MINUTE * 30);

    let mut seen = Vec::new();
    for skip in [0, 2, 4] {
        let page = report(
            &api,
            REPORT,
            &app_id,
            &json!({"select": ["DeviceId"], "skip": skip, "top": 2}),
        )
        .await;
        assert_eq!(page["TotalRowCount"], 5);
        seen.extend(
            page["Values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[0].as_str().unwrap().to_owned()),
        );
    }
    // Every row once across the pages, in no promised order.
    seen.sort();
    assert_eq!(seen, ["dev-1", "dev-2", "dev-3", "dev-4", "dev-5"]);

    let beta = report(
        &api,
        "/beta/deviceManagement/reports/getDeviceInstallStatusReport",
        &app_id,
        &json!({"top": 50}),
    )
    .await;
    assert_eq!(beta["TotalRowCount"], 5);
    assert_eq!(
        beta["Schema"].as_array().unwrap().len(),
        18,
        "no select: every column"
    );
    let ordered = report(
        &api,
        REPORT,
        &app_id,
        &json!({"select": ["DeviceName"], "orderBy": ["DeviceName desc"], "top": 1}),
    )
    .await;
    assert_eq!(ordered["Values"], json!([["PC-05"]]));
    let failed_only = api
        .post(REPORT, &json!({"filter": format!("(ApplicationId eq '{app_id}') and (InstallState eq 2)"), "select": ["DeviceId"]}))
        .await;
    assert_eq!(failed_only.json()["Values"], json!([["dev-4"]]));

    let v1_old_action = api
        .post(
            "/v1.0/deviceManagement/reports/getDeviceInstallStatusReport",
            &json!({"filter": "(ApplicationId eq 'x')"}),
        )
        .await;
    assert_eq!(v1_old_action.status, 400);
    assert!(
        v1_old_action
            .text
            .contains("'getDeviceInstallStatusReport'"),
        "{}",
        v1_old_action.text
    );
    let elsewhere = api.get("/v1.0/nothing/here").await;
    assert_eq!(
        (elsewhere.status, elsewhere.code().as_str()),
        (400, "BadRequest")
    );
    assert!(
        elsewhere.text.contains("segment 'nothing'"),
        "{}",
        elsewhere.text
    );
    let no_filter = api.post(REPORT, &json!({"select": ["DeviceId"]})).await;
    assert_eq!(no_filter.status, 400);
    assert_eq!(no_filter.code(), "BadRequest");
    let loc_alone = api.post(REPORT, &json!({"filter": format!("(ApplicationId eq '{app_id}')"), "select": ["AppInstallState_loc"]})).await;
    assert_eq!(loc_alone.status, 400);
}

#[tokio::test]
async fn assign_replaces_every_assignment_and_a_single_post_adds_one() {
    let sim = sim().await;
    sim.add_group(
        "ring-1",
        vec![SimDevice::installed("a1", "A-1", 10 * MINUTE)],
    );
    sim.add_group(
        "ring-2",
        vec![SimDevice::installed("b1", "B-1", 10 * MINUTE)],
    );
    let api = Api::new(&sim).await;
    let app_id = publish(&api, "Replace", "1.0").await;
    let assignments = format!("{APPS}/{app_id}/assignments");
    let groups = |answer: &common::Answer| -> Vec<String> {
        answer.json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["target"]["groupId"].as_str().unwrap().to_owned())
            .collect()
    };

    assert_eq!(
        assign(&api, &app_id, vec![group_assignment("required", "ring-1")])
            .await
            .status,
        204
    );
    assert_eq!(groups(&api.get(&assignments).await), ["ring-1"]);
    assert_eq!(
        assign(&api, &app_id, vec![group_assignment("required", "ring-2")])
            .await
            .status,
        204
    );
    assert_eq!(
        groups(&api.get(&assignments).await),
        ["ring-2"],
        "assign replaced ring-1"
    );

    let added = api
        .post(&assignments, &group_assignment("available", "ring-3"))
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json()["intent"], "available");
    assert!(added.json()["id"].is_string());
    assert_eq!(groups(&api.get(&assignments).await), ["ring-2", "ring-3"]);
    let again = api
        .post(&assignments, &group_assignment("required", "ring-3"))
        .await;
    assert_eq!(again.status, 400, "one assignment per group");

    let listed = api.get(&assignments).await.json();
    let existing: Vec<Value> = listed["value"].as_array().unwrap().clone();
    let mut merged = existing.clone();
    merged.push(group_assignment("required", "ring-1"));
    sim.advance(5 * MINUTE);
    assert_eq!(assign(&api, &app_id, merged).await.status, 204);
    assert_eq!(sim.app(&app_id).unwrap().assignments.len(), 3);

    // ring-2 was assigned before the 5 minutes passed and kept its clock through the merge;
    // ring-1 starts its 10 minutes now.
    sim.advance(6 * MINUTE);
    let rows = api.post(REPORT, &json!({"filter": format!("(ApplicationId eq '{app_id}')"), "select": ["DeviceId", "InstallState"]})).await.json();
    assert_eq!(states(&rows), [("a1".into(), 5), ("b1".into(), 1)]);

    assert_eq!(assign(&api, &app_id, vec![]).await.status, 204);
    assert!(groups(&api.get(&assignments).await).is_empty());
    let bad = assign(&api, &app_id, vec![json!({"intent": "sometimes", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "g"}})]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("intent"), "{}", bad.text);
}

#[tokio::test]
async fn an_unpublished_app_cannot_be_assigned() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    let app_id = api.post(APPS, &win32_app("Draft", "1.0")).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = assign(&api, &app_id, vec![group_assignment("required", "ring-1")]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.code(), "BadRequest");
    assert!(refused.text.contains("notPublished"), "{}", refused.text);
    let single = api
        .post(
            &format!("{APPS}/{app_id}/assignments"),
            &group_assignment("required", "ring-1"),
        )
        .await;
    assert_eq!(single.status, 400);
}

#[tokio::test]
async fn create_validates_names_the_property_and_allows_duplicates() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    for (property, patch) in [
        ("@odata.type", json!({"@odata.type": null})),
        ("displayName", json!({"displayName": ""})),
        ("fileName", json!({"fileName": null})),
        ("installCommandLine", json!({"installCommandLine": null})),
        ("uninstallCommandLine", json!({"uninstallCommandLine": " "})),
        ("rules", json!({"rules": []})),
        (
            "ruleType",
            json!({"rules": [{"@odata.type": "#microsoft.graph.win32LobAppFileSystemRule", "ruleType": "sometimes"}]}),
        ),
    ] {
        let mut body = win32_app("Invalid", "1.0");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let answer = api.post(APPS, &body).await;
        assert_eq!(answer.status, 400, "{property}");
        assert_eq!(answer.code(), "BadRequest");
        assert!(
            answer.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(property),
            "{property}: {}",
            answer.text
        );
    }
    let not_json = api
        .http
        .post(format!("{}{APPS}", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    let first = api.post(APPS, &win32_app("Twin", "1.0")).await;
    let second = api.post(APPS, &win32_app("Twin", "1.0")).await;
    assert_eq!(
        (first.status, second.status),
        (201, 201),
        "Graph does not enforce unique names"
    );
    let (first, second) = (first.json(), second.json());
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["publishingState"], "notPublished");
    assert_eq!(first["@odata.type"], "#microsoft.graph.win32LobApp");
    assert_eq!(sim.apps().len(), 2);
}

#[tokio::test]
async fn apps_are_found_by_filter_and_unknown_ids_are_404() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    api.post(APPS, &win32_app("Alpha", "1.0")).await;
    let beta_id = api
        .post(APPS, &win32_app("Beta's Tool", "2.0"))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = api
        .http
        .get(format!("{}{APPS}", api.base))
        .query(&[(
            "$filter",
            "(isof('microsoft.graph.win32LobApp') and displayName eq 'Beta''s Tool')",
        )])
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    let found: Value = found.json().await.unwrap();
    assert_eq!(found["value"].as_array().unwrap().len(), 1);
    assert_eq!(found["value"][0]["id"], beta_id.as_str());
    assert!(
        found["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#deviceAppManagement/mobileApps")
    );

    let single = api.get(&format!("{APPS}/{beta_id}")).await;
    assert_eq!(single.status, 200);
    assert_eq!(single.json()["displayName"], "Beta's Tool");
    assert!(
        single
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );

    let missing = api
        .http
        .get(format!(
            "{}{APPS}/00000000-0000-0000-0000-000000000000",
            api.base
        ))
        .bearer_auth(&api.token)
        .header("client-request-id", "cccccccc-0000-0000-0000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let request_id = missing.headers()["request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        missing.headers()["client-request-id"],
        "cccccccc-0000-0000-0000-000000000001"
    );
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ResourceNotFound");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "cccccccc-0000-0000-0000-000000000001"
    );
    assert!(body["error"]["innerError"]["date"].is_string());

    let bad_filter = api
        .http
        .get(format!("{}{APPS}", api.base))
        .query(&[("$filter", "displayName gt 'x'")])
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_filter.status(), 400);
    let deleted = api
        .send(Method::DELETE, &format!("{APPS}/{beta_id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(api.get(&format!("{APPS}/{beta_id}")).await.status, 404);
}

#[tokio::test]
async fn a_commit_fails_when_the_upload_does_not_match_or_when_told_to() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    let app_id = api.post(APPS, &win32_app("Upload", "1.0")).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (cv, file_id, uri) = start_upload(&api, &app_id, 100).await;
    let file_path =
        format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions/{cv}/files/{file_id}");

    // Blob uploads are authorised by the SAS signature only.
    let forged = api
        .http
        .put(uri.replace("sig=", "sig=x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.headers()["x-ms-error-code"], "AuthenticationFailed");
    let bad_list = api
        .http
        .put(format!("{uri}&comp=blocklist"))
        .body("<BlockList><Latest>Tm9wZQ==</Latest></BlockList>")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_list.status(), 400);
    assert_eq!(bad_list.headers()["x-ms-error-code"], "InvalidBlockList");

    upload_blocks(&api.http, &uri, &[7_u8; 60]).await;
    assert_eq!(sim.blob(&file_id).unwrap(), vec![7_u8; 60]);
    let no_info = api.post(&format!("{file_path}/commit"), &json!({})).await;
    assert_eq!(no_info.status, 400);
    assert!(no_info.text.contains("fileEncryptionInfo"));
    assert_eq!(
        api.post(&format!("{file_path}/commit"), &encryption_info())
            .await
            .status,
        204
    );
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "commitFilePending"
    );
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "commitFileFailed",
        "60 bytes uploaded, 100 declared"
    );
    let early = api
        .patch(
            &format!("{APPS}/{app_id}"),
            &json!({"@odata.type": "#microsoft.graph.win32LobApp", "committedContentVersion": cv}),
        )
        .await;
    assert_eq!(
        early.status, 400,
        "a content version with a failed file cannot be committed"
    );

    upload_blocks(&api.http, &uri, &[7_u8; 100]).await;
    sim.fail_next_commit(1);
    assert_eq!(
        api.post(&format!("{file_path}/commit"), &encryption_info())
            .await
            .status,
        204
    );
    sim.advance(Duration::from_secs(1));
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "commitFileFailed",
        "told to fail"
    );
    assert_eq!(
        api.post(&format!("{file_path}/commit"), &encryption_info())
            .await
            .status,
        204
    );
    sim.advance(Duration::from_secs(1));
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "commitFileSuccess"
    );

    let renew = api
        .post(&format!("{file_path}/renewUpload"), &json!({}))
        .await;
    assert_eq!(renew.status, 400, "nothing to renew after a commit");
}

#[tokio::test]
async fn an_expired_sas_uri_is_refused_until_renewed() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    let app_id = api.post(APPS, &win32_app("Renew", "1.0")).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (cv, file_id, uri) = start_upload(&api, &app_id, 10).await;
    sim.advance(Duration::from_secs(20 * 60));
    let late = api
        .http
        .put(format!("{uri}&comp=block&blockid=QUFBQQ%3D%3D"))
        .body("12345")
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 403);
    let file_path =
        format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions/{cv}/files/{file_id}");
    assert_eq!(
        api.post(&format!("{file_path}/renewUpload"), &json!({}))
            .await
            .status,
        204
    );
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "azureStorageUriRenewalPending"
    );
    let renewed = api.get(&file_path).await.json();
    assert_eq!(renewed["uploadState"], "azureStorageUriRenewalSuccess");
    let uri = renewed["azureStorageUri"].as_str().unwrap();
    upload_blocks(&api.http, uri, b"0123456789").await;
}
