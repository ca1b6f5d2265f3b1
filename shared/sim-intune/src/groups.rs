//! Entra ID group membership: `GET .../groups/{id}/members` and `.../transitiveMembers`, each
//! optionally cast to `microsoft.graph.device`, paged with `$top` (1 to 999, default 100) and
//! `@odata.nextLink` (`$skiptoken`), with `$select`. Groups hold devices only here, so the cast
//! changes nothing but the `@odata.context`.

use serde_json::{Value, json};

use crate::devices::{entra_device_id, entra_object_id, last_sync};
use crate::graph::{error, json_reply, select};
use crate::state::State;
use crate::wire::{Ctx, Reply, encode_query_value, iso};

/// Directory objects per page when the request names no `$top` (Graph's default).
const DEFAULT_PAGE: usize = 100;
/// The directory's largest page (Graph docs: "default and maximum page sizes are 100 and 999").
const MAX_PAGE: usize = 999;
const SKIPTOKEN_PREFIX: &str = "RFNwdAoAAQAAAAAAAAAAFAAAA";

pub(crate) fn members(
    state: &State,
    ctx: &Ctx,
    version: &str,
    group_id: &str,
    relation: &str,
    cast: bool,
) -> Reply {
    let Some(members) = state.group_members(group_id) else {
        return error(
            ctx,
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{group_id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };
    let top = match ctx.query_param("$top") {
        None => DEFAULT_PAGE,
        Some(top) => match top.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return error(
                    ctx,
                    400,
                    "Request_UnsupportedQuery",
                    &format!(
                        "Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive."
                    ),
                );
            }
        },
    };
    let skip = match ctx.query_param("$skiptoken") {
        None => 0,
        Some(token) => match token
            .strip_prefix(SKIPTOKEN_PREFIX)
            .and_then(|t| usize::from_str_radix(t, 16).ok())
        {
            Some(skip) => skip,
            None => {
                return error(
                    ctx,
                    400,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                );
            }
        },
    };
    let page: Vec<Value> = members
        .iter()
        .skip(skip)
        .take(top)
        .map(|device| {
            let object = json!({
                "@odata.type": "#microsoft.graph.device",
                "id": entra_object_id(device),
                "deviceId": entra_device_id(device),
                "displayName": device.name,
                "accountEnabled": true,
                "operatingSystem": "Windows",
                "operatingSystemVersion": "10.0.22631.4169",
                "trustType": "AzureAd",
                "isManaged": device.managed,
                "approximateLastSignInDateTime": iso(last_sync(device, state, ctx)),
            });
            Value::Object(select(ctx, object.as_object().cloned().unwrap_or_default()))
        })
        .collect();
    let fragment = if cast {
        "directoryObjects/microsoft.graph.device"
    } else {
        "directoryObjects"
    };
    let mut body = json!({
        "@odata.context": format!("{}/{version}/$metadata#{fragment}", ctx.base_url),
        "value": page,
    });
    if skip + top < members.len() {
        let mut link = format!(
            "{}/{version}/groups/{group_id}/{relation}{}?$top={top}&$skiptoken={SKIPTOKEN_PREFIX}{:X}",
            ctx.base_url,
            if cast { "/microsoft.graph.device" } else { "" },
            skip + top
        );
        if let Some(selected) = ctx.query_param("$select") {
            link.push_str("&$select=");
            link.push_str(&encode_query_value(&selected));
        }
        body["@odata.nextLink"] = Value::String(link);
    }
    json_reply(200, &body)
}
