//! `OperationOutcome`: how every FHIR error is told, with the element at fault as a FHIRPath
//! expression where there is one.

use serde_json::{Value, json};

/// One issue: FHIR's `issue.code` (`invalid`, `not-found`, `forbidden`, `login`, `conflict`,
/// `throttled`, `not-supported`, `exception`), the text, and the FHIRPath of the element or
/// search parameter at fault.
pub fn outcome(code: &str, text: &str, expression: Option<&str>) -> Value {
    let mut issue = json!({
        "severity": "error",
        "code": code,
        "diagnostics": text,
    });
    if let Some(e) = expression {
        issue["expression"] = json!([e]);
    }
    json!({"resourceType": "OperationOutcome", "issue": [issue]})
}
