//! `managedDevices` paging: `@odata.nextLink` followed verbatim, `$top`, `$filter`.

mod common;

use std::time::Duration;

use common::Api;
use eucora_sim_intune::{IntuneSim, SimDevice};
use serde_json::Value;

const DEVICES: &str = "/v1.0/deviceManagement/managedDevices";

async fn walk(api: &Api, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(url) = next {
        let page = api.get(&url).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let body = page.json();
        pages.push(
            body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["deviceName"].as_str().unwrap().to_owned())
                .collect(),
        );
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
        assert!(pages.len() < 10, "paging does not end");
    }
    pages
}

#[tokio::test]
async fn managed_devices_page_by_next_link() {
    let minute = Duration::from_secs(60);
    let ring_1 = (1..=3)
        .map(|i| SimDevice::installed(&format!("d{i}"), &format!("PC-0{i}"), minute))
        .collect();
    let sim = IntuneSim::new()
        .latency(std::time::Duration::ZERO, std::time::Duration::ZERO)
        .group("ring-1", ring_1)
        .start()
        .await;
    sim.add_group(
        "ring-2",
        (3..=5)
            .map(|i| SimDevice::installed(&format!("d{i}"), &format!("PC-0{i}"), minute))
            .collect(),
    );
    let api = Api::new(&sim).await;

    let pages = walk(&api, DEVICES).await;
    assert_eq!(
        pages,
        [
            vec!["PC-01", "PC-02"],
            vec!["PC-03", "PC-04"],
            vec!["PC-05"]
        ],
        "default page of 2, d3 listed once"
    );

    let pages = walk(&api, &format!("{DEVICES}?$top=3")).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2]);

    let first = api.get(DEVICES).await.json();
    let link = first["@odata.nextLink"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}{DEVICES}?", sim.base_url())),
        "{link}"
    );
    assert!(link.contains("$skiptoken="));
    let device = &first["value"][0];
    for field in [
        "id",
        "deviceName",
        "userPrincipalName",
        "operatingSystem",
        "osVersion",
        "complianceState",
        "lastSyncDateTime",
        "serialNumber",
    ] {
        assert!(device[field].is_string(), "{field} in {device}");
    }

    let filtered = walk(
        &api,
        &format!("{DEVICES}?$filter=startswith(deviceName,'PC-0')&$top=4"),
    )
    .await;
    assert_eq!(
        filtered.iter().map(Vec::len).collect::<Vec<_>>(),
        [4, 1],
        "the filter survives in the nextLink"
    );

    let one = api.get(&format!("{DEVICES}/d4")).await;
    assert_eq!(one.json()["deviceName"], "PC-04");
    assert_eq!(api.get(&format!("{DEVICES}/nope")).await.status, 404);
    assert_eq!(api.get(&format!("{DEVICES}?$top=0")).await.status, 400);
    assert_eq!(
        api.get(&format!("{DEVICES}?$skiptoken=garbage"))
            .await
            .status,
        400
    );
    let empty: Value = api
        .get("/beta/deviceManagement/managedDevices?$filter=deviceName eq 'none'")
        .await
        .json();
    assert_eq!(empty["value"], serde_json::json!([]));
}
