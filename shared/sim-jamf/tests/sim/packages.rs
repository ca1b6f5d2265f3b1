//! `POST /api/v1/packages`, its errors, the filter, and the upload.

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{Sim, package};

#[tokio::test]
async fn a_created_package_can_be_read_listed_and_filtered() {
    let sim = Sim::start().await;
    let response = sim
        .post_json("/api/v1/packages", &package("Firefox-128.0"))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["href"], sim.url(&format!("/api/v1/packages/{id}")));
    sim.create_package("Slack-4.41").await;

    let one: Value = sim
        .get(&format!("/api/v1/packages/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["packageName"], "Firefox-128.0");
    assert_eq!(one["categoryId"], "1");
    assert_eq!(one["priority"], 10);

    let all: Value = sim.get("/api/v1/packages").await.json().await.unwrap();
    assert_eq!(all["totalCount"], 2);
    let filtered: Value = sim
        .get("/api/v1/packages?filter=packageName%3D%3D%22Firefox-128.0%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["totalCount"], 1);
    assert_eq!(filtered["results"][0]["id"], id.as_str());
    let none: Value = sim
        .get("/api/v1/packages?filter=packageName==\"Zoom\"")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!({ "totalCount": 0, "results": [] }));

    let packages = sim.handle.packages();
    assert_eq!(packages.len(), 2);
    assert_eq!(packages[0].package_name, "Firefox-128.0");
    assert_eq!(packages[0].file_name, "Firefox-128.0.pkg");
    assert_eq!(packages[0].category_id, "1");
    assert_eq!(packages[0].priority, 10);
    assert!(!packages[0].uploaded);
}

#[tokio::test]
async fn a_duplicate_name_is_a_400_duplicate_field_on_package_name() {
    let sim = Sim::start().await;
    sim.create_package("Firefox-128.0").await;
    let response = sim
        .post_json("/api/v1/packages", &package("Firefox-128.0"))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["httpStatus"], 400);
    assert_eq!(body["errors"][0]["code"], "DUPLICATE_FIELD");
    assert_eq!(body["errors"][0]["field"], "packageName");
    assert_eq!(sim.handle.packages().len(), 1);
}

#[tokio::test]
async fn each_missing_field_is_named() {
    let sim = Sim::start().await;
    let mut body = package("Firefox-128.0");
    body.as_object_mut().unwrap().remove("fileName");
    body.as_object_mut().unwrap().remove("suppressRegistration");
    let response = sim.post_json("/api/v1/packages", &body).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let errors = body["errors"].as_array().unwrap();
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["fileName", "suppressRegistration"]);
    assert!(errors.iter().all(|e| e["code"] == "INVALID_FIELD"));
    assert!(sim.handle.packages().is_empty());

    let response = sim
        .http
        .post(sim.url("/api/v1/packages"))
        .bearer_auth(&sim.token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn upload_takes_the_file_part() {
    let sim = Sim::start().await;
    let id = sim.create_package("Firefox-128.0").await;
    let content = b"xar!-not-really-a-pkg".to_vec();
    let form = Form::new().part(
        "file",
        Part::bytes(content.clone()).file_name("Firefox-128.0.pkg"),
    );
    let response = sim
        .http
        .post(sim.url(&format!("/api/v1/packages/{id}/upload")))
        .bearer_auth(&sim.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());

    let package = &sim.handle.packages()[0];
    assert!(package.uploaded);
    assert_eq!(package.upload_size, Some(content.len() as u64));
    assert_eq!(
        package.upload_sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&content)).as_str())
    );
    let read: Value = sim
        .get(&format!("/api/v1/packages/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["cloudTransferStatus"], "READY");

    let wrong_field = Form::new().part("upload", Part::bytes(content).file_name("x.pkg"));
    let response = sim
        .http
        .post(sim.url(&format!("/api/v1/packages/{id}/upload")))
        .bearer_auth(&sim.token)
        .multipart(wrong_field)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn unknown_packages_are_404() {
    let sim = Sim::start().await;
    let response = sim.get("/api/v1/packages/99").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["httpStatus"], 404);
    let form = Form::new().part("file", Part::bytes(vec![1, 2, 3]).file_name("x.pkg"));
    let response = sim
        .http
        .post(sim.url("/api/v1/packages/99/upload"))
        .bearer_auth(&sim.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn categories_start_with_control_plane_auto() {
    let sim = Sim::start().await;
    let body: Value = sim
        .get("/api/v1/categories?filter=name==\"control-plane-auto\"")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["totalCount"], 1);
    assert_eq!(body["results"][0]["id"], "1");
    let classic = sim
        .get("/JSSResource/categories/name/control-plane-auto")
        .await;
    assert_eq!(classic.status(), 200);
    assert!(classic.text().await.unwrap().contains("<id>1</id>"));

    let response = sim
        .post_json(
            "/api/v1/categories",
            &json!({ "name": "browsers", "priority": 9 }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let response = sim
        .post_json("/api/v1/categories", &json!({ "name": "Browsers" }))
        .await;
    assert_eq!(
        response.status(),
        400,
        "names compare without regard to case"
    );

    sim.handle.remove_category("control-plane-auto");
    let body: Value = sim
        .get("/api/v1/categories?filter=name==\"control-plane-auto\"")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["totalCount"], 0);
    let mut body = package("Firefox");
    body["categoryId"] = json!("1");
    assert_eq!(
        sim.post_json("/api/v1/packages", &body).await.status(),
        400,
        "category 1 is gone"
    );
}

#[tokio::test]
async fn the_classic_api_creates_and_reads_packages_too() {
    let sim = Sim::start().await;
    let xml = "<package><name>Zoom-6.2</name><filename>Zoom-6.2.pkg</filename>\
               <category>control-plane-auto</category><priority>5</priority></package>";
    let response = sim.post_xml("/JSSResource/packages/id/0", xml).await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.text().await.unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><package><id>1</id></package>"#
    );
    assert_eq!(
        sim.post_xml("/JSSResource/packages/id/0", xml)
            .await
            .status(),
        409
    );
    let read = sim
        .get("/JSSResource/packages/name/Zoom-6.2")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        read.contains("<category>control-plane-auto</category>"),
        "{read}"
    );
    assert!(
        read.contains("<filename>Zoom-6.2.pkg</filename><info/><notes/><priority>5</priority>")
    );
    let same: Value = sim.get("/api/v1/packages/1").await.json().await.unwrap();
    assert_eq!(same["packageName"], "Zoom-6.2");
    assert_eq!(same["categoryId"], "1");
    let list = sim.get("/JSSResource/packages").await.text().await.unwrap();
    assert!(list.contains("<size>1</size><package><id>1</id><name>Zoom-6.2</name></package>"));
}
