//! The Classic API's XML, read and written with quick-xml and serde: the documents the connector
//! sends, the answers it reads (entities, numeric character references, CDATA and attributes
//! included, as a real Jamf Pro server writes them), and the reason on the HTML error page.
//!
//! Each answer type names only the elements the connector uses; everything else in a document is
//! skipped, so new elements in a newer Jamf Pro do not break reading. A policy's `<scope>` is the
//! exception: it is read whole into a [`Node`] tree and written back whole with only the ring's
//! group added or removed, because a `<scope>` sent replaces the stored scope — targets,
//! limitations and exclusions alike (an exclusion read as a target and written back would deploy
//! to the Macs it was meant to spare).

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

// ---- what the connector sends ----

/// `<maintenance>`: `recon` updates inventory after the policy runs.
#[derive(Debug, Serialize)]
pub struct MaintenanceDoc {
    pub recon: bool,
}

/// A policy's `<general>` as created. A Classic policy has no notes or priority element (Jamf
/// drops them): the version pin lives in the name and on the package.
#[derive(Debug, Serialize)]
pub struct General {
    pub name: String,
    pub enabled: bool,
    pub trigger_checkin: bool,
    /// `Once per computer`: the frequency retries apply to.
    pub frequency: String,
    /// `check-in`: a Mac whose install failed tries again at its next check-in.
    pub retry_event: String,
    /// 1 to 10.
    pub retry_attempts: u8,
    pub notify_on_each_failed_retry: bool,
    pub category: NameRef,
}

/// The elements of `<general>` an update changes (the others stay as they are).
#[derive(Debug, Default, Serialize)]
#[serde(rename = "general")]
pub struct GeneralUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_attempts: Option<u8>,
}

#[derive(Debug, Serialize)]
pub struct NameRef {
    pub name: String,
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

/// `<policy><id>N</id></policy>` as a create or update answers (or a whole policy, whose id is
/// `general/id`; see `publish::FoundPolicy` for what the connector reads of one).
#[derive(Debug, Default, Deserialize)]
pub struct PolicyAnswer {
    /// The create and update answers' id.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub general: Option<IdAnswer>,
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

/// The message of the Classic API's HTML error page: the text of its second `<p>` (the first,
/// which carries a `style` attribute, holds only the status), else of its only one. HTML is not
/// XML (`<br>` is never closed, `&nbsp;` is no XML entity), so quick-xml reads it leniently:
/// end names unchecked, unmatched ends and bare `&` allowed.
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
            Ok(Event::Empty(e)) if e.name().as_ref().eq_ignore_ascii_case("p") => {
                paragraphs.push(String::new());
            }
            Ok(Event::End(e)) if e.name().as_ref().eq_ignore_ascii_case("p") => in_p = false,
            Ok(Event::Text(t)) if in_p => {
                if let Some(p) = paragraphs.last_mut() {
                    p.push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) if in_p => {
                let name = r.xml10_content();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ if name == "nbsp" => Some(" ".to_owned()),
                    _ => resolve_xml_entity(&name).map(str::to_owned),
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

// ---- a document read whole and written back ----

/// An element read whole: its name, its text and its children, in order (attributes are dropped:
/// no Classic API shape uses them). Used for the parts of a document the connector writes back
/// as it read them, with one change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn new(name: &str) -> Node {
        Node {
            name: name.to_owned(),
            ..Node::default()
        }
    }

    /// An element holding only text.
    pub fn leaf(name: &str, text: &str) -> Node {
        Node {
            name: name.to_owned(),
            text: text.to_owned(),
            children: Vec::new(),
        }
    }

    /// Reads a document's root element.
    ///
    /// # Errors
    /// The document is not well-formed XML.
    pub fn parse(xml: &str) -> Result<Node, String> {
        let mut reader = quick_xml::Reader::from_str(xml.trim_start_matches('\u{feff}'));
        let mut open: Vec<Node> = Vec::new();
        loop {
            let event = reader.read_event().map_err(|e| e.to_string())?;
            match event {
                Event::Start(start) => open.push(Node::new(start.name().as_ref())),
                Event::Empty(start) => {
                    let node = Node::new(start.name().as_ref());
                    match open.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => return Ok(node),
                    }
                }
                Event::End(_) => {
                    let node = open.pop().ok_or("a closing tag without an opening one")?;
                    match open.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => return Ok(node),
                    }
                }
                Event::Text(text) => {
                    if let Some(node) = open.last_mut() {
                        node.text.push_str(&text.xml10_content());
                    }
                }
                Event::CData(data) => {
                    if let Some(node) = open.last_mut() {
                        node.text.push_str(&data.xml10_content());
                    }
                }
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => resolve_xml_entity(&reference.xml10_content())
                            .ok_or("an unknown entity")?
                            .to_owned(),
                    };
                    if let Some(node) = open.last_mut() {
                        node.text.push_str(&resolved);
                    }
                }
                Event::Eof => return Err("no root element".to_owned()),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The child named `name`, added (empty) if there is none.
    pub fn child_mut(&mut self, name: &str) -> &mut Node {
        let at = match self.children.iter().position(|c| c.name == name) {
            Some(at) => at,
            None => {
                self.children.push(Node::new(name));
                self.children.len() - 1
            }
        };
        &mut self.children[at]
    }

    /// The trimmed text of the first descendant along `path` (`"category/name"`).
    pub fn text_at(&self, path: &str) -> Option<&str> {
        let mut at = self;
        for step in path.split('/') {
            at = at.child(step)?;
        }
        Some(at.text.trim())
    }

    /// The `<id>`s of the children named `item` of the element at `path` (`"scope/computer_groups"`).
    pub fn ids(&self, path: &str, item: &str) -> Vec<String> {
        let mut at = Some(self);
        for step in path.split('/') {
            at = at.and_then(|n| n.child(step));
        }
        at.map(|list| {
            list.children
                .iter()
                .filter(|c| c.name == item)
                .filter_map(|c| c.text_at("id"))
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    }

    /// The element as XML (text escaped), without a prolog.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        let text = self.text.trim();
        if self.children.is_empty() && text.is_empty() {
            out.push('<');
            out.push_str(&self.name);
            out.push_str("/>");
            return;
        }
        out.push('<');
        out.push_str(&self.name);
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&quick_xml::escape::escape(text));
        }
        for child in &self.children {
            child.write(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// A policy's scope as read, edited and written back whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(pub Node);

impl Scope {
    /// The `<scope>` of a policy document (an empty one if it has none).
    pub fn of(policy: &Node) -> Scope {
        Scope(
            policy
                .child("scope")
                .cloned()
                .unwrap_or_else(|| Node::new("scope")),
        )
    }

    /// A scope reaching these computer groups and nothing else.
    pub fn groups(ids: &[String]) -> Scope {
        let mut scope = Scope(Node::new("scope"));
        for id in ids {
            scope.add_group(id);
        }
        scope
    }

    /// The computer groups targeted (`scope/computer_groups`), never the excluded ones
    /// (`scope/exclusions/computer_groups`).
    pub fn group_ids(&self) -> Vec<String> {
        self.0.ids("computer_groups", "computer_group")
    }

    /// The computer groups excluded.
    #[cfg(test)]
    pub fn excluded_group_ids(&self) -> Vec<String> {
        self.0.ids("exclusions/computer_groups", "computer_group")
    }

    /// Adds a computer group to the targets; `false` if it was there already.
    pub fn add_group(&mut self, id: &str) -> bool {
        if self.group_ids().iter().any(|g| g == id) {
            return false;
        }
        let mut group = Node::new("computer_group");
        group.children.push(Node::leaf("id", id));
        self.0.child_mut("computer_groups").children.push(group);
        true
    }

    /// Removes a computer group from the targets (exclusions untouched); `false` if absent.
    pub fn remove_group(&mut self, id: &str) -> bool {
        let Some(groups) = self
            .0
            .children
            .iter_mut()
            .find(|c| c.name == "computer_groups")
        else {
            return false;
        };
        let before = groups.children.len();
        groups
            .children
            .retain(|g| g.name != "computer_group" || g.text_at("id") != Some(id));
        groups.children.len() != before
    }
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
        let doc = Node::parse(POLICY).unwrap();
        assert_eq!(
            doc.text_at("general/name"),
            Some("EUCORA Bob's App & Co 1.2 [dp-1]")
        );
        assert_eq!(
            doc.text_at("general/notes"),
            Some("eucora-pin: Bob's <App> 1.2")
        );
        let scope = Scope::of(&doc);
        assert_eq!(
            scope.group_ids(),
            ["41", "42"],
            "exclusions are not targets"
        );
        assert_eq!(scope.excluded_group_ids(), ["99"]);
        assert_eq!(doc.ids("package_configuration/packages", "package"), ["7"]);
    }

    #[test]
    fn reads_the_create_answer_and_empty_lists() {
        let created: PolicyAnswer =
            read(r#"<?xml version="1.0" encoding="UTF-8"?><policy><id>5</id></policy>"#).unwrap();
        assert_eq!(created.policy_id().as_deref(), Some("5"));
        let empty = Node::parse(
            "<policy><general><id>3</id></general><scope><computer_groups/></scope></policy>",
        )
        .unwrap();
        assert!(Scope::of(&empty).group_ids().is_empty());
        assert!(
            empty
                .ids("package_configuration/packages", "package")
                .is_empty()
        );
        assert!(Node::parse("<policy><general></policy>").is_err());
        assert!(Node::parse("").is_err());
    }

    /// The ring's group is added to the targets and the rest of the scope written back as read:
    /// the exclusions stay exclusions, limitations and buildings stay.
    #[test]
    fn a_scope_is_written_back_whole_with_only_the_group_changed() {
        let doc = Node::parse(POLICY).unwrap();
        let mut scope = Scope::of(&doc);
        assert!(!scope.add_group("41"), "already a target");
        assert!(scope.add_group("43"));
        let xml = scope.0.to_xml();
        let back = Scope(Node::parse(&xml).unwrap());
        assert_eq!(back.group_ids(), ["41", "42", "43"]);
        assert_eq!(back.excluded_group_ids(), ["99"]);
        assert!(xml.contains("<all_computers>false</all_computers><computers/>"));
        assert!(xml.contains("<name>Ring 1</name>"), "{xml}");
        let mut scope = back;
        assert!(scope.remove_group("42"));
        assert!(!scope.remove_group("99"), "an exclusion is no target");
        assert_eq!(scope.group_ids(), ["41", "43"]);
        assert_eq!(scope.excluded_group_ids(), ["99"]);
        assert_eq!(
            Scope::groups(&["7".into()]).0.to_xml(),
            "<scope><computer_groups><computer_group><id>7</id></computer_group></computer_groups></scope>"
        );
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
        assert!(Node::parse("<policy><name>a & b</name></policy>").is_err());
        assert!(read::<PolicyAnswer>("<policy><general><id>1</id></policy>").is_err());
        assert!(read::<PolicyAnswer>("<policy><name>a & b</name></policy>").is_err());
    }

    #[test]
    fn writes_documents_escaped() {
        let general = General {
            name: "Bob's <App> & Co".into(),
            enabled: false,
            trigger_checkin: true,
            frequency: "Once per computer".into(),
            retry_event: "check-in".into(),
            retry_attempts: 3,
            notify_on_each_failed_retry: false,
            category: NameRef {
                name: "control-plane-auto".into(),
            },
        };
        let xml = quick_xml::se::to_string_with_root("general", &general).unwrap();
        assert_eq!(
            xml,
            "<general><name>Bob's &lt;App&gt; &amp; Co</name><enabled>false</enabled>\
             <trigger_checkin>true</trigger_checkin><frequency>Once per computer</frequency>\
             <retry_event>check-in</retry_event><retry_attempts>3</retry_attempts>\
             <notify_on_each_failed_retry>false</notify_on_each_failed_retry>\
             <category><name>control-plane-auto</name></category></general>"
        );
        let update = GeneralUpdate {
            enabled: Some(true),
            ..GeneralUpdate::default()
        };
        assert_eq!(
            quick_xml::se::to_string_with_root("general", &update).unwrap(),
            "<general><enabled>true</enabled></general>"
        );
        let node = Node::leaf("name", "a<b & 'c'");
        assert_eq!(node.to_xml(), "<name>a&lt;b &amp; &apos;c&apos;</name>");
        assert_eq!(Node::parse(&node.to_xml()).unwrap(), node);
    }

    /// A Classic API status page exactly as a Jamf Pro server writes it (this one is the 401 a
    /// client without the privilege got, jamf/mut issue 130; the 403 of issue 88 is the same
    /// with `Forbidden`).
    fn real_page(status: &str, message: &str) -> String {
        format!(
            "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body style=\"font-family: sans-serif;\">\n\
             <p style=\"font-size: 1.2em;font-weight: bold;margin: 1em 0px;\">{status}</p>\n\
             <p>{message}</p>\n\
             <p>You can get technical details <a href=\"http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2\">here</a>.<br>\n\
             Please continue your visit at our <a href=\"/\">home page</a>.\n</p>\n</body>\n</html>\n"
        )
    }

    #[test]
    fn reads_the_message_of_the_real_servers_error_pages() {
        assert_eq!(
            html_reason(&real_page(
                "Unauthorized",
                "The request requires user authentication"
            ))
            .as_deref(),
            Some("The request requires user authentication")
        );
        assert_eq!(
            html_reason(&real_page(
                "Forbidden",
                "The server understood the request, but is refusing to fulfill it"
            ))
            .as_deref(),
            Some("The server understood the request, but is refusing to fulfill it")
        );
        assert_eq!(
            html_reason(&real_page("Conflict", "Error: Problem with category")).as_deref(),
            Some("Error: Problem with category")
        );
    }

    #[test]
    fn reads_the_reason_of_the_html_error_page() {
        let page = "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n\
            <p style=\"font-size: 1.2em\">Conflict</p>\n<p>Error: Duplicate name &amp; more&#33;&nbsp;</p>\n\
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
