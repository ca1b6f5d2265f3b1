//! Categories and packages, and the checks `POST /api/v1/packages` makes on a package.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::cluster::{Origin, Replica, Replicated};

/// The category a deployment's policies carry; it exists from the start (id 1).
pub(crate) const CONTROL_PLANE_CATEGORY: &str = "control-plane-auto";

#[derive(Debug, Clone)]
pub(crate) struct Category {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) priority: i64,
    pub(crate) origin: Option<Origin>,
}

impl Category {
    pub(crate) fn to_json(&self) -> Value {
        json!({ "id": self.id.to_string(), "name": self.name, "priority": self.priority })
    }
}

/// A file uploaded to a package, hashed as it was received.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub(crate) file_name: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) sha3_512: String,
    pub(crate) md5: String,
    /// The file, when it was small enough to keep (see `SimConfig::keep_upload_bytes_under`).
    pub(crate) bytes: Option<bytes::Bytes>,
    /// When the cloud distribution service has processed it (its hashes appear then); `None`
    /// while processing is held (see `SimHandle::hold_processing`).
    pub(crate) ready_at: Option<OffsetDateTime>,
}

impl Upload {
    /// Whether the distribution service has processed the file by `now`.
    pub(crate) fn processed(&self, now: OffsetDateTime) -> bool {
        self.ready_at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Package {
    pub(crate) id: u32,
    /// The fields as posted (normalised), without `id`.
    pub(crate) fields: Map<String, Value>,
    pub(crate) upload: Option<Upload>,
    pub(crate) origin: Option<Origin>,
    pub(crate) replica: Replica<Package>,
}

impl Replicated for Package {
    fn created(&self) -> Option<Origin> {
        self.origin
    }

    fn replica(&self) -> &Replica<Self> {
        &self.replica
    }

    fn replica_mut(&mut self) -> &mut Replica<Self> {
        &mut self.replica
    }
}

/// How the server reports a processed file's hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashReport {
    /// Jamf Pro 11.25 and later also fill `sha256` and `sha3512`; older servers only
    /// `hashType`/`hashValue` (and `md5`).
    pub(crate) sha256: bool,
}

impl Package {
    pub(crate) fn name(&self) -> &str {
        self.fields
            .get("packageName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub(crate) fn text(&self, field: &str) -> String {
        match self.fields.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    pub(crate) fn priority(&self) -> i64 {
        self.fields
            .get("priority")
            .and_then(Value::as_i64)
            .unwrap_or(10)
    }

    /// The package as `GET /api/v1/packages/{id}` answers it at `now`: an uploaded file has its
    /// size (as Jamf writes it, text such as `"234KB"`: see [`human_size`]) and
    /// `cloudTransferStatus` `IN_PROGRESS` at once, and its hashes (`hashType` `SHA3_512`) only
    /// once the distribution service has processed it (`READY`).
    pub(crate) fn to_json(&self, now: OffsetDateTime, report: HashReport) -> Value {
        let mut out = Map::new();
        out.insert("id".to_owned(), Value::String(self.id.to_string()));
        let defaults = json!({
            "packageName": "", "fileName": "", "categoryId": "-1", "info": "", "notes": "", "priority": 10,
            "osRequirements": "", "fillUserTemplate": false, "indexed": false, "fillExistingUsers": false,
            "swu": false, "rebootRequired": false, "selfHealNotify": false, "selfHealingAction": "nothing",
            "osInstall": false, "serialNumber": "", "parentPackageId": "", "basePath": "",
            "suppressUpdates": false, "cloudTransferStatus": "NOT_APPLICABLE", "ignoreConflicts": false,
            "suppressFromDock": false, "suppressEula": false, "suppressRegistration": false,
            "installLanguage": "en_US", "md5": null, "sha256": null, "sha3512": null, "hashType": null, "hashValue": null,
            "size": null, "osInstallerVersion": "", "manifest": "", "manifestFileName": "", "format": ""
        });
        if let Value::Object(defaults) = defaults {
            for (key, value) in defaults {
                let given = self.fields.get(&key).cloned();
                out.insert(key, given.unwrap_or(value));
            }
        }
        if let Some(upload) = &self.upload {
            out.insert("size".to_owned(), json!(human_size(upload.size)));
            if upload.processed(now) {
                out.insert("cloudTransferStatus".to_owned(), json!("READY"));
                out.insert("md5".to_owned(), json!(upload.md5));
                out.insert("hashType".to_owned(), json!("SHA3_512"));
                out.insert("hashValue".to_owned(), json!(upload.sha3_512));
                if report.sha256 {
                    out.insert("sha256".to_owned(), json!(upload.sha256));
                    out.insert("sha3512".to_owned(), json!(upload.sha3_512));
                }
            } else {
                out.insert("cloudTransferStatus".to_owned(), json!("IN_PROGRESS"));
            }
        }
        Value::Object(out)
    }
}

/// A package's `size` as the Jamf Pro API writes it: text with a unit (Jamf's schema example is
/// `"234KB"`), never a count of bytes a client could compare. Rounded up to whole units of 1024.
pub(crate) fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    let (unit, name) = match bytes {
        b if b < KIB * KIB => (KIB, "KB"),
        b if b < KIB * KIB * KIB => (KIB * KIB, "MB"),
        _ => (KIB * KIB * KIB, "GB"),
    };
    format!("{}{name}", bytes.div_ceil(unit))
}

/// Fields of a package only the server writes (`readOnly` in Jamf's schema): a client's values
/// for them are ignored.
const READ_ONLY_PACKAGE_FIELDS: [&str; 3] = ["id", "size", "cloudTransferStatus"];

/// One entry of a Jamf Pro API error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) code: &'static str,
    pub(crate) field: String,
    pub(crate) description: String,
}

impl FieldError {
    pub(crate) fn invalid(field: &str, description: &str) -> Self {
        Self {
            code: "INVALID_FIELD",
            field: field.to_owned(),
            description: description.to_owned(),
        }
    }
}

/// The fields `POST /api/v1/packages` requires.
pub(crate) const REQUIRED_PACKAGE_FIELDS: [&str; 11] = [
    "packageName",
    "fileName",
    "categoryId",
    "priority",
    "fillUserTemplate",
    "rebootRequired",
    "osInstall",
    "suppressUpdates",
    "suppressFromDock",
    "suppressEula",
    "suppressRegistration",
];

const BOOLEAN_FIELDS: [&str; 12] = [
    "fillUserTemplate",
    "rebootRequired",
    "osInstall",
    "suppressUpdates",
    "suppressFromDock",
    "suppressEula",
    "suppressRegistration",
    "indexed",
    "fillExistingUsers",
    "swu",
    "selfHealNotify",
    "ignoreConflicts",
];

/// Checks a posted package and normalises it (`categoryId` a string, `priority` a number, the
/// flags booleans; Jackson on the real server coerces the same way). Every problem is reported.
pub(crate) fn package_fields(
    body: &Value,
    category_exists: impl Fn(&str) -> bool,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    let Value::Object(given) = body else {
        return Err(vec![FieldError::invalid(
            "",
            "the body must be a JSON object",
        )]);
    };
    let mut fields = given.clone();
    for field in READ_ONLY_PACKAGE_FIELDS {
        fields.remove(field);
    }
    let mut errors = Vec::new();
    for field in REQUIRED_PACKAGE_FIELDS {
        if fields.get(field).is_none_or(Value::is_null) {
            errors.push(FieldError::invalid(field, "must not be null"));
        }
    }
    for field in ["packageName", "fileName"] {
        match fields.get(field) {
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(FieldError::invalid(field, "must not be blank"));
            }
            Some(Value::String(_) | Value::Null) | None => {}
            Some(_) => errors.push(FieldError::invalid(field, "must be a string")),
        }
    }
    match fields.get("categoryId").cloned() {
        Some(Value::String(id)) if id == "-1" || category_exists(&id) => {}
        Some(Value::Number(n)) if n.to_string() == "-1" || category_exists(&n.to_string()) => {
            fields.insert("categoryId".to_owned(), Value::String(n.to_string()));
        }
        Some(Value::Null) | None => {}
        Some(other) => errors.push(FieldError::invalid(
            "categoryId",
            &format!("category {other} does not exist"),
        )),
    }
    match fields.get("priority").cloned() {
        Some(Value::Number(n)) if n.is_i64() => {}
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
            fields.insert(
                "priority".to_owned(),
                json!(s.trim().parse::<i64>().unwrap_or_default()),
            );
        }
        Some(Value::Null) | None => {}
        Some(_) => errors.push(FieldError::invalid("priority", "must be an integer")),
    }
    for field in BOOLEAN_FIELDS {
        match fields.get(field).cloned() {
            Some(Value::Bool(_) | Value::Null) | None => {}
            Some(Value::String(s))
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                fields.insert(
                    field.to_owned(),
                    Value::Bool(s.eq_ignore_ascii_case("true")),
                );
            }
            Some(_) => errors.push(FieldError::invalid(field, "must be a boolean")),
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{human_size, package_fields};

    fn complete() -> serde_json::Value {
        json!({
            "packageName": "Firefox-128.pkg", "fileName": "Firefox-128.pkg", "categoryId": "1", "priority": 10,
            "fillUserTemplate": false, "rebootRequired": false, "osInstall": false, "suppressUpdates": false,
            "suppressFromDock": false, "suppressEula": false, "suppressRegistration": false
        })
    }

    #[test]
    fn accepts_a_complete_package_and_normalises() {
        let mut body = complete();
        body["categoryId"] = json!(1);
        body["priority"] = json!("7");
        body["osInstall"] = json!("TRUE");
        let fields = package_fields(&body, |id| id == "1").unwrap();
        assert_eq!(fields["categoryId"], json!("1"));
        assert_eq!(fields["priority"], json!(7));
        assert_eq!(fields["osInstall"], json!(true));
    }

    /// `size` and `cloudTransferStatus` are the server's (read-only in Jamf's schema); the hash
    /// fields are anyone's to write, as on Jamf.
    #[test]
    fn ignores_read_only_fields_and_keeps_written_hashes() {
        let mut body = complete();
        body["size"] = json!("999KB");
        body["cloudTransferStatus"] = json!("READY");
        body["id"] = json!("77");
        body["sha256"] = json!("ab");
        let fields = package_fields(&body, |_| true).unwrap();
        assert!(!fields.contains_key("size"));
        assert!(!fields.contains_key("cloudTransferStatus"));
        assert!(!fields.contains_key("id"));
        assert_eq!(fields["sha256"], json!("ab"));
    }

    #[test]
    fn writes_sizes_as_jamf_does() {
        assert_eq!(human_size(0), "0KB");
        assert_eq!(human_size(239_616), "234KB");
        assert_eq!(human_size(3 * 1024 * 1024 + 17), "4MB");
        assert_eq!(human_size(4 * 1024 * 1024 * 1024), "4GB");
    }

    #[test]
    fn names_every_missing_field() {
        let mut body = complete();
        body.as_object_mut().unwrap().remove("fileName");
        body["suppressEula"] = json!(null);
        let errors = package_fields(&body, |_| true).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["fileName", "suppressEula"]);
        assert!(errors.iter().all(|e| e.code == "INVALID_FIELD"));
    }

    #[test]
    fn refuses_unknown_categories_and_bad_types() {
        let mut body = complete();
        body["categoryId"] = json!("99");
        body["priority"] = json!("high");
        body["rebootRequired"] = json!(3);
        let errors = package_fields(&body, |id| id == "1").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["categoryId", "priority", "rebootRequired"]);
        assert!(package_fields(&json!([1]), |_| true).is_err());
    }
}
