//! Field-level validation that reports every problem at once.
//!
//! Input arrives as JSON. Rather than stopping at the first bad field (as derived deserialisation
//! does), a [`Fields`] walker reads the document, records each missing or invalid field with its
//! full path (`evidence.vulnerabilities.critical`), and the caller builds the typed value only when
//! no problem was recorded.

use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};

/// One missing or invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path from the document root, with `[i]` for array items.
    pub field: String,
    /// What is wrong, in words an operator can act on.
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Free text as the API reads it ([`Fields::check_string`] with the longest limit): at least one
/// character that is not white space, at most [`Text::MAX`] characters, so at most
/// [`Text::MAX_BYTES`] bytes of UTF-8. A name for the API document; values are plain `String`s.
#[derive(Debug, Clone, Copy)]
pub struct Text;

impl Text {
    pub const MAX: usize = 1000;
    /// What [`Text::MAX`] characters take at most in UTF-8 (4 bytes a character).
    pub const MAX_BYTES: usize = Text::MAX * 4;
    /// The most items of a list of texts in a request (conditions, compensating controls).
    pub const MAX_ITEMS: usize = 10;
    /// Holds a character that is not white space as `str::trim` knows it (Unicode `White_Space`),
    /// spelt out because ECMA-262's `\s` (the document's regex dialect) is another set.
    pub const NOT_BLANK: &str =
        r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
}

impl utoipa::PartialSchema for Text {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(Text::MAX))
            .pattern(Some(Text::NOT_BLANK))
            .description(Some(format!(
                "Free text: at most {} characters ({} bytes of UTF-8).",
                Text::MAX,
                Text::MAX_BYTES
            )))
            .into()
    }
}

impl utoipa::ToSchema for Text {}

/// Joins a parent path and a key.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Collects field errors while reading a JSON document.
#[derive(Debug, Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

/// An object being read, with its path. `map` is `None` when the object itself was missing or
/// invalid (already reported), so that its children are not reported a second time.
#[derive(Debug, Clone)]
pub struct Obj<'v> {
    path: String,
    map: Option<&'v Map<String, Value>>,
}

impl Obj<'_> {
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Fields {
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn error(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.errors.push(FieldError::new(field, problem));
    }

    /// The document root as an object.
    pub fn root<'v>(&mut self, v: &'v Value) -> Obj<'v> {
        match v.as_object() {
            Some(map) => Obj {
                path: String::new(),
                map: Some(map),
            },
            None => {
                self.error("(body)", "must be a JSON object");
                Obj {
                    path: String::new(),
                    map: None,
                }
            }
        }
    }

    /// Reports every key of `obj` that is not in `allowed` (a typo must not vanish silently).
    pub fn deny_unknown(&mut self, obj: &Obj<'_>, allowed: &[&str]) {
        if let Some(map) = obj.map {
            for key in map.keys() {
                if !allowed.contains(&key.as_str()) {
                    self.error(join(&obj.path, key), "unknown field");
                }
            }
        }
    }

    fn raw<'v>(&mut self, obj: &Obj<'v>, key: &str, required: bool) -> Option<&'v Value> {
        let map = obj.map?;
        match map.get(key) {
            Some(Value::Null) | None => {
                if required {
                    self.error(join(&obj.path, key), "is required");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A nested object.
    pub fn object<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Obj<'v> {
        let path = join(&obj.path, key);
        let map = match self.raw(obj, key, true) {
            Some(Value::Object(m)) => Some(m),
            Some(_) => {
                self.error(path.clone(), "must be an object");
                None
            }
            None => None,
        };
        Obj { path, map }
    }

    /// An array of objects; each item comes with its path (`evidence.rollout.rings[0]`).
    pub fn array<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Option<Vec<(String, &'v Value)>> {
        let path = join(&obj.path, key);
        match self.raw(obj, key, true)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{path}[{i}]"), v))
                    .collect(),
            ),
            _ => {
                self.error(path, "must be an array");
                None
            }
        }
    }

    /// An array of at most `max` items (more is reported naming the array, and no item is read).
    pub fn bounded_array<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        max: usize,
    ) -> Option<Vec<(String, &'v Value)>> {
        let items = self.array(obj, key)?;
        self.at_most(obj, key, items, max)
    }

    /// An optional array of at most `max` items (absent reads as empty).
    pub fn opt_bounded_array<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        max: usize,
    ) -> Option<Vec<(String, &'v Value)>> {
        let items = self.opt_array(obj, key)?;
        self.at_most(obj, key, items, max)
    }

    fn at_most<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        items: Vec<(String, &'v Value)>,
        max: usize,
    ) -> Option<Vec<(String, &'v Value)>> {
        if items.len() > max {
            self.error(
                join(&obj.path, key),
                format!("must hold at most {max} items, not {}", items.len()),
            );
            return None;
        }
        Some(items)
    }

    /// An optional array (absent reads as empty).
    pub fn opt_array<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Option<Vec<(String, &'v Value)>> {
        if obj
            .map
            .is_some_and(|m| m.get(key).is_none_or(Value::is_null))
        {
            return Some(Vec::new());
        }
        self.array(obj, key)
    }

    /// An item of an array as an object.
    pub fn item<'v>(&mut self, path: String, v: &'v Value) -> Obj<'v> {
        match v.as_object() {
            Some(map) => Obj {
                path,
                map: Some(map),
            },
            None => {
                self.error(path.clone(), "must be an object");
                Obj { path, map: None }
            }
        }
    }

    /// A non-empty string of at most `max` characters.
    pub fn string(&mut self, obj: &Obj<'_>, key: &str, max: usize) -> Option<String> {
        let v = self.raw(obj, key, true)?;
        self.check_string(&join(&obj.path, key), v, max)
    }

    /// An optional non-empty string of at most `max` characters: `None` when invalid (reported),
    /// `Some(None)` when absent.
    #[allow(clippy::option_option)]
    pub fn opt_string(&mut self, obj: &Obj<'_>, key: &str, max: usize) -> Option<Option<String>> {
        match self.raw(obj, key, false) {
            None => Some(None),
            Some(v) => self.check_string(&join(&obj.path, key), v, max).map(Some),
        }
    }

    pub fn check_string(&mut self, path: &str, v: &Value, max: usize) -> Option<String> {
        match v.as_str() {
            Some(s) if s.trim().is_empty() => {
                self.error(path, "must not be empty");
                None
            }
            Some(s) if s.chars().count() > max => {
                self.error(path, format!("must be at most {max} characters"));
                None
            }
            Some(s) => Some(s.to_owned()),
            None => {
                self.error(path, "must be a string");
                None
            }
        }
    }

    /// A string parsed with `FromStr`; `expected` describes the accepted values.
    pub fn parsed<T: FromStr>(&mut self, obj: &Obj<'_>, key: &str, expected: &str) -> Option<T> {
        let v = self.raw(obj, key, true)?;
        self.check_parsed(&join(&obj.path, key), v, expected)
    }

    pub fn check_parsed<T: FromStr>(&mut self, path: &str, v: &Value, expected: &str) -> Option<T> {
        match v.as_str().map(str::parse::<T>) {
            Some(Ok(t)) => Some(t),
            _ => {
                self.error(path, format!("must be {expected}"));
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`. A number with a zero fraction (`3.0`) is an
    /// integer, as JSON Schema's `integer` says.
    pub fn count(&mut self, obj: &Obj<'_>, key: &str, max: u64) -> Option<u64> {
        let path = join(&obj.path, key);
        let v = self.raw(obj, key, true)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // integral, in range
        let n = v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|x| x.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(x))
                .map(|x| x as u64)
        });
        match n {
            Some(n) if n <= max => Some(n),
            _ => {
                self.error(path, format!("must be an integer from 0 to {max}"));
                None
            }
        }
    }

    /// A number within `min..=max`.
    pub fn number(&mut self, obj: &Obj<'_>, key: &str, min: f64, max: f64) -> Option<f64> {
        let path = join(&obj.path, key);
        match self.raw(obj, key, true)?.as_f64() {
            Some(x) if (min..=max).contains(&x) => Some(x),
            _ => {
                self.error(path, format!("must be a number from {min} to {max}"));
                None
            }
        }
    }

    pub fn boolean(&mut self, obj: &Obj<'_>, key: &str) -> Option<bool> {
        let path = join(&obj.path, key);
        match self.raw(obj, key, true)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.error(path, "must be true or false");
                None
            }
        }
    }

    /// An optional boolean (absent reads as `default`).
    pub fn opt_boolean(&mut self, obj: &Obj<'_>, key: &str, default: bool) -> Option<bool> {
        let path = join(&obj.path, key);
        match self.raw(obj, key, false) {
            None => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(path, "must be true or false");
                None
            }
        }
    }
}
