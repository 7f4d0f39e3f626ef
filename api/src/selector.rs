//! Label and field selectors, as the Kubernetes API accepts them.
//!
//! * [`LabelSelector`] parses the `labelSelector` query syntax
//!   (`app=web,tier!=db,env in (a,b),!canary`) and converts a
//!   `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`), the
//!   form Deployments, ReplicaSets and Jobs carry. Keys and values are
//!   validated the way the API server validates them.
//! * [`FieldSelector`] parses the `fieldSelector` query syntax (`=`, `==`,
//!   `!=`, comma = AND, `\,` `\=` `\\` escapes). Which fields a kind can be
//!   selected on is fixed per kind; each kind's
//!   [`KindOps::field_value`](crate::kinds::KindOps::field_value) knows its
//!   set and returns [`SelectorError::UnsupportedField`] for anything else,
//!   which the HTTP layer renders as 400 BadRequest.
//!
//! Everything here is pure: objects are `serde_json::Value`s in the JSON form
//! Kubernetes writes.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Result of selector parsing and evaluation.
pub type Result<T, E = SelectorError> = std::result::Result<T, E>;

/// Why a selector was rejected.
///
/// Every variant describes bad client input (HTTP 400); none is worth
/// retrying. The messages follow the API server's wording, since clients and
/// people compare against it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label requirement failed to parse or validate; wraps the cause.
    #[error("unable to parse requirement: {0}")]
    Requirement(#[source] Box<SelectorError>),
    /// The label selector string is malformed at the token level.
    #[error("found '{found}', expected: {expected}")]
    Syntax {
        /// The token that was found (empty at the end of the input).
        found: String,
        /// What the grammar allows at that point.
        expected: &'static str,
    },
    /// `!key` followed by something other than `,` or the end.
    #[error("expected: ',' or 'end of string', found '{0}'")]
    AfterDoesNotExist(String),
    /// A label key is not a qualified name.
    #[error("invalid label key \"{key}\": {reason}")]
    InvalidKey {
        /// The offending key.
        key: String,
        /// Every rule the key breaks, joined by `"; "`.
        reason: String,
    },
    /// A label value is not a valid label value.
    #[error("invalid label value: \"{value}\": at key: \"{key}\": {reason}")]
    InvalidValue {
        /// The key the value belongs to.
        key: String,
        /// The offending value.
        value: String,
        /// Every rule the value breaks, joined by `"; "`.
        reason: String,
    },
    /// An operator was given the wrong number or kind of values.
    #[error("values: Invalid value: {values:?}: {reason}")]
    InvalidValues {
        /// The values as given.
        values: Vec<String>,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// A `metav1.LabelSelector` object is not shaped as one.
    #[error("invalid label selector: {0}")]
    Malformed(&'static str),
    /// A field selector term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A backslash followed by something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A bare `,` or `=` inside a field selector value.
    #[error("invalid field selector: unescaped character in value: {0}")]
    UnescapedRune(char),
    /// The kind cannot be selected on this field.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

fn requirement_error(err: SelectorError) -> SelectorError {
    SelectorError::Requirement(Box::new(err))
}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// How a label requirement compares the label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `k=v`
    Equals,
    /// `k==v`
    DoubleEquals,
    /// `k!=v`; also true when the key is absent.
    NotEquals,
    /// `k in (a,b)`
    In,
    /// `k notin (a,b)`; also true when the key is absent.
    NotIn,
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>5` (integer comparison; the string syntax only)
    GreaterThan,
    /// `k<5` (integer comparison; the string syntax only)
    LessThan,
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and free of duplicates.
    values: Vec<String>,
}

impl Requirement {
    /// Builds and validates a requirement.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self> {
        validate_label_key(key)?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(SelectorError::InvalidValues {
                    values,
                    reason: "for 'in', 'notin' operators, values set can't be empty",
                });
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                return Err(SelectorError::InvalidValues {
                    values,
                    reason: "exact-match compatibility requires one single value",
                });
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError::InvalidValues {
                    values,
                    reason: "values set must be empty for exists and does not exist",
                });
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(SelectorError::InvalidValues {
                        values,
                        reason: "for 'Gt', 'Lt' operators, exactly one value is required",
                    });
                }
                if values.iter().any(|v| v.parse::<i64>().is_err()) {
                    return Err(SelectorError::InvalidValues {
                        values,
                        reason: "for 'Gt', 'Lt' operators, the value must be an integer",
                    });
                }
            }
            _ => {}
        }
        for value in &values {
            validate_label_value(key, value)?;
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_owned(),
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comparison.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted (empty for Exists and DoesNotExist).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set, given as a lookup, satisfies this requirement.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match (self.operator, get(&self.key)) {
            (Operator::In | Operator::Equals | Operator::DoubleEquals, Some(v)) => has(v),
            (Operator::In | Operator::Equals | Operator::DoubleEquals, None) => false,
            (Operator::NotIn | Operator::NotEquals, Some(v)) => !has(v),
            (Operator::NotIn | Operator::NotEquals, None) => true,
            (Operator::Exists, found) => found.is_some(),
            (Operator::DoesNotExist, found) => found.is_none(),
            (Operator::GreaterThan | Operator::LessThan, None) => false,
            (op @ (Operator::GreaterThan | Operator::LessThan), Some(v)) => {
                let (Ok(have), Some(Ok(want))) = (v.parse::<i64>(), self.values.first().map(|w| w.parse::<i64>()))
                else {
                    return false;
                };
                if op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Exists => return f.write_str(&self.key),
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
        };
        let values = self.values.join(",");
        match self.operator {
            Operator::In | Operator::NotIn => write!(f, "{}{op}({values})", self.key),
            _ => write!(f, "{}{op}{values}", self.key),
        }
    }
}

/// A conjunction of label requirements.
///
/// The empty selector matches everything; [`LabelSelector::nothing`] (what a
/// JSON `null` selector converts to) matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Sorted by key.
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Builds a selector from requirements (sorted by key here).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// `k1=v1,k2=v2,…` for a label map, as a Service's `spec.selector` is
    /// read. An empty map gives the empty selector, which matches everything.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Self> {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement::new(k, Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_requirements(requirements))
    }

    /// Parses the query-string syntax. The empty string selects everything.
    pub fn parse(selector: &str) -> Result<Self> {
        let requirements = Parser::new(selector).parse()?;
        Ok(Self::from_requirements(requirements))
    }

    /// Converts a `metav1.LabelSelector` object. `null` selects nothing; an
    /// object with neither `matchLabels` nor `matchExpressions` selects
    /// everything.
    pub fn from_json(selector: &Value) -> Result<Self> {
        let object = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(object) => object,
            _ => return Err(SelectorError::Malformed("a label selector must be an object")),
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Value::String(value) = value else {
                        return Err(SelectorError::Malformed("matchLabels values must be strings"));
                    };
                    requirements.push(Requirement::new(key, Operator::Equals, vec![value.clone()])?);
                }
            }
            Some(_) => return Err(SelectorError::Malformed("matchLabels must be an object")),
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    requirements.push(expression_requirement(expression)?);
                }
            }
            Some(_) => return Err(SelectorError::Malformed("matchExpressions must be a list")),
        }
        Ok(Self::from_requirements(requirements))
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the selector that matches everything.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the selector that matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Whether a label set, given as a lookup, satisfies every requirement.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str> + Copy) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches_with(get))
    }

    /// Whether a label map satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.get("metadata").and_then(|m| m.get("labels"));
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form, requirements sorted by key (empty for both
    /// everything and nothing, as in Kubernetes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

fn expression_requirement(expression: &Value) -> Result<Requirement> {
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or(SelectorError::Malformed("matchExpressions[].key must be a string"))?;
    let operator = expression
        .get("operator")
        .and_then(Value::as_str)
        .ok_or(SelectorError::Malformed("matchExpressions[].operator must be a string"))?;
    let operator = match operator {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(SelectorError::InvalidOperator(other.to_owned())),
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(SelectorError::Malformed("matchExpressions[].values must be strings"))?,
        Some(_) => return Err(SelectorError::Malformed("matchExpressions[].values must be a list")),
    };
    Requirement::new(key, operator, values)
}

// --- validation -------------------------------------------------------------

const NAME_CHARS_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
                              and must start and end with an alphanumeric character";

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the name part of a
/// qualified name and the shape of a non-empty label value.
fn is_label_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// An RFC 1123 subdomain: dot-separated lowercase labels, ≤ 253 characters.
fn dns_subdomain_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                (first.is_ascii_lowercase() || first.is_ascii_digit())
                    && (last.is_ascii_lowercase() || last.is_ascii_digit())
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            }
            _ => false,
        }
    };
    if !s.split('.').all(label_ok) {
        errors.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character"
                .to_owned(),
        );
    }
    errors
}

/// The rules a label key breaks (`[prefix/]name`), empty when valid.
fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                errors.extend(
                    dns_subdomain_errors(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            *name
        }
        _ => {
            errors.push(format!(
                "a qualified name {NAME_CHARS_MSG} with an optional DNS subdomain prefix \
                 and '/' (e.g. 'example.com/MyName')"
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_owned());
    }
    if !is_label_token(name) {
        errors.push(format!("name part {NAME_CHARS_MSG}"));
    }
    errors
}

/// Why `key` is not a valid label key (a qualified name), one reason per
/// rule it breaks, in Kubernetes' words; empty when it is valid.
pub fn label_key_errors(key: &str) -> Vec<String> {
    qualified_name_errors(key)
}

/// Why `value` is not a valid label value, one reason per rule it breaks,
/// in Kubernetes' words; empty when it is valid.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_label_token(value) {
        errors.push(format!("a valid label must be an empty string or {NAME_CHARS_MSG}"));
    }
    errors
}

fn validate_label_key(key: &str) -> Result<()> {
    let errors = qualified_name_errors(key);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SelectorError::InvalidKey {
            key: key.to_owned(),
            reason: errors.join("; "),
        })
    }
}

fn validate_label_value(key: &str, value: &str) -> Result<()> {
    let errors = label_value_errors(value);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SelectorError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: errors.join("; "),
        })
    }
}

// --- lexer and parser -------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    Ident,
    Comma,
    Open,
    Close,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
}

/// Whether `in` and `notin` are keywords (after a key) or plain words
/// (as keys and values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Operator,
    Values,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\r' | '\n') {
            i += 1;
        }
        let Some(&c) = chars.get(i) else {
            tokens.push((Tok::End, String::new()));
            return tokens;
        };
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('=', Some('=')) => (Tok::DoubleEq, 2),
                ('!', Some('=')) => (Tok::NotEq, 2),
                ('=', _) => (Tok::Eq, 1),
                ('!', _) => (Tok::Not, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                (',', _) => (Tok::Comma, 1),
                ('>', _) => (Tok::Gt, 1),
                _ => (Tok::Lt, 1),
            };
            tokens.push((tok, chars[i..i + len].iter().collect()));
            i += len;
        } else {
            let start = i;
            while i < chars.len() && !is_special(chars[i]) && !matches!(chars[i], ' ' | '\t' | '\r' | '\n') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            tokens.push((tok, word));
        }
    }
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn new(input: &str) -> Self {
        Parser {
            tokens: lex(input),
            pos: 0,
        }
    }

    fn lookahead(&self, context: Context) -> (Tok, String) {
        let (tok, lit) = self.tokens.get(self.pos).cloned().unwrap_or((Tok::End, String::new()));
        match (context, tok) {
            (Context::Values, Tok::In | Tok::NotIn) => (Tok::Ident, lit),
            _ => (tok, lit),
        }
    }

    fn consume(&mut self, context: Context) -> (Tok, String) {
        let token = self.lookahead(context);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn parse(&mut self) -> Result<Vec<Requirement>> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Tok::Ident | Tok::Not => {
                    requirements.push(self.requirement().map_err(requirement_error)?);
                    let (tok, lit) = self.consume(Context::Values);
                    match tok {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => {
                            let (next, lit) = self.lookahead(Context::Values);
                            if next != Tok::Ident && next != Tok::Not {
                                return Err(SelectorError::Syntax {
                                    found: lit,
                                    expected: "identifier after ','",
                                });
                            }
                        }
                        _ => {
                            return Err(SelectorError::Syntax {
                                found: lit,
                                expected: "',' or 'end of string'",
                            });
                        }
                    }
                }
                Tok::End => return Ok(requirements),
                _ => {
                    return Err(SelectorError::Syntax {
                        found: lit,
                        expected: "!, identifier, or 'end of string'",
                    });
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement> {
        let (mut tok, mut key) = self.consume(Context::Values);
        let negated = tok == Tok::Not;
        if negated {
            (tok, key) = self.consume(Context::Values);
        }
        if tok != Tok::Ident {
            return Err(SelectorError::Syntax {
                found: key,
                expected: "identifier",
            });
        }
        validate_label_key(&key)?;
        let (next, lit) = self.lookahead(Context::Values);
        if matches!(next, Tok::End | Tok::Comma) {
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, Vec::new());
        }
        if negated {
            return Err(SelectorError::AfterDoesNotExist(lit));
        }
        let (tok, lit) = self.consume(Context::Operator);
        let operator = match tok {
            Tok::Eq => Operator::Equals,
            Tok::DoubleEq => Operator::DoubleEquals,
            Tok::NotEq => Operator::NotEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            _ => {
                return Err(SelectorError::Syntax {
                    found: lit,
                    expected: "=, ==, !=, in, notin, >, <",
                });
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, operator, values)
    }

    /// `( v1, v2, … )`; empty members stand for the empty value.
    fn value_set(&mut self) -> Result<Vec<String>> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Tok::Open {
            return Err(SelectorError::Syntax {
                found: lit,
                expected: "'('",
            });
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Tok::Close => {
                self.consume(Context::Values);
                return Ok(vec![String::new()]);
            }
            Tok::Ident | Tok::Comma => {}
            _ => {
                return Err(SelectorError::Syntax {
                    found: lit,
                    expected: "',', ')' or identifier",
                });
            }
        }
        let mut values = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Tok::Ident => {
                    values.push(lit);
                    let (next, lit) = self.lookahead(Context::Values);
                    match next {
                        Tok::Comma => {
                            self.consume(Context::Values);
                            // A trailing `,)` leaves an empty member.
                            if self.lookahead(Context::Values).0 == Tok::Close {
                                values.push(String::new());
                            }
                        }
                        Tok::Close => {}
                        _ => {
                            return Err(SelectorError::Syntax {
                                found: lit,
                                expected: "',' or ')'",
                            });
                        }
                    }
                }
                Tok::Comma => {
                    // `(,…`, `,,` and `,)` all contribute the empty value.
                    values.push(String::new());
                    if self.lookahead(Context::Values).0 == Tok::Close {
                        values.push(String::new());
                    }
                }
                Tok::Close => return Ok(values),
                _ => {
                    return Err(SelectorError::Syntax {
                        found: lit,
                        expected: "',', or identifier",
                    });
                }
            }
            if self.lookahead(Context::Values).0 == Tok::Close {
                self.consume(Context::Values);
                return Ok(values);
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<`; empty when the
    /// requirement ends right after the operator.
    fn exact_value(&mut self) -> Result<Vec<String>> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(SelectorError::Syntax {
                found: lit,
                expected: "identifier",
            })
        }
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// How a field requirement compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `f=v`
    Equals,
    /// `f==v`
    DoubleEquals,
    /// `f!=v`
    NotEquals,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether the field's value (absent counts as `""`) satisfies the term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let equal = actual.unwrap_or("") == self.value;
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => equal,
            FieldOperator::NotEquals => !equal,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::DoubleEquals => "==",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A conjunction of field requirements. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses the query-string syntax. Fields are taken verbatim (no
    /// whitespace trimming, as in Kubernetes); values are unescaped.
    pub fn parse(selector: &str) -> Result<Self> {
        let mut terms = split_unescaped_commas(selector);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw)) = split_field_term(term) else {
                return Err(SelectorError::FieldTerm {
                    selector: selector.to_owned(),
                    term: term.to_owned(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value: unescape_field_value(raw)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// This selector with `field=value` added, as a watch on one named
    /// object narrows its collection's watch.
    pub fn and_equals(mut self, field: &str, value: &str) -> Self {
        self.requirements.push(FieldRequirement {
            field: field.to_owned(),
            operator: FieldOperator::Equals,
            value: value.to_owned(),
        });
        self
    }

    /// The requirements, in the order they were parsed (sorted by term).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value a `field=value` (or `==`) term demands, if there is one:
    /// lets a caller turn `metadata.name=x` into a point read.
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }

    /// Checks every field named through `value` (a kind's field lookup), so
    /// an unsupported one is rejected even when there is nothing to match
    /// against.
    pub fn validate_with(&self, mut value: impl FnMut(&str) -> Result<Option<String>>) -> Result<()> {
        for requirement in &self.requirements {
            value(&requirement.field)?;
        }
        Ok(())
    }

    /// Whether `object` satisfies every term, reading field values through
    /// `fields` (`None` compares as `""`).
    pub fn matches(&self, object: &Value, fields: &dyn Fn(&Value, &str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(fields(object, &r.field).as_deref()))
    }

    /// Whether every term is satisfied, reading field values through a
    /// fallible lookup (`Ok(None)` compares as `""`); the first error, such
    /// as an unsupported field, is returned.
    pub fn matches_with(&self, mut value: impl FnMut(&str) -> Result<Option<String>>) -> Result<bool> {
        for requirement in &self.requirements {
            if !requirement.matches(value(&requirement.field)?.as_deref()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Splits on commas not preceded by a backslash escape.
fn split_unescaped_commas(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at its first operator (`!=`, `==`, `=`, tried in that order
/// at each position).
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (token, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::DoubleEquals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(token) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn unescape_field_value(raw: &str) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(other) => return Err(SelectorError::InvalidEscape(format!("\\{other}"))),
                None => return Err(SelectorError::InvalidEscape("\\".to_owned())),
            },
            ',' | '=' => return Err(SelectorError::UnescapedRune(c)),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Escapes `\`, `,` and `=` so the value survives [`FieldSelector::parse`].
pub fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", "   "] {
            let sel = parse(s);
            assert!(sel.is_everything());
            assert!(sel.matches(&labels(&[])));
            assert!(sel.matches(&labels(&[("a", "b")])));
        }
    }

    #[test]
    fn equality_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(parse("app=web").matches(&l));
        assert!(parse("app==web").matches(&l));
        assert!(!parse("app=db").matches(&l));
        assert!(parse("app!=db").matches(&l));
        assert!(!parse("app!=web").matches(&l));
        assert!(parse("app=web,tier=front").matches(&l));
        assert!(!parse("app=web,tier=back").matches(&l));
        assert!(parse("  app = web ,  tier == front ").matches(&l));
    }

    #[test]
    fn negative_operators_match_missing_keys() {
        let l = labels(&[("app", "web")]);
        assert!(parse("env!=prod").matches(&l));
        assert!(parse("env notin (prod,dev)").matches(&l));
        assert!(!parse("env in (prod,dev)").matches(&l));
        assert!(!parse("env=prod").matches(&l));
    }

    #[test]
    fn set_operators() {
        let l = labels(&[("env", "prod")]);
        assert!(parse("env in (prod, dev)").matches(&l));
        assert!(parse("env in(prod)").matches(&l));
        assert!(!parse("env in (dev,qa)").matches(&l));
        assert!(parse("env notin (dev,qa)").matches(&l));
        assert!(!parse("env notin (prod)").matches(&l));
    }

    #[test]
    fn empty_values_in_sets_and_after_operators() {
        let empty = labels(&[("k", "")]);
        let full = labels(&[("k", "v")]);
        assert_eq!(parse("k in ()").requirements()[0].values(), [""]);
        assert!(parse("k in ()").matches(&empty));
        assert_eq!(parse("k in (,a)").requirements()[0].values(), ["", "a"]);
        assert_eq!(parse("k in (a,)").requirements()[0].values(), ["", "a"]);
        assert_eq!(parse("k in (a,,b)").requirements()[0].values(), ["", "a", "b"]);
        assert!(parse("k=").matches(&empty));
        assert!(!parse("k=").matches(&full));
        assert!(parse("k=,j!=x").matches(&empty));
    }

    #[test]
    fn exists_and_does_not_exist() {
        let l = labels(&[("app", "web")]);
        assert!(parse("app").matches(&l));
        assert!(!parse("env").matches(&l));
        assert!(parse("!env").matches(&l));
        assert!(!parse("!app").matches(&l));
        assert!(parse("app,!env").matches(&l));
        assert!(parse(" ! env ").matches(&l));
    }

    #[test]
    fn keywords_are_plain_words_as_keys_and_values() {
        let l = labels(&[("in", "notin")]);
        assert!(parse("in=notin").matches(&l));
        assert!(parse("in in (notin)").matches(&l));
        assert!(parse("in").matches(&l));
    }

    #[test]
    fn greater_and_less_than() {
        let l = labels(&[("n", "5"), ("s", "x")]);
        assert!(parse("n>4").matches(&l));
        assert!(!parse("n>5").matches(&l));
        assert!(parse("n<6").matches(&l));
        assert!(!parse("s>1").matches(&l));
        assert!(!parse("missing<1").matches(&l));
        assert!(parse_err("n>x").contains("must be an integer"));
    }

    #[test]
    fn prefixed_keys() {
        let l = labels(&[("app.kubernetes.io/name", "web")]);
        assert!(parse("app.kubernetes.io/name=web").matches(&l));
        assert!(parse("app.kubernetes.io/name").matches(&l));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(parse_err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(parse_err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(
            parse_err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a b"),
            "unable to parse requirement: found 'b', expected: =, ==, !=, in, notin, >, <"
        );
        assert_eq!(
            parse_err("a in b"),
            "unable to parse requirement: found 'b', expected: '('"
        );
        assert_eq!(
            parse_err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("a in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            parse_err("a=("),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            parse_err("!a=b"),
            "unable to parse requirement: expected: ',' or 'end of string', found '='"
        );
        assert_eq!(
            parse_err("!=a"),
            "found '!=', expected: !, identifier, or 'end of string'"
        );
    }

    #[test]
    fn key_validation() {
        assert!(
            parse_err("-a=b")
                .starts_with("unable to parse requirement: invalid label key \"-a\": name part must consist of")
        );
        assert!(parse_err("Example.com/a=b").contains("prefix part a lowercase RFC 1123 subdomain"));
        assert!(parse_err("/a").contains("prefix part must be non-empty"));
        assert!(parse_err("a/").contains("name part must be non-empty"));
        assert!(parse_err("a/b/c").contains("a qualified name must consist of"));
        let long = "k".repeat(64);
        assert!(parse_err(&long).contains("name part must be no more than 63 characters"));
        parse(&"k".repeat(63));
        parse("a_b.c-d");
    }

    #[test]
    fn value_validation() {
        assert_eq!(
            parse_err("a=-b"),
            "unable to parse requirement: invalid label value: \"-b\": at key: \"a\": \
             a valid label must be an empty string or must consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
        assert!(parse_err(&format!("a={}", "v".repeat(64))).contains("no more than 63"));
        assert!(parse_err("a in (ok,b$)").contains("invalid label value: \"b$\""));
        parse(&format!("a={}", "v".repeat(63)));
    }

    #[test]
    fn display_is_canonical() {
        let sel = parse("z=1, a in (c,b), !d, e, f!=2, g notin (x)");
        assert_eq!(sel.to_string(), "a in (b,c),!d,e,f!=2,g notin (x),z=1");
        assert_eq!(parse(&sel.to_string()), sel);
    }

    #[test]
    fn from_json_label_selector() {
        let sel = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "qa"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "team", "operator": "Exists"},
            ],
        }))
        .unwrap();
        assert_eq!(sel.to_string(), "app=web,!canary,env in (prod,qa),team,tier notin (db)");
        assert!(sel.matches(&labels(&[("app", "web"), ("env", "qa"), ("team", "x")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "qa")])));
        assert!(sel.matches_object(&json!({"metadata": {"labels": {
            "app": "web", "env": "prod", "team": "t", "tier": "front"}}})));
        assert!(!sel.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn from_json_null_and_empty() {
        let nothing = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(nothing.is_nothing());
        assert!(!nothing.matches(&labels(&[])));
        let everything = LabelSelector::from_json(&json!({})).unwrap();
        assert!(everything.is_everything());
        assert!(everything.matches(&labels(&[("a", "b")])));
        let everything = LabelSelector::from_json(&json!({"matchLabels": {}, "matchExpressions": []})).unwrap();
        assert!(everything.is_everything());
    }

    #[test]
    fn from_json_errors() {
        let err = |v: Value| LabelSelector::from_json(&v).unwrap_err().to_string();
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}))
                .contains("values set can't be empty")
        );
        assert!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}))
                .contains("values set must be empty")
        );
        assert!(err(json!({"matchLabels": {"-x": "y"}})).starts_with("invalid label key \"-x\""));
        assert!(err(json!({"matchLabels": {"x": 1}})).contains("must be strings"));
        assert!(err(json!("app=web")).contains("must be an object"));
    }

    #[test]
    fn from_labels_map() {
        let sel = LabelSelector::from_labels(&labels(&[("b", "2"), ("a", "1")])).unwrap();
        assert_eq!(sel.to_string(), "a=1,b=2");
        assert!(LabelSelector::from_labels(&labels(&[])).unwrap().is_everything());
    }

    // --- field selectors ---

    fn field(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    /// The field lookup of a kind: served ones from the catalog, and
    /// events.k8s.io Events.
    fn field_value(group: &str, kind: &str, object: &Value, field: &str) -> Result<Option<String>> {
        let ops = match crate::catalog::Catalog::new().by_kind(group, kind) {
            Some(resource) => resource.ops,
            None if (group, kind) == ("events.k8s.io", "Event") => &crate::kinds::event::EVENTS_V1.ops,
            None => panic!("{group}/{kind} is not served"),
        };
        ops.field_value(object, field)
    }

    impl FieldSelector {
        fn matches_kind(&self, group: &str, kind: &str, object: &Value) -> Result<bool> {
            self.matches_with(|field| field_value(group, kind, object, field))
        }

        fn validate(&self, group: &str, kind: &str) -> Result<()> {
            self.validate_with(|field| field_value(group, kind, &Value::Null, field))
        }
    }

    #[test]
    fn field_selector_parsing() {
        let sel = field("spec.nodeName=n1,status.phase!=Failed,metadata.name==x");
        let terms: Vec<_> = sel
            .requirements()
            .iter()
            .map(|r| (r.field.as_str(), r.operator, r.value.as_str()))
            .collect();
        assert_eq!(
            terms,
            [
                ("metadata.name", FieldOperator::DoubleEquals, "x"),
                ("spec.nodeName", FieldOperator::Equals, "n1"),
                ("status.phase", FieldOperator::NotEquals, "Failed"),
            ]
        );
        assert_eq!(sel.exact_match("metadata.name"), Some("x"));
        assert_eq!(sel.exact_match("status.phase"), None);
        assert!(field("").is_empty());
        assert!(field(",").is_empty());
        assert_eq!(field("spec.nodeName=").requirements()[0].value, "");
    }

    #[test]
    fn field_selector_escapes() {
        let sel = field(r"metadata.name=a\,b\=c\\d,x=y");
        assert_eq!(sel.requirements()[0].value, r"a,b=c\d");
        assert_eq!(sel.requirements()[1].value, "y");
        assert_eq!(sel.to_string(), r"metadata.name=a\,b\=c\\d,x=y");
        assert_eq!(FieldSelector::parse(&sel.to_string()).unwrap(), sel);
        assert_eq!(escape_field_value(r"a,b=c\"), r"a\,b\=c\\");
    }

    #[test]
    fn field_selector_errors() {
        let err = |s: &str| FieldSelector::parse(s).unwrap_err().to_string();
        assert_eq!(err("a=b,c"), "invalid selector: 'a=b,c'; can't understand 'c'");
        assert_eq!(err(r"a=b\x"), r"invalid field selector: invalid escape sequence: \x");
        assert_eq!(err(r"a=b\"), r"invalid field selector: invalid escape sequence: \");
        assert_eq!(err("a=b=c"), "invalid field selector: unescaped character in value: =");
        // Set-based syntax does not exist for fields.
        assert!(err("a in (b)").starts_with("invalid selector"));
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always",
                     "schedulerName": "default-scheduler", "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIP": "10.0.0.9",
                       "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}]},
        })
    }

    #[test]
    fn pod_field_values() {
        let p = pod();
        let get = |f: &str| field_value("", "Pod", &p, f).unwrap();
        assert_eq!(get("metadata.name").as_deref(), Some("web-1"));
        assert_eq!(get("metadata.namespace").as_deref(), Some("default"));
        assert_eq!(get("spec.nodeName").as_deref(), Some("node-a"));
        assert_eq!(get("spec.host").as_deref(), Some("node-a"));
        assert_eq!(get("spec.restartPolicy").as_deref(), Some("Always"));
        assert_eq!(get("spec.schedulerName").as_deref(), Some("default-scheduler"));
        assert_eq!(get("spec.serviceAccountName").as_deref(), Some("default"));
        assert_eq!(get("spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(get("status.phase").as_deref(), Some("Running"));
        assert_eq!(get("status.podIP").as_deref(), Some("10.0.0.9"));
        assert_eq!(get("status.nominatedNodeName"), None);
        assert_eq!(get("status.podIPs"), None);
        assert_eq!(
            field_value("", "Pod", &p, "spec.containers").unwrap_err().to_string(),
            "field label not supported: spec.containers"
        );
    }

    #[test]
    fn unscheduled_pods_select_on_empty_node_name() {
        let sel = field("spec.nodeName=");
        let mut unscheduled = pod();
        unscheduled["spec"].as_object_mut().unwrap().remove("nodeName");
        assert!(sel.matches_kind("", "Pod", &unscheduled).unwrap());
        assert!(!sel.matches_kind("", "Pod", &pod()).unwrap());
        assert!(field("spec.nodeName!=").matches_kind("", "Pod", &pod()).unwrap());
        let sel = field("spec.nodeName=node-a,status.phase!=Succeeded");
        assert!(sel.matches_kind("", "Pod", &pod()).unwrap());
        let lookup = |o: &Value, f: &str| field_value("", "Pod", o, f).ok().flatten();
        assert!(sel.matches(&pod(), &lookup));
        assert_eq!(
            field("spec.bogus=x").matches_with(|f| field_value("", "Pod", &pod(), f)),
            Err(SelectorError::UnsupportedField("spec.bogus".to_owned()))
        );
    }

    #[test]
    fn event_field_values() {
        let e = json!({
            "metadata": {"name": "web-1.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1",
                "uid": "u-1", "apiVersion": "v1", "resourceVersion": "42",
                "fieldPath": "spec.containers{web}"},
            "reason": "Scheduled", "type": "Normal",
            "source": {"component": "default-scheduler"},
            "reportingComponent": "default-scheduler",
        });
        let get = |f: &str| field_value("", "Event", &e, f).unwrap();
        assert_eq!(get("involvedObject.kind").as_deref(), Some("Pod"));
        assert_eq!(get("involvedObject.namespace").as_deref(), Some("default"));
        assert_eq!(get("involvedObject.name").as_deref(), Some("web-1"));
        assert_eq!(get("involvedObject.uid").as_deref(), Some("u-1"));
        assert_eq!(get("involvedObject.apiVersion").as_deref(), Some("v1"));
        assert_eq!(get("involvedObject.resourceVersion").as_deref(), Some("42"));
        assert_eq!(get("involvedObject.fieldPath").as_deref(), Some("spec.containers{web}"));
        assert_eq!(get("reason").as_deref(), Some("Scheduled"));
        assert_eq!(get("type").as_deref(), Some("Normal"));
        assert_eq!(get("source").as_deref(), Some("default-scheduler"));
        assert_eq!(get("reportingComponent").as_deref(), Some("default-scheduler"));
        assert!(field_value("", "Event", &e, "involvedObject.foo").is_err());
        assert!(field_value("", "Event", &e, "message").is_err());

        // `kubectl describe pod` asks for exactly this.
        let sel = field("involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.uid=u-1");
        assert!(sel.matches_kind("", "Event", &e).unwrap());

        // `source` falls back to the reporting component.
        let e2 = json!({"reportingComponent": "kubelet"});
        assert_eq!(
            field_value("", "Event", &e2, "source").unwrap().as_deref(),
            Some("kubelet")
        );

        let e3 = json!({"regarding": {"name": "web-1"}, "reportingController": "kubelet"});
        let get3 = |f: &str| field_value("events.k8s.io", "Event", &e3, f).unwrap();
        assert_eq!(get3("regarding.name").as_deref(), Some("web-1"));
        assert_eq!(get3("reportingController").as_deref(), Some("kubelet"));
        assert_eq!(get3("source").as_deref(), Some("kubelet"));
    }

    #[test]
    fn other_kinds_field_values() {
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert_eq!(
            field_value("", "Secret", &secret, "type").unwrap().as_deref(),
            Some("kubernetes.io/tls")
        );
        let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(
            field_value("", "Node", &node, "spec.unschedulable").unwrap().as_deref(),
            Some("true")
        );
        assert!(field_value("", "Node", &node, "metadata.namespace").is_err());
        let ns = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            field_value("", "Namespace", &ns, "status.phase").unwrap().as_deref(),
            Some("Terminating")
        );
        let rs = json!({"status": {"replicas": 3}});
        assert_eq!(
            field_value("apps", "ReplicaSet", &rs, "status.replicas")
                .unwrap()
                .as_deref(),
            Some("3")
        );
        let job = json!({"status": {}});
        assert_eq!(
            field_value("batch", "Job", &job, "status.successful")
                .unwrap()
                .as_deref(),
            Some("0")
        );
        let svc = json!({"spec": {"clusterIP": "None", "type": "ClusterIP"}});
        assert!(
            field("spec.clusterIP!=None")
                .matches_kind("", "Service", &svc)
                .is_ok_and(|m| !m)
        );
        let cm = json!({"metadata": {"name": "c", "namespace": "d"}});
        assert!(
            field("metadata.name=c,metadata.namespace=d")
                .matches_kind("", "ConfigMap", &cm)
                .unwrap()
        );
        assert!(field_value("", "ConfigMap", &cm, "data").is_err());
        assert!(field_value("apps", "Deployment", &cm, "status.replicas").is_err());
    }

    #[test]
    fn validate_rejects_unsupported_fields_without_objects() {
        assert!(field("spec.nodeName=x").validate("", "Pod").is_ok());
        assert_eq!(
            field("spec.nodeName=x").validate("apps", "Deployment").unwrap_err(),
            SelectorError::UnsupportedField("spec.nodeName".to_owned())
        );
        // Field names are not trimmed, as upstream.
        assert!(field("metadata.name =x").validate("", "Pod").is_err());
    }
}
