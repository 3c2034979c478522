//! Errors for versioned data files (age bands today; protocols and models later).
//! A bad file is refused with its name, the line and the field.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}: field `{field}`: {message}")]
pub struct DataFileError {
    pub file: String,
    /// 1-based line; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// 1-based line number of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map(|s| s.matches('\n').count() + 1)
        .unwrap_or(1)
}

/// Converts a toml parse error into a [`DataFileError`] naming file, line and (best effort) field.
pub fn from_toml_error(file: &str, text: &str, err: &toml::de::Error) -> DataFileError {
    let line = err.span().map(|s| line_of(text, s.start)).unwrap_or(0);
    let message = err.message().to_owned();
    // toml names the offending key in messages like "missing field `x`" or "unknown field `x`".
    let field = message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .or_else(|| {
            err.span().and_then(|s| {
                let line_text = text.lines().nth(line_of(text, s.start).saturating_sub(1))?;
                line_text.split('=').next().map(|k| k.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "(file)".to_owned());
    DataFileError {
        file: file.to_owned(),
        line,
        field,
        message,
    }
}
