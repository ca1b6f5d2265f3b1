//! The simulator's v1.0 answers against Microsoft's published description of Graph v1.0: the
//! slice of `microsoftgraph/msgraph-metadata` (`schemas/v1.0-Prod.csdl`) for the paths and types
//! the simulator serves, kept in `fixtures/graph-v1.0-slice.json` (extracted by
//! `fixtures/graph_slice.py`). Every route is a declared path, every answer a 2XX with a body of
//! the declared type: no property the type does not have, every value of its declared type.

mod common;

use std::time::Duration;

use common::{
    APPS, Answer, Api, assign, group_assignment, publish_app, sim, start_upload, win32_app,
};
use eucora_sim_intune::SimDevice;
use reqwest::Method;
use serde_json::{Map, Value, json};

const SLICE: &str = include_str!("fixtures/graph-v1.0-slice.json");

fn slice() -> Value {
    serde_json::from_str(SLICE).expect("the fixture is JSON")
}

/// Checks values against the fixture's types; collects every problem with where it was found.
struct Checker {
    slice: Value,
    problems: Vec<String>,
}

impl Checker {
    fn new() -> Self {
        Self {
            slice: slice(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, at: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{at}: {what}"));
    }

    fn structured(&self, name: &str) -> Option<&Value> {
        self.slice["types"].get(name)
    }

    /// Whether `name` is `ancestor` or derives from it.
    fn derives(&self, name: &str, ancestor: &str) -> bool {
        let mut current = Some(name.to_owned());
        while let Some(n) = current {
            if n == ancestor {
                return true;
            }
            current = self
                .structured(&n)
                .and_then(|t| t["base"].as_str())
                .map(str::to_owned);
        }
        false
    }

    /// Every structural property of a type, its bases' included; and its navigation properties.
    fn members(&self, name: &str) -> (Map<String, Value>, Vec<String>) {
        let mut properties = Map::new();
        let mut navigation = Vec::new();
        let mut current = Some(name.to_owned());
        while let Some(n) = current {
            let Some(t) = self.structured(&n) else { break };
            if let Some(p) = t["properties"].as_object() {
                properties.extend(p.clone());
            }
            if let Some(p) = t["navigation"].as_object() {
                navigation.extend(p.keys().cloned());
            }
            current = t["base"].as_str().map(str::to_owned);
        }
        (properties, navigation)
    }

    /// Checks one value against a declared type (`Edm.*`, an enum, a structured type, or a
    /// `Collection(...)` of one of those).
    fn value(&mut self, at: &str, declared: &str, nullable: bool, value: &Value) {
        if value.is_null() {
            if !nullable {
                self.problem(at, format!("null, but {declared} is not nullable"));
            }
            return;
        }
        if let Some(inner) = declared
            .strip_prefix("Collection(")
            .and_then(|d| d.strip_suffix(')'))
        {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.value(&format!("{at}[{i}]"), inner, false, item);
                    }
                }
                None => self.problem(at, format!("{value} is not an array of {inner}")),
            }
            return;
        }
        let fits = match declared {
            "Edm.String" | "Edm.Guid" | "Edm.Duration" => value.is_string(),
            "Edm.Boolean" => value.is_boolean(),
            "Edm.Int32" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            "Edm.Int64" => value.is_i64() || value.is_u64(),
            "Edm.Double" | "Edm.Single" => value.is_number(),
            "Edm.DateTimeOffset" => value.as_str().is_some_and(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            }),
            "Edm.Binary" => value.as_str().is_some_and(|s| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=-_".contains(c))
            }),
            other if self.slice["enums"].get(other).is_some() => {
                let e = &self.slice["enums"][other];
                let members: Vec<&str> = e["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                value.as_str().is_some_and(|s| {
                    if e["flags"] == true {
                        s.split(',').all(|m| members.contains(&m.trim()))
                    } else {
                        members.contains(&s)
                    }
                })
            }
            other if self.structured(other).is_some() => {
                self.object(at, other, value);
                true
            }
            other => {
                self.problem(at, format!("{other} is not in the fixture"));
                true
            }
        };
        if !fits {
            self.problem(at, format!("{value} is not a {declared}"));
        }
    }

    /// Checks an object against a structured type (or the type its `@odata.type` names, which
    /// must derive from it).
    fn object(&mut self, at: &str, declared: &str, value: &Value) {
        let Some(object) = value.as_object() else {
            self.problem(at, format!("{value} is not an object of {declared}"));
            return;
        };
        let actual = match object.get("@odata.type").and_then(Value::as_str) {
            Some(named) => {
                let named = named.trim_start_matches('#').to_owned();
                if !self.derives(&named, declared) {
                    self.problem(at, format!("@odata.type {named} is not a {declared}"));
                    return;
                }
                named
            }
            None => declared.to_owned(),
        };
        let (properties, navigation) = self.members(&actual);
        for (key, item) in object {
            if key.contains('@') {
                continue; // an annotation (@odata.type, @odata.context, ...)
            }
            let at = format!("{at}.{key}");
            match properties.get(key) {
                Some(p) => {
                    let declared = p["type"].as_str().unwrap().to_owned();
                    let nullable = p["nullable"] == true;
                    self.value(&at, &declared, nullable, item);
                }
                None if navigation.contains(key) => {
                    self.problem(&at, "a navigation property, answered without $expand");
                }
                None => self.problem(&at, format!("{actual} has no such property")),
            }
        }
    }

    /// Checks one answer against the declared path and method.
    fn answer(&mut self, method: &Method, path: &str, answer: &Answer) {
        let at = format!("{method} {path}");
        let Some((template, operation)) = self.operation(method, path) else {
            self.problem(&at, "no such path and method in Graph v1.0");
            return;
        };
        let at = format!("{method} {template}");
        if !(200..300).contains(&answer.status) {
            self.problem(&at, format!("status {}, expected 2XX", answer.status));
            return;
        }
        if let Some(content_type) = operation["content_type"].as_str() {
            if answer.header("content-type") != Some(content_type) {
                self.problem(
                    &at,
                    format!("content type {:?}", answer.header("content-type")),
                );
            }
            return;
        }
        let Some(returns) = operation["returns"].as_str() else {
            if !answer.text.is_empty() {
                self.problem(&at, "a body where Graph declares none");
            }
            return;
        };
        if answer.text.is_empty() {
            return; // 204: Graph's 2XX allows an answer without the entity
        }
        let body = answer.json();
        match returns
            .strip_prefix("Collection(")
            .and_then(|r| r.strip_suffix(')'))
        {
            Some(item) => {
                for key in body.as_object().unwrap().keys() {
                    if !key.contains('@') && key != "value" {
                        self.problem(&at, format!("a collection with '{key}'"));
                    }
                }
                for (i, entity) in body["value"].as_array().unwrap().iter().enumerate() {
                    self.object(&format!("{at} value[{i}]"), item, entity);
                }
            }
            None => self.object(&at, returns, &body),
        }
    }

    /// The declared path a concrete path matches (casts and actions under either name), and the
    /// operation for the method.
    fn operation(&self, method: &Method, path: &str) -> Option<(String, Value)> {
        let normal = |s: &str| {
            let s = s.to_ascii_lowercase();
            s.strip_prefix("microsoft.graph.")
                .or_else(|| s.strip_prefix("graph."))
                .map_or(s.clone(), str::to_owned)
        };
        let concrete: Vec<String> = path.split('/').map(normal).collect();
        let paths = self.slice["paths"].as_object().unwrap();
        paths.iter().find_map(|(template, operations)| {
            let declared: Vec<String> = template.split('/').map(normal).collect();
            let matches = declared.len() == concrete.len()
                && declared
                    .iter()
                    .zip(&concrete)
                    .all(|(d, c)| d.starts_with('{') || d == c);
            let operation = operations.get(method.as_str().to_ascii_lowercase())?;
            matches.then(|| (template.clone(), operation.clone()))
        })
    }
}

/// A Win32 app as a v1.0 client sends it: `displayVersion` is a beta property.
fn v1_app(name: &str) -> Value {
    let mut app = win32_app(name, "1.0");
    app.as_object_mut().unwrap().remove("displayVersion");
    app
}

/// Sends one request and checks its answer.
async fn call(
    api: &Api,
    check: &mut Checker,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let answer = api.send(method.clone(), path, body).await;
    let bare = path.trim_start_matches("/v1.0").split('?').next().unwrap();
    check.answer(&method, bare, &answer);
    answer
}

/// Every route the simulator serves, called as the connector and Microsoft's SDKs call them.
#[tokio::test]
#[allow(clippy::too_many_lines)] // one walk through every route, in the order a client takes
async fn every_v1_answer_matches_graphs_published_description() {
    let sim = sim().await;
    sim.add_group(
        "ring-1",
        vec![
            SimDevice::installed("d1", "PC-01", Duration::from_secs(60)),
            SimDevice::failed("d2", "PC-02", -2_016_345_060, Duration::from_secs(60)),
            SimDevice::silent("d3", "PC-03"),
        ],
    );
    let api = Api::new(&sim).await;
    let mut check = Checker::new();
    let created = call(
        &api,
        &mut check,
        Method::POST,
        APPS,
        Some(&v1_app("Checked")),
    )
    .await;
    let app_id = created.json()["id"].as_str().unwrap().to_owned();
    let app = format!("{APPS}/{app_id}");
    for cast in ["microsoft.graph.win32LobApp", "graph.win32LobApp"] {
        let versions = format!("{app}/{cast}/contentVersions");
        let cv = call(&api, &mut check, Method::POST, &versions, Some(&json!({}))).await;
        let cv = cv.json()["id"].as_str().unwrap().to_owned();
        call(&api, &mut check, Method::GET, &versions, None).await;
        call(
            &api,
            &mut check,
            Method::GET,
            &format!("{versions}/{cv}"),
            None,
        )
        .await;
        let files = format!("{versions}/{cv}/files");
        let file = call(&api, &mut check,
            Method::POST,
            &files,
            Some(&json!({"@odata.type": "#microsoft.graph.mobileAppContentFile", "name": "a.intunewin",
                         "size": 10, "sizeEncrypted": 10, "manifest": null, "isDependency": false})),
        )
        .await;
        let file = file.json()["id"].as_str().unwrap().to_owned();
        call(&api, &mut check, Method::GET, &files, None).await;
        call(
            &api,
            &mut check,
            Method::GET,
            &format!("{files}/{file}"),
            None,
        )
        .await;
        call(
            &api,
            &mut check,
            Method::POST,
            &format!("{files}/{file}/renewUpload"),
            Some(&json!({})),
        )
        .await;
    }
    let (cv, file_id, _) = start_upload(&api, &app_id, 10).await;
    let file = format!("{app}/graph.win32LobApp/contentVersions/{cv}/files/{file_id}");
    call(
        &api,
        &mut check,
        Method::POST,
        &format!("{file}/commit"),
        Some(&common::encryption_info()),
    )
    .await;

    let published = publish_app(&api, &v1_app("Published")).await;
    let published_app = format!("{APPS}/{published}");
    assert_eq!(
        assign(
            &api,
            &published,
            vec![group_assignment("required", "ring-1")]
        )
        .await
        .status,
        204
    );
    call(
        &api,
        &mut check,
        Method::POST,
        &format!("{published_app}/assign"),
        Some(&json!({"mobileAppAssignments": [group_assignment("required", "ring-1")]})),
    )
    .await;
    call(&api, &mut check, Method::GET, APPS, None).await;
    call(
        &api,
        &mut check,
        Method::GET,
        &format!("{APPS}?$filter=displayName%20eq%20'Published'&$select=id,publishingState"),
        None,
    )
    .await;
    call(&api, &mut check, Method::GET, &published_app, None).await;
    call(
        &api,
        &mut check,
        Method::GET,
        &format!("{published_app}/graph.win32LobApp"),
        None,
    )
    .await;
    call(
        &api,
        &mut check,
        Method::PATCH,
        &app,
        Some(&json!({"@odata.type": "#microsoft.graph.win32LobApp", "notes": "n"})),
    )
    .await;
    let assignments = format!("{published_app}/assignments");
    let listed = call(&api, &mut check, Method::GET, &assignments, None).await;
    let assignment = listed.json()["value"][0]["id"].as_str().unwrap().to_owned();
    call(
        &api,
        &mut check,
        Method::GET,
        &format!("{assignments}/{assignment}"),
        None,
    )
    .await;
    call(
        &api,
        &mut check,
        Method::POST,
        &assignments,
        Some(&group_assignment("available", "ring-2")),
    )
    .await;
    call(
        &api,
        &mut check,
        Method::DELETE,
        &format!("{assignments}/{assignment}"),
        None,
    )
    .await;

    sim.advance(Duration::from_secs(120));
    call(
        &api,
        &mut check,
        Method::GET,
        "/v1.0/deviceManagement/managedDevices",
        None,
    )
    .await;
    call(
        &api,
        &mut check,
        Method::GET,
        "/v1.0/deviceManagement/managedDevices?$top=100",
        None,
    )
    .await;
    call(
        &api,
        &mut check,
        Method::GET,
        "/v1.0/deviceManagement/managedDevices/d1",
        None,
    )
    .await;
    call(
        &api,
        &mut check,
        Method::POST,
        "/v1.0/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport",
        Some(&json!({"filter": format!("(ApplicationId eq '{published}')")})),
    )
    .await;
    call(&api, &mut check, Method::DELETE, &app, None).await;

    assert!(
        check.problems.is_empty(),
        "the simulator's answers differ from Graph v1.0:\n{}",
        check.problems.join("\n")
    );
}

/// The report action's parameters are the ones Graph declares.
#[test]
fn the_report_parameters_the_connector_sends_are_declared() {
    let slice = slice();
    let declared = slice["actions"]["retrieveDeviceAppInstallationStatusReport"]["parameters"]
        .as_object()
        .unwrap();
    for sent in ["select", "filter", "skip", "top", "orderBy", "search"] {
        assert!(declared.contains_key(sent), "{sent}");
    }
    let assign = slice["actions"]["assign"]["parameters"]
        .as_object()
        .unwrap();
    assert!(assign.contains_key("mobileAppAssignments"));
    let commit = slice["actions"]["commit"]["parameters"]
        .as_object()
        .unwrap();
    assert!(commit.contains_key("fileEncryptionInfo"));
}

/// The checker itself finds what it should.
#[test]
fn the_checker_finds_unknown_properties_and_wrong_types() {
    let mut check = Checker::new();
    check.object(
        "app",
        "microsoft.graph.mobileApp",
        &json!({"@odata.type": "#microsoft.graph.win32LobApp", "id": "x", "displayName": 3,
                "roleScopeTagIds": [], "publishingState": "published", "size": 1}),
    );
    assert_eq!(
        check.problems,
        [
            "app.displayName: 3 is not a Edm.String",
            "app.roleScopeTagIds: microsoft.graph.win32LobApp has no such property",
        ]
    );
}
