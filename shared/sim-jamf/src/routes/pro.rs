//! The Jamf Pro API (JSON): computer inventory, packages (with upload), categories.

use std::cmp::Ordering;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::catalog::{Category, FieldError, Package, package_fields};
use crate::cluster::{Replica, Replicated as _};
use crate::fleet::Computer;
use crate::http::{Family, Reply, Request};
use crate::rsql;
use crate::state::State;
use crate::times::iso_millis;

const PRO_VERSION: &str = "11.14.1-t1736352000000";

pub(crate) fn route(state: &mut State, request: &Request) -> Reply {
    let segments = request.segments();
    let path: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
    let method = request.method.as_str();
    match (path.as_slice(), method) {
        ([version @ ("v1" | "v3"), "computers-inventory"], "GET") => {
            inventory(state, request, Inventory::of(version))
        }
        ([version @ ("v1" | "v3"), "computers-inventory", id], "GET") => {
            let kind = Inventory::of(version);
            match sections(request, kind) {
                Ok(sections) => computer(state, id, kind, &sections),
                Err(reply) => reply,
            }
        }
        ([version @ ("v1" | "v3"), "computers-inventory-detail", id], "GET") => {
            let kind = Inventory::of(version);
            computer(state, id, kind, &Sections::all(kind))
        }
        (["v1", "packages"], "GET") => packages(state, request),
        (["v1", "packages"], "POST") => create_package(state, request),
        (["v1", "packages", id], "GET") => match visible_package(state, request, id) {
            Some(package) => {
                Reply::json(200, &package.to_json(state.fleet.now(), state.hash_report))
            }
            None => package_not_found(id),
        },
        (["v1", "packages", id], "PUT") => update_package(state, request, id),
        (["v1", "packages", id], "DELETE") => delete_package(state, request, id),
        // `POST …/upload` is streamed (see `upload.rs`), never routed here.
        (["v1", "categories"], "GET") => categories(state, request),
        (["v1", "categories"], "POST") => create_category(state, request),
        (["v1", "categories", id], "GET") => {
            let category = id
                .parse()
                .ok()
                .and_then(|id: u32| state.categories.get(&id))
                .filter(|c| request.at.sees(c.origin));
            match category {
                Some(category) => Reply::json(200, &category.to_json()),
                None => Reply::pro_error(
                    404,
                    "INVALID_ID",
                    &format!("Category with id {id} does not exist"),
                    None,
                ),
            }
        }
        (["v1", "jamf-pro-version"], "GET") => Reply::json(200, &json!({ "version": PRO_VERSION })),
        (["v1", "computer-groups"], "GET") => computer_groups(state, request),
        (["v2" | "v3", "computer-groups", "smart-group-membership", id], "GET") => {
            smart_group_members(state, request, id)
        }
        // A path served above, with another method; any other path is not found.
        (
            ["v1" | "v3", "computers-inventory"]
            | [
                "v1" | "v3",
                "computers-inventory" | "computers-inventory-detail",
                _,
            ]
            | [
                "v1",
                "packages" | "categories" | "computer-groups" | "jamf-pro-version",
            ]
            | ["v1", "packages" | "categories", _]
            | ["v1", "packages", _, "upload"]
            | ["v2" | "v3", "computer-groups", "smart-group-membership", _],
            _,
        ) => Reply::method_not_allowed(Family::Pro),
        _ => Reply::not_found(Family::Pro),
    }
}

// ---- listing: filter, sort, page ----

/// The selectors a list endpoint takes in `filter` and in `sort`, as Jamf's schema lists them in
/// the two parameters' descriptions.
struct Selectors {
    filter: &'static [&'static str],
    sort: &'static [&'static str],
}

/// Filters, sorts and pages `items` as the Jamf Pro API's list endpoints do.
fn list<T>(
    request: &Request,
    mut items: Vec<T>,
    fields: &Selectors,
    default_sort: &str,
    get: impl Fn(&T, &str) -> Option<String>,
    render: impl Fn(&T) -> Value,
) -> Reply {
    let page = match number_param(request, "page", 0) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let page_size = match number_param(request, "page-size", 100) {
        Ok(0) => {
            return Reply::pro_error(
                400,
                "INVALID_FIELD",
                "page-size must be at least 1",
                Some("page-size"),
            );
        }
        Ok(size) => size.min(2000),
        Err(reply) => return reply,
    };
    if let Some(filter) = request.param("filter").filter(|f| !f.trim().is_empty()) {
        match rsql::parse(&filter, fields.filter) {
            Ok(filter) => items.retain(|item| filter.matches(&|field| get(item, field))),
            Err(problem) => {
                return Reply::pro_error(400, "INVALID_RSQL_FILTER", &problem, Some("filter"));
            }
        }
    }
    let sort = request.params("sort").join(",");
    let sort = if sort.trim().is_empty() {
        default_sort.to_owned()
    } else {
        sort
    };
    let mut keys = Vec::new();
    for key in sort.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let (field, direction) = key.split_once(':').unwrap_or((key, "asc"));
        let descending = match direction.to_ascii_lowercase().as_str() {
            "asc" => false,
            "desc" => true,
            _ => {
                return Reply::pro_error(
                    400,
                    "INVALID_FIELD",
                    &format!("bad sort direction in '{key}'"),
                    Some("sort"),
                );
            }
        };
        if !fields.sort.contains(&field) {
            return Reply::pro_error(
                400,
                "INVALID_FIELD",
                &format!("cannot sort by '{field}'"),
                Some("sort"),
            );
        }
        keys.push((field.to_owned(), descending));
    }
    keys.push(("id".to_owned(), false));
    items.sort_by(|a, b| {
        keys.iter()
            .map(|(field, descending)| {
                let order = match (get(a, field), get(b, field)) {
                    (Some(x), Some(y)) => rsql::compare(&x, &y),
                    (x, y) => x.is_some().cmp(&y.is_some()),
                };
                if *descending { order.reverse() } else { order }
            })
            .find(|order| *order != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    let total = items.len();
    let results: Vec<Value> = items
        .iter()
        .skip(page.saturating_mul(page_size))
        .take(page_size)
        .map(render)
        .collect();
    let records = results.len();
    Reply::json(200, &json!({ "totalCount": total, "results": results })).with_records(records)
}

fn number_param(request: &Request, name: &str, default: usize) -> Result<usize, Reply> {
    match request.param(name) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            Reply::pro_error(
                400,
                "INVALID_FIELD",
                &format!("{name} must be a number"),
                Some(name),
            )
        }),
    }
}

// ---- computer inventory ----

/// The RSQL selectors `filter` takes on `/api/v{1,3}/computers-inventory` (Jamf's list). The
/// simulator holds data for the `general` ones it renders; the rest read as null.
const INVENTORY_FILTER_FIELDS: &[&str] = &[
    "diskEncryption.fileVault2Enabled",
    "general.assetTag",
    "general.barcode1",
    "general.barcode2",
    "general.declarativeDeviceManagementEnabled",
    "general.enrolledViaAutomatedDeviceEnrollment",
    "general.itunesStoreAccountActive",
    "general.jamfBinaryVersion",
    "general.lastCloudBackupDate",
    "general.lastContactTime",
    "general.lastEnrolledDate",
    "general.lastIpAddress",
    "general.lastLoggedInUsernameBinary",
    "general.lastLoggedInUsernameBinaryTimestamp",
    "general.lastLoggedInUsernameMdm",
    "general.lastLoggedInUsernameMdmTimestamp",
    "general.lastLoggedInUsernameSelfService",
    "general.lastLoggedInUsernameSelfServiceTimestamp",
    "general.lastReportedIp",
    "general.lastReportedIpV4",
    "general.lastReportedIpV6",
    "general.managementId",
    "general.mdmCapable.capable",
    "general.mdmCertificateExpiration",
    "general.name",
    "general.platform",
    "general.remoteManagement.managed",
    "general.reportDate",
    "general.supervised",
    "general.userApprovedMdm",
    "hardware.appleSilicon",
    "hardware.bleCapable",
    "hardware.macAddress",
    "hardware.make",
    "hardware.model",
    "hardware.modelIdentifier",
    "hardware.serialNumber",
    "hardware.supportsIosAppInstalls",
    "id",
    "operatingSystem.activeDirectoryStatus",
    "operatingSystem.build",
    "operatingSystem.fileVault2Status",
    "operatingSystem.name",
    "operatingSystem.rapidSecurityResponse",
    "operatingSystem.supplementalBuildVersion",
    "operatingSystem.version",
    "purchasing.appleCareId",
    "purchasing.leased",
    "purchasing.lifeExpectancy",
    "purchasing.purchased",
    "purchasing.vendor",
    "purchasing.warrantyDate",
    "security.activationLockEnabled",
    "security.firewallEnabled",
    "security.recoveryLockEnabled",
    "udid",
    "userAndLocation.buildingId",
    "userAndLocation.departmentId",
    "userAndLocation.email",
    "userAndLocation.phone",
    "userAndLocation.position",
    "userAndLocation.realname",
    "userAndLocation.room",
    "userAndLocation.username",
];

/// The fields `sort` takes on `/api/v{1,3}/computers-inventory` (Jamf's list).
const INVENTORY_SORT_FIELDS: &[&str] = &[
    "general.assetTag",
    "general.jamfBinaryVersion",
    "general.lastCloudBackupDate",
    "general.lastContactTime",
    "general.lastEnrolledDate",
    "general.lastLoggedInUsernameBinary",
    "general.lastLoggedInUsernameBinaryTimestamp",
    "general.lastLoggedInUsernameMdm",
    "general.lastLoggedInUsernameMdmTimestamp",
    "general.lastLoggedInUsernameSelfService",
    "general.lastLoggedInUsernameSelfServiceTimestamp",
    "general.mdmCertificateExpiration",
    "general.name",
    "general.platform",
    "general.reportDate",
    "hardware.make",
    "hardware.model",
    "id",
    "operatingSystem.build",
    "operatingSystem.name",
    "operatingSystem.rapidSecurityResponse",
    "operatingSystem.supplementalBuildVersion",
    "operatingSystem.version",
    "purchasing.lifeExpectancy",
    "purchasing.warrantyDate",
    "udid",
    "userAndLocation.realname",
];

const INVENTORY_SELECTORS: Selectors = Selectors {
    filter: INVENTORY_FILTER_FIELDS,
    sort: INVENTORY_SORT_FIELDS,
};

/// Every section of the v1 inventory record; only `GENERAL` and `GROUP_MEMBERSHIPS` hold data here.
const SECTIONS: &[(&str, &str)] = &[
    ("GENERAL", "general"),
    ("DISK_ENCRYPTION", "diskEncryption"),
    ("PURCHASING", "purchasing"),
    ("APPLICATIONS", "applications"),
    ("STORAGE", "storage"),
    ("USER_AND_LOCATION", "userAndLocation"),
    ("CONFIGURATION_PROFILES", "configurationProfiles"),
    ("PRINTERS", "printers"),
    ("SERVICES", "services"),
    ("HARDWARE", "hardware"),
    ("LOCAL_USER_ACCOUNTS", "localUserAccounts"),
    ("CERTIFICATES", "certificates"),
    ("ATTACHMENTS", "attachments"),
    ("PLUGINS", "plugins"),
    ("PACKAGE_RECEIPTS", "packageReceipts"),
    ("FONTS", "fonts"),
    ("SECURITY", "security"),
    ("OPERATING_SYSTEM", "operatingSystem"),
    ("LICENSED_SOFTWARE", "licensedSoftware"),
    ("IBEACONS", "ibeacons"),
    ("SOFTWARE_UPDATES", "softwareUpdates"),
    ("EXTENSION_ATTRIBUTES", "extensionAttributes"),
    ("CONTENT_CACHING", "contentCaching"),
    ("GROUP_MEMBERSHIPS", "groupMemberships"),
];

/// Which inventory: v1 (`ComputerSection`) or v3 (`ComputerSectionV3`, without `PLUGINS` and
/// `FONTS`, whose record has no `plugins` or `fonts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inventory {
    V1,
    V3,
}

impl Inventory {
    fn of(version: &str) -> Self {
        if version == "v3" {
            Inventory::V3
        } else {
            Inventory::V1
        }
    }

    fn sections(self) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
        SECTIONS
            .iter()
            .filter(move |(name, _)| self == Inventory::V1 || !matches!(*name, "PLUGINS" | "FONTS"))
    }
}

struct Sections(Vec<&'static str>);

impl Sections {
    fn all(kind: Inventory) -> Self {
        Sections(kind.sections().map(|(name, _)| *name).collect())
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains(&name)
    }
}

/// The `section` parameters (repeated or comma-separated); `GENERAL` when none.
fn sections(request: &Request, kind: Inventory) -> Result<Sections, Reply> {
    let mut chosen = Vec::new();
    for name in request
        .params("section")
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match kind
            .sections()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
        {
            Some((known, _)) => chosen.push(*known),
            None => {
                return Err(Reply::pro_error(
                    400,
                    "INVALID_FIELD",
                    &format!("unknown section '{name}'"),
                    Some("section"),
                ));
            }
        }
    }
    if chosen.is_empty() {
        chosen.push("GENERAL");
    }
    Ok(Sections(chosen))
}

fn inventory(state: &State, request: &Request, kind: Inventory) -> Reply {
    let sections = match sections(request, kind) {
        Ok(sections) => sections,
        Err(reply) => return reply,
    };
    let computers: Vec<&Computer> = state.fleet.computers.values().collect();
    let now = state.fleet.now();
    list(
        request,
        computers,
        &INVENTORY_SELECTORS,
        "general.name:asc",
        |c, field| inventory_field(c, field, now),
        |c| computer_json(state, c, kind, &sections),
    )
}

/// A selector's value for filtering and sorting; `None` (null) for what the simulator does not hold.
fn inventory_field(computer: &Computer, field: &str, now: OffsetDateTime) -> Option<String> {
    Some(match field {
        "id" => computer.spec.id.to_string(),
        "udid" => computer.spec.udid.clone(),
        "general.name" => computer.spec.name.clone(),
        "general.platform" => "Mac".to_owned(),
        "general.lastContactTime" => iso_millis(computer.last_contact_at(now)),
        "general.reportDate" => iso_millis(computer.report_date_at(now)),
        "general.lastEnrolledDate" => iso_millis(computer.enrolled),
        "general.managementId" => management_id(computer),
        "general.remoteManagement.managed" => "true".to_owned(),
        "general.supervised" => "false".to_owned(),
        _ => return None,
    })
}

fn management_id(computer: &Computer) -> String {
    format!("0A6E0000-0000-4000-8000-{:012X}", computer.spec.id)
}

fn computer(state: &State, id: &str, kind: Inventory, sections: &Sections) -> Reply {
    match id
        .parse()
        .ok()
        .and_then(|id: u32| state.fleet.computers.get(&id))
    {
        Some(computer) => Reply::json(200, &computer_json(state, computer, kind, sections)),
        None => Reply::pro_error(
            404,
            "INVALID_ID",
            &format!("Computer with id {id} does not exist"),
            None,
        ),
    }
}

fn computer_json(
    state: &State,
    computer: &Computer,
    kind: Inventory,
    sections: &Sections,
) -> Value {
    let now = state.fleet.now();
    let mut out = serde_json::Map::new();
    out.insert("id".to_owned(), json!(computer.spec.id.to_string()));
    out.insert("udid".to_owned(), json!(computer.spec.udid));
    for (section, key) in kind.sections() {
        let value = if !sections.has(section) {
            Value::Null
        } else if *section == "GENERAL" {
            json!({
                "name": computer.spec.name,
                "lastIpAddress": null,
                "lastReportedIp": null,
                "platform": "Mac",
                "reportDate": iso_millis(computer.report_date_at(now)),
                "lastContactTime": iso_millis(computer.last_contact_at(now)),
                "lastEnrolledDate": iso_millis(computer.enrolled),
                "remoteManagement": { "managed": true, "managementUsername": "jamfmanage" },
                "supervised": false,
                "site": { "id": "-1", "name": "None" },
                "managementId": management_id(computer),
                "extensionAttributes": []
            })
        } else if *section == "PACKAGE_RECEIPTS" {
            json!({
                "installedByJamfPro": computer.receipts_at(now),
                "installedByInstallerSwu": [],
                "cached": []
            })
        } else if *section == "GROUP_MEMBERSHIPS" {
            let groups: Vec<Value> = state
                .fleet
                .groups_of(computer.spec.id)
                .map(|g| json!({ "groupId": g.id.to_string(), "groupName": g.name, "smartGroup": g.smart }))
                .collect();
            Value::Array(groups)
        } else {
            Value::Null
        };
        out.insert((*key).to_owned(), value);
    }
    Value::Object(out)
}

// ---- computer groups ----

/// `GET /api/v1/computer-groups`: every group this node sees, as a plain array.
fn computer_groups(state: &State, request: &Request) -> Reply {
    let groups: Vec<Value> = state
        .fleet
        .groups
        .values()
        .filter(|g| request.at.sees(g.origin))
        .map(|g| json!({ "id": g.id.to_string(), "name": g.name, "smartGroup": g.smart }))
        .collect();
    Reply::json(200, &Value::Array(groups))
}

/// `GET /api/v2/computer-groups/smart-group-membership/{id}` → `{"members":[ids]}`; smart groups only.
fn smart_group_members(state: &State, request: &Request, id: &str) -> Reply {
    let group = id
        .parse()
        .ok()
        .and_then(|id: u32| state.fleet.groups.get(&id))
        .filter(|g| g.smart && request.at.sees(g.origin));
    match group {
        Some(group) => Reply::json(200, &json!({ "members": group.members })),
        None => Reply::pro_error(
            404,
            "INVALID_ID",
            &format!("Smart group with id {id} does not exist"),
            None,
        ),
    }
}

// ---- packages ----

/// `filter` takes Jamf's listed selectors; Jamf lists none for `sort`, which takes those and
/// `priority`.
const PACKAGE_SELECTORS: Selectors = Selectors {
    filter: &[
        "id",
        "fileName",
        "packageName",
        "categoryId",
        "info",
        "notes",
        "manifestFileName",
        "cloudTransferStatus",
    ],
    sort: &[
        "id",
        "fileName",
        "packageName",
        "categoryId",
        "info",
        "notes",
        "manifestFileName",
        "cloudTransferStatus",
        "priority",
    ],
};

fn packages(state: &State, request: &Request) -> Reply {
    let visible: Vec<&Package> = state
        .packages
        .values()
        .filter_map(|p| p.seen_by(request.at))
        .collect();
    let (now, report) = (state.fleet.now(), state.hash_report);
    list(
        request,
        visible,
        &PACKAGE_SELECTORS,
        "id:asc",
        |p, field| match p.to_json(now, report).get(field) {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        },
        |p| p.to_json(now, report),
    )
}

/// The package as the request's node sees it.
pub(crate) fn visible_package<'a>(
    state: &'a State,
    request: &Request,
    id: &str,
) -> Option<&'a Package> {
    id.parse()
        .ok()
        .and_then(|id: u32| state.packages.get(&id))
        .and_then(|p| p.seen_by(request.at))
}

pub(crate) fn package_not_found(id: &str) -> Reply {
    Reply::pro_error(
        404,
        "INVALID_ID",
        &format!("Package with id {id} does not exist"),
        None,
    )
}

pub(crate) fn created(request: &Request, collection: &str, id: u32) -> Reply {
    Reply::json(
        201,
        &json!({ "id": id.to_string(), "href": format!("{}/api/v1/{collection}/{id}", request.base_url()) }),
    )
}

/// The posted package, checked, or the error answer.
fn checked_package(
    state: &State,
    request: &Request,
    except: Option<u32>,
) -> Result<serde_json::Map<String, Value>, Reply> {
    let body: Value = serde_json::from_slice(&request.body).map_err(|e| {
        Reply::pro_error(
            400,
            "INVALID_JSON",
            &format!("the body is not JSON: {e}"),
            None,
        )
    })?;
    let fields = package_fields(&body, |id| {
        id.parse()
            .ok()
            .is_some_and(|id: u32| state.categories.contains_key(&id))
    })
    .map_err(|errors| Reply::pro_errors(400, &errors))?;
    let name = fields
        .get("packageName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let taken = state
        .packages
        .values()
        .any(|p| Some(p.id) != except && p.name().eq_ignore_ascii_case(name));
    if taken {
        let error = FieldError {
            code: "DUPLICATE_FIELD",
            field: "packageName".to_owned(),
            description: format!("a package named '{name}' already exists"),
        };
        return Err(Reply::pro_errors(400, &[error]));
    }
    Ok(fields)
}

fn create_package(state: &mut State, request: &Request) -> Reply {
    let fields = match checked_package(state, request, None) {
        Ok(fields) => fields,
        Err(reply) => return reply,
    };
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
    created(request, "packages", id)
}

fn update_package(state: &mut State, request: &Request, id: &str) -> Reply {
    let Some(existing) = visible_package(state, request, id).map(|p| p.id) else {
        return package_not_found(id);
    };
    let fields = match checked_package(state, request, Some(existing)) {
        Ok(fields) => fields,
        Err(reply) => return reply,
    };
    let (now, report) = (state.fleet.now(), state.hash_report);
    match state.packages.get_mut(&existing) {
        Some(package) => {
            let before = package.clone();
            package.fields = fields;
            package.updated_from(&before, request.at);
            Reply::json(200, &package.to_json(now, report))
        }
        None => package_not_found(id),
    }
}

fn delete_package(state: &mut State, request: &Request, id: &str) -> Reply {
    let Some(existing) = visible_package(state, request, id).map(|p| p.id) else {
        return package_not_found(id);
    };
    state.packages.remove(&existing);
    for policy in state.policies.values_mut() {
        policy.packages.retain(|p| p.id != existing);
    }
    Reply::empty(204)
}

// ---- categories ----

/// `filter` takes Jamf's listed selectors (`name`, `priority`); Jamf lists none for `sort`.
const CATEGORY_SELECTORS: Selectors = Selectors {
    filter: &["name", "priority"],
    sort: &["id", "name", "priority"],
};

fn categories(state: &State, request: &Request) -> Reply {
    let visible: Vec<&Category> = state
        .categories
        .values()
        .filter(|c| request.at.sees(c.origin))
        .collect();
    list(
        request,
        visible,
        &CATEGORY_SELECTORS,
        "id:asc",
        |c, field| match field {
            "id" => Some(c.id.to_string()),
            "name" => Some(c.name.clone()),
            "priority" => Some(c.priority.to_string()),
            _ => None,
        },
        |c| c.to_json(),
    )
}

fn create_category(state: &mut State, request: &Request) -> Reply {
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(e) => {
            return Reply::pro_error(
                400,
                "INVALID_JSON",
                &format!("the body is not JSON: {e}"),
                None,
            );
        }
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Reply::pro_errors(400, &[FieldError::invalid("name", "must not be blank")]);
    }
    if state
        .categories
        .values()
        .any(|c| c.name.eq_ignore_ascii_case(&name))
    {
        let error = FieldError {
            code: "DUPLICATE_FIELD",
            field: "name".to_owned(),
            description: format!("'{name}' is taken"),
        };
        return Reply::pro_errors(400, &[error]);
    }
    let priority = body.get("priority").and_then(Value::as_i64).unwrap_or(9);
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
    created(request, "categories", id)
}
