//! Every Jamf Pro API route the simulator serves, checked against Jamf's published description:
//! the slice of `GET /api/schema` of Jamf Pro 11.30.1 in `tests/fixtures/jamf-pro-api-slice.json`
//! (its `x-source` names the copy it was cut from; `extract_jamf_pro_slice.py` beside it cuts it).
//! Each answer's operation must be declared, each query parameter sent must be declared and take
//! the value, the status must be declared (or be one of the few error statuses Jamf's schema leaves
//! out, see [`undeclared`]), and the body must match the declared schema: no undeclared property,
//! every required one present, types, formats and enums as declared.

use std::collections::{BTreeMap, BTreeSet};

use eucora_sim_jamf::{ComputerOutcome, SimComputer, SimConfig};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::helpers::{Sim, package};
use crate::openapi::{Document, Nulls, Operation};

const SLICE: &str = include_str!("../fixtures/jamf-pro-api-slice.json");

fn slice() -> Document {
    Document::parse(SLICE)
}

/// The body schema of a status Jamf's schema does not declare for `operation` but Jamf's server
/// sends: 401 without a valid token on every route (declared on `/v1/auth/token` only), 401
/// `invalid_client` from the OAuth token route (RFC 6749 §5.2), 400 for a query or body the
/// server refuses (bad RSQL, a duplicate name), and 404 for an `{id}` that does not exist.
fn undeclared(operation: &Operation<'_>, status: u16) -> Option<&'static str> {
    let takes_input = operation.spec.get("requestBody").is_some()
        || operation.spec["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
    match status {
        400 | 401 if operation.template == "/v1/oauth/token" => {
            Some("OAuthTokenEndpointErrorResponse")
        }
        401 => Some("ApiError"),
        400 if takes_input => Some("ApiError"),
        404 if operation.template.contains("{id}") => Some("ApiError"),
        _ => None,
    }
}

/// Sends requests and checks each answer against the slice; remembers the operations seen.
struct Audit {
    doc: Document,
    problems: Vec<String>,
    seen: BTreeSet<(String, String)>,
}

impl Audit {
    fn new() -> Self {
        Self {
            doc: slice(),
            problems: Vec::new(),
            seen: BTreeSet::new(),
        }
    }

    /// Sends `request` (`method` as built), checks the answer, and answers its status and body
    /// (`null` when it has none).
    async fn send(&mut self, method: &str, request: RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        self.check(method, response).await
    }

    async fn check(&mut self, method: &str, response: Response) -> (u16, Value) {
        let url = response.url().clone();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let path = url.path();
        let Some(relative) = path.strip_prefix("/api") else {
            self.problems
                .push(format!("{method} {path}: not under /api"));
            return (status, body);
        };
        // Jamf's client-credentials guide documents `/api/oauth/token`; the schema has the v1 path.
        let relative = if relative == "/oauth/token" {
            "/v1/oauth/token"
        } else {
            relative
        };
        let Some(operation) = self.doc.operation(method, relative) else {
            self.problems.push(format!(
                "{method} {path}: no such operation in Jamf's schema (answered {status})"
            ));
            return (status, body);
        };
        let name = format!("{method} {path}");
        self.seen
            .insert((operation.method.clone(), operation.template.to_owned()));
        let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in url.query_pairs() {
            query
                .entry(key.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        let mut problems = Vec::new();
        for (key, values) in &query {
            problems.extend(self.doc.check_query(&operation, key, values));
        }
        let declared = &operation.spec["responses"][status.to_string()];
        let schema = if declared.is_object() {
            declared["content"]["application/json"]["schema"].clone()
        } else if let Some(name) = undeclared(&operation, status) {
            json!({ "$ref": format!("#/components/schemas/{name}") })
        } else {
            problems.push(format!("status {status} is not declared"));
            Value::Null
        };
        if schema.is_null() {
            if declared.is_object() && !bytes.is_empty() {
                problems.push(format!("status {status} declares no body, but one came"));
            }
        } else if !content_type.starts_with("application/json") {
            problems.push(format!("content-type {content_type:?}, not JSON"));
        } else if bytes.is_empty() {
            problems.push("no body where one is declared".to_owned());
        } else {
            problems.extend(self.doc.check(&schema, &body, Nulls::Unset));
        }
        self.problems
            .extend(problems.into_iter().map(|p| format!("{name}: {p}")));
        (status, body)
    }

    fn assert_clean(&self) {
        assert!(
            self.problems.is_empty(),
            "answers that differ from Jamf's schema:\n{}",
            self.problems.join("\n")
        );
    }
}

fn ring(first_id: u32) -> Vec<SimComputer> {
    vec![
        SimComputer::new(
            first_id,
            ComputerOutcome::Completed,
            std::time::Duration::ZERO,
        ),
        SimComputer::new(
            first_id + 1,
            ComputerOutcome::Failed,
            std::time::Duration::ZERO,
        ),
        SimComputer::new(
            first_id + 2,
            ComputerOutcome::NeverCheckIn,
            std::time::Duration::ZERO,
        ),
    ]
}

async fn fleet() -> Sim {
    let sim = Sim::start().await;
    sim.handle
        .add_computer_group(10, "Ring 1 - Canary", true, ring(1));
    sim.handle.add_computer_group(11, "Lab", false, ring(4));
    sim
}

fn authed(sim: &Sim, method: Method, path: &str) -> RequestBuilder {
    sim.http
        .request(method, sim.url(path))
        .bearer_auth(&sim.token)
}

fn expect(got: u16, want: u16, what: &str) {
    assert_eq!(got, want, "{what}");
}

fn get(sim: &Sim, path: &str) -> RequestBuilder {
    authed(sim, Method::GET, path)
}

#[tokio::test]
async fn every_jamf_pro_api_route_answers_as_jamfs_schema_declares() {
    let sim = fleet().await;
    let mut audit = Audit::new();
    tokens(&sim, &mut audit).await;
    inventory(&sim, &mut audit).await;
    let category = categories(&sim, &mut audit).await;
    packages(&sim, &mut audit, &category).await;
    groups(&sim, &mut audit).await;
    audit.assert_clean();
    let every: BTreeSet<(String, String)> = audit.doc.operations().into_iter().collect();
    let missed: Vec<_> = every.difference(&audit.seen).collect();
    assert!(
        missed.is_empty(),
        "operations in the slice not exercised: {missed:?}"
    );
}

async fn tokens(sim: &Sim, audit: &mut Audit) {
    let config = SimConfig::instant();
    for path in ["/api/v1/oauth/token", "/api/oauth/token"] {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ];
        let (status, _) = audit
            .send("POST", sim.http.post(sim.url(path)).form(&form))
            .await;
        expect(status, 200, path);
    }
    let bad = [
        ("grant_type", "client_credentials"),
        ("client_id", config.client_id.as_str()),
        ("client_secret", "wrong"),
    ];
    let (status, _) = audit
        .send(
            "POST",
            sim.http.post(sim.url("/api/v1/oauth/token")).form(&bad),
        )
        .await;
    expect(status, 401, "a wrong secret");
    let (status, _) = audit
        .send(
            "POST",
            sim.http
                .post(sim.url("/api/v1/oauth/token"))
                .form(&[("grant_type", "password")]),
        )
        .await;
    expect(status, 400, "another grant");
    let (status, body) = audit
        .send(
            "POST",
            sim.http
                .post(sim.url("/api/v1/auth/token"))
                .basic_auth(&config.username, Some(&config.password)),
        )
        .await;
    expect(status, 200, "a user token");
    let user_token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = audit
        .send(
            "POST",
            sim.http
                .post(sim.url("/api/v1/auth/token"))
                .basic_auth(&config.username, Some("wrong")),
        )
        .await;
    expect(status, 401, "a wrong password");
    let (status, body) = audit
        .send(
            "POST",
            sim.http
                .post(sim.url("/api/v1/auth/keep-alive"))
                .bearer_auth(&user_token),
        )
        .await;
    expect(status, 200, "keep-alive");
    let kept = body["token"].as_str().unwrap().to_owned();
    let (status, _) = audit
        .send(
            "POST",
            sim.http
                .post(sim.url("/api/v1/auth/keep-alive"))
                .bearer_auth(&user_token),
        )
        .await;
    expect(status, 401, "keep-alive with the replaced token");
    let (status, _) = audit
        .send(
            "POST",
            sim.http
                .post(sim.url("/api/v1/auth/invalidate-token"))
                .bearer_auth(&kept),
        )
        .await;
    expect(status, 204, "invalidate");
    let (status, _) = audit
        .send(
            "POST",
            sim.http
                .post(sim.url("/api/v1/auth/invalidate-token"))
                .bearer_auth(&kept),
        )
        .await;
    expect(status, 401, "invalidate an invalid token");

    // Version, and a request without a token.
    let (status, _) = audit
        .send("GET", get(sim, "/api/v1/jamf-pro-version"))
        .await;
    expect(status, 200, "version");
    let (status, _) = audit
        .send("GET", sim.http.get(sim.url("/api/v1/jamf-pro-version")))
        .await;
    expect(status, 401, "no token");
}

async fn inventory(sim: &Sim, audit: &mut Audit) {
    // Inventory, v1 and v3.
    for version in ["v1", "v3"] {
        let list = format!("/api/{version}/computers-inventory");
        let (status, body) = audit.send("GET", get(sim, &list)).await;
        expect(status, 200, &list);
        assert_eq!(body["totalCount"], 6);
        let query = [
            ("section", "GENERAL"),
            ("section", "GROUP_MEMBERSHIPS,HARDWARE"),
            ("page", "0"),
            ("page-size", "2"),
            ("sort", "general.name:desc,id:asc"),
            ("filter", "general.name=in=(mac-0001,mac-0002,mac-0004)"),
        ];
        let (status, body) = audit.send("GET", get(sim, &list).query(&query)).await;
        expect(status, 200, "a filtered page");
        assert_eq!(body["totalCount"], 3);
        let (status, _) = audit
            .send("GET", get(sim, &list).query(&[("filter", "name=='x'")]))
            .await;
        expect(status, 400, "a filter on an unknown field");
        let one = format!("/api/{version}/computers-inventory/1");
        let (status, _) = audit
            .send(
                "GET",
                get(sim, &one).query(&[("section", "GENERAL"), ("section", "GROUP_MEMBERSHIPS")]),
            )
            .await;
        expect(status, 200, &one);
        let (status, _) = audit
            .send(
                "GET",
                get(sim, &format!("/api/{version}/computers-inventory/99")),
            )
            .await;
        expect(status, 404, "no computer 99");
        let detail = format!("/api/{version}/computers-inventory-detail/1");
        let (status, _) = audit.send("GET", get(sim, &detail)).await;
        expect(status, 200, &detail);
        let (status, _) = audit
            .send(
                "GET",
                get(
                    sim,
                    &format!("/api/{version}/computers-inventory-detail/99"),
                ),
            )
            .await;
        expect(status, 404, "no detail for 99");
    }
}

/// Answers the id of a category it created.
async fn categories(sim: &Sim, audit: &mut Audit) -> String {
    let (status, _) = audit.send("GET", get(sim, "/api/v1/categories")).await;
    expect(status, 200, "categories");
    let (status, body) = audit
        .send(
            "GET",
            get(sim, "/api/v1/categories").query(&[
                ("filter", "name==\"control-plane-auto\""),
                ("sort", "name:asc"),
                ("page", "0"),
                ("page-size", "10"),
            ]),
        )
        .await;
    expect(status, 200, "a filtered category list");
    assert_eq!(body["totalCount"], 1);
    let (status, body) = audit
        .send(
            "POST",
            authed(sim, Method::POST, "/api/v1/categories")
                .json(&json!({ "name": "Browsers", "priority": 5 })),
        )
        .await;
    expect(status, 201, "a new category");
    let category = body["id"].as_str().unwrap().to_owned();
    let (status, _) = audit
        .send(
            "POST",
            authed(sim, Method::POST, "/api/v1/categories")
                .json(&json!({ "name": "browsers", "priority": 5 })),
        )
        .await;
    expect(status, 400, "a duplicate category");
    let (status, _) = audit
        .send("GET", get(sim, &format!("/api/v1/categories/{category}")))
        .await;
    expect(status, 200, "one category");
    let (status, _) = audit.send("GET", get(sim, "/api/v1/categories/99")).await;
    expect(status, 404, "no category 99");

    category
}

async fn packages(sim: &Sim, audit: &mut Audit, category: &str) {
    let mut posted = package("Firefox-128.0");
    posted["categoryId"] = json!(category);
    posted["notAJamfField"] = json!("kept out of answers");
    let (status, body) = audit
        .send(
            "POST",
            authed(sim, Method::POST, "/api/v1/packages").json(&posted),
        )
        .await;
    expect(status, 201, "a new package");
    let id = body["id"].as_str().unwrap().to_owned();
    let (status, _) = audit
        .send(
            "POST",
            authed(sim, Method::POST, "/api/v1/packages").json(&package("Firefox-128.0")),
        )
        .await;
    expect(status, 400, "a duplicate package");
    let (status, _) = audit
        .send(
            "GET",
            get(sim, "/api/v1/packages").query(&[
                ("filter", "packageName==\"Firefox-128.0\""),
                ("sort", "id:desc"),
                ("page", "0"),
                ("page-size", "5"),
            ]),
        )
        .await;
    expect(status, 200, "a filtered package list");
    let one = format!("/api/v1/packages/{id}");
    let (status, _) = audit.send("GET", get(sim, &one)).await;
    expect(status, 200, "one package");
    let (status, _) = audit.send("GET", get(sim, "/api/v1/packages/99")).await;
    expect(status, 404, "no package 99");
    let mut changed = package("Firefox-128.0");
    changed["info"] = json!("changed");
    let (status, _) = audit
        .send("PUT", authed(sim, Method::PUT, &one).json(&changed))
        .await;
    expect(status, 200, "an updated package");
    let (status, _) = audit
        .send(
            "PUT",
            authed(sim, Method::PUT, "/api/v1/packages/99").json(&changed),
        )
        .await;
    expect(status, 404, "update package 99");
    let upload = |path: String| {
        let part = Part::bytes(b"xar!PKG".to_vec()).file_name("Firefox-128.0.pkg");
        authed(sim, Method::POST, &path).multipart(Form::new().part("file", part))
    };
    let (status, _) = audit.send("POST", upload(format!("{one}/upload"))).await;
    expect(status, 201, "an upload");
    let (status, _) = audit
        .send("POST", upload("/api/v1/packages/99/upload".to_owned()))
        .await;
    expect(status, 404, "an upload to package 99");
    let (status, body) = audit.send("GET", get(sim, &one)).await;
    expect(status, 200, "the uploaded package");
    assert_eq!(body["hashType"], "SHA3_512");
    let (status, _) = audit
        .send("DELETE", authed(sim, Method::DELETE, &one))
        .await;
    expect(status, 204, "a deleted package");
    let (status, _) = audit
        .send("DELETE", authed(sim, Method::DELETE, &one))
        .await;
    expect(status, 404, "a package deleted twice");
}

async fn groups(sim: &Sim, audit: &mut Audit) {
    let (status, body) = audit.send("GET", get(sim, "/api/v1/computer-groups")).await;
    expect(status, 200, "groups");
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    for version in ["v2", "v3"] {
        let (status, body) = audit
            .send(
                "GET",
                get(
                    sim,
                    &format!("/api/{version}/computer-groups/smart-group-membership/10"),
                ),
            )
            .await;
        expect(status, 200, "smart group members");
        assert_eq!(body["members"], json!([1, 2, 3]));
        let (status, _) = audit
            .send(
                "GET",
                get(
                    sim,
                    &format!("/api/{version}/computer-groups/smart-group-membership/11"),
                ),
            )
            .await;
        expect(status, 404, "a static group has no smart membership");
    }
}

/// The `section` enum of each inventory operation: every value is taken, nothing else is.
#[tokio::test]
async fn the_inventory_takes_exactly_the_sections_jamf_declares() {
    let sim = fleet().await;
    let mut audit = Audit::new();
    let v1 = enum_values(&audit.doc, "ComputerSection");
    let v3 = enum_values(&audit.doc, "ComputerSectionV3");
    assert!(v1.contains(&"PLUGINS".to_owned()) && !v3.contains(&"PLUGINS".to_owned()));
    for (version, sections) in [("v1", &v1), ("v3", &v3)] {
        for path in [
            format!("/api/{version}/computers-inventory"),
            format!("/api/{version}/computers-inventory/1"),
        ] {
            for section in sections {
                let (status, _) = audit
                    .send("GET", get(&sim, &path).query(&[("section", section)]))
                    .await;
                assert_eq!(status, 200, "{path} section={section}");
            }
            let (status, _) = audit
                .send(
                    "GET",
                    get(&sim, &path).query(&[("section", sections.join(","))]),
                )
                .await;
            assert_eq!(status, 200, "{path} with every section");
            for refused in v1
                .iter()
                .filter(|s| !sections.contains(s))
                .map(String::as_str)
                .chain(["BOGUS"])
            {
                let response = get(&sim, &path)
                    .query(&[("section", refused)])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 400, "{path} section={refused}");
            }
        }
    }
    audit.assert_clean();
}

fn enum_values(doc: &Document, schema: &str) -> Vec<String> {
    doc.schema(schema)["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Each list operation's `filter` and `sort` take every field Jamf lists for them (in the
/// parameters' descriptions, copied into `x-filter-fields` / `x-sort-fields`), and refuse others.
#[tokio::test]
async fn filter_and_sort_take_the_fields_jamf_lists() {
    let sim = fleet().await;
    let mut audit = Audit::new();
    let lists: Vec<(String, Value)> = audit
        .doc
        .operations()
        .into_iter()
        .filter(|(method, _)| method == "GET")
        .filter_map(|(method, template)| {
            let op = audit.doc.operation(&method, &template)?;
            Some((template.clone(), op.spec["parameters"].clone()))
        })
        .collect();
    let mut checked = 0;
    for (template, parameters) in lists {
        let path = format!("/api{template}");
        for parameter in parameters.as_array().into_iter().flatten() {
            let (key, fields) = match (
                parameter.get("x-filter-fields"),
                parameter.get("x-sort-fields"),
            ) {
                (Some(fields), _) => ("filter", fields),
                (_, Some(fields)) => ("sort", fields),
                _ => continue,
            };
            for field in fields.as_array().unwrap().iter().filter_map(Value::as_str) {
                let value = if key == "filter" {
                    format!("{field}==\"x\"")
                } else {
                    format!("{field}:desc")
                };
                let (status, body) = audit
                    .send("GET", get(&sim, &path).query(&[(key, &value)]))
                    .await;
                assert_eq!(status, 200, "{path}?{key}={value}: {body}");
                checked += 1;
            }
            let refused = if key == "filter" {
                "bogus==\"x\""
            } else {
                "bogus:asc"
            };
            let (status, _) = audit
                .send("GET", get(&sim, &path).query(&[(key, refused)]))
                .await;
            assert_eq!(status, 400, "{path}?{key}={refused}");
        }
    }
    assert!(checked > 100, "only {checked} fields checked");
    audit.assert_clean();
}

#[tokio::test]
async fn paths_jamf_does_not_declare_are_not_served() {
    let sim = fleet().await;
    let doc = slice();
    for path in [
        "/api/v1/computer-groups/smart-group-membership/10",
        "/api/v2/computers-inventory-detail/1/extra",
    ] {
        assert!(
            doc.operation("GET", path.strip_prefix("/api").unwrap())
                .is_none()
        );
        let status = get(&sim, path).send().await.unwrap().status();
        assert_eq!(status, 404, "{path}");
    }
}

// ---- the checker itself ----

fn category() -> Value {
    json!({ "id": "1", "name": "Browsers", "priority": 9 })
}

#[test]
fn the_checker_passes_a_valid_body() {
    let doc = slice();
    let list = json!({ "totalCount": 1, "results": [category()] });
    assert_eq!(
        doc.check(
            doc.schema("CategoriesSearchResults"),
            &list,
            Nulls::Declared
        ),
        Vec::<String>::new()
    );
}

#[test]
fn the_checker_catches_an_unknown_property() {
    let doc = slice();
    let mut body = category();
    body["colour"] = json!("red");
    let problems = doc.check(doc.schema("Category"), &body, Nulls::Unset);
    assert_eq!(problems, ["$: colour is not a declared property"]);
    let nested = json!({ "id": "1", "general": { "name": "mac", "site": { "id": "-1", "name": "None", "region": "EU" } } });
    let problems = doc.check(doc.schema("ComputerInventoryV3"), &nested, Nulls::Unset);
    assert_eq!(
        problems,
        ["$.general.site: region is not a declared property"]
    );
    let plugins = json!({ "id": "1", "plugins": [] });
    assert_eq!(
        doc.check(doc.schema("ComputerInventoryV3"), &plugins, Nulls::Unset),
        ["$: plugins is not a declared property"]
    );
    assert!(
        doc.check(doc.schema("ComputerInventory"), &plugins, Nulls::Unset)
            .is_empty()
    );
}

#[test]
fn the_checker_catches_a_wrong_type() {
    let doc = slice();
    let mut body = category();
    body["priority"] = json!("high");
    assert_eq!(
        doc.check(doc.schema("Category"), &body, Nulls::Unset),
        ["$.priority: \"high\" where an integer is declared"]
    );
    let list = json!({ "totalCount": 1, "results": [{ "id": 1, "name": "x", "priority": 1 }] });
    assert_eq!(
        doc.check(doc.schema("CategoriesSearchResults"), &list, Nulls::Unset),
        ["$.results[0].id: a number where a string is declared"]
    );
    let dated =
        json!({ "id": "1", "general": { "lastContactTime": "yesterday", "supervised": "no" } });
    assert_eq!(
        doc.check(doc.schema("ComputerInventory"), &dated, Nulls::Unset),
        [
            "$.general.lastContactTime: \"yesterday\" is not a date-time",
            "$.general.supervised: a string where a boolean is declared"
        ]
    );
    assert_eq!(
        doc.check(
            doc.schema("SmartGroupMembership"),
            &json!({ "members": ["1"] }),
            Nulls::Unset
        ),
        ["$.members[0]: \"1\" where an integer is declared"]
    );
}

#[test]
fn the_checker_catches_missing_required_properties_enums_and_nulls() {
    let doc = slice();
    let problems = doc.check(
        doc.schema("Category"),
        &json!({ "name": "x" }),
        Nulls::Unset,
    );
    assert_eq!(problems, ["$: the required property priority is missing"]);
    assert_eq!(
        doc.check(
            doc.schema("ComputerSection"),
            &json!("PLUGINZ"),
            Nulls::Declared
        )
        .len(),
        1
    );
    let unset = json!({ "id": "1", "name": null, "priority": 9 });
    assert!(
        doc.check(doc.schema("Category"), &unset, Nulls::Unset)
            .is_empty()
    );
    assert_eq!(
        doc.check(doc.schema("Category"), &unset, Nulls::Declared),
        ["$.name: null where the schema does not allow it"]
    );
    let list = json!({ "totalCount": 1, "results": [null] });
    assert_eq!(
        doc.check(doc.schema("CategoriesSearchResults"), &list, Nulls::Unset),
        ["$.results[0]: null where the schema does not allow it"]
    );
}

#[test]
fn the_checker_finds_operations_and_refuses_undeclared_query_parameters() {
    let doc = slice();
    let op = doc.operation("GET", "/v3/computers-inventory/7").unwrap();
    assert_eq!(op.template, "/v3/computers-inventory/{id}");
    assert!(
        doc.check_query(&op, "section", &["GENERAL,HARDWARE".to_owned()])
            .is_empty()
    );
    assert_eq!(
        doc.check_query(&op, "section", &["PLUGINS".to_owned()])
            .len(),
        1
    );
    assert_eq!(
        doc.check_query(&op, "page", &["0".to_owned()]),
        ["GET /v3/computers-inventory/{id}: query parameter page is not declared"]
    );
    let list = doc.operation("GET", "/v1/packages").unwrap();
    assert!(
        doc.check_query(&list, "page-size", &["10".to_owned()])
            .is_empty()
    );
    assert_eq!(
        doc.check_query(&list, "page-size", &["ten".to_owned()])
            .len(),
        1
    );
    assert!(doc.operation("PATCH", "/v1/packages/1").is_none());
    assert!(
        doc.operation("GET", "/v1/computer-groups/smart-group-membership/1")
            .is_none()
    );
}
