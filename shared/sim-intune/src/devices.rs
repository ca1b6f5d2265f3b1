//! `GET .../deviceManagement/managedDevices` (paged with `$top` and `@odata.nextLink`) and
//! `GET .../managedDevices/{id}`.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::config::SimDevice;
use crate::graph::{error, intune_error, json_reply, select};
use crate::odata;
use crate::state::State;
use crate::wire::{Ctx, Reply, derived_guid, encode_query_value, fnv64, iso};

/// Devices per page when the request names no `$top` (small, so paging is exercised). Graph's
/// own default and maximum for `managedDevices` are 1000 (powershell-intune-samples issue #2).
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

/// The device's id in Entra ID (`deviceId` of the Entra device, `azureADDeviceId` of the managed
/// device): not the Entra object's `id`.
pub(crate) fn entra_device_id(device: &SimDevice) -> String {
    derived_guid(0xAAD, fnv64(&device.id))
}

/// The Entra device object's `id` (what group membership lists).
pub(crate) fn entra_object_id(device: &SimDevice) -> String {
    derived_guid(0x0B1E, fnv64(&device.id))
}

/// When the device last synced with Intune: now for a device online, or when it went offline.
pub(crate) fn last_sync(device: &SimDevice, state: &State, ctx: &Ctx) -> SystemTime {
    match device.offline_for {
        Some(offline) => {
            let epoch = state.epoch(ctx.now);
            epoch.checked_sub(offline).unwrap_or(epoch)
        }
        None => ctx.now,
    }
}

fn device_json(device: &SimDevice, state: &State, ctx: &Ctx) -> serde_json::Map<String, Value> {
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
        "lastSyncDateTime": iso(last_sync(device, state, ctx)),
        "serialNumber": format!("SIM{:010X}", hash % 0xFF_FFFF_FFFF),
        "azureADDeviceId": entra_device_id(device),
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
    // The skiptoken is a position in the tenant's device list, so a page costs its own devices
    // only (fleets of tens of thousands stay cheap to page).
    let all = state.all_devices();
    let mut page: Vec<Value> = Vec::new();
    let mut next = None;
    for (index, device) in all.iter().enumerate().skip(skip) {
        let object = device_json(device, state, ctx);
        if !odata::matches(&clauses, &object) {
            continue;
        }
        if page.len() == top {
            next = Some(index);
            break;
        }
        page.push(Value::Object(select(ctx, object)));
    }
    let mut body = json!({
        "@odata.context": format!("{}/{version}/$metadata#deviceManagement/managedDevices", ctx.base_url),
        "value": page,
    });
    if let Some(next) = next {
        let mut link = format!(
            "{}/{version}/deviceManagement/managedDevices?$top={top}&$skiptoken={}",
            ctx.base_url,
            encode_skiptoken(next)
        );
        if let Some(filter) = filter {
            link.push_str("&$filter=");
            link.push_str(&encode_query_value(&filter));
        }
        if let Some(selected) = ctx.query_param("$select") {
            link.push_str("&$select=");
            link.push_str(&encode_query_value(&selected));
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
            let mut object = device_json(device, state, ctx);
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
