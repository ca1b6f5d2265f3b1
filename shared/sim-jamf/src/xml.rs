//! The Classic API's documents as a tree of elements, read and written with quick-xml, and
//! rendered as the Classic API's JSON for a `GET` that asks for `application/json`.
//!
//! Reading accepts what a real Jamf Pro accepts: the prolog, comments, processing instructions, a
//! DOCTYPE, CDATA, the five named entities and numeric character references. Attributes are read
//! (so a document with them parses) but dropped: no Classic API shape uses them. Mixed content is
//! kept as the concatenated text.
//!
//! The JSON rendering follows Jamf's: the root element becomes the one key of an object; an
//! element holding a list (`<computers><size>2</size><computer>…</computer>…</computers>`)
//! becomes an array of its items, `size` dropped, even with a single item or none; every other
//! element becomes an object keyed by its children's names; a leaf becomes a number, a boolean or a
//! string as Jamf's schema types it. Elements the simulator builds carry their types and list-ness;
//! elements it stored from a posted document are typed by their text (`true`/`false`, integers)
//! and are lists when they hold a `size` or have a name Jamf uses for lists ([`LIST_NAMES`]).

use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::{Map, Value};

/// Names of Classic API elements that hold lists (policy scope, limitations and exclusions,
/// package and script configurations, group criteria and members, history sections).
const LIST_NAMES: &[&str] = &[
    "computers",
    "computer_groups",
    "buildings",
    "departments",
    "users",
    "user_groups",
    "network_segments",
    "ibeacons",
    "jss_users",
    "jss_user_groups",
    "packages",
    "scripts",
    "printers",
    "dock_items",
    "accounts",
    "directory_bindings",
    "criteria",
    "computer_additions",
    "computer_deletions",
    "policy_logs",
    "self_service_categories",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) name: String,
    text: String,
    pub(crate) children: Vec<Element>,
    /// The leaf's JSON value, for elements the simulator builds; `None`: typed by its text.
    typed: Option<Value>,
    /// Renders as a JSON array of its children (`size` dropped).
    list: bool,
}

/// A value an element can hold, with its JSON type.
pub(crate) trait Leaf {
    fn json(&self) -> Value;
}

macro_rules! number_leaf {
    ($($t:ty),*) => {$(
        impl Leaf for $t {
            fn json(&self) -> Value {
                Value::from(*self)
            }
        }
    )*};
}
number_leaf!(u32, i32, i64, u64, usize, bool);

/// Epoch milliseconds (a number in JSON while it fits in an `i64`, as every real date does).
impl Leaf for i128 {
    fn json(&self) -> Value {
        i64::try_from(*self).map_or_else(|_| Value::from(self.to_string()), Value::from)
    }
}

impl Leaf for &u32 {
    fn json(&self) -> Value {
        Value::from(**self)
    }
}

impl Leaf for &str {
    fn json(&self) -> Value {
        Value::from(*self)
    }
}

impl Leaf for String {
    fn json(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl Leaf for &String {
    fn json(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl Element {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            text: String::new(),
            children: Vec::new(),
            typed: None,
            list: false,
        }
    }

    /// An element holding a list: a JSON array of its items, even with one item or none.
    pub(crate) fn list(name: &str) -> Self {
        Self {
            list: true,
            ..Self::new(name)
        }
    }

    /// An element holding only a value (a string, number or boolean in JSON).
    // By value: the many call sites pass numbers, booleans and strings alike.
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn leaf(name: &str, value: impl Leaf) -> Self {
        let json = value.json();
        let text = match &json {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Self {
            text,
            typed: Some(json),
            ..Self::new(name)
        }
    }

    #[must_use]
    pub(crate) fn with(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    #[must_use]
    pub(crate) fn with_all(mut self, children: impl IntoIterator<Item = Element>) -> Self {
        self.children.extend(children);
        self
    }

    /// The element's own text, trimmed.
    pub(crate) fn text(&self) -> &str {
        self.text.trim()
    }

    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The trimmed text of the first descendant along `path` (`"category/name"`).
    pub(crate) fn text_at(&self, path: &str) -> Option<&str> {
        let mut at = self;
        for step in path.split('/') {
            at = at.child(step)?;
        }
        Some(at.text())
    }

    pub(crate) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The document, prolog included.
    pub(crate) fn to_document(&self) -> String {
        let mut writer = quick_xml::Writer::new(Vec::new());
        let written = writer
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .and_then(|()| self.write(&mut writer));
        debug_assert!(written.is_ok(), "writing to memory cannot fail");
        String::from_utf8(writer.into_inner()).unwrap_or_default()
    }

    fn write(&self, writer: &mut quick_xml::Writer<Vec<u8>>) -> std::io::Result<()> {
        if self.children.is_empty() && self.text.is_empty() {
            return writer.write_event(Event::Empty(BytesStart::new(self.name.as_str())));
        }
        writer.write_event(Event::Start(BytesStart::new(self.name.as_str())))?;
        if !self.text.is_empty() {
            writer.write_event(Event::Text(BytesText::new(&self.text)))?;
        }
        for child in &self.children {
            child.write(writer)?;
        }
        writer.write_event(Event::End(BytesEnd::new(self.name.as_str())))
    }

    /// The document as the Classic API's JSON: `{"<root>": …}`.
    pub(crate) fn to_json_document(&self) -> Value {
        let mut root = Map::new();
        root.insert(self.name.clone(), self.to_json());
        Value::Object(root)
    }

    fn is_list(&self) -> bool {
        self.list
            || (self.typed.is_none()
                && (self.child("size").is_some() || LIST_NAMES.contains(&self.name.as_str())))
    }

    fn to_json(&self) -> Value {
        if self.is_list() {
            return Value::Array(
                self.children
                    .iter()
                    .filter(|c| c.name != "size")
                    .map(Element::to_json)
                    .collect(),
            );
        }
        if self.children.is_empty() {
            return self
                .typed
                .clone()
                .unwrap_or_else(|| typed_by_text(self.text()));
        }
        let mut object = Map::new();
        for child in &self.children {
            let value = child.to_json();
            match object.get_mut(&child.name) {
                // A repeated element outside a known list: its values, in order.
                Some(Value::Array(values)) if !child.is_list() => values.push(value),
                Some(existing) => *existing = Value::Array(vec![existing.take(), value]),
                None => {
                    object.insert(child.name.clone(), value);
                }
            }
        }
        Value::Object(object)
    }
}

/// A stored leaf's JSON value: booleans and integers as Jamf types them, else the text.
fn typed_by_text(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            match text.parse::<i64>() {
                Ok(n) if canonical => Value::from(n),
                _ => Value::from(text),
            }
        }
    }
}

/// Why a document was refused, with the byte offset where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError {
    pub(crate) at: u64,
    pub(crate) problem: String,
}

/// Reads one document: an optional prolog, exactly one root element, then nothing but
/// white space, comments or processing instructions.
pub(crate) fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = quick_xml::Reader::from_str(input.trim_start_matches('\u{feff}'));
    let fail = |reader: &quick_xml::Reader<&[u8]>, problem: String| XmlError {
        at: reader.error_position(),
        problem,
    };
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| fail(&reader, e.to_string()))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(fail(&reader, "content after the root element".into()));
            }
            Event::Start(start) => open.push(opened(&start).map_err(|e| fail(&reader, e))?),
            Event::Empty(start) => {
                let element = opened(&start).map_err(|e| fail(&reader, e))?;
                match open.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let Some(element) = open.pop() else {
                    return Err(fail(&reader, "closing tag without an opening one".into()));
                };
                match open.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => match open.last_mut() {
                Some(element) => element.text.push_str(&text.xml10_content()),
                None if text.xml10_content().trim().is_empty() => {}
                None => return Err(fail(&reader, "text outside the root element".into())),
            },
            Event::CData(data) => match open.last_mut() {
                Some(element) => element.text.push_str(&data.xml10_content()),
                None => return Err(fail(&reader, "CDATA outside the root element".into())),
            },
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => resolve_xml_entity(&reference.xml10_content())
                        .ok_or_else(|| fail(&reader, "unknown entity".into()))?
                        .to_owned(),
                    Err(e) => return Err(fail(&reader, e.to_string())),
                };
                match open.last_mut() {
                    Some(element) => element.text.push_str(&resolved),
                    None => return Err(fail(&reader, "text outside the root element".into())),
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !open.is_empty() {
        return Err(fail(&reader, "unexpected end of document".into()));
    }
    root.ok_or_else(|| fail(&reader, "expected the root element".into()))
}

/// A new element for a start tag, its attributes checked (they are well-formed) and dropped.
fn opened(start: &BytesStart<'_>) -> Result<Element, String> {
    for attribute in start.attributes() {
        attribute.map_err(|e| e.to_string())?;
    }
    Ok(Element::new(start.name().as_ref()))
}

/// Escapes text for element content (the HTML error pages use it too).
pub(crate) fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{Element, parse};
    use serde_json::json;

    #[test]
    fn reads_a_policy_with_prolog_entities_references_attributes_and_cdata() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <policy>
              <general><name>Firefox &amp; Bob&#39;s &#x41;pp</name><enabled>true</enabled>
                <notes><![CDATA[pin <1.2.3>]]></notes></general>
              <scope><computer_groups size="2"><computer_group><id>4</id></computer_group>
                <computer_group><id>5</id></computer_group></computer_groups></scope>
              <self_service attr="x"/>
            </policy>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "policy");
        assert_eq!(root.text_at("general/name"), Some("Firefox & Bob's App"));
        assert_eq!(root.text_at("general/notes"), Some("pin <1.2.3>"));
        let groups = root
            .child("scope")
            .unwrap()
            .child("computer_groups")
            .unwrap();
        let ids: Vec<_> = groups
            .children_named("computer_group")
            .map(|g| g.text_at("id").unwrap())
            .collect();
        assert_eq!(ids, ["4", "5"]);
        assert!(root.child("self_service").is_some());
    }

    #[test]
    fn refuses_malformed_documents() {
        for bad in [
            "",
            "<policy>",
            "<policy><general></policy>",
            "<policy><name>a & b</name></policy>",
            "<policy></policy><extra/>",
            "not xml",
            "<policy><general><name>x</name></general>",
            "<policy a=b></policy>",
            "<policy><name>&bogus;</name></policy>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn writes_escaped_text_and_empty_elements() {
        let e = Element::new("policy")
            .with(Element::leaf("id", 5))
            .with(Element::leaf("name", "a<b & 'c'"))
            .with(Element::new("empty"));
        let doc = e.to_document();
        assert_eq!(
            doc,
            r#"<?xml version="1.0" encoding="UTF-8"?><policy><id>5</id><name>a&lt;b &amp; &apos;c&apos;</name><empty/></policy>"#
        );
        let back = parse(&doc).unwrap();
        assert_eq!(back.text_at("name"), Some("a<b & 'c'"));
        assert_eq!(back.to_document(), doc);
    }

    #[test]
    fn numeric_references() {
        let root = parse("<a>&#65;&#x42;</a>").unwrap();
        assert_eq!(root.text(), "AB");
    }

    #[test]
    fn renders_the_classic_json() {
        let group = Element::new("computer_group")
            .with(Element::leaf("id", 4))
            .with(Element::leaf("name", "Ring 1"))
            .with(Element::leaf("is_smart", true))
            .with(Element::list("criteria").with(Element::leaf("size", 0)))
            .with(
                Element::list("computers")
                    .with(Element::leaf("size", 1))
                    .with(
                        Element::new("computer")
                            .with(Element::leaf("id", 7))
                            .with(Element::leaf("serial_number", "007")),
                    ),
            );
        assert_eq!(
            group.to_json_document(),
            json!({"computer_group": {"id": 4, "name": "Ring 1", "is_smart": true, "criteria": [],
                "computers": [{"id": 7, "serial_number": "007"}]}})
        );
        // Stored from a posted document: typed by text, lists by `size` or by name.
        let posted = parse(
            "<x><criteria><criterion><name>OS</name><priority>0</priority><value>012</value>\
             <opening_paren>false</opening_paren></criterion></criteria><other><a>1</a><a>2</a></other></x>",
        )
        .unwrap();
        assert_eq!(
            posted.to_json_document(),
            json!({"x": {"criteria": [{"name": "OS", "priority": 0, "value": "012", "opening_paren": false}],
                "other": {"a": [1, 2]}}})
        );
    }
}
