//! Content uploads as Azure Storage and Intune answer them: Get Block List, the SAS that expires
//! (on the clock or after a set number of blocks) with Azure's 403 body, `renewUpload` that
//! extends the same URI, per-block faults in Azure's shape, slow states, and blobs of gigabytes
//! kept as lengths and digests with every accepted block counted.

mod common;

use std::time::Duration;

use common::{APPS, Api, encryption_info, fast, start_upload, upload_blocks, win32_app};
use eucora_sim_intune::{Fault, RouteMatch, SimConfig, start};
use serde_json::json;

async fn put_block(api: &Api, uri: &str, id: &str, body: &[u8]) -> reqwest::Response {
    api.http
        .put(format!("{uri}&comp=block&blockid={id}"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn get(api: &Api, url: &str) -> (u16, String) {
    let r = api.http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn new_app(api: &Api, name: &str) -> String {
    api.post(APPS, &win32_app(name, "1.0")).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_block_list_is_answered_as_azure_does() {
    let sim = start(fast()).await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "Blocks").await;
    let (_, _, uri) = start_upload(&api, &app_id, 10).await;
    let list = |kind: &str| format!("{uri}&comp=blocklist&blocklisttype={kind}");

    let (status, body) = get(&api, &list("uncommitted")).await;
    assert_eq!(status, 404, "no block yet: no blob");
    assert!(body.contains("<Code>BlobNotFound</Code>"), "{body}");

    assert_eq!(
        put_block(&api, &uri, "QUFBQQ%3D%3D", b"12345")
            .await
            .status(),
        201
    );
    assert_eq!(
        put_block(&api, &uri, "QkJCQg%3D%3D", b"678").await.status(),
        201
    );
    let (status, body) = get(&api, &list("uncommitted")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><UncommittedBlocks>\
         <Block><Name>QUFBQQ==</Name><Size>5</Size></Block><Block><Name>QkJCQg==</Name><Size>3</Size></Block>\
         </UncommittedBlocks></BlockList>"
    );
    let (_, all) = get(&api, &list("all")).await;
    assert!(all.contains("<CommittedBlocks></CommittedBlocks><UncommittedBlocks><Block>"));
    let (_, committed) = get(&api, &format!("{uri}&comp=blocklist")).await;
    assert!(
        committed.contains("<CommittedBlocks></CommittedBlocks></BlockList>"),
        "committed by default: {committed}"
    );
    assert_eq!(get(&api, &list("some")).await.0, 400);

    let put_list = api
        .http
        .put(format!("{uri}&comp=blocklist"))
        .body("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>\n  <Latest>QUFBQQ==</Latest>\n  <Latest>QkJCQg==</Latest>\n</BlockList>")
        .send()
        .await
        .unwrap();
    assert_eq!(put_list.status(), 201);
    let r = api.http.get(list("all")).send().await.unwrap();
    assert_eq!(r.headers()["x-ms-blob-content-length"], "8");
    let body = r.text().await.unwrap();
    assert!(body.contains("<CommittedBlocks><Block><Name>QUFBQQ==</Name><Size>5</Size></Block>"));
    assert!(body.contains("<UncommittedBlocks></UncommittedBlocks>"));
}

#[tokio::test]
async fn an_expired_sas_gets_azures_403_and_a_renewal_extends_the_same_uri() {
    let sim = start(fast()).await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "Expiry").await;
    let (cv, file_id, uri) = start_upload(&api, &app_id, 10).await;
    assert!(uri.contains("&si=") && !uri.contains("&se="), "{uri}");
    let file_path =
        format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions/{cv}/files/{file_id}");
    let expiry = api.get(&file_path).await.json()["azureStorageUriExpirationDateTime"]
        .as_str()
        .unwrap()
        .to_owned();

    sim.advance(Duration::from_secs(16 * 60));
    let late = put_block(&api, &uri, "QUFBQQ%3D%3D", b"12345").await;
    assert_eq!(late.status(), 403);
    assert_eq!(late.headers()["x-ms-error-code"], "AuthenticationFailed");
    let body = late.text().await.unwrap();
    assert!(
        body.contains(
            "<Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request."
        ),
        "{body}"
    );
    assert!(
        body.contains("<AuthenticationErrorDetail>Signed expiry time [")
            && body.contains("] must be after signed start time ["),
        "{body}"
    );
    assert_eq!(get(&api, &format!("{uri}&comp=blocklist")).await.0, 403);

    let renew = api
        .post(&format!("{file_path}/renewUpload"), &json!({}))
        .await;
    assert_eq!(renew.status, 204);
    assert_eq!(
        api.get(&file_path).await.json()["uploadState"],
        "azureStorageUriRenewalPending"
    );
    let renewed = api.get(&file_path).await.json();
    assert_eq!(renewed["uploadState"], "azureStorageUriRenewalSuccess");
    assert_eq!(renewed["azureStorageUri"], uri.as_str(), "the same URI");
    assert!(
        renewed["azureStorageUriExpirationDateTime"]
            .as_str()
            .unwrap()
            > expiry.as_str()
    );
    assert_eq!(
        put_block(&api, &uri, "QUFBQQ%3D%3D", b"12345")
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn the_sas_expires_after_a_set_number_of_blocks() {
    let sim = start(fast()).await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "AfterBlocks").await;
    let (_, _, uri) = start_upload(&api, &app_id, 10).await;
    sim.expire_sas_after_blocks(2);
    assert_eq!(put_block(&api, &uri, "QQ%3D%3D", b"1").await.status(), 201);
    assert_eq!(put_block(&api, &uri, "Qg%3D%3D", b"2").await.status(), 201);
    let third = put_block(&api, &uri, "Qw%3D%3D", b"3").await;
    assert_eq!(third.status(), 403);
    assert!(third.text().await.unwrap().contains("Signed expiry time"));
}

#[tokio::test]
async fn block_faults_answer_in_azures_shape_and_spare_the_rest() {
    let sim = start(fast()).await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "Faults").await;
    let (_, _, uri) = start_upload(&api, &app_id, 10).await;
    sim.faults()
        .fail_after(RouteMatch::PutBlock, 1, Fault::ServiceUnavailable, 1);
    sim.faults()
        .fail_after(RouteMatch::PutBlock, 1, Fault::InternalError, 1);
    assert_eq!(put_block(&api, &uri, "QQ%3D%3D", b"1").await.status(), 201);
    // Neither Graph nor the block list is a Put Block.
    assert_eq!(api.get(&format!("{APPS}/{app_id}")).await.status, 200);
    assert_eq!(
        get(&api, &format!("{uri}&comp=blocklist&blocklisttype=all"))
            .await
            .0,
        200
    );
    let busy = put_block(&api, &uri, "Qg%3D%3D", b"2").await;
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["x-ms-error-code"], "ServerBusy");
    let slow = put_block(&api, &uri, "Qg%3D%3D", b"2").await;
    assert_eq!(slow.status(), 500);
    assert!(
        slow.text()
            .await
            .unwrap()
            .contains("<Code>OperationTimedOut</Code>")
    );
    assert_eq!(put_block(&api, &uri, "Qg%3D%3D", b"2").await.status(), 201);
    sim.faults()
        .fail_after(RouteMatch::PutBlock, 0, Fault::DropConnection, 1);
    assert!(
        api.http
            .put(format!("{uri}&comp=block&blockid=Qw%3D%3D"))
            .body("3")
            .send()
            .await
            .is_err(),
        "the connection was dropped"
    );
    let files = sim.content_files(&app_id);
    assert_eq!(
        files[0].blocks_received(),
        2,
        "faulted blocks were not taken"
    );
}

#[tokio::test]
async fn a_large_blob_keeps_digests_not_bytes_and_counts_every_block() {
    let sim = start(SimConfig {
        blob_bytes_kept: 100,
        ..fast()
    })
    .await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "Large").await;
    let (cv, file_id, uri) = start_upload(&api, &app_id, 180).await;
    for (id, byte) in [
        ("QUFBQQ%3D%3D", 1_u8),
        ("QkJCQg%3D%3D", 2),
        ("QUFBQQ%3D%3D", 1),
        ("Q0NDQw%3D%3D", 3),
    ] {
        assert_eq!(put_block(&api, &uri, id, &[byte; 60]).await.status(), 201);
    }
    let list = "<BlockList><Latest>QUFBQQ==</Latest><Latest>QkJCQg==</Latest><Latest>Q0NDQw==</Latest></BlockList>";
    let put = api
        .http
        .put(format!("{uri}&comp=blocklist"))
        .body(list)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let file = &sim.content_files(&app_id)[0];
    assert_eq!(file.committed_len, 180);
    assert_eq!(file.blocks_received(), 4);
    assert_eq!(file.blocks_sent_twice(), ["QUFBQQ=="]);
    assert_eq!(file.bytes_received, 240);
    assert_eq!(file.committed_blocks[2].sha256, sha_hex(&[3; 60]));
    assert_eq!(file.committed_blocks[2].len, 60);
    assert_eq!(
        sim.blob(&file_id),
        None,
        "past the limit only digests are kept"
    );
    // Intune's commit checks the committed length against sizeEncrypted.
    let file_path =
        format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions/{cv}/files/{file_id}");
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
}

fn sha_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn slow_states_stay_pending_for_the_configured_answers() {
    let sim = start(SimConfig {
        pending_polls: 3,
        ..fast()
    })
    .await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "Slow").await;
    let versions = format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions");
    let cv = api.post(&versions, &json!({})).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = api
        .post(
            &format!("{versions}/{cv}/files"),
            &json!({"@odata.type": "#microsoft.graph.mobileAppContentFile", "name": "a.intunewin",
                    "size": 4, "sizeEncrypted": 4, "manifest": null, "isDependency": false}),
        )
        .await
        .json();
    assert_eq!(file["uploadState"], "azureStorageUriRequestPending");
    let path = format!("{versions}/{cv}/files/{}", file["id"].as_str().unwrap());
    let first: Vec<String> = states(&api, &path, 3).await;
    assert_eq!(
        first,
        [
            "azureStorageUriRequestPending",
            "azureStorageUriRequestPending",
            "azureStorageUriRequestSuccess"
        ]
    );
    let uri = api.get(&path).await.json()["azureStorageUri"]
        .as_str()
        .unwrap()
        .to_owned();
    upload_blocks(&api.http, &uri, b"abcd").await;
    assert_eq!(
        api.post(&format!("{path}/commit"), &encryption_info())
            .await
            .status,
        204
    );
    assert_eq!(
        states(&api, &path, 4).await,
        [
            "commitFilePending",
            "commitFilePending",
            "commitFilePending",
            "commitFileSuccess"
        ]
    );
}

async fn states(api: &Api, path: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            api.get(path).await.json()["uploadState"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    out
}

#[tokio::test]
async fn a_sas_not_yet_in_effect_is_refused_as_azure_refuses_it_then_taken() {
    let sim = start(fast()).await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "NotYet").await;
    let (_, _, uri) = start_upload(&api, &app_id, 10).await;
    sim.faults()
        .fail_next(RouteMatch::PutBlock, Fault::SasRefused, 1);
    let refused = put_block(&api, &uri, "QUFBQQ%3D%3D", b"12345").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["x-ms-error-code"], "AuthenticationFailed");
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("<AuthenticationErrorDetail>Signature did not match."),
        "{body}"
    );
    assert!(
        !body.contains("Signed expiry time"),
        "not an expiry: {body}"
    );
    assert_eq!(
        put_block(&api, &uri, "QUFBQQ%3D%3D", b"12345")
            .await
            .status(),
        201
    );
    assert_eq!(sim.content_files(&app_id)[0].blocks_received(), 1);
}

#[tokio::test]
async fn a_sas_without_read_cannot_list_blocks_but_can_write_them() {
    let sim = start(SimConfig {
        sas_allows_read: false,
        ..fast()
    })
    .await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "WriteOnly").await;
    let (_, _, uri) = start_upload(&api, &app_id, 10).await;
    assert_eq!(
        put_block(&api, &uri, "QUFBQQ%3D%3D", b"12345")
            .await
            .status(),
        201
    );
    let listed = api
        .http
        .get(format!("{uri}&comp=blocklist&blocklisttype=all"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 403);
    assert_eq!(
        listed.headers()["x-ms-error-code"],
        "AuthorizationPermissionMismatch"
    );
}

#[tokio::test]
async fn azures_block_limits_and_the_sas_version_are_kept() {
    let sim = start(fast()).await;
    let api = Api::new(&sim).await;
    let app_id = new_app(&api, "Limits").await;
    let (_, _, uri) = start_upload(&api, &app_id, 10).await;
    let put = put_block(&api, &uri, "QUFBQQ%3D%3D", b"12345").await;
    assert_eq!(put.status(), 201);
    assert_eq!(
        put.headers()["x-ms-version"],
        "2017-04-17",
        "a SAS request runs at the SAS's sv"
    );
    // A block list of 50,001 blocks: Azure takes 50,000 at most, before it looks the ids up.
    let list = std::iter::repeat_n("<Latest>QUFBQQ==</Latest>", 50_001).fold(
        String::from("<BlockList>"),
        |mut s, e| {
            s.push_str(e);
            s
        },
    ) + "</BlockList>";
    let too_long = api
        .http
        .put(format!("{uri}&comp=blocklist"))
        .body(list)
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 400);
    assert_eq!(too_long.headers()["x-ms-error-code"], "BlockListTooLong");
    assert_eq!(sim.content_files(&app_id)[0].committed_len, 0);
}
