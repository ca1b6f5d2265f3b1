//! The install status report actions, `POST .../deviceManagement/reports/retrieveDeviceAppInstallationStatusReport`
//! (v1.0 and beta) and `.../getDeviceInstallStatusReport` (beta): `filter`, `select`, `search`,
//! `orderBy`, `skip`, `top` in; `{"TotalRowCount","Schema","Values"}` out.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::devices::{user_id, user_name};
use crate::graph::{error, intune_error};
use crate::odata;
use crate::state::{ReportRow, State};
use crate::wire::{Ctx, Reply, iso};

/// Every column the report knows, with its `PropertyType`, in the order of an unselected report.
const COLUMNS: [(&str, &str); 18] = [
    ("DeviceId", "String"),
    ("ApplicationId", "String"),
    ("UserId", "String"),
    ("DeviceName", "String"),
    ("UserPrincipalName", "String"),
    ("UserName", "String"),
    ("Platform", "String"),
    ("AppVersion", "String"),
    ("ErrorCode", "Int32"),
    ("InstallState", "Int32"),
    ("InstallStateDetail", "Int32"),
    ("LastModifiedDateTime", "DateTime"),
    ("AssignmentFilterIdsExist", "Boolean"),
    ("HexErrorCode", "String"),
    ("AppInstallState", "String"),
    ("AppInstallState_loc", "String"),
    ("AppInstallStateDetails", "String"),
    ("AppInstallStateDetails_loc", "String"),
];

/// Rows per answer when the request names no `top` (the admin center's and the PowerShell
/// SDK's page of 50: msgraph-sdk-powershell issue #2081).
const DEFAULT_TOP: usize = 50;
/// The most rows one answer carries; a larger `top` is served this many, without an error.
/// UNCONFIRMED: Microsoft documents no maximum; public clients send 999 (CIPP), 5000 and 10000
/// without errors, and one reports 50-row pages regardless (msgraph-beta-sdk-dotnet issue #683).
/// A client must page by the rows it actually receives.
pub(crate) const MAX_TOP: usize = 1000;

/// Answers one report request.
pub(crate) fn handle(state: &State, ctx: &Ctx) -> Reply {
    let Some(Value::Object(body)) = ctx.json_body() else {
        return error(
            ctx,
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        );
    };
    match build(state, &body) {
        Ok(report) => Reply::new(200, "application/octet-stream", report.to_string()),
        Err(message) => intune_error(ctx, 400, "BadRequest", &message),
    }
}

fn build(state: &State, body: &Map<String, Value>) -> Result<Value, String> {
    let filter = body
        .get("filter")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let clauses = odata::parse(filter).map_err(|e| format!("Property 'filter': {e}"))?;
    let app_id = odata::eq_value(&clauses, "ApplicationId")
        .and_then(Value::as_str)
        .ok_or("Property 'filter' must name the application: (ApplicationId eq '<id>').")?;
    let columns = selected_columns(body.get("select"))?;
    let skip = count(body, "skip")?.unwrap_or(0);
    let top = count(body, "top")?
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TOP)
        .min(MAX_TOP);
    let search = body
        .get("search")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    let version = state
        .app(app_id)
        .and_then(|a| a.props.get("displayVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let order = order_by(body.get("orderBy"))?;
    let reported = state.report_rows(app_id);
    // The usual request (filter by app only, no search, no order) builds the page's rows only:
    // a ring of ten thousand devices stays cheap to page.
    let app_only = clauses
        .iter()
        .all(|c| matches!(c, odata::Clause::Eq(p, _) if p.eq_ignore_ascii_case("ApplicationId")));
    if app_only && search.is_empty() && order.is_none() {
        let page: Vec<Map<String, Value>> = reported
            .iter()
            .skip(skip)
            .take(top)
            .map(|row| full_row(row, app_id, version))
            .collect();
        return Ok(answer(&columns, reported.len(), &page, 0, top));
    }
    let mut rows: Vec<Map<String, Value>> = reported
        .iter()
        .map(|row| full_row(row, app_id, version))
        .filter(|row| odata::matches(&clauses, row))
        .filter(|row| search.is_empty() || searchable(row).contains(&search))
        .collect();
    if let Some(order) = order {
        rows.sort_by(|a, b| {
            let ordering = compare(a.get(&order.0), b.get(&order.0));
            if order.1 {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    let total = rows.len();
    Ok(answer(&columns, total, &rows, skip, top))
}

/// The answer: the rows `skip..skip + top` of `rows`, in the selected columns.
fn answer(
    columns: &[&str],
    total: usize,
    rows: &[Map<String, Value>],
    skip: usize,
    top: usize,
) -> Value {
    let values: Vec<Value> = rows
        .iter()
        .skip(skip)
        .take(top)
        .map(|row| {
            Value::Array(
                columns
                    .iter()
                    .map(|c| row.get(*c).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect();
    let schema: Vec<Value> = columns
        .iter()
        .map(|c| json!({"Column": c, "PropertyType": COLUMNS.iter().find(|(n, _)| n == c).map_or("String", |(_, t)| *t)}))
        .collect();
    json!({"TotalRowCount": total, "Schema": schema, "Values": values, "SessionId": ""})
}

/// The requested columns; asking for `AppInstallState` brings its `_loc` column along, and a
/// `_loc` column cannot be asked for by itself.
fn selected_columns(select: Option<&Value>) -> Result<Vec<&'static str>, String> {
    let Some(select) = select.filter(|s| !s.is_null()) else {
        return Ok(COLUMNS.iter().map(|(name, _)| *name).collect());
    };
    let names = select
        .as_array()
        .ok_or("Property 'select' must be an array of column names.")?;
    let mut columns = Vec::new();
    for name in names {
        let name = name.as_str().unwrap_or_default();
        let column = COLUMNS
            .iter()
            .map(|(n, _)| *n)
            .find(|n| n.eq_ignore_ascii_case(name) && !n.ends_with("_loc"))
            .ok_or_else(|| format!("Property 'select': unknown column '{name}'."))?;
        if !columns.contains(&column) {
            columns.push(column);
        }
        let localized = format!("{column}_loc");
        if let Some((loc, _)) = COLUMNS.iter().find(|(n, _)| *n == localized) {
            columns.push(loc);
        }
    }
    if columns.is_empty() {
        return Ok(COLUMNS.iter().map(|(name, _)| *name).collect());
    }
    Ok(columns)
}

fn count(body: &Map<String, Value>, name: &str) -> Result<Option<usize>, String> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("Property '{name}' must be a non-negative integer.")),
    }
}

/// The first `orderBy` entry: column and whether it is descending.
fn order_by(value: Option<&Value>) -> Result<Option<(String, bool)>, String> {
    let Some(first) = value
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let mut words = first.split_whitespace();
    let column = words.next().unwrap_or_default();
    let Some((name, _)) = COLUMNS.iter().find(|(n, _)| n.eq_ignore_ascii_case(column)) else {
        return Err(format!("Property 'orderBy': unknown column '{column}'."));
    };
    let descending = words.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    Ok(Some(((*name).to_owned(), descending)))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => {
            let text = |v: Option<&Value>| {
                v.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_lowercase))
                    .unwrap_or_default()
            };
            text(a).cmp(&text(b))
        }
    }
}

fn searchable(row: &Map<String, Value>) -> String {
    ["DeviceName", "UserPrincipalName", "UserName"]
        .iter()
        .filter_map(|c| row.get(*c).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn full_row(row: &ReportRow, app_id: &str, version: &str) -> Map<String, Value> {
    let state = row.state;
    let values = [
        ("DeviceId", json!(row.device_id)),
        ("ApplicationId", json!(app_id)),
        ("UserId", json!(user_id(&row.user_principal_name))),
        ("DeviceName", json!(row.device_name)),
        ("UserPrincipalName", json!(row.user_principal_name)),
        ("UserName", json!(user_name(&row.user_principal_name))),
        ("Platform", json!("Windows")),
        ("AppVersion", json!(version)),
        ("ErrorCode", json!(row.error_code)),
        ("InstallState", json!(state.code())),
        ("InstallStateDetail", json!(0)),
        ("LastModifiedDateTime", json!(iso(row.modified))),
        ("AssignmentFilterIdsExist", json!(false)),
        (
            "HexErrorCode",
            json!(format!("0x{:X}", row.error_code.cast_unsigned())),
        ),
        ("AppInstallState", json!(state.code().to_string())),
        ("AppInstallState_loc", json!(state.localized())),
        ("AppInstallStateDetails", json!("0")),
        ("AppInstallStateDetails_loc", json!("")),
    ];
    values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selecting_app_install_state_brings_its_localized_column() {
        let columns = selected_columns(Some(&json!(["DeviceName", "AppInstallState"]))).unwrap();
        assert_eq!(
            columns,
            ["DeviceName", "AppInstallState", "AppInstallState_loc"]
        );
        assert!(selected_columns(Some(&json!(["AppInstallState_loc"]))).is_err());
        assert!(selected_columns(Some(&json!(["Nope"]))).is_err());
        assert_eq!(selected_columns(None).unwrap().len(), COLUMNS.len());
    }
}
