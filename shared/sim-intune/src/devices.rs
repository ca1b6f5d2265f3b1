//! `GET .../deviceManagement/managedDevices` (paged with `$top` and `@odata.nextLink`) and
//! `GET .../managedDevices/{id}`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::SimDevice;
use crate::graph::{error, intune_error, json_reply};
use crate::odata;
use crate::state::State;
use crate::wire::{Ctx, Reply, derived_guid, encode_query_value, fnv64, iso};

/// Devices per page when the request names no `$top` (small, so paging is exercised).
const DEFAULT_PAGE: usize = 2;
const MAX_PAGE: usize = 1000;

/// The user signed in on a simulated device.
pub(crate) fn user_principal_name(device_name: &str) -> String {
    let local: String = device_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("user.{local}@contoso.onmicrosoft.com")
}

/// The Entra ID user id of a simulated user.
pub(crate) fn user_id(user_principal_name: &str) -> String {
    derived_guid(0x05E5, fnv64(&user_principal_name.to_ascii_lowercase()))
}

/// A simulated user's display name: the local part of the user principal name.
pub(crate) fn user_name(user_principal_name: &str) -> String {
    user_principal_name
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn device_json(device: &SimDevice, ctx: &Ctx) -> serde_json::Map<String, Value> {
    let hash = fnv64(&device.id);
    // The primary user: the first who signed in.
    let user = device
        .signed_in()
        .into_iter()
        .next()
        .map(|(upn, _)| upn)
        .unwrap_or_default();
    let object = json!({
        "id": device.id,
        "deviceName": device.name,
        "userPrincipalName": user,
        "userId": user_id(&user),
        "operatingSystem": "Windows",
        "osVersion": "10.0.22631.4169",
        "complianceState": "compliant",
        "managementState": "managed",
        "managedDeviceOwnerType": "company",
        "enrolledDateTime": iso(ctx.now.checked_sub(Duration::from_secs(30 * 86_400)).unwrap_or(ctx.now)),
        "lastSyncDateTime": iso(ctx.now),
        "serialNumber": format!("SIM{:010X}", hash % 0xFF_FFFF_FFFF),
        "azureADDeviceId": derived_guid(0xAAD, hash),
        "manufacturer": "Contoso",
        "model": "Virtual Machine",
    });
    object.as_object().cloned().unwrap_or_default()
}

pub(crate) fn list(state: &State, ctx: &Ctx, version: &str) -> Reply {
    let top = match ctx.query_param("$top") {
        None => DEFAULT_PAGE,
        Some(top) => match top.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return error(
                    ctx,
                    400,
                    "BadRequest",
                    &format!("Invalid value '{top}' for $top: expected 1 to {MAX_PAGE}."),
                );
            }
        },
    };
    let skip = match ctx.query_param("$skiptoken") {
        None => 0,
        Some(token) => match decode_skiptoken(&token) {
            Some(skip) => skip,
            None => return error(ctx, 400, "BadRequest", "Invalid $skiptoken."),
        },
    };
    let filter = ctx.query_param("$filter");
    let clauses = match filter.as_deref().map(odata::parse).transpose() {
        Ok(clauses) => clauses.unwrap_or_default(),
        Err(message) => return error(ctx, 400, "BadRequest", &message),
    };
    let devices: Vec<_> = state
        .all_devices()
        .into_iter()
        .map(|d| device_json(d, ctx))
        .filter(|d| odata::matches(&clauses, d))
        .collect();
    let page: Vec<Value> = devices
        .iter()
        .skip(skip)
        .take(top)
        .cloned()
        .map(Value::Object)
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/{version}/$metadata#deviceManagement/managedDevices", ctx.base_url),
        "value": page,
    });
    if skip + top < devices.len() {
        let mut link = format!(
            "{}/{version}/deviceManagement/managedDevices?$top={top}&$skiptoken={}",
            ctx.base_url,
            encode_skiptoken(skip + top)
        );
        if let Some(filter) = filter {
            link.push_str("&$filter=");
            link.push_str(&encode_query_value(&filter));
        }
        body["@odata.nextLink"] = Value::String(link);
    }
    json_reply(200, &body)
}

pub(crate) fn get(state: &State, ctx: &Ctx, version: &str, id: &str) -> Reply {
    match state
        .all_devices()
        .into_iter()
        .find(|d| d.id.eq_ignore_ascii_case(id))
    {
        Some(device) => {
            let mut object = device_json(device, ctx);
            object.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/{version}/$metadata#deviceManagement/managedDevices/$entity",
                    ctx.base_url
                )),
            );
            json_reply(200, &Value::Object(object))
        }
        None => intune_error(
            ctx,
            404,
            "ResourceNotFound",
            &format!("The managedDevice '{id}' was not found."),
        ),
    }
}

/// An opaque-looking token for a page offset.
fn encode_skiptoken(offset: usize) -> String {
    format!("RFNwdAIAAQAAA{offset:08X}")
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    usize::from_str_radix(token.strip_prefix("RFNwdAIAAQAAA")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(42)), Some(42));
        assert_eq!(decode_skiptoken("garbage"), None);
    }

    #[test]
    fn user_names_are_derived_from_the_device() {
        assert_eq!(
            user_principal_name("PC-01"),
            "user.pc01@contoso.onmicrosoft.com"
        );
    }
}
