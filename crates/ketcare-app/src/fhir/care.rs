//! Searches of what was ordered, given, answered, agreed and booked, and of who did it:
//! `MedicationRequest`, `MedicationAdministration`, `QuestionnaireResponse`, `Questionnaire`,
//! `Consent`, `Appointment`, `Practitioner`, `PractitionerRole` and `AuditEvent`. Each reads
//! through the same role-checked, audited store calls as the pages.

use super::{MAX_MATCHES, check_params, param, patient_param, time_of};
use crate::error::{Error, Result};
use jiff::Timestamp;
use ketcare_clinical::protocol::{Drug, Route};
use ketcare_core::{Actor, Permission, Role, UserId};
use ketcare_fhir::search::token;
use ketcare_fhir::{medication, questionnaire, workflow};
use ketcare_store::{AuditFilter, RecordKind, Store};
use serde_json::Value;

/// The drug and route of each protocol, from the library the orders were calculated with
/// (the built-in protocols and the site's own).
struct Protocols(Option<std::sync::Arc<ketcare_clinical::Library>>);

impl Protocols {
    async fn load(store: &dyn Store) -> Self {
        // An order whose protocol cannot be found still maps, with the drug and route left
        // out: the library failing to load is logged, never a failed read of the record.
        match crate::clinical::cached_library(store).await {
            Ok(l) => Self(Some(l)),
            Err(e) => {
                tracing::error!(error = %e, "loading the protocol library for FHIR");
                Self(None)
            }
        }
    }

    fn of(&self, id: &str) -> (Option<Drug>, Option<Route>) {
        match self.0.as_ref().and_then(|l| l.get(id).ok()) {
            Some(p) => (Some(p.drug), Some(p.route)),
            None => (None, None),
        }
    }
}

/// A status search value, checked against the codes the type uses.
fn status_param<'a>(params: &'a [(String, String)], codes: &[&str]) -> Result<Option<&'a str>> {
    match param(params, "status") {
        None => Ok(None),
        Some(s) if codes.contains(&s) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(
            "status",
            format!("use one of {}", codes.join(", ")),
        )),
    }
}

/// `MedicationRequest?patient=…[&status=…]`: the patient's dose orders.
pub async fn medication_requests(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient", "status", "intent"])?;
    let pid = patient_param(params)?;
    let status = status_param(params, &["active", "draft", "revoked"])?;
    if param(params, "intent").is_some_and(|i| i != "order") {
        return Err(Error::invalid("intent", "every dose order is an order"));
    }
    let protocols = Protocols::load(store).await;
    let mut out = Vec::new();
    for r in store
        .patient_records(actor, pid, RecordKind::DoseOrder)
        .await?
    {
        let stored = crate::clinical::order_of(&r)?;
        let (drug, route) = protocols.of(&stored.order.calculation.protocol_id);
        let v = medication::medication_request(medication::OrderOf {
            order_id: r.id.get(),
            patient: pid.get(),
            revision: r.revision,
            drug,
            route,
            updated: time_of(&r.updated_at),
            order: &stored.order,
        });
        if status.is_none_or(|s| v["status"] == s) {
            out.push(v);
        }
    }
    Ok(out)
}

/// `MedicationAdministration?patient=…[&status=…]`: what each of the patient's sessions gave.
pub async fn medication_administrations(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient", "status"])?;
    let pid = patient_param(params)?;
    let status = status_param(params, &["in-progress", "completed"])?;
    let protocols = Protocols::load(store).await;
    let mut out = Vec::new();
    for s in store.patient_sessions(actor, pid).await? {
        let (drug, _) = protocols.of(&s.session.plan.protocol_id);
        if let Some(v) = medication::medication_administration(
            s.id.get(),
            pid.get(),
            s.revision,
            &s.session,
            drug,
            time_of(&s.updated_at),
        ) && status.is_none_or(|x| v["status"] == x)
        {
            out.push(v);
        }
    }
    Ok(out)
}

/// `QuestionnaireResponse?patient=…[&questionnaire=…]`: the patient's stored responses, one
/// questionnaire's when asked (by canonical, `Questionnaire/{id}` or id).
pub async fn questionnaire_responses(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient", "questionnaire", "status"])?;
    let pid = patient_param(params)?;
    status_param(params, &["completed"])?;
    let wanted = param(params, "questionnaire").map(questionnaire::instrument_of);
    Ok(store
        .patient_responses(actor, pid)
        .await?
        .iter()
        .filter(|r| wanted.is_none_or(|w| questionnaire::names(w, &r.instrument)))
        .map(|r| {
            questionnaire::questionnaire_response(questionnaire::ResponseOf {
                response_id: r.id.get(),
                patient: pid.get(),
                instrument: &r.instrument,
                answers: &r.answers,
                taken_on: &r.taken_on,
                recorded_by: &r.recorded_by,
                recorded_at: time_of(&r.recorded_at),
            })
        })
        .collect())
}

/// `Questionnaire[?_id=…]`: every instrument ketcare scores (the data files; no patient data).
pub fn questionnaires(params: &[(String, String)]) -> Result<Vec<Value>> {
    check_params(params, &["_id", "url"])?;
    let catalogue = crate::measures::catalogue().ok_or(Error::Internal)?;
    let id = param(params, "_id");
    let url = param(params, "url").map(questionnaire::instrument_of);
    Ok(catalogue
        .instruments
        .iter()
        .filter(|i| {
            id.is_none_or(|x| questionnaire::names(x, &i.id))
                && url.is_none_or(|x| questionnaire::names(x, &i.id))
        })
        .map(questionnaire::questionnaire)
        .collect())
}

/// `Consent?patient=…`: the patient's signed consents (active, withdrawn or expired).
pub async fn consents(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
    now: Timestamp,
) -> Result<Vec<Value>> {
    check_params(params, &["patient", "status"])?;
    let pid = patient_param(params)?;
    let status = status_param(params, &["active", "inactive"])?;
    Ok(store
        .consent_signatures(actor, pid)
        .await?
        .iter()
        .map(|c| workflow::consent(c, now))
        .filter(|v| status.is_none_or(|s| v["status"] == s))
        .collect())
}

/// `Appointment?patient=…`: the patient's bookings. Their wall-clock times are their chair's
/// site's, read in that site's time zone.
pub async fn appointments(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient", "status"])?;
    let pid = patient_param(params)?;
    let status = status_param(params, &["booked", "fulfilled", "cancelled", "noshow"])?;
    let chairs = if actor.may(Permission::Schedule) {
        store.chairs(actor).await?
    } else {
        Vec::new()
    };
    let zones = crate::zones::Zones::load(store).await?;
    let at = |d: jiff::civil::DateTime, chair: i64| {
        d.to_zoned(zones.of_chair(chair))
            .map(|z| z.timestamp())
            .map_err(|_| Error::Internal)
    };
    let mut out = Vec::new();
    for b in store.patient_bookings(actor, pid).await? {
        let chair = chairs
            .iter()
            .find(|c| c.id == b.chair_id)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("chair {}", b.chair_id));
        let v = workflow::appointment(&b, at(b.start, b.chair_id)?, at(b.end, b.chair_id)?, &chair);
        if status.is_none_or(|s| v["status"] == s) {
            out.push(v);
        }
    }
    Ok(out)
}

/// `Practitioner` / `PractitionerRole[?_id=…][&role=…]`: the clinical staff (prescribers,
/// nurses, pharmacists, therapists) — the people who act on records; never credentials.
pub async fn staff(
    store: &dyn Store,
    actor: &Actor,
    kind: &str,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["_id", "role", "name"])?;
    if !actor.may(Permission::PatientRead) {
        return Err(Error::Forbidden(
            "the staff list is for the care team".into(),
        ));
    }
    let id = param(params, "_id")
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| Error::invalid("_id", "use a user id"))
        })
        .transpose()?;
    let role = param(params, "role")
        .map(|r| {
            let r = token("role", r, "urn:ketcare:role")?;
            Role::parse(r).ok_or_else(|| Error::invalid("role", "not a ketcare role"))
        })
        .transpose()?;
    let name = param(params, "name").map(ketcare_core::patient::search_fold);
    // One resource per account, whatever roles it holds at the actor's sites (an account may
    // hold a different role at one site), in the order they are first met.
    let mut found: Vec<(i64, String, String, Vec<Role>)> = Vec::new();
    for r in [
        Role::Prescriber,
        Role::Nurse,
        Role::Pharmacist,
        Role::Therapist,
    ] {
        if role.is_some_and(|x| x != r) {
            continue;
        }
        for (uid, username, display) in store.staff(actor, r).await? {
            if id.is_some_and(|i| i != uid)
                || name.as_ref().is_some_and(|n| {
                    !ketcare_core::patient::search_fold(&display).contains(n.as_str())
                })
            {
                continue;
            }
            match found.iter_mut().find(|f| f.0 == uid) {
                Some(f) => f.3.push(r),
                None => found.push((uid, username, display, vec![r])),
            }
        }
    }
    let mut out = Vec::with_capacity(found.len());
    for (uid, username, display, roles) in found {
        let active = store
            .user_by_id(UserId::new(uid))
            .await?
            .is_some_and(|u| !u.disabled);
        out.push(if kind == "Practitioner" {
            workflow::practitioner(uid, &username, &display, active)
        } else {
            workflow::practitioner_roles(uid, &roles, active)
        });
    }
    Ok(out)
}

/// `AuditEvent[?patient=…][&agent=…][&subtype=…]`: the audit log, newest first, for
/// administrators (the audit-read right), without the records' free text. A search that
/// matches the cap or more is refused, asking for a narrower one.
pub async fn audit_events(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["patient", "agent", "subtype", "_id"])?;
    let patient = param(params, "patient")
        .map(|_| patient_param(params).map(|p| p.get()))
        .transpose()?;
    let before = param(params, "_id")
        .map(|t| {
            t.parse::<i64>()
                .map(|n| n.saturating_add(1))
                .map_err(|_| Error::invalid("_id", "use an audit record's sequence number"))
        })
        .transpose()?;
    let filter = AuditFilter {
        username: param(params, "agent").map(str::to_owned),
        action: param(params, "subtype")
            .map(|s| token("subtype", s, "urn:ketcare:audit-action").map(str::to_owned))
            .transpose()?,
        patient_id: patient,
        before_seq: before,
        limit: if before.is_some() { 1 } else { MAX_MATCHES },
    };
    let records = store.audit_records(actor, &filter).await?;
    if before.is_none() && records.len() as i64 >= MAX_MATCHES {
        return Err(Error::invalid(
            "patient",
            format!(
                "{MAX_MATCHES} or more audit records match: narrow the search (patient, agent or subtype)"
            ),
        ));
    }
    Ok(records
        .iter()
        .filter(|r| before.is_none_or(|b| r.seq == b - 1))
        .map(workflow::audit_event)
        .collect())
}

/// `Group[?_id=protocol-{id}]`: one group per protocol with a booked course, its members the
/// patients with such a course.
pub async fn groups(
    store: &dyn Store,
    actor: &Actor,
    params: &[(String, String)],
) -> Result<Vec<Value>> {
    check_params(params, &["_id"])?;
    let id = param(params, "_id");
    let protocols = Protocols::load(store).await;
    Ok(store
        .course_groups(actor)
        .await?
        .iter()
        .filter(|(protocol, _)| id.is_none_or(|i| i == workflow::group_id(protocol)))
        .map(|(protocol, members)| {
            let title = protocols
                .0
                .as_ref()
                .and_then(|l| l.get(protocol).ok())
                .map(|p| p.title.clone())
                .unwrap_or_else(|| protocol.clone());
            let members: Vec<i64> = members.iter().map(|m| m.get()).collect();
            workflow::group(protocol, &title, &members)
        })
        .collect())
}

/// The members of group `id`, for a group-level export; not found when there is no such group.
pub async fn group_members(
    store: &dyn Store,
    actor: &Actor,
    id: &str,
) -> Result<Vec<ketcare_core::PatientId>> {
    store
        .course_groups(actor)
        .await?
        .into_iter()
        .find(|(protocol, _)| workflow::group_id(protocol) == id)
        .map(|(_, members)| members)
        .ok_or_else(|| Error::NotFound(format!("Group/{id}")))
}
