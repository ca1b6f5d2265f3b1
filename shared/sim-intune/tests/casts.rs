//! Type casts and bound actions under both names Graph accepts: the namespace
//! (`microsoft.graph.win32LobApp`, `microsoft.graph.commit`) and its alias (`graph.win32LobApp`,
//! `graph.commit`, as Microsoft's SDKs send them); actions by their bare name too.

mod common;

use std::time::Duration;

use common::{APPS, Api, encryption_info, group_assignment, sim, upload_blocks, win32_app};
use eucora_sim_intune::SimDevice;
use reqwest::Method;
use serde_json::json;

/// The cast forms to `win32LobApp` and to its base `mobileLobApp`, which has `contentVersions`.
const CASTS: [&str; 4] = [
    "microsoft.graph.win32LobApp",
    "graph.win32LobApp",
    "microsoft.graph.mobileLobApp",
    "graph.mobileLobApp",
];
/// How an action may be named: bare, under the namespace, under its alias.
const ACTIONS: [&str; 3] = ["", "microsoft.graph.", "graph."];

/// Every route under a cast, and every action, from a new app to its install report.
async fn whole_flow(api: &Api, cast: &str, action: &str) {
    let created = api
        .post(APPS, &win32_app(&format!("{cast} {action}"), "1.0"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let app_id = created.json()["id"].as_str().unwrap().to_owned();
    let versions = format!("{APPS}/{app_id}/{cast}/contentVersions");

    let cv = api.post(&versions, &json!({})).await;
    assert_eq!(cv.status, 201, "POST {versions}: {}", cv.text);
    let cv = cv.json()["id"].as_str().unwrap().to_owned();
    let listed = api.get(&versions).await;
    assert_eq!(listed.status, 200, "GET {versions}: {}", listed.text);
    assert_eq!(listed.json()["value"][0]["id"], cv.as_str());
    let one = api.get(&format!("{versions}/{cv}")).await;
    assert_eq!(one.status, 200, "{}", one.text);

    let content = b"encrypted payload".repeat(8);
    let files = format!("{versions}/{cv}/files");
    let file = api
        .post(
            &files,
            &json!({"@odata.type": "#microsoft.graph.mobileAppContentFile", "name": "setup.intunewin",
                    "size": content.len(), "sizeEncrypted": content.len(), "manifest": null, "isDependency": false}),
        )
        .await;
    assert_eq!(file.status, 201, "POST {files}: {}", file.text);
    let file_id = file.json()["id"].as_str().unwrap().to_owned();
    let file_path = format!("{files}/{file_id}");
    let ready = api.get(&file_path).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json()["uploadState"], "azureStorageUriRequestSuccess");
    assert_eq!(
        api.get(&files).await.json()["value"][0]["id"],
        file_id.as_str()
    );

    let renew = api
        .post(&format!("{file_path}/{action}renewUpload"), &json!({}))
        .await;
    assert_eq!(renew.status, 204, "{action}renewUpload: {}", renew.text);
    let renewed = api.get(&file_path).await.json();
    assert_eq!(renewed["uploadState"], "azureStorageUriRenewalPending");
    let renewed = api.get(&file_path).await.json();
    assert_eq!(renewed["uploadState"], "azureStorageUriRenewalSuccess");
    upload_blocks(
        &api.http,
        renewed["azureStorageUri"].as_str().unwrap(),
        &content,
    )
    .await;

    let commit = api
        .post(&format!("{file_path}/{action}commit"), &encryption_info())
        .await;
    assert_eq!(commit.status, 204, "{action}commit: {}", commit.text);
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "commitFilePending"
    );
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "commitFileSuccess"
    );

    let patch = api
        .patch(
            &format!("{APPS}/{app_id}/{cast}"),
            &json!({"@odata.type": "#microsoft.graph.win32LobApp", "committedContentVersion": cv}),
        )
        .await;
    assert_eq!(patch.status, 204, "PATCH under {cast}: {}", patch.text);
    let app = api.get(&format!("{APPS}/{app_id}/{cast}")).await;
    assert_eq!(app.status, 200, "{}", app.text);
    assert_eq!(app.json()["publishingState"], "processing");
    let app = api.get(&format!("{APPS}/{app_id}/{cast}")).await;
    assert_eq!(app.json()["publishingState"], "published");

    let assigned = api
        .post(
            &format!("{APPS}/{app_id}/{action}assign"),
            &json!({"mobileAppAssignments": [group_assignment("required", "ring-1")]}),
        )
        .await;
    assert_eq!(assigned.status, 204, "{action}assign: {}", assigned.text);
    let assignments = api
        .get(&format!("{APPS}/{app_id}/{cast}/assignments"))
        .await;
    assert_eq!(assignments.json()["value"].as_array().unwrap().len(), 1);

    let report = api
        .post(
            &format!("/v1.0/deviceManagement/reports/{action}retrieveDeviceAppInstallationStatusReport"),
            &json!({"filter": format!("(ApplicationId eq '{app_id}')"), "select": ["DeviceId", "InstallState"]}),
        )
        .await;
    assert_eq!(report.status, 200, "{action}report: {}", report.text);
    assert_eq!(report.json()["TotalRowCount"], 1);
}

#[tokio::test]
async fn every_cast_form_and_every_action_form_reach_the_same_resources() {
    let sim = sim().await;
    sim.add_group(
        "ring-1",
        vec![SimDevice::installed("d1", "PC-01", Duration::from_secs(60))],
    );
    let api = Api::new(&sim).await;
    for cast in CASTS {
        for action in ACTIONS {
            whole_flow(&api, cast, action).await;
        }
    }
    // The beta endpoint's older report action, under each name.
    let app_id = sim.apps()[0].id.clone();
    for action in ACTIONS {
        let path = format!("/beta/deviceManagement/reports/{action}getDeviceInstallStatusReport");
        let report = api
            .post(
                &path,
                &json!({"filter": format!("(ApplicationId eq '{app_id}')")}),
            )
            .await;
        assert_eq!(report.status, 200, "{path}: {}", report.text);
    }
}

#[tokio::test]
async fn casts_on_apps_and_devices_are_no_ops_within_their_type() {
    let sim = sim().await;
    sim.add_group("ring-1", vec![SimDevice::silent("d1", "PC-01")]);
    let api = Api::new(&sim).await;
    let created = api.post(APPS, &win32_app("Cast", "1.0")).await;
    let app_id = created.json()["id"].as_str().unwrap().to_owned();
    for cast in [
        "microsoft.graph.win32LobApp",
        "graph.win32LobApp",
        "graph.mobileApp",
    ] {
        let listed = api.get(&format!("{APPS}/{cast}")).await;
        assert_eq!(listed.status, 200, "{cast}: {}", listed.text);
        assert_eq!(listed.json()["value"][0]["id"], app_id.as_str());
        let keyed = api.get(&format!("{APPS}/{cast}/{app_id}")).await;
        assert_eq!(keyed.status, 200, "{cast}: {}", keyed.text);
        let cast_entity = api.get(&format!("{APPS}/{app_id}/{cast}")).await;
        assert_eq!(cast_entity.status, 200, "{cast}: {}", cast_entity.text);
        assert_eq!(cast_entity.json()["id"], app_id.as_str());
    }
    for cast in ["microsoft.graph.managedDevice", "graph.managedDevice"] {
        let listed = api
            .get(&format!("/v1.0/deviceManagement/managedDevices/{cast}"))
            .await;
        assert_eq!(listed.status, 200, "{cast}: {}", listed.text);
        let one = api
            .get(&format!("/v1.0/deviceManagement/managedDevices/d1/{cast}"))
            .await;
        assert_eq!(one.status, 200, "{cast}: {}", one.text);
        assert_eq!(one.json()["id"], "d1");
    }
}

#[tokio::test]
async fn what_graph_does_not_know_is_still_a_bad_request_naming_the_segment() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    let created = api.post(APPS, &win32_app("Strict", "1.0")).await;
    let app_id = created.json()["id"].as_str().unwrap().to_owned();
    let segment = |answer: &common::Answer| {
        assert_eq!(answer.status, 400, "{}", answer.text);
        answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // contentVersions is a property of line-of-business apps: no cast, or a cast to the base
    // type, does not reach it.
    for path in [
        format!("{APPS}/{app_id}/contentVersions"),
        format!("{APPS}/{app_id}/graph.mobileApp/contentVersions"),
    ] {
        assert_eq!(
            segment(&api.get(&path).await),
            "Resource not found for the segment 'contentVersions'.",
            "{path}"
        );
    }
    // Another namespace, or a namespace on a navigation property, is not Graph's.
    assert_eq!(
        segment(
            &api.get(&format!(
                "{APPS}/{app_id}/microsoft.intune.win32LobApp/contentVersions"
            ))
            .await
        ),
        "Resource not found for the segment 'microsoft.intune.win32LobApp'."
    );
    assert_eq!(
        segment(&api.get(&format!("{APPS}/{app_id}/graph.assignments")).await),
        "Resource not found for the segment 'graph.assignments'."
    );
    // The older report action is beta's only.
    let v1 = api
        .send(
            Method::POST,
            "/v1.0/deviceManagement/reports/graph.getDeviceInstallStatusReport",
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        segment(&v1),
        "Resource not found for the segment 'graph.getDeviceInstallStatusReport'."
    );
}
