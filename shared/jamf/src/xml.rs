//! Just enough XML for the Classic API's few shapes: escape text, read an element's text, list
//! an element's children. The Classic API's answers are small and regular.

/// Escapes text for an element's content.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn unesc(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The inner XML of every `<tag>…</tag>` (not nested in a same-named element), in order.
pub fn all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// The text of the first `<tag>`.
pub fn text(xml: &str, tag: &str) -> Option<String> {
    all(xml, tag).first().map(|s| unesc(s.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_classic_shapes() {
        let x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><policy><id>5</id></policy>";
        assert_eq!(text(x, "id").as_deref(), Some("5"));
        let g = "<computer_group><computers><computer><id>1</id><name>a &amp; b</name></computer><computer><id>2</id><name>c</name></computer></computers></computer_group>";
        let names: Vec<String> = all(g, "computer")
            .iter()
            .filter_map(|c| text(c, "name"))
            .collect();
        assert_eq!(names, vec!["a & b", "c"]);
        assert_eq!(esc("<&>"), "&lt;&amp;&gt;");
    }
}
