//! Entra ID group membership, check-ins and generated fleets.

mod common;

use std::time::Duration;

use common::{Api, sim};
use eucora_sim_intune::{Fleet, SimDevice};

#[tokio::test]
async fn group_members_page_up_to_999_and_follow_next_links() {
    let sim = sim().await;
    let fleet = Fleet::new("g", 2500).devices();
    let unmanaged = fleet.iter().filter(|d| !d.managed).count();
    sim.add_group("grp-big", fleet);
    let api = Api::new(&sim).await;

    let too_big = api
        .get("/v1.0/groups/grp-big/transitiveMembers/microsoft.graph.device?$top=1000")
        .await;
    assert_eq!(too_big.status, 400, "{}", too_big.text);
    assert_eq!(too_big.json()["error"]["code"], "Request_UnsupportedQuery");
    assert_eq!(
        api.get("/v1.0/groups/nope/transitiveMembers").await.status,
        404
    );

    let mut url =
        "/v1.0/groups/grp-big/transitiveMembers/microsoft.graph.device?$select=id,deviceId&$top=999"
            .to_owned();
    let (mut members, mut pages) = (Vec::new(), 0);
    loop {
        let page = api.get(&url).await.json();
        pages += 1;
        for m in page["value"].as_array().unwrap() {
            assert_eq!(m["@odata.type"], "#microsoft.graph.device");
            assert!(m.get("displayName").is_none(), "$select");
            members.push(m["deviceId"].as_str().unwrap().to_owned());
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((members.len(), pages), (2500, 3));

    // Members Intune does not manage have no managed device.
    let mut managed = 0;
    let mut url =
        "/v1.0/deviceManagement/managedDevices?$select=id,azureADDeviceId&$top=1000".to_owned();
    loop {
        let page = api.get(&url).await.json();
        for d in page["value"].as_array().unwrap() {
            assert!(members.contains(&d["azureADDeviceId"].as_str().unwrap().to_owned()));
            managed += 1;
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(managed, 2500 - unmanaged);
}

#[tokio::test]
async fn a_device_has_no_report_row_before_its_first_check_in() {
    let sim = sim().await;
    let minute = Duration::from_secs(60);
    sim.add_group(
        "ring-1",
        vec![
            SimDevice::installed("early", "EARLY", 20 * minute),
            SimDevice::installed("late", "LATE", 20 * minute).checks_in_after(10 * minute),
            SimDevice::never_checks_in("gone", "GONE", Duration::from_secs(60 * 86_400)),
        ],
    );
    let api = Api::new(&sim).await;
    let app_id = common::publish(&api, "Check-ins", "1.0").await;
    common::assign(
        &api,
        &app_id,
        vec![common::group_assignment("required", "ring-1")],
    )
    .await;
    let devices = |report: serde_json::Value| {
        let mut ids: Vec<String> = report["Values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let body = serde_json::json!({
        "filter": format!("(ApplicationId eq '{app_id}')"),
        "select": ["DeviceId", "InstallState"]
    });
    let report = "/v1.0/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport";
    assert_eq!(devices(api.post(report, &body).await.json()), ["early"]);
    sim.advance(11 * minute);
    assert_eq!(
        devices(api.post(report, &body).await.json()),
        ["early", "late"]
    );
    sim.advance(24 * 60 * minute);
    assert_eq!(
        devices(api.post(report, &body).await.json()),
        ["early", "late"],
        "a device that never checks in never has a row"
    );
}
