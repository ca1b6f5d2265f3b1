//! The privileges of Jamf Pro's API roles that each route needs, by the names Jamf's API role
//! editor uses ("Read Policies", "Create Packages", …).

/// The privileges any one of which lets a request through; `None` for routes that need none
/// (the token routes, the version).
pub(crate) fn required(method: &str, path: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let action = match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => "Read",
        "POST" => "Create",
        "PUT" | "PATCH" => "Update",
        "DELETE" => "Delete",
        _ => return None,
    };
    let objects: &[&str] = match segments.as_slice() {
        ["JSSResource", "policies", ..] => &["Policies"],
        ["JSSResource", "categories", ..] | ["api", _, "categories", ..] => &["Categories"],
        // Uploading a file changes the package.
        ["api", _, "packages", _, "upload"] => {
            return Some(vec!["Update Packages".to_owned()]);
        }
        ["JSSResource", "packages", ..] | ["api", _, "packages", ..] => &["Packages"],
        ["JSSResource", "computergroups", ..] | ["api", _, "computer-groups", ..] => {
            &["Smart Computer Groups", "Static Computer Groups"]
        }
        ["JSSResource", "computerhistory", ..]
        | [
            "api",
            _,
            "computers-inventory" | "computers-inventory-detail",
            ..,
        ] => &["Computers"],
        _ => return None,
    };
    Some(objects.iter().map(|o| format!("{action} {o}")).collect())
}

#[cfg(test)]
mod tests {
    use super::required;

    #[test]
    fn routes_need_jamfs_privileges() {
        assert_eq!(
            required("POST", "/JSSResource/policies/id/0"),
            Some(vec!["Create Policies".to_owned()])
        );
        assert_eq!(
            required("PUT", "/JSSResource/policies/id/3"),
            Some(vec!["Update Policies".to_owned()])
        );
        assert_eq!(
            required("POST", "/api/v1/packages/4/upload"),
            Some(vec!["Update Packages".to_owned()])
        );
        assert_eq!(
            required("GET", "/api/v3/computers-inventory"),
            Some(vec!["Read Computers".to_owned()])
        );
        assert_eq!(required("GET", "/api/v1/jamf-pro-version"), None);
    }
}
