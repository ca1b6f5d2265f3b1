//! The part of `OData` `$filter` the simulator understands: clauses joined by `and`, each
//! `prop eq|ne literal`, `startswith(prop,'x')`, `contains(prop,'x')` or `isof('type')`.
//! String comparisons ignore case, as Graph's do.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    Eq(String, Value),
    Ne(String, Value),
    StartsWith(String, String),
    Contains(String, String),
    IsOf(String),
}

/// Parses a filter; the error names the part that could not be read.
pub(crate) fn parse(filter: &str) -> Result<Vec<Clause>, String> {
    split_and(strip_parens(filter.trim()))
        .into_iter()
        .map(|term| parse_term(strip_parens(term.trim())))
        .collect()
}

/// The clauses' `eq` values for one property (e.g. the `ApplicationId` of a report filter).
pub(crate) fn eq_value<'a>(clauses: &'a [Clause], property: &str) -> Option<&'a Value> {
    clauses.iter().find_map(|c| match c {
        Clause::Eq(p, v) if p.eq_ignore_ascii_case(property) => Some(v),
        _ => None,
    })
}

/// Whether an object (with its `@odata.type`) satisfies every clause.
pub(crate) fn matches(clauses: &[Clause], object: &Map<String, Value>) -> bool {
    clauses.iter().all(|clause| match clause {
        Clause::Eq(p, v) => same(lookup(object, p), v),
        Clause::Ne(p, v) => !same(lookup(object, p), v),
        Clause::StartsWith(p, s) => {
            text(lookup(object, p)).is_some_and(|t| t.to_lowercase().starts_with(&s.to_lowercase()))
        }
        Clause::Contains(p, s) => {
            text(lookup(object, p)).is_some_and(|t| t.to_lowercase().contains(&s.to_lowercase()))
        }
        Clause::IsOf(t) => {
            let wanted = t.trim_start_matches('#');
            text(object.get("@odata.type"))
                .is_some_and(|actual| actual.trim_start_matches('#').eq_ignore_ascii_case(wanted))
        }
    })
}

fn lookup<'a>(object: &'a Map<String, Value>, property: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(property))
        .map(|(_, v)| v)
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn same(actual: Option<&Value>, wanted: &Value) -> bool {
    match (actual, wanted) {
        (None | Some(Value::Null), Value::Null) => true,
        (Some(a), Value::String(w)) => text(Some(a)).is_some_and(|a| a.eq_ignore_ascii_case(w)),
        (Some(a), w) => text(Some(a)) == text(Some(w)),
        (None, _) => false,
    }
}

fn strip_parens(mut s: &str) -> &str {
    while s.starts_with('(') && s.ends_with(')') && closes_at_end(s) {
        s = s[1..s.len() - 1].trim();
    }
    s
}

/// Whether the `(` at the start is closed by the `)` at the end.
fn closes_at_end(s: &str) -> bool {
    let mut depth = 0_i32;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return i == s.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// Splits on ` and ` outside quotes and parentheses.
fn split_and(s: &str) -> Vec<&str> {
    let lower = s.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start, mut i) = (0_i32, false, 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b' ' if !quoted && depth == 0 && lower[i..].starts_with(" and ") => {
                parts.push(&s[start..i]);
                i += 5;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

fn parse_term(term: &str) -> Result<Clause, String> {
    let lower = term.to_ascii_lowercase();
    for (name, make) in [
        (
            "startswith(",
            Clause::StartsWith as fn(String, String) -> Clause,
        ),
        (
            "contains(",
            Clause::Contains as fn(String, String) -> Clause,
        ),
    ] {
        if lower.starts_with(name) && term.ends_with(')') {
            let inner = &term[name.len()..term.len() - 1];
            let (property, literal) = inner.split_once(',').ok_or_else(|| invalid(term))?;
            let Value::String(literal) =
                parse_literal(literal.trim()).ok_or_else(|| invalid(term))?
            else {
                return Err(invalid(term));
            };
            return Ok(make(property.trim().to_owned(), literal));
        }
    }
    if lower.starts_with("isof(") && term.ends_with(')') {
        return match parse_literal(term[5..term.len() - 1].trim()) {
            Some(Value::String(t)) => Ok(Clause::IsOf(t)),
            _ => Err(invalid(term)),
        };
    }
    let mut words = term.splitn(3, ' ');
    let (Some(property), Some(op), Some(literal)) = (words.next(), words.next(), words.next())
    else {
        return Err(invalid(term));
    };
    let value = parse_literal(literal.trim()).ok_or_else(|| invalid(term))?;
    match op.to_ascii_lowercase().as_str() {
        "eq" => Ok(Clause::Eq(property.to_owned(), value)),
        "ne" => Ok(Clause::Ne(property.to_owned(), value)),
        _ => Err(invalid(term)),
    }
}

fn parse_literal(literal: &str) -> Option<Value> {
    if literal.len() >= 2 && literal.starts_with('\'') && literal.ends_with('\'') {
        let inner = &literal[1..literal.len() - 1];
        // Inside an OData string a quote is doubled; a lone quote ends the string early.
        if inner.replace("''", "").contains('\'') {
            return None;
        }
        return Some(Value::String(inner.replace("''", "'")));
    }
    match literal {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        number => serde_json::from_str::<serde_json::Number>(number)
            .ok()
            .map(Value::Number),
    }
}

fn invalid(term: &str) -> String {
    format!("Invalid filter clause: '{term}'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn eq_and_isof_combine() {
        let clauses =
            parse("(isof('microsoft.graph.win32LobApp') and displayName eq 'Bob''s App')").unwrap();
        assert_eq!(clauses.len(), 2);
        let app = object(
            &json!({"@odata.type": "#microsoft.graph.win32LobApp", "displayName": "bob's app"}),
        );
        assert!(matches(&clauses, &app));
        let other =
            object(&json!({"@odata.type": "#microsoft.graph.win32LobApp", "displayName": "Other"}));
        assert!(!matches(&clauses, &other));
    }

    #[test]
    fn a_report_filter_gives_its_application_id() {
        let clauses = parse("(ApplicationId eq 'abc') and (AppInstallState eq '1')").unwrap();
        assert_eq!(eq_value(&clauses, "applicationid"), Some(&json!("abc")));
        assert!(matches(
            &clauses,
            &object(&json!({"ApplicationId": "ABC", "AppInstallState": 1}))
        ));
    }

    #[test]
    fn quotes_inside_values_do_not_split_clauses() {
        let clauses = parse("displayName eq 'a and b' and startswith(publisher,'Con')").unwrap();
        assert_eq!(
            clauses[0],
            Clause::Eq("displayName".into(), json!("a and b"))
        );
        assert_eq!(
            clauses[1],
            Clause::StartsWith("publisher".into(), "Con".into())
        );
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(parse("displayName gt 'x'").is_err());
        assert!(parse("displayName eq 'unterminated").is_err());
        assert!(parse("displayName eq 'a'b'").is_err());
        assert!(parse("justaword").is_err());
    }
}
