//! The Classic API's XML, read and written with quick-xml and serde: the documents the connector
//! sends, the answers it reads (entities, numeric character references, CDATA and attributes
//! included, as a real Jamf Pro server writes them), and the reason on the HTML error page.
//!
//! Each answer type names only the elements the connector uses; everything else in a document is
//! skipped, so new elements in a newer Jamf Pro do not break reading.

use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Reads a Classic API document into `T` (the root element's name is not checked).
///
/// # Errors
/// The document is not well-formed XML, or lacks an element `T` requires.
pub fn read<T: DeserializeOwned>(xml: &str) -> Result<T, quick_xml::DeError> {
    quick_xml::de::from_str(xml)
}

/// Writes `doc` as a Classic API document (its type's serde name is the root element).
///
/// # Errors
/// Only for a type serde cannot express as XML (none of this module's).
pub fn write<T: Serialize>(doc: &T) -> Result<String, quick_xml::SeError> {
    quick_xml::se::to_string(doc)
}

// ---- what the connector sends ----

/// `<policy>`: created whole, or updated in part (only the sections given change).
#[derive(Debug, Default, Serialize)]
#[serde(rename = "policy")]
pub struct PolicyDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub general: Option<General>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_configuration: Option<PackageConfigurationDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceDoc>,
}

/// `<maintenance>`: `recon` updates inventory after the policy runs.
#[derive(Debug, Serialize)]
pub struct MaintenanceDoc {
    pub recon: bool,
}

#[derive(Debug, Serialize)]
pub struct General {
    pub name: String,
    pub enabled: bool,
    pub trigger_checkin: bool,
    pub frequency: String,
    pub category: NameRef,
    pub notes: String,
}

#[derive(Debug, Serialize)]
pub struct NameRef {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdRef {
    pub id: String,
}

#[derive(Debug, Serialize)]
pub struct ScopeDoc {
    pub computer_groups: GroupsDoc,
}

#[derive(Debug, Serialize)]
pub struct GroupsDoc {
    /// An empty list writes `<computer_groups/>`: no group in scope.
    pub computer_group: Vec<IdRef>,
}

#[derive(Debug, Serialize)]
pub struct PackageConfigurationDoc {
    pub packages: PackagesDoc,
}

#[derive(Debug, Serialize)]
pub struct PackagesDoc {
    pub package: Vec<PackageRef>,
}

#[derive(Debug, Serialize)]
pub struct PackageRef {
    pub id: String,
    pub action: String,
}

/// `<category>` for `POST /JSSResource/categories/id/0`.
#[derive(Debug, Serialize)]
#[serde(rename = "category")]
pub struct CategoryDoc {
    pub name: String,
    pub priority: u32,
}

// ---- what the connector reads ----

/// `<policy>` as `GET /JSSResource/policies/...` answers it, or `<policy><id>N</id></policy>` as
/// a create or update answers.
#[derive(Debug, Default, Deserialize)]
pub struct PolicyAnswer {
    /// The create and update answers' id.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub general: Option<IdAnswer>,
    #[serde(default)]
    pub scope: Option<ScopeAnswer>,
    #[serde(default)]
    pub package_configuration: Option<PackageConfigurationAnswer>,
}

impl PolicyAnswer {
    /// The policy's id: `general/id` in a full policy, `id` in a create or update answer.
    pub fn policy_id(&self) -> Option<String> {
        self.general
            .as_ref()
            .and_then(|g| g.id.as_deref())
            .or(self.id.as_deref())
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    }

    /// The ids of the computer groups in scope (not the excluded ones).
    pub fn scope_group_ids(&self) -> Vec<String> {
        self.scope
            .as_ref()
            .and_then(|s| s.computer_groups.as_ref())
            .map(|g| ids(&g.computer_group))
            .unwrap_or_default()
    }

    /// The ids of the policy's packages.
    pub fn package_ids(&self) -> Vec<String> {
        self.package_configuration
            .as_ref()
            .and_then(|p| p.packages.as_ref())
            .map(|p| ids(&p.package))
            .unwrap_or_default()
    }
}

fn ids(items: &[IdAnswer]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| i.id.as_deref())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct IdAnswer {
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ScopeAnswer {
    #[serde(default)]
    pub computer_groups: Option<GroupsAnswer>,
}

#[derive(Debug, Default, Deserialize)]
pub struct GroupsAnswer {
    #[serde(default)]
    pub computer_group: Vec<IdAnswer>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PackageConfigurationAnswer {
    #[serde(default)]
    pub packages: Option<PackagesAnswer>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PackagesAnswer {
    #[serde(default)]
    pub package: Vec<IdAnswer>,
}

/// `<computer_group>` as `GET /JSSResource/computergroups/id/{id}` answers it.
#[derive(Debug, Default, Deserialize)]
pub struct GroupAnswer {
    #[serde(default)]
    pub computers: Option<ComputersAnswer>,
}

impl GroupAnswer {
    /// The ids of the group's computers.
    pub fn computer_ids(&self) -> Vec<String> {
        self.computers
            .as_ref()
            .map(|c| ids(&c.computer))
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ComputersAnswer {
    #[serde(default)]
    pub computer: Vec<IdAnswer>,
}

/// `<computer_history>` as `GET /JSSResource/computerhistory/id/{id}/subset/PolicyLogs` answers it.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryAnswer {
    #[serde(default)]
    pub policy_logs: Option<PolicyLogs>,
}

impl HistoryAnswer {
    pub fn logs(&self) -> &[PolicyLog] {
        self.policy_logs.as_ref().map_or(&[], |l| &l.policy_log)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PolicyLogs {
    #[serde(default)]
    pub policy_log: Vec<PolicyLog>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct PolicyLog {
    #[serde(default)]
    pub policy_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub date_time_epoch: Option<String>,
    #[serde(default)]
    pub date_time_utc: Option<String>,
}

/// The text of the Classic API's HTML error page's second `<p>` (its reason), else its first.
/// HTML is not XML (`<br>` is never closed), so this reads events without checking end names.
pub fn html_reason(body: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(body);
    reader.config_mut().check_end_names = false;
    reader.config_mut().allow_unmatched_ends = true;
    reader.config_mut().allow_dangling_amp = true;
    let mut paragraphs: Vec<String> = Vec::new();
    let mut in_p = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.name().as_ref().eq_ignore_ascii_case("p") => {
                in_p = true;
                paragraphs.push(String::new());
            }
            Ok(Event::End(e)) if e.name().as_ref().eq_ignore_ascii_case("p") => in_p = false,
            Ok(Event::Text(t)) if in_p => {
                if let Some(p) = paragraphs.last_mut() {
                    p.push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) if in_p => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => resolve_xml_entity(&r.xml10_content()).map(str::to_owned),
                };
                if let (Some(p), Some(text)) = (paragraphs.last_mut(), resolved) {
                    p.push_str(&text);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        if paragraphs.len() >= 2 && !in_p {
            break;
        }
    }
    paragraphs
        .get(1)
        .or(paragraphs.first())
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy as a real Jamf Pro server writes one: prolog, attributes, CDATA, named entities
    /// and numeric character references, exclusions with their own groups.
    const POLICY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<policy>
  <general>
    <id>17</id>
    <name>EUCORA Bob&#39;s App &amp; Co 1.2 [dp-1]</name>
    <enabled>true</enabled>
    <category><id>4</id><name>control-plane-auto</name></category>
    <notes><![CDATA[eucora-pin: Bob's <App> 1.2]]></notes>
    <date_time_limitations><activation_date_epoch>0</activation_date_epoch></date_time_limitations>
  </general>
  <scope>
    <all_computers>false</all_computers>
    <computers/>
    <computer_groups>
      <computer_group><id>41</id><name>Ring &#x31;</name></computer_group>
      <computer_group><id>42</id><name>Ring 2</name></computer_group>
    </computer_groups>
    <exclusions><computer_groups><computer_group><id>99</id></computer_group></computer_groups></exclusions>
  </scope>
  <package_configuration>
    <packages size="1"><size>1</size><package><id>7</id><name>App.pkg</name><action>Install</action></package></packages>
  </package_configuration>
</policy>"#;

    #[test]
    fn reads_a_policy_with_cdata_references_entities_and_attributes() {
        let p: PolicyAnswer = read(POLICY).unwrap();
        assert_eq!(p.policy_id().as_deref(), Some("17"));
        assert_eq!(
            p.scope_group_ids(),
            ["41", "42"],
            "exclusions are not scope"
        );
        assert_eq!(p.package_ids(), ["7"]);
    }

    #[test]
    fn reads_the_create_answer_and_empty_lists() {
        let created: PolicyAnswer =
            read(r#"<?xml version="1.0" encoding="UTF-8"?><policy><id>5</id></policy>"#).unwrap();
        assert_eq!(created.policy_id().as_deref(), Some("5"));
        let empty: PolicyAnswer =
            read("<policy><general><id>3</id></general><scope><computer_groups/></scope></policy>")
                .unwrap();
        assert!(empty.scope_group_ids().is_empty());
        assert!(empty.package_ids().is_empty());
    }

    #[test]
    fn reads_a_group_and_policy_logs() {
        let g: GroupAnswer = read(
            "<computer_group><id>41</id><name>a &amp; b</name><criteria><size>0</size></criteria>\
             <computers><size>2</size><computer><id>1</id><name>Bob&#8217;s Mac</name></computer>\
             <computer><id>2</id><name><![CDATA[<odd>]]></name></computer></computers></computer_group>",
        )
        .unwrap();
        assert_eq!(g.computer_ids(), ["1", "2"]);
        let h: HistoryAnswer = read(
            "<computer_history><general><id>1</id></general><policy_logs>\
             <policy_log><policy_id>5</policy_id><status>Completed</status>\
             <date_time_epoch>1767521730000</date_time_epoch></policy_log>\
             <policy_log><policy_id>6</policy_id><status>Failed</status></policy_log>\
             </policy_logs></computer_history>",
        )
        .unwrap();
        let logs = h.logs();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].policy_id.as_deref(), Some("5"));
        assert_eq!(logs[1].status.as_deref(), Some("Failed"));
        let none: HistoryAnswer =
            read("<computer_history><policy_logs/></computer_history>").unwrap();
        assert!(none.logs().is_empty());
    }

    #[test]
    fn refuses_malformed_answers() {
        assert!(read::<PolicyAnswer>("<policy><general><id>1</id></policy>").is_err());
        assert!(read::<PolicyAnswer>("<policy><name>a & b</name></policy>").is_err());
    }

    #[test]
    fn writes_documents_escaped() {
        let doc = PolicyDoc {
            general: Some(General {
                name: "Bob's <App> & Co".into(),
                enabled: true,
                trigger_checkin: true,
                frequency: "Once per computer".into(),
                category: NameRef {
                    name: "control-plane-auto".into(),
                },
                notes: "pin".into(),
            }),
            scope: Some(ScopeDoc {
                computer_groups: GroupsDoc {
                    computer_group: vec![IdRef { id: "41".into() }],
                },
            }),
            package_configuration: None,
            maintenance: None,
        };
        let xml = write(&doc).unwrap();
        assert!(xml.starts_with("<policy><general><name>Bob's &lt;App&gt; &amp; Co</name>"));
        assert!(xml.contains(
            "<scope><computer_groups><computer_group><id>41</id></computer_group></computer_groups></scope>"
        ));
        assert!(!xml.contains("package_configuration"));
        let none = PolicyDoc {
            scope: Some(ScopeDoc {
                computer_groups: GroupsDoc {
                    computer_group: Vec::new(),
                },
            }),
            ..PolicyDoc::default()
        };
        assert_eq!(
            write(&none).unwrap(),
            "<policy><scope><computer_groups/></scope></policy>"
        );
        // What the connector writes, it reads back.
        let back: PolicyAnswer = read(&xml).unwrap();
        assert_eq!(back.scope_group_ids(), ["41"]);
    }

    #[test]
    fn reads_the_reason_of_the_html_error_page() {
        let page = "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n\
            <p style=\"font-size: 1.2em\">Conflict</p>\n<p>Error: Duplicate name &amp; more&#33;</p>\n\
            <p>You can get technical details <a href=\"x\">here</a>.<br>\nPlease continue.</p></body></html>";
        assert_eq!(
            html_reason(page).as_deref(),
            Some("Error: Duplicate name & more!")
        );
        assert_eq!(
            html_reason("<html><p>Only one</p></html>").as_deref(),
            Some("Only one")
        );
        assert_eq!(html_reason("not html"), None);
    }
}
