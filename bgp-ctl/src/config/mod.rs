//! The configuration file: schema, parsing with every error at once, and validation.
//!
//! `bgp-ctl config check FILE` and the daemon both go through [`load`]: a file either
//! yields a [`Config`] (plus warnings) or every mistake in it with line, field and reason.

mod error;
mod parse;
pub mod schema;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use schema::Config;
pub use validate::{BUILTIN_POLICIES, parse_asn_range};

use error::LineIndex;

/// A loaded configuration and the warnings about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Things that are valid but probably not meant (e.g. RFC 8212 defaults).
    pub warnings: Vec<ConfigError>,
}

/// Reads and checks a file.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        origin: origin.clone(),
        errors: vec![ConfigError {
            line: 0,
            column: 0,
            field: String::new(),
            reason: format!("cannot read: {e}"),
        }],
    })?;
    parse_str(&text, &origin)
}

/// Checks a configuration given as text; `origin` names it in messages.
pub fn parse_str(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    let fail = |errors| ConfigErrors {
        origin: origin.to_string(),
        errors,
    };
    let (config, mut errors) = parse::parse(text);
    // Validate what could be read even when parts could not: all mistakes at once.
    let Some(config) = config else {
        return Err(fail(errors));
    };
    let findings = validate::validate(&config);
    let lines = LineIndex::new(text);
    let (root, _) = toml::de::DeTable::parse_recoverable(text);
    let place = |f: &validate::Finding| {
        let span = (!f.span.is_empty()).then(|| f.span.clone());
        parse::error_at(&lines, &root, span, &f.reason)
    };
    errors.extend(findings.errors.iter().map(place));
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        return Err(fail(errors));
    }
    let warnings = findings.warnings.iter().map(place).collect();
    Ok(Loaded { config, warnings })
}
