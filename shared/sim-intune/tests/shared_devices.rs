//! Shared devices: Intune's install status report has a row per device and user, so a PC on
//! which several users signed in appears once per user.

mod common;

use std::time::Duration;

use common::{Api, assign, group_assignment, publish, sim};
use eucora_sim_intune::{DeviceOutcome, SimDevice};
use serde_json::{Value, json};

const REPORT: &str = "/v1.0/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport";
const MINUTE: Duration = Duration::from_secs(60);

/// `(DeviceId, UserPrincipalName, InstallState)` of every row.
async fn rows(api: &Api, app_id: &str) -> Vec<(String, String, i64)> {
    let answer = api
        .post(
            REPORT,
            &json!({"filter": format!("(ApplicationId eq '{app_id}')"),
                    "select": ["DeviceId", "UserPrincipalName", "InstallState", "UserId"]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let report = answer.json();
    let values = report["Values"].as_array().unwrap();
    assert_eq!(report["TotalRowCount"], values.len());
    values
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
                row[2].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_shared_device_has_a_report_row_per_user() {
    let sim = sim().await;
    sim.add_group(
        "ring-1",
        vec![
            SimDevice::installed("pc-1", "PC-01", 10 * MINUTE),
            SimDevice::installed("shared-1", "LAB-01", 20 * MINUTE)
                .shared_by(&["ann@contoso.com", "bob@contoso.com"])
                .with_user_outcome(
                    "cyd@contoso.com",
                    DeviceOutcome::Failed {
                        error_code: -2_016_345_060,
                    },
                )
                .with_user_outcome("dee@contoso.com", DeviceOutcome::NeverReports),
        ],
    );
    let api = Api::new(&sim).await;
    let app_id = publish(&api, "Shared", "1.0").await;
    assert_eq!(
        assign(&api, &app_id, vec![group_assignment("required", "ring-1")])
            .await
            .status,
        204
    );

    let pending = rows(&api, &app_id).await;
    assert_eq!(pending.len(), 5, "one row for PC-01, four for LAB-01");
    assert!(pending.iter().all(|(_, _, state)| *state == 5));

    sim.advance(30 * MINUTE);
    let after: Vec<(String, String, i64)> = rows(&api, &app_id).await;
    let mut shared: Vec<(&str, i64)> = after
        .iter()
        .filter(|(device, ..)| device == "shared-1")
        .map(|(_, user, state)| (user.as_str(), *state))
        .collect();
    // The report promises no order.
    shared.sort_unstable();
    assert_eq!(
        shared,
        [
            ("ann@contoso.com", 1),
            ("bob@contoso.com", 1),
            ("cyd@contoso.com", 2),
            ("dee@contoso.com", 5),
        ]
    );
    assert_eq!(after[0].0, "pc-1");
    assert_eq!(after[0].1, "user.pc01@contoso.onmicrosoft.com");

    // Each user has an id of their own; the device's primary user is the first who signed in.
    let ids = api
        .post(
            REPORT,
            &json!({"filter": format!("(ApplicationId eq '{app_id}') and (DeviceId eq 'shared-1')"),
                    "select": ["UserId"]}),
        )
        .await
        .json();
    let mut user_ids: Vec<&Value> = ids["Values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r[0])
        .collect();
    user_ids.dedup();
    assert_eq!(user_ids.len(), 4);
    let device = api
        .get("/v1.0/deviceManagement/managedDevices/shared-1")
        .await
        .json();
    assert_eq!(device["userPrincipalName"], "ann@contoso.com");
}
