//! Parsing of data files: every error names the file, the line and the field.

use serde::{Serialize, de::DeserializeOwned};

/// A data file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum DataError {
    /// The file is not valid TOML or does not match the expected shape.
    #[error("{file}:{line}: field `{field}`: {message}")]
    Malformed {
        file: String,
        line: usize,
        field: String,
        message: String,
    },
    /// The file parsed but a value breaks a rule (unknown source, U value with a number, ...).
    #[error("{file}:{line}: field `{field}`: {message}")]
    Invalid {
        file: String,
        line: usize,
        field: String,
        message: String,
    },
    /// Two files define the same protocol id.
    #[error("{file}: protocol id {id:?} is already defined in {other_file}; expected unique ids")]
    DuplicateProtocol {
        file: String,
        id: String,
        other_file: String,
    },
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

const SPANNED_VALUE: &str = ".$__serde_spanned_private_value";

fn clean_path(p: &str) -> String {
    let p = p.replace(SPANNED_VALUE, "");
    let p = p.replace("$__serde_spanned_private_value", "");
    if p.is_empty() || p == "." {
        "(file)".into()
    } else {
        p
    }
}

pub fn parse_toml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, DataError> {
    let de = toml::Deserializer::parse(text).map_err(|e| DataError::Malformed {
        file: file.into(),
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        field: "(syntax)".into(),
        message: e.message().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = clean_path(&e.path().to_string());
        let inner = e.inner();
        DataError::Malformed {
            file: file.into(),
            line: inner.span().map_or(1, |s| line_of(text, s.start)),
            field,
            message: inner.message().to_string(),
        }
    })
}

/// Helper that builds `Invalid` errors for one file.
pub(crate) struct FileCtx<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl FileCtx<'_> {
    pub(crate) fn invalid(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> DataError {
        let field = field.into();
        // Values without a span of their own (top-level keys, texts): find the key's line.
        let start = if span == (0..0) {
            let key = field.rsplit('.').next().unwrap_or(&field);
            let key = key.split('[').next().unwrap_or(key);
            find_key(self.text, key).unwrap_or(0)
        } else {
            span.start
        };
        DataError::Invalid {
            file: self.file.into(),
            line: line_of(self.text, start),
            field,
            message: message.into(),
        }
    }
}

/// Byte offset of the first line that defines `key` (as `key =`, `[key` or `[[key`).
fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut off = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let defines = t
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
            || t.starts_with(&format!("[{key}"))
            || t.starts_with(&format!("[[{key}"));
        if defines {
            return Some(off);
        }
        off += line.len();
    }
    None
}
