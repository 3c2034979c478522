//! The clinic's licensed item wording for instruments that ship as labels only.
//!
//! The clinic uploads a plain text file, one item a line: `instrument,item,text` (an optional
//! header line `instrument,item,text`; blank lines and lines starting with `#` are skipped). The
//! text is everything after the second comma; it may be wrapped in double quotes, with `""`
//! for a quote inside. A wrong line is refused with the line number and the field.

use crate::catalogue::{Catalogue, Wording};
use ketcare_clinical::DataError;
use serde::Serialize;
use std::collections::BTreeSet;

/// Longest accepted item text, in characters (ketcare's own limit, not a clinical value).
pub const MAX_TEXT_CHARS: usize = 1000;

/// One item's licensed wording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClinicText {
    pub instrument: String,
    pub item: u8,
    pub text: String,
}

fn err(file: &str, line: usize, field: &str, message: impl Into<String>) -> DataError {
    DataError::Invalid {
        file: file.into(),
        line,
        field: field.into(),
        message: message.into(),
    }
}

fn unquote(file: &str, line: usize, raw: &str) -> Result<String, DataError> {
    let t = raw.trim();
    let Some(inner) = t.strip_prefix('"') else {
        return Ok(t.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(err(file, line, "text", "a quoted text must end with \""));
    };
    if inner.replace("\"\"", "").contains('"') {
        return Err(err(
            file,
            line,
            "text",
            "a quote inside a quoted text must be doubled (\"\")",
        ));
    }
    Ok(inner.replace("\"\"", "\""))
}

/// Parses and validates a clinic text file against the catalogue. Only instruments whose
/// wording is not shipped (`labels_only`) accept clinic text; every item must exist and appear
/// once; the file must hold at least one item.
pub fn parse(catalogue: &Catalogue, file: &str, body: &str) -> Result<Vec<ClinicText>, DataError> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, raw) in body.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut parts = l.splitn(3, ',');
        let inst_id = parts.next().unwrap_or("").trim();
        let item_raw = parts.next().map(str::trim);
        let text_raw = parts.next();
        if out.is_empty() && inst_id.eq_ignore_ascii_case("instrument") {
            continue;
        }
        let Some(inst) = catalogue.instrument(inst_id) else {
            return Err(err(
                file,
                line,
                "instrument",
                format!("unknown instrument {inst_id:?}"),
            ));
        };
        if inst.wording != Wording::LabelsOnly {
            return Err(err(
                file,
                line,
                "instrument",
                format!(
                    "{} ships its own wording; clinic text is only for instruments shipped as labels",
                    inst.name
                ),
            ));
        }
        let Some(item_raw) = item_raw else {
            return Err(err(
                file,
                line,
                "item",
                "missing; expected instrument,item,text",
            ));
        };
        let Ok(n) = item_raw.parse::<u8>() else {
            return Err(err(
                file,
                line,
                "item",
                format!("expected an item number, got {item_raw:?}"),
            ));
        };
        if !inst.items.iter().any(|it| it.n == n) {
            return Err(err(
                file,
                line,
                "item",
                format!("{} has no item {n}", inst.name),
            ));
        }
        if !seen.insert((inst.id.clone(), n)) {
            return Err(err(
                file,
                line,
                "item",
                format!("{} item {n} appears twice", inst.name),
            ));
        }
        let text = unquote(file, line, text_raw.unwrap_or(""))?;
        if text.is_empty() {
            return Err(err(file, line, "text", "must not be empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(err(
                file,
                line,
                "text",
                format!("longer than {MAX_TEXT_CHARS} characters"),
            ));
        }
        out.push(ClinicText {
            instrument: inst.id.clone(),
            item: n,
            text,
        });
    }
    if out.is_empty() {
        return Err(err(
            file,
            1,
            "instrument",
            "the file holds no item; expected lines instrument,item,text",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static Catalogue {
        match Catalogue::builtin() {
            Ok(c) => c,
            Err(e) => unreachable!("catalogue: {e}"),
        }
    }

    fn labels_only() -> (String, u8) {
        let inst = cat()
            .instruments
            .iter()
            .find(|i| i.wording == Wording::LabelsOnly)
            .map(|i| (i.id.clone(), i.items[0].n));
        inst.unwrap_or_default()
    }

    fn fails(body: &str) -> (usize, String) {
        match parse(cat(), "texts.csv", body) {
            Err(DataError::Invalid { line, field, .. }) => (line, field),
            other => unreachable!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn parses_header_comments_and_quotes() {
        let (id, n) = labels_only();
        let body = format!("instrument,item,text\n# note\n\n{id},{n},\"Say \"\"yes\"\", or no\"\n");
        let got = parse(cat(), "t", &body).unwrap_or_default();
        assert_eq!(
            got,
            vec![ClinicText {
                instrument: id,
                item: n,
                text: "Say \"yes\", or no".into()
            }]
        );
    }

    #[test]
    fn refuses_with_line_and_field() {
        let (id, n) = labels_only();
        assert_eq!(fails("nope,1,x"), (1, "instrument".into()));
        assert_eq!(fails("phq9,1,Free text"), (1, "instrument".into()));
        assert_eq!(fails(&format!("\n{id},x,t")), (2, "item".into()));
        assert_eq!(fails(&format!("{id},99,t")), (1, "item".into()));
        assert_eq!(
            fails(&format!("{id},{n},a\n{id},{n},b")),
            (2, "item".into())
        );
        assert_eq!(fails(&format!("{id},{n},")), (1, "text".into()));
        assert_eq!(fails(&format!("{id},{n},\"open")), (1, "text".into()));
        assert_eq!(fails(&id), (1, "item".into()));
        assert_eq!(fails("# only a comment\n"), (1, "instrument".into()));
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(fails(&format!("{id},{n},{long}")), (1, "text".into()));
    }
}
