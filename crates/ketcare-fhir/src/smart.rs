//! SMART App Launch "Backend Services" (client credentials with a signed JWT assertion,
//! <https://hl7.org/fhir/smart-app-launch/backend-services.html>), the parts with no I/O: the
//! scopes a backend client may ask for, and the `.well-known/smart-configuration` document.
//!
//! Only read scopes exist here: `system/*.read` and `system/<Type>.read` for a type of
//! [`crate::capability::RESOURCES`]. A write scope is refused, never narrowed.

use crate::capability::RESOURCES;
use serde_json::{Value, json};
use std::fmt;

/// The token endpoint, relative to the FHIR base.
pub const TOKEN_PATH: &str = "auth/token";

/// An access token's lifetime: the Backend Services spec's recommended `expires_in` ("The
/// recommended value is 300, for a five-minute token lifetime").
pub const ACCESS_TOKEN_SECONDS: i64 = 300;

/// How far ahead an assertion's `exp` may be: the Backend Services spec says it "SHALL be no
/// more than five minutes in the future".
pub const MAX_ASSERTION_SECONDS: i64 = 300;

/// The signature algorithms a client's assertion may use: the two the spec requires servers to
/// support.
pub const SIGNING_ALGORITHMS: [&str; 2] = ["RS384", "ES384"];

/// The only `client_assertion_type` of the spec.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The extension that names the OAuth endpoints in a `CapabilityStatement`'s `rest.security`.
pub const OAUTH_URIS: &str =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// The token endpoint of a server whose FHIR base is `base` (absolute, without a trailing `/`).
pub fn token_url(base: &str) -> String {
    format!("{base}/{TOKEN_PATH}")
}

/// One read scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `system/*.read`: every resource type.
    AllRead,
    /// `system/<Type>.read`: one type.
    Read(&'static str),
}

impl Scope {
    fn allows(self, kind: &str) -> bool {
        match self {
            Scope::AllRead => true,
            Scope::Read(k) => k == kind,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::AllRead => f.write_str("system/*.read"),
            Scope::Read(k) => write!(f, "system/{k}.read"),
        }
    }
}

/// A refused scope, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope `{scope}`: {message}")]
pub struct ScopeError {
    pub scope: String,
    pub message: String,
}

/// A set of read scopes, in the order first named, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses space-separated scopes; every one must be `system/*.read` or
    /// `system/<Type>.read` for a type the server offers.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let mut scopes = Scopes::default();
        for s in text.split_whitespace() {
            let refuse = |message: String| ScopeError {
                scope: s.to_owned(),
                message,
            };
            let (kind, access) = s
                .strip_prefix("system/")
                .and_then(|rest| rest.rsplit_once('.'))
                .ok_or_else(|| {
                    refuse("use system/*.read or system/<Type>.read (backend services)".into())
                })?;
            if access != "read" {
                return Err(refuse(
                    "only read access is offered (system/*.read or system/<Type>.read)".into(),
                ));
            }
            let scope = if kind == "*" {
                Scope::AllRead
            } else {
                let known = RESOURCES.iter().find(|r| r.kind == kind).ok_or_else(|| {
                    refuse(format!(
                        "{kind} is not offered (use {})",
                        RESOURCES
                            .iter()
                            .map(|r| r.kind)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                Scope::Read(known.kind)
            };
            scopes.add(scope);
        }
        Ok(scopes)
    }

    fn add(&mut self, scope: Scope) {
        if !self.0.contains(&scope) {
            self.0.push(scope);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether these scopes allow reading resources of type `kind`.
    pub fn allows(&self, kind: &str) -> bool {
        self.0.iter().any(|s| s.allows(kind))
    }

    /// What may be granted of these (requested) scopes to a client `registered` for others:
    /// `system/*.read` asked of a client registered for some types is those types.
    pub fn granted_by(&self, registered: &Scopes) -> Scopes {
        let mut granted = Scopes::default();
        for &asked in &self.0 {
            match asked {
                Scope::AllRead => registered.0.iter().for_each(|&r| granted.add(r)),
                Scope::Read(kind) if registered.allows(kind) => granted.add(asked),
                Scope::Read(_) => {}
            }
        }
        granted
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.0.iter().map(Scope::to_string).collect();
        f.write_str(&words.join(" "))
    }
}

/// Every scope a client may ask for.
pub fn scopes_supported() -> Vec<String> {
    std::iter::once(Scope::AllRead)
        .chain(RESOURCES.iter().map(|r| Scope::Read(r.kind)))
        .map(|s| s.to_string())
        .collect()
}

/// The `.well-known/smart-configuration` document of a server whose FHIR base is `base`.
pub fn configuration(base: &str) -> Value {
    json!({
        "token_endpoint": token_url(base),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGORITHMS,
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": scopes_supported(),
        "capabilities": ["client-confidential-asymmetric"],
    })
}

/// The `rest.security` of the `CapabilityStatement`: SMART-on-FHIR, with its token endpoint.
pub fn security(base: &str) -> Value {
    json!({
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
        }]}],
        "extension": [{
            "url": OAUTH_URIS,
            "extension": [{"url": "token", "valueUri": token_url(base)}],
        }],
        "description": "A ketcare API token (Authorization: Bearer), a signed-in browser session, or an access token of a registered SMART backend client (client credentials with a signed JWT; read-only scopes); every read is checked against the user's role and audited.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_intersect() {
        let registered = Scopes::parse("system/Observation.read system/Patient.read").unwrap();
        let all = Scopes::parse("system/*.read").unwrap();
        assert_eq!(
            all.granted_by(&registered).to_string(),
            "system/Observation.read system/Patient.read"
        );
        let asked = Scopes::parse("system/Patient.read system/Flag.read").unwrap();
        assert_eq!(
            asked.granted_by(&registered).to_string(),
            "system/Patient.read"
        );
        assert_eq!(asked.granted_by(&all).to_string(), asked.to_string());
        assert!(Scopes::parse("").unwrap().granted_by(&all).is_empty());
        let g = asked.granted_by(&registered);
        assert!(g.allows("Patient") && !g.allows("Flag"));
    }

    #[test]
    fn write_and_unknown_scopes_are_refused_by_name() {
        for bad in [
            "system/*.write",
            "system/Patient.*",
            "system/Patient.cruds",
            "user/Patient.read",
            "system/Medication.read",
            "launch",
        ] {
            let e = Scopes::parse(&format!("system/*.read {bad}")).unwrap_err();
            assert_eq!(e.scope, bad);
        }
    }

    #[test]
    fn the_configuration_names_the_token_endpoint() {
        let c = configuration("https://h/fhir/r4");
        assert_eq!(c["token_endpoint"], "https://h/fhir/r4/auth/token");
        assert_eq!(c["scopes_supported"][0], "system/*.read");
        assert_eq!(
            security("https://h/fhir/r4")["extension"][0]["extension"][0]["valueUri"],
            "https://h/fhir/r4/auth/token"
        );
    }
}
