//! Reading the file: every syntax and type error at once, each with line and field.
//!
//! serde stops at the first error, so the document is parsed once into a spanned tree and
//! deserialized repeatedly: after each error the table or array element that holds it is
//! taken out and the rest is tried again. Errors in different peers, policies or sections
//! are thus all reported; only an error in a required top-level key ends the search.

use std::ops::Range;

use serde::Deserialize;
use toml::{
    Spanned,
    de::{DeArray, DeTable, DeValue, ValueDeserializer},
};

use super::{
    error::{ConfigError, LineIndex},
    schema::Config,
};

/// Top-level keys whose absence makes the rest impossible to check.
const REQUIRED: &[&str] = &["router-id", "asn", "dataplane"];

/// Bounds the retry loop: each pass removes one element, so this is far above any real file.
const MAX_PASSES: usize = 1000;

/// Parses and deserializes `text`. Returns the config (with the tables or elements that
/// held errors taken out) unless a required key was wrong, and every error found.
pub(crate) fn parse(text: &str) -> (Option<Config>, Vec<ConfigError>) {
    let lines = LineIndex::new(text);
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let errors = syntax
            .iter()
            .map(|e| error_at(&lines, &root, e.span(), e.message()))
            .collect();
        return (None, errors);
    }
    let original = root.clone();
    let mut doc = root;
    let mut errors = Vec::new();
    let mut config = None;
    for _ in 0..MAX_PASSES {
        let de = ValueDeserializer::from(Spanned::new(
            doc.span(),
            DeValue::Table(doc.get_ref().clone()),
        ));
        match Config::deserialize(de) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                errors.push(error_at(&lines, &original, e.span(), e.message()));
                if !remove_holder(doc.get_mut(), e.span()) {
                    break;
                }
            }
        }
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    (config, errors)
}

/// Builds an error at `span`, naming the deepest field whose key or value holds it.
pub(crate) fn error_at(
    lines: &LineIndex,
    root: &Spanned<DeTable<'_>>,
    span: Option<Range<usize>>,
    message: &str,
) -> ConfigError {
    let (line, column) = span.as_ref().map_or((1, 1), |s| lines.position(s.start));
    let field = span
        .map(|s| field_path(root.get_ref(), &s))
        .unwrap_or_default();
    ConfigError {
        line,
        column,
        field,
        reason: message.trim().replace('\n', " "),
    }
}

/// The dotted path (`peer[1].timers.hold`) of the innermost key whose key or value holds
/// `span`. A table's own span covers only its header, so every child is searched.
pub(crate) fn field_path(table: &DeTable<'_>, span: &Range<usize>) -> String {
    find_in_table(table, span).unwrap_or_default()
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

fn find_in_table(table: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let name = key.get_ref().to_string();
        match find_in_value(value.get_ref(), span) {
            Some(sub) if sub.starts_with('[') => Some(format!("{name}{sub}")),
            Some(sub) => Some(format!("{name}.{sub}")),
            None if contains(&key.span(), span) || contains(&value.span(), span) => Some(name),
            None => None,
        }
    })
}

fn find_in_value(value: &DeValue<'_>, span: &Range<usize>) -> Option<String> {
    match value {
        DeValue::Table(t) => find_in_table(t, span),
        DeValue::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| {
                match find_in_value(item.get_ref(), span) {
                    Some(sub) if sub.starts_with('[') => Some(format!("[{i}]{sub}")),
                    Some(sub) => Some(format!("[{i}].{sub}")),
                    None if contains(&item.span(), span) => Some(format!("[{i}]")),
                    None => None,
                }
            })
        }
        _ => None,
    }
}

/// Whether `value` (or anything in it) holds `span`.
fn holds(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    contains(&value.span(), span) || find_in_value(value.get_ref(), span).is_some()
}

/// Takes out of `doc` the array element or optional top-level key holding `span`. Returns
/// false when the error is in a required key (or cannot be placed), which ends the search.
fn remove_holder(doc: &mut DeTable<'_>, span: Option<Range<usize>>) -> bool {
    let Some(span) = span else { return false };
    let Some(key) = doc
        .iter()
        .find(|(k, v)| contains(&k.span(), &span) || holds(v, &span))
        .map(|(k, _)| k.get_ref().to_string())
    else {
        return false;
    };
    if REQUIRED.contains(&key.as_str()) {
        return false;
    }
    let Some(value) = doc.get_mut(key.as_str()) else {
        return false;
    };
    if let DeValue::Array(items) = value.get_mut()
        && let Some(i) = items.iter().position(|it| holds(it, &span))
    {
        let mut kept = DeArray::new();
        for (j, item) in items.iter().enumerate() {
            if j != i {
                kept.push(item.clone());
            }
        }
        *items = kept;
        return true;
    }
    doc.remove(key.as_str()).is_some()
}
