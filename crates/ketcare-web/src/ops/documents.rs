//! Ledger documents: the counts per shift or day (the book and the count side by side), and
//! printable documents of single entries: an initial or biennial inventory [R45, R45b] and a
//! theft/loss report form with its due dates [R44, R44b].

use crate::AppState;
use crate::auth::Principal;
use crate::error::{AppError, PageError};
use crate::pages::PagePath;
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ketcare_ops::Micrograms;
use ketcare_ops::amount::Microlitres;
use ketcare_ops::ledger::products::Stock;
use ketcare_ops::ledger::{
    BusinessTime, InventoryKind, LedgerEvent, LedgerState, entries, reports,
};

/// The print style sheet of the ledger documents.
pub async fn print_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/ops-print.css"),
    )
        .into_response()
}

fn stock() -> Result<Stock, AppError> {
    Stock::builtin().map_err(|e| {
        tracing::error!(error = %e, "stock data");
        AppError::Internal
    })
}

fn ml(ul: i64) -> String {
    format!("{} mL", Microlitres(ul))
}

/// container, product and lot, expected, counted, difference, matches
type CountRow = (i64, String, String, String, String, bool);

#[derive(Template)]
#[template(path = "ops_counts.html")]
pub struct CountsPage {
    nav: Option<Nav>,
    /// (entry, period, at, by, lines, all match)
    sheets: Vec<(i64, String, String, String, Vec<CountRow>, bool)>,
}

/// Every count, newest first, each with the book just before it beside what was counted.
pub async fn counts(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    if let Some(r) = crate::pages::site_needed(&p, "ledger") {
        return Ok(r);
    }
    let records = s.store.ledger_records_at(&p.actor, p.site).await?;
    let sheets = reports::count_sheets(&records, LedgerState::new(stock()?)).map_err(|e| {
        tracing::error!(error = %e, "ledger replay");
        AppError::Internal
    })?;
    let sheets = sheets
        .into_iter()
        .rev()
        .map(|sh| {
            let all = sh.lines.iter().all(|l| l.matches());
            let lines = sh
                .lines
                .iter()
                .map(|l| {
                    (
                        l.container,
                        format!("{} lot {}", l.product, l.lot),
                        ml(l.expected_ul),
                        ml(l.counted_ul),
                        ml(l.counted_ul - l.expected_ul),
                        l.matches(),
                    )
                })
                .collect();
            (sh.seq, sh.period, sh.at, sh.by, lines, all)
        })
        .collect();
    Ok(render_html(&CountsPage {
        nav: Nav::of(&p),
        sheets,
    }))
}

#[derive(Template)]
#[template(path = "ops_inventory_document.html")]
pub struct InventoryDocument {
    nav: Option<Nav>,
    seq: i64,
    hash: String,
    kind: String,
    taken: String,
    time: String,
    registrant_name: String,
    registrant_address: String,
    dea_number: String,
    recorded_by: String,
    recorded_at: String,
    /// The entry in words, as the ledger page shows it.
    summary: String,
    /// drug, strength, form, containers, total volume, total amount
    lines: Vec<(String, String, String, u32, String, String)>,
    next_due: String,
    sources: String,
}

#[derive(Template)]
#[template(path = "ops_theft_loss_document.html")]
pub struct TheftLossDocument {
    nav: Option<Nav>,
    seq: i64,
    hash: String,
    theft: bool,
    discovered: String,
    recorded_by: String,
    recorded_at: String,
    /// The entry in words, as the ledger page shows it.
    summary: String,
    /// container, product, NDC, lot
    containers: Vec<(i64, String, String, String)>,
    amount: String,
    description: String,
    notice_due: String,
    form_106_due: String,
    sources: String,
}

/// A printable document of one ledger entry: an inventory or a theft/loss report.
pub async fn document(
    State(s): State<AppState>,
    p: Principal,
    PagePath(seq): PagePath<i64>,
) -> Result<Response, PageError> {
    let records = s.store.ledger_records_at(&p.actor, p.site).await?;
    let r = records
        .iter()
        .find(|r| r.seq == seq)
        .ok_or_else(|| AppError::NotFound(format!("ledger entry {seq}")))?;
    let event = r.event().map_err(|e| {
        tracing::error!(error = %e, seq, "ledger entry");
        AppError::Internal
    })?;
    let stock = stock()?;
    let nav = Nav::of(&p);
    let summary = entries::entries(&records, LedgerState::new(stock.clone()))
        .into_iter()
        .find(|e| e.seq == seq)
        .map(|e| e.text)
        .unwrap_or_default();
    match event {
        LedgerEvent::Inventory {
            inventory,
            taken,
            time,
            registrant_name,
            registrant_address,
            dea_number,
            lines,
        } => {
            let mut sources = stock.rules.biennial_inventory_years.source.clone();
            sources.push("R45b".into());
            Ok(render_html(&InventoryDocument {
                nav,
                seq,
                hash: r.hash.clone(),
                kind: match inventory {
                    InventoryKind::Initial => "Initial inventory",
                    InventoryKind::Biennial => "Biennial inventory",
                }
                .into(),
                taken: taken.to_string(),
                time: match time {
                    BusinessTime::Opening => "opening of business",
                    BusinessTime::Close => "close of business",
                }
                .into(),
                registrant_name,
                registrant_address,
                dea_number,
                recorded_by: r.username.clone(),
                recorded_at: crate::fmt::when(&r.at),
                summary: summary.clone(),
                lines: lines
                    .into_iter()
                    .map(|l| {
                        (
                            l.label,
                            l.strength,
                            format!("{:?}", l.form).to_lowercase(),
                            l.containers,
                            ml(l.total_ul),
                            format!("{} mg", Micrograms(l.total_ug)),
                        )
                    })
                    .collect(),
                next_due: reports::next_inventory_due(taken, &stock.rules).to_string(),
                sources: sources.join(", "),
            }))
        }
        LedgerEvent::TheftLoss {
            discovered,
            theft,
            containers,
            amount_ug,
            description,
        } => {
            let st = s.store.ledger_state_at(&p.actor, p.site).await?;
            let d = reports::deadlines(discovered, &stock.rules);
            Ok(render_html(&TheftLossDocument {
                nav,
                seq,
                hash: r.hash.clone(),
                theft,
                discovered: discovered.to_string(),
                recorded_by: r.username.clone(),
                recorded_at: crate::fmt::when(&r.at),
                summary: summary.clone(),
                containers: containers
                    .iter()
                    .map(|id| match st.container(*id) {
                        Some(c) => (
                            *id,
                            st.product_of(c)
                                .map(|p| p.label.clone())
                                .unwrap_or_else(|| c.product.clone()),
                            c.ndc.clone(),
                            c.lot.clone(),
                        ),
                        None => (*id, String::new(), String::new(), String::new()),
                    })
                    .collect(),
                amount: format!("{} mg", Micrograms(amount_ug)),
                description,
                notice_due: d.notice_due.to_string(),
                form_106_due: d.form_106_due.to_string(),
                sources: d.sources.join(", "),
            }))
        }
        _ => Err(AppError::NotFound(format!(
            "ledger entry {seq} is a {}, which has no printable document",
            r.kind
        ))
        .into()),
    }
}
