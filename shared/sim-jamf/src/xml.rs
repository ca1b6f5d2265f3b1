//! A small XML reader and writer for the Classic API's shapes: elements, text, entities, CDATA,
//! comments and the `<?xml ...?>` prolog. Attributes are read (so a document with them parses) but
//! dropped: no Classic API shape uses them. Mixed content is kept as the concatenated text.

use std::fmt::Write as _;

/// The declaration every Classic API answer starts with.
pub(crate) const PROLOG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) name: String,
    text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            text: String::new(),
            children: Vec::new(),
        }
    }

    /// An element holding only text.
    // By value: the many call sites pass numbers, booleans and strings alike.
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn leaf(name: &str, text: impl ToString) -> Self {
        Self {
            name: name.to_owned(),
            text: text.to_string(),
            children: Vec::new(),
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
        let mut out = String::from(PROLOG);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        if self.children.is_empty() && self.text.is_empty() {
            let _ = write!(out, "<{}/>", self.name);
            return;
        }
        let _ = write!(out, "<{}>", self.name);
        out.push_str(&escape(&self.text));
        for child in &self.children {
            child.write(out);
        }
        let _ = write!(out, "</{}>", self.name);
    }
}

/// Escapes text for element content.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// Why a document was refused, with the byte offset where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError {
    pub(crate) at: usize,
    pub(crate) problem: &'static str,
}

/// Reads one document: an optional prolog, exactly one root element, then nothing but
/// white space, comments or processing instructions.
pub(crate) fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = Reader {
        src: input.trim_start_matches('\u{feff}'),
        pos: 0,
    };
    reader.skip_misc()?;
    if reader.rest().starts_with("<!DOCTYPE") {
        reader.skip_past(">", "unterminated DOCTYPE")?;
        reader.skip_misc()?;
    }
    if !reader.rest().starts_with('<') {
        return Err(reader.error("expected the root element"));
    }
    let root = reader.element()?;
    reader.skip_misc()?;
    if reader.pos < reader.src.len() {
        return Err(reader.error("content after the root element"));
    }
    Ok(root)
}

struct Reader<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn error(&self, problem: &'static str) -> XmlError {
        XmlError {
            at: self.pos,
            problem,
        }
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn skip_past(&mut self, end: &str, problem: &'static str) -> Result<(), XmlError> {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(())
            }
            None => Err(self.error(problem)),
        }
    }

    /// White space, comments and processing instructions (the prolog among them).
    fn skip_misc(&mut self) -> Result<(), XmlError> {
        loop {
            self.skip_whitespace();
            if self.rest().starts_with("<?") {
                self.skip_past("?>", "unterminated processing instruction")?;
            } else if self.rest().starts_with("<!--") {
                self.skip_past("-->", "unterminated comment")?;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, XmlError> {
        let rest = self.rest();
        let end = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
            .map_or(rest.len(), |(i, _)| i);
        let name = &rest[..end];
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':');
        if !first_ok {
            return Err(self.error("expected a name"));
        }
        self.pos += end;
        Ok(name.to_owned())
    }

    /// An element starting at `<`.
    fn element(&mut self) -> Result<Element, XmlError> {
        self.pos += 1; // '<'
        let mut element = Element::new(&self.name()?);
        loop {
            self.skip_whitespace();
            if self.rest().starts_with("/>") {
                self.pos += 2;
                return Ok(element);
            }
            if self.rest().starts_with('>') {
                self.pos += 1;
                break;
            }
            self.attribute()?;
        }
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Err(self.error("unexpected end of document"));
            } else if rest.starts_with("</") {
                self.pos += 2;
                let closing = self.name()?;
                if closing != element.name {
                    return Err(self.error("closing tag does not match"));
                }
                self.skip_whitespace();
                if !self.rest().starts_with('>') {
                    return Err(self.error("expected '>'"));
                }
                self.pos += 1;
                return Ok(element);
            } else if rest.starts_with("<!--") {
                self.skip_past("-->", "unterminated comment")?;
            } else if rest.starts_with("<![CDATA[") {
                self.pos += "<![CDATA[".len();
                let Some(end) = self.rest().find("]]>") else {
                    return Err(self.error("unterminated CDATA"));
                };
                element.text.push_str(&self.rest()[..end]);
                self.pos += end + 3;
            } else if rest.starts_with("<?") {
                self.skip_past("?>", "unterminated processing instruction")?;
            } else if rest.starts_with('<') {
                element.children.push(self.element()?);
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let raw = &rest[..end];
                let start = self.pos;
                element
                    .text
                    .push_str(&decode(raw).map_err(|problem| XmlError { at: start, problem })?);
                self.pos += end;
            }
        }
    }

    fn attribute(&mut self) -> Result<(), XmlError> {
        self.name()?;
        self.skip_whitespace();
        if !self.rest().starts_with('=') {
            return Err(self.error("expected '=' after an attribute name"));
        }
        self.pos += 1;
        self.skip_whitespace();
        let Some(quote) = self
            .rest()
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
        else {
            return Err(self.error("expected a quoted attribute value"));
        };
        self.pos += 1;
        let Some(end) = self.rest().find(quote) else {
            return Err(self.error("unterminated attribute value"));
        };
        let value = &self.rest()[..end];
        if value.contains('<') {
            return Err(self.error("'<' in an attribute value"));
        }
        decode(value).map_err(|problem| self.error(problem))?;
        self.pos += end + 1;
        Ok(())
    }
}

/// Replaces the five named entities and numeric character references.
fn decode(raw: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let end = rest.find(';').ok_or("'&' without ';'")?;
        let entity = &rest[..end];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or("unknown entity")?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{Element, parse};

    #[test]
    fn reads_a_policy_with_prolog_entities_and_cdata() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <policy>
              <general><name>Firefox &amp; friends</name><enabled>true</enabled>
                <notes><![CDATA[pin <1.2.3>]]></notes></general>
              <scope><computer_groups><computer_group><id>4</id></computer_group>
                <computer_group><id>5</id></computer_group></computer_groups></scope>
              <self_service attr="x"/>
            </policy>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "policy");
        assert_eq!(root.text_at("general/name"), Some("Firefox & friends"));
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
        assert_eq!(parse(&doc).unwrap(), e);
    }

    #[test]
    fn numeric_references() {
        let root = parse("<a>&#65;&#x42;</a>").unwrap();
        assert_eq!(root.text(), "AB");
    }
}
