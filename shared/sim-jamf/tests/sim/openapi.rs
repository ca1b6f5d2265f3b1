//! A small checker of answers against an OpenAPI 3.0 document: the operation a method and path
//! name, the query parameters it declares, the statuses it declares and the schema of each body.
//!
//! It knows the schema keywords Jamf's `/api/schema` uses in the slice the simulator serves:
//! `$ref`, `type`, `properties` (an undeclared property is a problem), `required`, `items`,
//! `enum`, `nullable`, `format` (`date-time`, `date`, `int32`), `minLength`, `minItems`, `minimum`
//! and `maximum`. It has no `allOf`/`oneOf`/`additionalProperties`, and neither has the slice.

use serde_json::Value;

/// How a `null` is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// Only where the schema says `nullable: true`.
    Declared,
    /// A property's value may be `null` whatever the schema says, as Jamf's server writes every
    /// unset property (real answers carry `"assetTag": null`, `"diskEncryption": null` for a
    /// section not asked for, `"field": null` in an error); a required property must still be
    /// present, and array items and whole bodies still follow `nullable`.
    Unset,
}

/// An operation found for a method and path.
pub struct Operation<'a> {
    /// The path as the document writes it, e.g. `/v1/packages/{id}`.
    pub template: &'a str,
    pub method: String,
    pub spec: &'a Value,
}

pub struct Document {
    pub doc: Value,
}

impl Document {
    pub fn parse(text: &str) -> Self {
        Self {
            doc: serde_json::from_str(text).expect("the document is JSON"),
        }
    }

    /// Every `(method, template)` the document declares.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (template, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                out.push((method.to_uppercase(), template.clone()));
            }
        }
        out
    }

    /// The operation for `method` on `path` (relative to the server URL, without query).
    pub fn operation(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        // A literal segment beats a `{parameter}` (`/v1/packages/export` over `/{id}`).
        let mut best: Option<(usize, &String, &Value)> = None;
        for (template, item) in paths {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let matched = parts.iter().zip(&segments).all(|(part, segment)| {
                if part.starts_with('{') && part.ends_with('}') {
                    !segment.is_empty()
                } else {
                    literal += 1;
                    part == segment
                }
            });
            if matched && best.is_none_or(|(score, _, _)| literal > score) {
                best = Some((literal, template, item));
            }
        }
        let (_, template, item) = best?;
        let spec = item.get(method.to_lowercase())?;
        Some(Operation {
            template,
            method: method.to_uppercase(),
            spec,
        })
    }

    /// The schema `reference` (`#/components/schemas/Name`) names.
    pub fn resolve(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references: {reference}"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{reference} is not in the document"))
    }

    /// A named schema.
    pub fn schema(&self, name: &str) -> &Value {
        self.resolve(&format!("#/components/schemas/{name}"))
    }

    /// Problems of `value` against `schema`; `at` names the value in messages (`$`).
    pub fn check(&self, schema: &Value, value: &Value, nulls: Nulls) -> Vec<String> {
        let mut problems = Vec::new();
        self.check_at(schema, value, "$", nulls, false, &mut problems);
        problems
    }

    fn check_at(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        nulls: Nulls,
        is_property: bool,
        problems: &mut Vec<String>,
    ) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = self.resolve(reference);
            let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
            if value.is_null() && nullable {
                return;
            }
            self.check_at(target, value, at, nulls, is_property, problems);
            return;
        }
        if value.is_null() {
            let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
            if !(nullable || is_property && nulls == Nulls::Unset) {
                problems.push(format!("{at}: null where the schema does not allow it"));
            }
            return;
        }
        let kind = schema.get("type").and_then(Value::as_str).or_else(|| {
            schema
                .get("properties")
                .map(|_| "object")
                .or_else(|| schema.get("items").map(|_| "array"))
        });
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        match kind {
            Some("object") => self.check_object(schema, value, at, nulls, problems),
            Some("array") => {
                let Some(items) = value.as_array() else {
                    problems.push(format!(
                        "{at}: {} where an array is declared",
                        kind_of(value)
                    ));
                    return;
                };
                if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                    && (items.len() as u64) < min
                {
                    problems.push(format!("{at}: fewer than {min} items"));
                }
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check_at(
                            item_schema,
                            item,
                            &format!("{at}[{i}]"),
                            nulls,
                            false,
                            problems,
                        );
                    }
                }
            }
            Some("string") => check_string(schema, value, at, problems),
            Some("integer") => check_integer(schema, value, at, problems),
            Some("number") if !value.is_number() => {
                problems.push(format!(
                    "{at}: {} where a number is declared",
                    kind_of(value)
                ));
            }
            Some("boolean") if !value.is_boolean() => {
                problems.push(format!(
                    "{at}: {} where a boolean is declared",
                    kind_of(value)
                ));
            }
            Some("number" | "boolean") | None => {}
            Some(other) => problems.push(format!("{at}: the checker does not know type {other}")),
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        nulls: Nulls,
        problems: &mut Vec<String>,
    ) {
        let Some(object) = value.as_object() else {
            problems.push(format!(
                "{at}: {} where an object is declared",
                kind_of(value)
            ));
            return;
        };
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                problems.push(format!("{at}: the required property {name} is missing"));
            }
        }
        // An object without declared properties (`{"type": "object"}`) takes any.
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in object {
            match properties.get(name) {
                Some(declared) => {
                    self.check_at(
                        declared,
                        property,
                        &format!("{at}.{name}"),
                        nulls,
                        true,
                        problems,
                    );
                }
                None => problems.push(format!("{at}: {name} is not a declared property")),
            }
        }
    }

    /// Problems of query parameter `name` = `values` for `operation`: undeclared, or a value its
    /// schema refuses.
    pub fn check_query(
        &self,
        operation: &Operation<'_>,
        name: &str,
        values: &[String],
    ) -> Vec<String> {
        let declared = operation.spec["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["in"] == "query" && p["name"] == name);
        let Some(parameter) = declared else {
            return vec![format!(
                "{} {}: query parameter {name} is not declared",
                operation.method, operation.template
            )];
        };
        let schema = &parameter["schema"];
        let mut problems = Vec::new();
        let item_schema = if schema["type"] == "array" {
            &schema["items"]
        } else {
            schema
        };
        for value in values {
            // Form style, explode: a repeated parameter; Jamf also splits a comma list.
            let parts: Vec<&str> = if schema["type"] == "array" && item_schema.get("$ref").is_some()
            {
                value.split(',').collect()
            } else {
                vec![value.as_str()]
            };
            for part in parts {
                let typed = match self.kind(item_schema) {
                    Some("integer") => part
                        .parse::<i64>()
                        .map_or_else(|_| Value::String(part.to_owned()), Value::from),
                    _ => Value::String(part.to_owned()),
                };
                for problem in self.check(item_schema, &typed, Nulls::Declared) {
                    problems.push(format!("query {name}: {problem}"));
                }
            }
        }
        problems
    }

    fn kind<'a>(&'a self, schema: &'a Value) -> Option<&'a str> {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => self.kind(self.resolve(reference)),
            None => schema.get("type").and_then(Value::as_str),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_string(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(text) = value.as_str() else {
        problems.push(format!(
            "{at}: {} where a string is declared",
            kind_of(value)
        ));
        return;
    };
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (text.chars().count() as u64) < min
    {
        problems.push(format!("{at}: shorter than {min}"));
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") if !is_date_time(text) => {
            problems.push(format!("{at}: {text:?} is not a date-time"));
        }
        Some("date") if !is_date(text) => problems.push(format!("{at}: {text:?} is not a date")),
        _ => {}
    }
}

fn check_integer(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(number) = value.as_i64() else {
        problems.push(format!("{at}: {value} where an integer is declared"));
        return;
    };
    if schema.get("format").and_then(Value::as_str) == Some("int32")
        && i32::try_from(number).is_err()
    {
        problems.push(format!("{at}: {number} is out of int32"));
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_i64)
        && number < min
    {
        problems.push(format!("{at}: {number} is below {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_i64)
        && number > max
    {
        problems.push(format!("{at}: {number} is above {max}"));
    }
}

/// `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// RFC 3339: `YYYY-MM-DDTHH:MM:SS`, optional fraction, then `Z` or `±HH:MM`.
fn is_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once('T') else {
        return false;
    };
    if !is_date(date) || time.len() < 9 {
        return false;
    }
    let clock = &time.as_bytes()[..8];
    let clock_ok = clock.iter().enumerate().all(|(i, b)| match i {
        2 | 5 => *b == b':',
        _ => b.is_ascii_digit(),
    });
    let mut rest = &time[8..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    let zone_ok = rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':'
            && rest
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 0 || i == 3 || b.is_ascii_digit()));
    clock_ok && zone_ok
}
