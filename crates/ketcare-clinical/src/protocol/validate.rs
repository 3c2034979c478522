//! Semantic validation of protocol files (after the TOML shape is accepted).

use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;

use super::{
    Bound, Component, Drug, LimitQuantity, LimitScope, LimitSeverity, Protocol, Route, SCited,
};
use crate::data::{DataError, FileCtx, parse_toml};
use crate::source::{CitedText, SourceCatalogue, valid_key};

pub(crate) fn parse_protocol(
    file: &str,
    text: &str,
    sources: &SourceCatalogue,
) -> Result<Protocol, DataError> {
    let p: Protocol = parse_toml(file, text)?;
    let cx = FileCtx { file, text };
    let whole = 0..0;
    if !valid_key(&p.id) {
        return Err(cx.invalid(
            whole,
            "id",
            format!(
                "expected lowercase letters, digits, '.', '_' or '-', got {:?}",
                p.id
            ),
        ));
    }
    if p.version == 0 {
        return Err(cx.invalid(whole, "version", "expected a version number ≥ 1"));
    }
    if p.title.trim().is_empty() {
        return Err(cx.invalid(whole, "title", "expected a non-empty title"));
    }
    text_ok(&cx, 0..0, "evidence", &p.evidence, sources)?;
    let wb = &p.weight_basis;
    if let Some(m) = sources_problem(&wb.get_ref().source, sources) {
        return Err(cx.invalid(wb.span(), "weight_basis.source", m));
    }

    // Shape by drug and route.
    match p.drug {
        Drug::Esketamine => {
            if p.esketamine.is_none() {
                return Err(cx.invalid(
                    whole,
                    "esketamine",
                    "esketamine protocols need an [esketamine] table (device strength, options)",
                ));
            }
            if p.route != Route::Intranasal {
                return Err(cx.invalid(whole, "route", "esketamine is given intranasally"));
            }
            if p.bolus.is_some() || p.infusion.is_some() || p.dose.is_some() {
                return Err(cx.invalid(
                    whole,
                    "dose",
                    "esketamine protocols are dosed in devices: remove bolus/infusion/dose",
                ));
            }
        }
        Drug::RacemicKetamine => {
            if p.esketamine.is_some() {
                return Err(cx.invalid(whole, "esketamine", "only for esketamine protocols"));
            }
            let ok = match p.route {
                Route::IvInfusion => p.infusion.is_some() && p.dose.is_none(),
                Route::IvBolus => p.bolus.is_some() && p.infusion.is_none() && p.dose.is_none(),
                _ => p.dose.is_some() && p.bolus.is_none() && p.infusion.is_none(),
            };
            if !ok {
                return Err(cx.invalid(
                    whole,
                    "route",
                    "expected: iv_infusion → [infusion] (optional [bolus]); iv_bolus → [bolus]; other routes → [dose]",
                ));
            }
        }
    }

    for (name, c) in [
        ("bolus", &p.bolus),
        ("infusion", &p.infusion),
        ("dose", &p.dose),
        ("repeat", &p.repeat),
    ] {
        if let Some(c) = c {
            component_ok(&cx, name, c, sources)?;
        }
    }
    if let Some(e) = &p.esketamine {
        let es = e.get_ref();
        cited_ok(&cx, "esketamine.device_mg", &es.device_mg, sources)?;
        cited_ok(
            &cx,
            "esketamine.minutes_between_devices",
            &es.minutes_between_devices,
            sources,
        )?;
        if es.dose_options_mg.is_empty() {
            return Err(cx.invalid(
                e.span(),
                "esketamine.dose_options_mg",
                "expected at least one dose option",
            ));
        }
        for (i, d) in es.dose_options_mg.iter().enumerate() {
            cited_ok(&cx, &format!("esketamine.dose_options_mg[{i}]"), d, sources)?;
        }
        for (n, d) in [
            ("esketamine.first_dose_mg", &es.first_dose_mg),
            ("esketamine.default_dose_mg", &es.default_dose_mg),
        ] {
            if let Some(d) = d {
                cited_ok(&cx, n, d, sources)?;
            }
        }
        if let Some(t) = &es.administration {
            text_ok(&cx, e.span(), "esketamine.administration", t, sources)?;
        }
    }
    if let Some(c) = &p.required_concentration_mg_per_ml {
        cited_ok(&cx, "required_concentration_mg_per_ml", c, sources)?;
    }

    let mut ids = BTreeSet::new();
    for l in &p.limits {
        let span = l.span();
        let lim = l.get_ref();
        let field = format!("limits[{}]", lim.id);
        if !valid_key(&lim.id) || !ids.insert(lim.id.clone()) {
            return Err(cx.invalid(
                span,
                format!("{field}.id"),
                "expected a unique id of lowercase letters, digits, '.', '_' or '-'",
            ));
        }
        if lim.label.trim().is_empty() {
            return Err(cx.invalid(span, format!("{field}.label"), "expected plain words"));
        }
        cited_ok(&cx, &format!("{field}.value"), &lim.value, sources)?;
        let age = matches!(
            lim.quantity,
            LimitQuantity::AgeYears | LimitQuantity::AgeMonths
        );
        if lim.quantity == LimitQuantity::Kg {
            return Err(cx.invalid(
                span,
                format!("{field}.quantity"),
                "`kg` is not a protocol limit (body weight is checked against the plausibility range); expected a dose, rate, duration or age quantity",
            ));
        }
        if age != (lim.applies_to == LimitScope::Patient) {
            return Err(cx.invalid(
                span,
                format!("{field}.applies_to"),
                "age limits apply to `patient`, and `patient` takes only age quantities",
            ));
        }
        if lim.applies_to == LimitScope::Session
            && !matches!(lim.quantity, LimitQuantity::Mg | LimitQuantity::MgPerKg)
        {
            return Err(cx.invalid(
                span,
                format!("{field}.quantity"),
                "session limits are totals: expected `mg` or `mg_per_kg`",
            ));
        }
        if lim.severity == LimitSeverity::Cap
            && (lim.bound != Bound::Max
                || lim.quantity != LimitQuantity::Mg
                || matches!(lim.applies_to, LimitScope::Session | LimitScope::Patient))
        {
            return Err(cx.invalid(
                span,
                format!("{field}.severity"),
                "a cap is a per-administration maximum in mg",
            ));
        }
        if lim.severity == LimitSeverity::Cap && p.drug == Drug::Esketamine {
            return Err(cx.invalid(
                span,
                format!("{field}.severity"),
                "esketamine is dosed in whole devices: use a hard limit, not a cap",
            ));
        }
    }

    let c = &p.course;
    for (n, v) in [
        ("course.induction_sessions", &c.induction_sessions),
        (
            "course.induction_sessions_per_week",
            &c.induction_sessions_per_week,
        ),
        ("course.induction_weeks", &c.induction_weeks),
        ("course.induction_span_days", &c.induction_span_days),
        (
            "monitoring.minimum_observation_minutes",
            &p.monitoring.minimum_observation_minutes,
        ),
        ("fasting.food_hours", &p.fasting.food_hours),
        ("fasting.clear_liquid_hours", &p.fasting.clear_liquid_hours),
    ] {
        if let Some(v) = v {
            cited_ok(&cx, n, v, sources)?;
        }
    }
    for (n, t) in [
        ("course.induction", &c.induction),
        ("course.maintenance", &c.maintenance),
        ("fasting.rule", &p.fasting.rule),
    ] {
        if let Some(t) = t {
            text_ok(&cx, 0..0, n, t, sources)?;
        }
    }
    for (i, t) in p.monitoring.items.iter().enumerate() {
        text_ok(&cx, 0..0, &format!("monitoring.items[{i}]"), t, sources)?;
    }
    for (i, t) in p.notes.iter().enumerate() {
        text_ok(&cx, 0..0, &format!("notes[{i}]"), t, sources)?;
    }
    Ok(p)
}

fn component_ok(
    cx: &FileCtx<'_>,
    name: &str,
    c: &Spanned<Component>,
    sources: &SourceCatalogue,
) -> Result<(), DataError> {
    let comp = c.get_ref();
    if let Some(d) = &comp.default {
        cited_ok(cx, &format!("{name}.default"), d, sources)?;
    }
    if let Some(d) = &comp.duration_minutes {
        cited_ok(cx, &format!("{name}.duration_minutes"), d, sources)?;
    }
    for (i, s) in comp.steps.iter().enumerate() {
        cited_ok(cx, &format!("{name}.steps[{i}]"), s, sources)?;
    }
    if let Some(d) = &comp.increment {
        cited_ok(cx, &format!("{name}.increment"), d, sources)?;
        if comp.default.is_none() {
            return Err(cx.invalid(
                c.span(),
                format!("{name}.increment"),
                "an increment needs a `default` to step from",
            ));
        }
    }
    for (n, t) in [
        ("titration", &comp.titration),
        ("administration", &comp.administration),
    ] {
        if let Some(t) = t {
            text_ok(cx, c.span(), &format!("{name}.{n}"), t, sources)?;
        }
    }
    Ok(())
}

fn cited_ok(
    cx: &FileCtx<'_>,
    field: &str,
    v: &SCited,
    sources: &SourceCatalogue,
) -> Result<(), DataError> {
    match v.get_ref().shape_problem(sources) {
        Some(m) => Err(cx.invalid(v.span(), field, m)),
        None => Ok(()),
    }
}

fn text_ok(
    cx: &FileCtx<'_>,
    span: Range<usize>,
    field: &str,
    t: &CitedText,
    sources: &SourceCatalogue,
) -> Result<(), DataError> {
    match t.shape_problem(sources) {
        Some(m) => {
            // CitedText has no span of its own: invalid() finds the field's line by its key.
            Err(cx.invalid(span, field, m))
        }
        None => Ok(()),
    }
}

fn sources_problem(ids: &[String], sources: &SourceCatalogue) -> Option<String> {
    if ids.is_empty() {
        return Some("`source` must list at least one source ID".into());
    }
    ids.iter()
        .find(|id| sources.citation(id).is_none())
        .map(|id| {
            format!(
                "unknown source ID {id:?}: expected an ID from the References table of clinical.md"
            )
        })
}
