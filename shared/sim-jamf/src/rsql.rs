//! The RSQL filters of the Jamf Pro API: `==`, `!=`, `=lt=`, `=le=`, `=gt=`, `=ge=` (and `<`, `<=`,
//! `>`, `>=`), `=in=(a,b)`, `=out=(a,b)`; `;` is AND, `,` is OR, parentheses group. Values may be
//! quoted with `"` or `'`. `==` and `!=` take `*` as a wildcard. Text compares without regard to
//! case (Jamf's database collation); two numbers compare as numbers.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Compare {
        field: String,
        op: Op,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Out,
}

/// Parses `filter`, accepting only the selectors in `fields`.
pub(crate) fn parse(filter: &str, fields: &[&str]) -> Result<Filter, String> {
    let mut parser = Parser {
        src: filter,
        pos: 0,
        fields,
    };
    let parsed = parser.or()?;
    parser.skip_ws();
    if parser.pos < filter.len() {
        return Err(format!(
            "unexpected '{}' at {}",
            &filter[parser.pos..],
            parser.pos
        ));
    }
    Ok(parsed)
}

impl Filter {
    /// Whether a record matches; `get` answers a selector's value, `None` for a null.
    pub(crate) fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(get)),
            Filter::Or(any) => any.iter().any(|f| f.matches(get)),
            Filter::Compare { field, op, values } => {
                let actual = get(field);
                match op {
                    Op::Eq => actual.is_some_and(|a| wildcard(&a, &values[0])),
                    Op::Ne => !actual.is_some_and(|a| wildcard(&a, &values[0])),
                    Op::In => actual
                        .is_some_and(|a| values.iter().any(|v| compare(&a, v) == Ordering::Equal)),
                    Op::Out => !actual
                        .is_some_and(|a| values.iter().any(|v| compare(&a, v) == Ordering::Equal)),
                    Op::Lt => actual.is_some_and(|a| compare(&a, &values[0]) == Ordering::Less),
                    Op::Le => actual.is_some_and(|a| compare(&a, &values[0]) != Ordering::Greater),
                    Op::Gt => actual.is_some_and(|a| compare(&a, &values[0]) == Ordering::Greater),
                    Op::Ge => actual.is_some_and(|a| compare(&a, &values[0]) != Ordering::Less),
                }
            }
        }
    }
}

/// Numbers as numbers, anything else as text without regard to case.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

/// `pattern` may hold `*` (any run of characters); without one it is plain equality.
fn wildcard(actual: &str, pattern: &str) -> bool {
    if !pattern.contains('*') {
        return compare(actual, pattern) == Ordering::Equal;
    }
    let actual = actual.to_lowercase();
    let pattern = pattern.to_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first)
        || actual.len() < first.len() + last.len()
        || !actual.ends_with(last)
    {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    fields: &'a [&'a str],
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut any = vec![self.and()?];
        while self.eat(",") {
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Filter::Or(any)
        })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut all = vec![self.term()?];
        while self.eat(";") {
            all.push(self.term()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Filter::And(all)
        })
    }

    fn term(&mut self) -> Result<Filter, String> {
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(format!("missing ')' at {}", self.pos));
            }
            return Ok(inner);
        }
        self.skip_ws();
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .unwrap_or(rest.len());
        let field = rest[..end].to_owned();
        if field.is_empty() {
            return Err(format!("expected a field at {}", self.pos));
        }
        if !self.fields.contains(&field.as_str()) {
            return Err(format!("unknown field '{field}'"));
        }
        self.pos += end;
        let op = self.op()?;
        let values = if matches!(op, Op::In | Op::Out) {
            if !self.eat("(") {
                return Err(format!("expected '(' after =in=/=out= at {}", self.pos));
            }
            let mut values = vec![self.value()?];
            while self.eat(",") {
                values.push(self.value()?);
            }
            if !self.eat(")") {
                return Err(format!("missing ')' at {}", self.pos));
            }
            values
        } else {
            vec![self.value()?]
        };
        Ok(Filter::Compare { field, op, values })
    }

    fn op(&mut self) -> Result<Op, String> {
        self.skip_ws();
        for (token, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("=lt=", Op::Lt),
            ("=le=", Op::Le),
            ("=gt=", Op::Gt),
            ("=ge=", Op::Ge),
            ("=in=", Op::In),
            ("=out=", Op::Out),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.rest().starts_with(token) {
                self.pos += token.len();
                return Ok(op);
            }
        }
        Err(format!("expected an operator at {}", self.pos))
    }

    fn value(&mut self) -> Result<String, String> {
        self.skip_ws();
        let rest = self.rest();
        if let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let mut out = String::new();
            let mut chars = rest[1..].char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                } else if c == quote {
                    self.pos += 1 + i + 1;
                    return Ok(out);
                } else {
                    out.push(c);
                }
            }
            return Err("unterminated quoted value".to_owned());
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | ')' | ';' | ','))
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(format!("expected a value at {}", self.pos));
        }
        self.pos += end;
        Ok(rest[..end].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    const FIELDS: &[&str] = &["id", "general.name", "general.platform"];

    fn record(id: &str, name: &str) -> impl Fn(&str) -> Option<String> {
        let (id, name) = (id.to_owned(), name.to_owned());
        move |field: &str| match field {
            "id" => Some(id.clone()),
            "general.name" => Some(name.clone()),
            _ => None,
        }
    }

    #[test]
    fn equality_quoted_and_bare() {
        let f = parse(r#"general.name=="mac-01""#, FIELDS).unwrap();
        assert!(f.matches(&record("1", "mac-01")));
        assert!(f.matches(&record("1", "MAC-01")));
        assert!(!f.matches(&record("1", "mac-02")));
        let f = parse("general.name==mac-01", FIELDS).unwrap();
        assert!(f.matches(&record("1", "mac-01")));
    }

    #[test]
    fn in_out_and_numbers() {
        let f = parse("id=in=(1,3,10)", FIELDS).unwrap();
        assert!(f.matches(&record("10", "x")));
        assert!(!f.matches(&record("2", "x")));
        let f = parse("id=out=(1,3)", FIELDS).unwrap();
        assert!(f.matches(&record("2", "x")));
        let f = parse("id=gt=9", FIELDS).unwrap();
        assert!(
            f.matches(&record("10", "x")),
            "10 > 9 as numbers, not as text"
        );
        let f = parse("id>=10;id<11", FIELDS).unwrap();
        assert!(f.matches(&record("10", "x")));
    }

    #[test]
    fn and_or_groups_and_wildcards() {
        let f = parse(
            r#"(general.name=="lab*",general.name=="*-canary");id!=7"#,
            FIELDS,
        )
        .unwrap();
        assert!(f.matches(&record("1", "lab-mac")));
        assert!(f.matches(&record("1", "x-canary")));
        assert!(!f.matches(&record("7", "lab-mac")));
        assert!(!f.matches(&record("1", "pilot")));
        let f = parse("general.name==a*b*c", FIELDS).unwrap();
        assert!(f.matches(&record("1", "axxbyyc")));
        assert!(!f.matches(&record("1", "abx")));
    }

    #[test]
    fn null_fields() {
        let f = parse("general.platform==Mac", FIELDS).unwrap();
        assert!(!f.matches(&record("1", "x")));
        let f = parse("general.platform!=Mac", FIELDS).unwrap();
        assert!(f.matches(&record("1", "x")));
    }

    #[test]
    fn refuses_bad_filters() {
        for bad in [
            "",
            "name==x",
            "id",
            "id==",
            "id=in=1",
            "(id==1",
            "id==1)",
            r#"id=="1"#,
            "id~=1",
        ] {
            assert!(parse(bad, FIELDS).is_err(), "{bad:?} should be refused");
        }
    }
}
