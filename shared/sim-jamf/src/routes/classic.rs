//! The Classic API (XML): policies, computer groups, computer history (policy logs), categories.
//! Errors are Jamf's HTML status pages; a create or update answers 201 with `<kind><id>N</id></kind>`.

use serde_json::{Map, Value, json};

use crate::catalog::{Category, Package};
use crate::cluster::{Replica, Replicated as _};
use crate::fleet::{Computer, Group};
use crate::http::{Family, Reply, Request};
use crate::policy::{Policy, Refusal};
use crate::state::State;
use crate::times::{classic_local, classic_utc, epoch_millis};
use crate::xml::{self, Element};

pub(crate) fn route(state: &mut State, request: &Request) -> Reply {
    let segments = request.segments();
    let path: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
    let method = request.method.as_str();
    match (path.as_slice(), method) {
        (["policies"], "GET") => policy_list(state, request),
        (["policies", "id" | "name", key], "GET") => policy_get(state, request, path[1], key, None),
        (["policies", "id" | "name", key, "subset", subsets], "GET") => {
            policy_get(state, request, path[1], key, Some(subsets))
        }
        (["policies", "id", _], "POST") => policy_create(state, request),
        (["policies", "id" | "name", key], "PUT") => policy_update(state, request, path[1], key),
        (["policies", "id" | "name", key], "DELETE") => policy_delete(state, request, path[1], key),

        (["computergroups"], "GET") => group_list(state, request),
        (["computergroups", "id" | "name", key], "GET") => {
            match find_group(state, request, path[1], key) {
                Some(group) => Reply::classic(request, 200, &group_xml(state, group)),
                None => not_found(),
            }
        }
        (["computergroups", "id", _], "POST") => group_create(state, request),
        (["computergroups", "id" | "name", key], "PUT") => {
            group_update(state, request, path[1], key)
        }
        (["computergroups", "id" | "name", key], "DELETE") => {
            group_delete(state, request, path[1], key)
        }

        (["computerhistory", "id" | "name" | "udid", key], "GET") => {
            history(state, request, path[1], key, None)
        }
        (
            [
                "computerhistory",
                "id" | "name" | "udid",
                key,
                "subset",
                subsets,
            ],
            "GET",
        ) => history(state, request, path[1], key, Some(subsets)),

        (["categories"], "GET") => category_list(state, request),
        (["categories", "id" | "name", key], "GET") => {
            match find_category(state, request, path[1], key) {
                Some(category) => Reply::classic(request, 200, &category_xml(category)),
                None => not_found(),
            }
        }
        (["categories", "id", _], "POST") => category_create(state, request),

        (["packages"], "GET") => package_list(state, request),
        (["packages", "id" | "name", key], "GET") => {
            match find_package(state, request, path[1], key) {
                Some(package) => Reply::classic(request, 200, &package_xml(state, package)),
                None => not_found(),
            }
        }
        (["packages", "id", _], "POST") => package_create(state, request),

        (
            [
                "policies" | "computergroups" | "computerhistory" | "categories" | "packages",
                ..,
            ],
            _,
        ) => Reply::method_not_allowed(Family::Classic),
        _ => not_found(),
    }
}

fn not_found() -> Reply {
    Reply::not_found(Family::Classic)
}

fn refused(refusal: &Refusal) -> Reply {
    Reply::page(refusal.status, &refusal.message)
}

fn id_reply(kind: &str, id: u32) -> Reply {
    Reply::xml(201, &Element::new(kind).with(Element::leaf("id", id)))
}

/// The posted document, or the 400 page for XML that does not parse.
fn document(request: &Request) -> Result<Element, Reply> {
    xml::parse(&request.body_text()).map_err(|e| {
        Reply::page(
            400,
            &format!("Error: Unable to parse XML: {} at byte {}", e.problem, e.at),
        )
    })
}

/// `By id` or `by name` (any case), among the objects this node sees.
fn matches_key(by: &str, key: &str, id: u32, name: &str) -> bool {
    match by {
        "id" => key.parse() == Ok(id),
        _ => name.eq_ignore_ascii_case(key),
    }
}

// ---- policies ----

/// The policy as the request's node reads it (a minute behind another node's writes).
fn find_policy<'a>(state: &'a State, request: &Request, by: &str, key: &str) -> Option<&'a Policy> {
    state
        .policies
        .values()
        .filter_map(|p| p.seen_by(request.at))
        .find(|p| matches_key(by, key, p.id, &p.name))
}

fn policy_list(state: &State, request: &Request) -> Reply {
    let visible: Vec<&Policy> = state
        .policies
        .values()
        .filter_map(|p| p.seen_by(request.at))
        .collect();
    let list = Element::list("policies")
        .with(Element::leaf("size", visible.len()))
        .with_all(visible.iter().map(|p| {
            Element::new("policy")
                .with(Element::leaf("id", p.id))
                .with(Element::leaf("name", &p.name))
        }));
    Reply::classic(request, 200, &list)
}

fn policy_get(
    state: &State,
    request: &Request,
    by: &str,
    key: &str,
    subsets: Option<&str>,
) -> Reply {
    let Some(policy) = find_policy(state, request, by, key) else {
        return not_found();
    };
    let mut doc = policy.to_xml(&state.refs());
    if let Some(subsets) = subsets {
        let wanted: Vec<String> = subsets.split('&').map(subset_element).collect();
        doc.children
            .retain(|section| wanted.contains(&section.name));
    }
    Reply::classic(request, 200, &doc)
}

/// `PolicyLogs` → `policy_logs`; `Packages` names the policy's `package_configuration`.
fn subset_element(subset: &str) -> String {
    if subset.eq_ignore_ascii_case("packages") {
        return "package_configuration".to_owned();
    }
    let mut out = String::new();
    for (i, c) in subset.trim().chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn name_taken(state: &State, name: &str, except: Option<u32>) -> bool {
    state
        .policies
        .values()
        .any(|p| Some(p.id) != except && p.name.eq_ignore_ascii_case(name))
}

fn policy_create(state: &mut State, request: &Request) -> Reply {
    let doc = match document(request) {
        Ok(doc) => doc,
        Err(reply) => return reply,
    };
    let mut policy = Policy::blank(0, Some(request.at.origin()));
    if let Err(refusal) = policy.apply(&doc, &state.refs()) {
        return refused(&refusal);
    }
    if name_taken(state, &policy.name, None) {
        return refused(&Refusal::conflict("Duplicate name"));
    }
    let id = state.next_policy_id();
    policy.id = id;
    policy.revision = 1;
    state.policies.insert(id, policy);
    state.evaluate();
    id_reply("policy", id)
}

/// Applies the update to the policy as the database holds it (the node's view only finds it).
fn policy_update(state: &mut State, request: &Request, by: &str, key: &str) -> Reply {
    let Some(mut policy) = find_policy(state, request, by, key)
        .map(|p| p.id)
        .and_then(|id| state.policies.get(&id))
        .cloned()
    else {
        return not_found();
    };
    let before = policy.clone();
    let doc = match document(request) {
        Ok(doc) => doc,
        Err(reply) => return reply,
    };
    if let Err(refusal) = policy.apply(&doc, &state.refs()) {
        return refused(&refusal);
    }
    if name_taken(state, &policy.name, Some(policy.id)) {
        return refused(&Refusal::conflict("Duplicate name"));
    }
    policy.revision += 1;
    policy.updated_from(&before, request.at);
    let id = policy.id;
    state.policies.insert(id, policy);
    state.evaluate();
    id_reply("policy", id)
}

fn policy_delete(state: &mut State, request: &Request, by: &str, key: &str) -> Reply {
    let Some(id) = find_policy(state, request, by, key).map(|p| p.id) else {
        return not_found();
    };
    state.policies.remove(&id);
    state.evaluate();
    Reply::xml(200, &Element::new("policy").with(Element::leaf("id", id)))
}

// ---- computer groups ----

fn find_group<'a>(state: &'a State, request: &Request, by: &str, key: &str) -> Option<&'a Group> {
    state
        .fleet
        .groups
        .values()
        .find(|g| matches_key(by, key, g.id, &g.name) && request.at.sees(g.origin))
}

fn group_list(state: &State, request: &Request) -> Reply {
    let visible: Vec<&Group> = state
        .fleet
        .groups
        .values()
        .filter(|g| request.at.sees(g.origin))
        .collect();
    let list = Element::list("computer_groups")
        .with(Element::leaf("size", visible.len()))
        .with_all(visible.iter().map(|g| {
            Element::new("computer_group")
                .with(Element::leaf("id", g.id))
                .with(Element::leaf("name", &g.name))
                .with(Element::leaf("is_smart", g.smart))
        }));
    Reply::classic(request, 200, &list)
}

fn serial_number(computer: &Computer) -> String {
    format!("C02SIM{:06}", computer.spec.id)
}

fn group_xml(state: &State, group: &Group) -> Element {
    let criteria = group
        .criteria
        .as_ref()
        .map(|c| {
            c.children_named("criterion")
                .map(criterion)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let computers: Vec<Element> = group
        .members
        .iter()
        .filter_map(|id| state.fleet.computers.get(id))
        .map(|c| {
            Element::new("computer")
                .with(Element::leaf("id", c.spec.id))
                .with(Element::leaf("name", &c.spec.name))
                .with(Element::leaf("mac_address", ""))
                .with(Element::leaf("alt_mac_address", ""))
                .with(Element::leaf("serial_number", serial_number(c)))
        })
        .collect();
    Element::new("computer_group")
        .with(Element::leaf("id", group.id))
        .with(Element::leaf("name", &group.name))
        .with(Element::leaf("is_smart", group.smart))
        .with(
            Element::new("site")
                .with(Element::leaf("id", -1))
                .with(Element::leaf("name", "None")),
        )
        .with(
            Element::list("criteria")
                .with(Element::leaf("size", criteria.len()))
                .with_all(criteria),
        )
        .with(
            Element::list("computers")
                .with(Element::leaf("size", computers.len()))
                .with_all(computers),
        )
}

/// A stored criterion with Jamf's types (`value` stays text even when it reads as a number).
fn criterion(posted: &Element) -> Element {
    let text = |name: &str| posted.text_at(name).unwrap_or_default().to_owned();
    let flag = |name: &str| text(name).eq_ignore_ascii_case("true");
    Element::new("criterion")
        .with(Element::leaf("name", text("name")))
        .with(Element::leaf(
            "priority",
            text("priority").parse::<i64>().unwrap_or(0),
        ))
        .with(Element::leaf("and_or", text("and_or")))
        .with(Element::leaf("search_type", text("search_type")))
        .with(Element::leaf("value", text("value")))
        .with(Element::leaf("opening_paren", flag("opening_paren")))
        .with(Element::leaf("closing_paren", flag("closing_paren")))
}

/// The computers a `<computers>` (or `<computer_additions>`…) list names, by id or name.
fn listed_computers(state: &State, list: &Element) -> Result<Vec<u32>, Refusal> {
    list.children_named("computer")
        .map(|c| {
            let by_id = c
                .text_at("id")
                .and_then(|id| id.parse().ok())
                .filter(|id| state.fleet.computers.contains_key(id));
            let by_name = || {
                c.text_at("name")
                    .and_then(|name| state.fleet.computer_of_name(name))
                    .map(|c| c.spec.id)
            };
            by_id
                .or_else(by_name)
                .ok_or_else(|| Refusal::conflict("Problem with computer in computers"))
        })
        .collect()
}

fn group_name_taken(state: &State, name: &str, except: Option<u32>) -> bool {
    state
        .fleet
        .groups
        .values()
        .any(|g| Some(g.id) != except && g.name.eq_ignore_ascii_case(name))
}

fn group_create(state: &mut State, request: &Request) -> Reply {
    let doc = match document(request) {
        Ok(doc) if doc.name == "computer_group" => doc,
        Ok(_) => return Reply::page(400, "Error: the root element must be computer_group"),
        Err(reply) => return reply,
    };
    let name = doc.text_at("name").unwrap_or_default().to_owned();
    if name.is_empty() {
        return refused(&Refusal::conflict("Problem with name"));
    }
    if group_name_taken(state, &name, None) {
        return refused(&Refusal::conflict("Duplicate name"));
    }
    let smart = doc
        .text_at("is_smart")
        .is_some_and(|s| s.eq_ignore_ascii_case("true"));
    let members = match doc.child("computers").filter(|_| !smart) {
        Some(list) => match listed_computers(state, list) {
            Ok(members) => members,
            Err(refusal) => return refused(&refusal),
        },
        None => Vec::new(),
    };
    let id = state.next_group_id();
    let criteria = doc.child("criteria").cloned();
    state.fleet.groups.insert(
        id,
        Group {
            id,
            name,
            smart,
            members,
            criteria,
            origin: Some(request.at.origin()),
        },
    );
    state.evaluate();
    id_reply("computer_group", id)
}

fn group_update(state: &mut State, request: &Request, by: &str, key: &str) -> Reply {
    let Some(mut group) = find_group(state, request, by, key).cloned() else {
        return not_found();
    };
    let doc = match document(request) {
        Ok(doc) if doc.name == "computer_group" => doc,
        Ok(_) => return Reply::page(400, "Error: the root element must be computer_group"),
        Err(reply) => return reply,
    };
    if let Some(name) = doc.text_at("name").filter(|n| !n.is_empty()) {
        if group_name_taken(state, name, Some(group.id)) {
            return refused(&Refusal::conflict("Duplicate name"));
        }
        name.clone_into(&mut group.name);
    }
    if let Some(criteria) = doc.child("criteria") {
        group.criteria = Some(criteria.clone());
    }
    if !group.smart {
        let changes = [
            ("computers", 0),
            ("computer_additions", 1),
            ("computer_deletions", 2),
        ];
        for (element, kind) in changes {
            let Some(list) = doc.child(element) else {
                continue;
            };
            let listed = match listed_computers(state, list) {
                Ok(listed) => listed,
                Err(refusal) => return refused(&refusal),
            };
            match kind {
                0 => group.members = listed,
                1 => group.members.extend(
                    listed
                        .into_iter()
                        .filter(|id| !group.members.contains(id))
                        .collect::<Vec<_>>(),
                ),
                _ => group.members.retain(|id| !listed.contains(id)),
            }
        }
    }
    let id = group.id;
    state.fleet.groups.insert(id, group);
    state.evaluate();
    id_reply("computer_group", id)
}

fn group_delete(state: &mut State, request: &Request, by: &str, key: &str) -> Reply {
    let Some(id) = find_group(state, request, by, key).map(|g| g.id) else {
        return not_found();
    };
    state.fleet.groups.remove(&id);
    for policy in state.policies.values_mut() {
        policy.scope.groups.retain(|g| *g != id);
        policy.scope.excluded_groups.retain(|g| *g != id);
    }
    state.evaluate();
    Reply::xml(
        200,
        &Element::new("computer_group").with(Element::leaf("id", id)),
    )
}

// ---- computer history ----

fn history(state: &State, request: &Request, by: &str, key: &str, subsets: Option<&str>) -> Reply {
    let computer = state.fleet.computers.values().find(|c| match by {
        "id" => key.parse() == Ok(c.spec.id),
        "udid" => c.spec.udid.eq_ignore_ascii_case(key),
        _ => c.spec.name.eq_ignore_ascii_case(key),
    });
    let Some(computer) = computer else {
        return not_found();
    };
    let general = Element::new("general")
        .with(Element::leaf("id", computer.spec.id))
        .with(Element::leaf("name", &computer.spec.name))
        .with(Element::leaf("udid", &computer.spec.udid))
        .with(Element::leaf("serial_number", serial_number(computer)))
        .with(Element::leaf("mac_address", ""));
    let mut logs: Vec<_> = state
        .fleet
        .logs
        .iter()
        .filter(|log| log.computer_id == computer.spec.id)
        .collect();
    logs.sort_by(|a, b| b.at.cmp(&a.at).then(b.policy_id.cmp(&a.policy_id)));
    let policy_logs = Element::list("policy_logs").with_all(logs.iter().map(|log| {
        Element::new("policy_log")
            .with(Element::leaf("policy_id", log.policy_id))
            .with(Element::leaf("policy_name", &log.policy_name))
            .with(Element::leaf("username", &log.username))
            .with(Element::leaf("date_time", classic_local(log.at)))
            .with(Element::leaf("date_time_epoch", epoch_millis(log.at)))
            .with(Element::leaf("date_time_utc", classic_utc(log.at)))
            .with(Element::leaf("status", &log.status))
    }));
    // Jamf Pro's sections; those the simulator keeps nothing for are empty lists.
    let outcomes = |name: &str, lists: [&str; 3]| {
        Element::new(name).with_all(lists.into_iter().map(Element::list))
    };
    let sections = [
        general,
        Element::list("computer_usage_logs"),
        Element::list("audits"),
        policy_logs,
        Element::list("casper_remote_logs"),
        Element::list("screen_sharing_logs"),
        outcomes("commands", ["completed", "pending", "failed"]),
        Element::list("user_location"),
        outcomes(
            "mac_app_store_applications",
            ["installed", "pending", "failed"],
        ),
    ];
    let wanted: Option<Vec<String>> = subsets.map(|s| s.split('&').map(subset_element).collect());
    let history = Element::new("computer_history").with_all(
        sections
            .into_iter()
            .filter(|s| wanted.as_ref().is_none_or(|w| w.contains(&s.name))),
    );
    Reply::classic(request, 200, &history)
}

// ---- categories ----

fn find_category<'a>(
    state: &'a State,
    request: &Request,
    by: &str,
    key: &str,
) -> Option<&'a Category> {
    state
        .categories
        .values()
        .find(|c| matches_key(by, key, c.id, &c.name) && request.at.sees(c.origin))
}

fn category_xml(category: &Category) -> Element {
    Element::new("category")
        .with(Element::leaf("id", category.id))
        .with(Element::leaf("name", &category.name))
        .with(Element::leaf("priority", category.priority))
}

fn category_list(state: &State, request: &Request) -> Reply {
    let visible: Vec<&Category> = state
        .categories
        .values()
        .filter(|c| request.at.sees(c.origin))
        .collect();
    let list = Element::list("categories")
        .with(Element::leaf("size", visible.len()))
        .with_all(visible.iter().map(|c| {
            Element::new("category")
                .with(Element::leaf("id", c.id))
                .with(Element::leaf("name", &c.name))
        }));
    Reply::classic(request, 200, &list)
}

fn category_create(state: &mut State, request: &Request) -> Reply {
    let doc = match document(request) {
        Ok(doc) if doc.name == "category" => doc,
        Ok(_) => return Reply::page(400, "Error: the root element must be category"),
        Err(reply) => return reply,
    };
    let name = doc.text_at("name").unwrap_or_default().to_owned();
    if name.is_empty() {
        return refused(&Refusal::conflict("Problem with name"));
    }
    if state
        .categories
        .values()
        .any(|c| c.name.eq_ignore_ascii_case(&name))
    {
        return refused(&Refusal::conflict("Duplicate name"));
    }
    let priority = doc
        .text_at("priority")
        .and_then(|p| p.parse().ok())
        .unwrap_or(9);
    let id = state.next_category_id();
    state.categories.insert(
        id,
        Category {
            id,
            name,
            priority,
            origin: Some(request.at.origin()),
        },
    );
    id_reply("category", id)
}

// ---- packages (the older way to describe a package; the Jamf Pro API's /api/v1/packages is the newer) ----

fn find_package<'a>(
    state: &'a State,
    request: &Request,
    by: &str,
    key: &str,
) -> Option<&'a Package> {
    state
        .packages
        .values()
        .filter_map(|p| p.seen_by(request.at))
        .find(|p| matches_key(by, key, p.id, p.name()))
}

fn package_list(state: &State, request: &Request) -> Reply {
    let visible: Vec<&Package> = state
        .packages
        .values()
        .filter_map(|p| p.seen_by(request.at))
        .collect();
    let list = Element::list("packages")
        .with(Element::leaf("size", visible.len()))
        .with_all(visible.iter().map(|p| {
            Element::new("package")
                .with(Element::leaf("id", p.id))
                .with(Element::leaf("name", p.name()))
        }));
    Reply::classic(request, 200, &list)
}

fn package_xml(state: &State, package: &Package) -> Element {
    let category = package
        .text("categoryId")
        .parse()
        .ok()
        .and_then(|id: u32| state.categories.get(&id))
        .map_or_else(|| "No category assigned".to_owned(), |c| c.name.clone());
    let flag = |field: &str| {
        package
            .fields
            .get(field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    Element::new("package")
        .with(Element::leaf("id", package.id))
        .with(Element::leaf("name", package.name()))
        .with(Element::leaf("category", category))
        .with(Element::leaf("filename", package.text("fileName")))
        .with(Element::leaf("info", package.text("info")))
        .with(Element::leaf("notes", package.text("notes")))
        .with(Element::leaf("priority", package.priority()))
        .with(Element::leaf("reboot_required", flag("rebootRequired")))
        .with(Element::leaf(
            "fill_user_template",
            flag("fillUserTemplate"),
        ))
        .with(Element::leaf(
            "fill_existing_users",
            flag("fillExistingUsers"),
        ))
        .with(Element::leaf(
            "os_requirements",
            package.text("osRequirements"),
        ))
}

/// `POST /JSSResource/packages/id/0`: `<package><name/><filename/><category/><priority/>…`.
fn package_create(state: &mut State, request: &Request) -> Reply {
    let doc = match document(request) {
        Ok(doc) if doc.name == "package" => doc,
        Ok(_) => return Reply::page(400, "Error: the root element must be package"),
        Err(reply) => return reply,
    };
    let name = doc.text_at("name").unwrap_or_default().to_owned();
    if name.is_empty() {
        return refused(&Refusal::conflict("Problem with name"));
    }
    if state
        .packages
        .values()
        .any(|p| p.name().eq_ignore_ascii_case(&name))
    {
        return refused(&Refusal::conflict("Duplicate name"));
    }
    let category_id = match doc
        .text_at("category")
        .filter(|c| !c.is_empty() && *c != "No category assigned")
    {
        None => "-1".to_owned(),
        Some(category) => match state
            .categories
            .values()
            .find(|c| c.name.eq_ignore_ascii_case(category))
        {
            Some(found) => found.id.to_string(),
            None => return refused(&Refusal::conflict("Problem with category")),
        },
    };
    let text = |element: &str| doc.text_at(element).unwrap_or_default().to_owned();
    let flag = |element: &str| {
        doc.text_at(element)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    let file_name = doc
        .text_at("filename")
        .filter(|f| !f.is_empty())
        .unwrap_or(&name)
        .to_owned();
    let priority = doc
        .text_at("priority")
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(10);
    let mut fields = Map::new();
    for (key, value) in [
        ("packageName", json!(name)),
        ("fileName", json!(file_name)),
        ("categoryId", json!(category_id)),
        ("priority", json!(priority)),
        ("info", json!(text("info"))),
        ("notes", json!(text("notes"))),
        ("rebootRequired", json!(flag("reboot_required"))),
        ("fillUserTemplate", json!(flag("fill_user_template"))),
        ("fillExistingUsers", json!(flag("fill_existing_users"))),
        ("osRequirements", json!(text("os_requirements"))),
    ] {
        fields.insert(key.to_owned(), value);
    }
    let id = state.next_package_id();
    state.packages.insert(
        id,
        Package {
            id,
            fields,
            upload: None,
            origin: Some(request.at.origin()),
            replica: Replica::default(),
        },
    );
    id_reply("package", id)
}

#[cfg(test)]
mod tests {
    use super::subset_element;

    #[test]
    fn subset_names_map_to_elements() {
        assert_eq!(subset_element("PolicyLogs"), "policy_logs");
        assert_eq!(subset_element("General"), "general");
        assert_eq!(subset_element("SelfService"), "self_service");
        assert_eq!(subset_element("Packages"), "package_configuration");
    }
}
