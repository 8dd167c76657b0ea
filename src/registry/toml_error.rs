//! Turns a `toml` deserialisation error into a key and a reason an operator can act on.
//!
//! The `toml` crate reports where an error is (a byte span) but not under which key. So the document is
//! read a second time into a tree that records the span of every key and value, and the error's span is
//! looked up in it. Documents that tree cannot read (dotted keys create tables without a span) still get
//! the line and column, only without the key.

use std::ops::Range;

use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::types::join_key;

/// A problem in one file: the dotted key (empty when unknown or the whole file) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TomlProblem {
    pub key: String,
    pub reason: String,
}

pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, TomlProblem> {
    toml::from_str(text).map_err(|error| describe(text, &error))
}

fn describe(text: &str, error: &toml::de::Error) -> TomlProblem {
    // Parser messages can span lines ("invalid array\nexpected `]`"); a problem is one line.
    let message = error.message().trim().lines().map(str::trim).collect::<Vec<_>>().join(": ");
    let message = message.as_str();
    let Some(span) = error.span() else {
        return TomlProblem { key: String::new(), reason: message.to_owned() };
    };
    let position = position(text, span.start);
    let Ok(tree) = toml::from_str::<Node>(text) else {
        // The tree reads every valid document except those with dotted keys, so this is most likely a
        // syntax error; saying so helps more than the bare parser message.
        let syntax = text.parse::<toml::Table>().is_err();
        let prefix = if syntax { "TOML syntax error: " } else { "" };
        return TomlProblem { key: String::new(), reason: format!("{prefix}{message} ({position})") };
    };
    let mut entries = Vec::new();
    tree.collect(String::new(), &mut entries);

    if let Some(field) = backticked_after(message, "missing field `") {
        // The span is that of the table that lacks the field; the root table is not in the tree.
        let table = entries.iter().find(|e| e.value == span).map(|e| e.path.as_str()).unwrap_or("");
        return TomlProblem { key: join_key(table, field), reason: format!("required value is missing ({position})") };
    }
    let key = innermost(&entries, span.start).unwrap_or_default();
    let reason = match backticked_after(message, "unknown field `") {
        Some(field) => message.replacen(&format!("unknown field `{field}`"), "unknown key", 1),
        None => message.to_owned(),
    };
    TomlProblem { key, reason: format!("{reason} ({position})") }
}

/// `line L, column C`, both counted from 1, the column in characters.
fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

fn backticked_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// The path of the smallest key or value whose span holds `offset`: a value for type errors, a key for
/// unknown keys.
fn innermost(entries: &[Entry], offset: usize) -> Option<String> {
    entries
        .iter()
        .flat_map(|e| [(&e.key, &e.path), (&e.value, &e.path)])
        .filter(|(span, _)| span.contains(&offset))
        .min_by_key(|(span, _)| span.len())
        .map(|(_, path)| path.clone())
}

struct Entry {
    path: String,
    /// The key's span; empty for array elements, which have none.
    key: Range<usize>,
    value: Range<usize>,
}

/// A TOML document reduced to its shape and spans.
enum Node {
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    Leaf,
}

impl Node {
    fn collect(&self, path: String, entries: &mut Vec<Entry>) {
        match self {
            Node::Table(members) => {
                for (key, value) in members {
                    let path = join_key(&path, key.get_ref());
                    entries.push(Entry { path: path.clone(), key: key.span(), value: value.span() });
                    value.get_ref().collect(path, entries);
                }
            }
            Node::Array(elements) => {
                for (index, element) in elements.iter().enumerate() {
                    let path = format!("{path}[{index}]");
                    entries.push(Entry { path: path.clone(), key: 0..0, value: element.span() });
                    element.get_ref().collect(path, entries);
                }
            }
            Node::Leaf => {}
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            members.push((key, map.next_value()?));
        }
        Ok(Node::Table(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut elements = Vec::new();
        while let Some(element) = seq.next_element()? {
            elements.push(element);
        }
        Ok(Node::Array(elements))
    }
}
