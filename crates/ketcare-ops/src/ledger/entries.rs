//! Ledger entries as people read them: each stored event as a sentence in mL and mg, with the
//! containers and session it concerns (for filters). The ledger page and the printable
//! documents share these words, so nothing internal (µL, µg, JSON) reaches a page.
//!
//! Each entry is described against the ledger just before it was recorded (the ledger is
//! replayed), so a receipt names the container numbers it created, a count stands beside the
//! book it was checked against and a destruction says how much was destroyed.

use super::chain::{LedgerRecord, replay};
use super::{Container, LedgerEvent, LedgerState, Witness};
use crate::amount::{Micrograms, Microlitres};
use serde_json::Value;

/// The kinds of entry, as stored and in words, in the order the ledger page lists them.
pub const KINDS: &[(&str, &str)] = &[
    ("receive", "Receipt"),
    ("draw", "Draw"),
    ("waste", "Waste"),
    ("count", "Count"),
    ("resolve", "Discrepancy resolved"),
    ("destroy", "Destruction"),
    ("theft_loss", "Theft or loss"),
    ("inventory", "Inventory"),
    ("transfer_out", "Transfer to another site"),
    ("transfer_in", "Transfer from another site"),
];

/// A kind of entry in words; a kind this version does not know is shown with spaces for
/// underscores.
pub fn kind_words(kind: &str) -> String {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, w)| (*w).to_owned())
        .unwrap_or_else(|| {
            let w = kind.replace('_', " ");
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => "Entry".to_owned(),
            }
        })
}

/// One ledger entry in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    /// RFC 3339 UTC time, as stored (the page formats it).
    pub at: String,
    pub by: String,
    /// The stored kind (`draw`, `theft_loss` …), for filters and links.
    pub kind: String,
    /// The kind in words.
    pub kind_words: String,
    /// The entry as a sentence, amounts in mL and mg.
    pub text: String,
    /// The containers the entry concerns.
    pub containers: Vec<i64>,
    /// The session it concerns (draws and waste).
    pub session_id: Option<i64>,
}

/// "1.5 mL"
pub fn ml(ul: i64) -> String {
    format!("{} mL", Microlitres(ul))
}

/// "75 mg"
pub fn mg(ug: i64) -> String {
    format!("{} mg", Micrograms(ug))
}

fn witness(w: &Witness) -> String {
    format!("{} ({})", w.username, w.role)
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn container_label(before: &LedgerState, c: &Container) -> String {
    let product = before
        .product_of(c)
        .map(|p| p.label.clone())
        .unwrap_or_else(|| c.product.clone());
    format!("{product}, lot {}", c.lot)
}

/// The mg in `ul` of container `id` as the book had it just before (the last draw takes what is
/// left, as the ledger does); `None` when the container or its product is unknown.
fn ug_of(before: &LedgerState, id: i64, ul: i64) -> Option<i64> {
    let c = before.container(id)?;
    if ul == c.remaining_ul {
        return Some(c.remaining_ug);
    }
    before.product_of(c).map(|p| p.ug_in(ul))
}

fn ml_mg(before: &LedgerState, id: i64, ul: i64) -> String {
    match ug_of(before, id, ul) {
        Some(ug) => format!("{} ({})", ml(ul), mg(ug)),
        None => ml(ul),
    }
}

/// One event as a sentence, against the ledger just before it was recorded, with the
/// containers it concerns.
pub fn describe(event: &LedgerEvent, before: &LedgerState) -> (String, Vec<i64>) {
    match event {
        LedgerEvent::Receive {
            product,
            ndc,
            lot,
            expiry,
            quantity,
            invoice,
            supplier,
        } => {
            let first = before.containers.len() as i64 + 1;
            let ids: Vec<i64> = (first..first + i64::from(*quantity)).collect();
            let label = before
                .stock()
                .product(product)
                .map(|p| p.label.clone())
                .unwrap_or_else(|| product.clone());
            let numbers = match ids.as_slice() {
                [] => String::new(),
                [one] => format!(" (container #{one})"),
                [a, .., b] => format!(" (containers #{a}–#{b})"),
            };
            (
                format!(
                    "Received {quantity} × {label}{numbers}, NDC {ndc}, lot {lot}, expiry {expiry}, invoice {invoice} from {supplier}"
                ),
                ids,
            )
        }
        LedgerEvent::Draw {
            container,
            session_id,
            volume_ul,
            ..
        } => {
            let from = match before.container(*container) {
                Some(c) => format!("container #{container} ({})", container_label(before, c)),
                None => format!("container #{container}"),
            };
            (
                format!(
                    "Drew {} from {from} for session {session_id}",
                    ml_mg(before, *container, *volume_ul)
                ),
                vec![*container],
            )
        }
        LedgerEvent::Waste {
            session_id,
            amount_ug,
            witness: w,
            note,
        } => {
            let mut t = format!("Wasted {} drawn for session {session_id}", mg(*amount_ug));
            match w {
                Some(w) => t.push_str(&format!(", witnessed by {}", witness(w))),
                None => t.push_str(", no witness"),
            }
            if !note.trim().is_empty() {
                t.push_str(&format!(" — note: {}", note.trim()));
            }
            (t, Vec::new())
        }
        LedgerEvent::Count { period, lines } => {
            let parts: Vec<String> = lines
                .iter()
                .map(|l| {
                    let counted = ml_mg(before, l.container, l.counted_ul);
                    match before.container(l.container) {
                        Some(c) if c.book_ul() != l.counted_ul => format!(
                            "#{} counted {counted}, book {} — discrepancy",
                            l.container,
                            ml(c.book_ul())
                        ),
                        Some(_) => format!("#{} counted {counted}, as the book", l.container),
                        None => format!("#{} counted {counted}", l.container),
                    }
                })
                .collect();
            let n = lines.len();
            (
                format!(
                    "Counted {n} container{} for {}: {}",
                    if n == 1 { "" } else { "s" },
                    period.trim(),
                    parts.join("; ")
                ),
                lines.iter().map(|l| l.container).collect(),
            )
        }
        LedgerEvent::Resolve {
            discrepancy,
            reason,
            adjust,
        } => {
            let d = before
                .discrepancies
                .iter()
                .find(|d| d.id == *discrepancy && d.resolution.is_none());
            let what = match d {
                Some(d) => format!(
                    "the discrepancy found by entry {discrepancy} on container #{} (book {}, counted {})",
                    d.container,
                    ml(d.expected_ul),
                    ml(d.counted_ul)
                ),
                None => format!("the discrepancy found by entry {discrepancy}"),
            };
            let outcome = match (adjust, d) {
                (true, Some(d)) => format!(
                    "the book was set to the count, {}",
                    ml_mg(before, d.container, d.counted_ul)
                ),
                (true, None) => "the book was set to the count".to_owned(),
                (false, _) => "the book was kept".to_owned(),
            };
            (
                format!("Resolved {what}: reason “{}”; {outcome}", reason.trim()),
                d.map(|d| vec![d.container]).unwrap_or_default(),
            )
        }
        LedgerEvent::Destroy {
            container,
            method,
            witnesses,
        } => {
            let what = match before.container(*container) {
                Some(c) => format!(
                    "container #{container} ({}): {} ({})",
                    container_label(before, c),
                    ml(c.book_ul()),
                    mg(if c.book_ul() == 0 { 0 } else { c.remaining_ug })
                ),
                None => format!("container #{container}"),
            };
            let ws: Vec<String> = witnesses.iter().map(witness).collect();
            (
                format!(
                    "Destroyed {what} by {}, witnessed by {}",
                    method.trim(),
                    if ws.is_empty() {
                        "no one".to_owned()
                    } else {
                        list(&ws)
                    }
                ),
                vec![*container],
            )
        }
        LedgerEvent::TheftLoss {
            discovered,
            theft,
            containers,
            amount_ug,
            description,
        } => {
            let mut parts = Vec::new();
            if !containers.is_empty() {
                let ids: Vec<String> = containers.iter().map(|c| format!("#{c}")).collect();
                let (ul, ug) = containers
                    .iter()
                    .filter_map(|id| before.container(*id))
                    .fold((0, 0), |(ul, ug), c| {
                        let b = c.book_ul();
                        (ul + b, ug + if b == 0 { 0 } else { c.remaining_ug })
                    });
                parts.push(format!(
                    "container{} {} ({} on the book, {})",
                    if containers.len() == 1 { "" } else { "s" },
                    list(&ids),
                    ml(ul),
                    mg(ug)
                ));
            }
            if *amount_ug > 0 {
                parts.push(format!("{} reported", mg(*amount_ug)));
            }
            (
                format!(
                    "{} discovered {discovered}: {} — {}",
                    if *theft { "Theft" } else { "Loss" },
                    parts.join("; "),
                    description.trim()
                ),
                containers.clone(),
            )
        }
        LedgerEvent::Inventory {
            inventory,
            taken,
            time,
            registrant_name,
            registrant_address,
            dea_number,
            lines,
        } => {
            let kind = match inventory {
                super::InventoryKind::Initial => "Initial",
                super::InventoryKind::Biennial => "Biennial",
            };
            let at = match time {
                super::BusinessTime::Opening => "opening",
                super::BusinessTime::Close => "close",
            };
            let on_hand: Vec<String> = lines
                .iter()
                .map(|l| {
                    format!(
                        "{}: {} container{}, {} ({})",
                        l.label,
                        l.containers,
                        if l.containers == 1 { "" } else { "s" },
                        ml(l.total_ul),
                        mg(l.total_ug)
                    )
                })
                .collect();
            (
                format!(
                    "{kind} inventory taken {taken} at {at} of business for {}, {} (DEA {}): {}",
                    registrant_name.trim(),
                    registrant_address.trim(),
                    dea_number.trim(),
                    if on_hand.is_empty() {
                        "nothing on hand".to_owned()
                    } else {
                        on_hand.join("; ")
                    }
                ),
                Vec::new(),
            )
        }
        LedgerEvent::TransferOut {
            to_site,
            to_registration,
            containers,
            invoice,
            lines,
            ..
        } => (
            format!(
                "Sent {} to site {to_site}{}, invoice {}: {}",
                count_words(lines.len()),
                registration(to_registration),
                invoice.trim(),
                sent_lines(before, lines)
            ),
            containers.clone(),
        ),
        LedgerEvent::TransferIn {
            from_site,
            from_entry,
            from_registration,
            invoice,
            lines,
        } => {
            let first = before.containers.len() as i64 + 1;
            let ids: Vec<i64> = (first..first + lines.len() as i64).collect();
            let numbered: Vec<String> = lines
                .iter()
                .zip(&ids)
                .map(|(l, id)| format!("#{id} ({})", line_words(before, l)))
                .collect();
            (
                format!(
                    "Received {} from site {from_site}{} (its entry {from_entry}), invoice {}: {}",
                    count_words(lines.len()),
                    registration(from_registration),
                    invoice.trim(),
                    list(&numbered)
                ),
                ids,
            )
        }
    }
}

fn count_words(n: usize) -> String {
    format!("{n} sealed container{}", if n == 1 { "" } else { "s" })
}

fn registration(dea: &str) -> String {
    if dea.trim().is_empty() {
        String::new()
    } else {
        format!(" (DEA {})", dea.trim())
    }
}

/// "Ketamine 50 mg/mL 10 mL vial, lot L1, expiry 2027-06-01, 10 mL (500 mg)"
fn line_words(before: &LedgerState, l: &super::TransferLine) -> String {
    let label = before
        .stock()
        .product(&l.product)
        .map(|p| p.label.clone())
        .unwrap_or_else(|| l.product.clone());
    format!(
        "{label}, NDC {}, lot {}, expiry {}, {} ({})",
        l.ndc,
        l.lot,
        l.expiry,
        ml(l.remaining_ul),
        mg(l.remaining_ug)
    )
}

/// The sending side's lines, by its container numbers.
fn sent_lines(before: &LedgerState, lines: &[super::TransferLine]) -> String {
    let parts: Vec<String> = lines
        .iter()
        .map(|l| format!("#{} ({})", l.container, line_words(before, l)))
        .collect();
    list(&parts)
}

fn value_words(key: &str, v: &Value) -> String {
    match v {
        Value::Number(n) if key.ends_with("_ul") => {
            n.as_i64().map(ml).unwrap_or_else(|| format!("{n} µL"))
        }
        Value::Number(n) if key.ends_with("_ug") => {
            n.as_i64().map(mg).unwrap_or_else(|| format!("{n} µg"))
        }
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Null => "—".into(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a
            .iter()
            .map(|x| value_words(key, x))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, x)| format!("{} {}", key_words(k), value_words(k, x)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn key_words(key: &str) -> String {
    key.strip_suffix("_ul")
        .or_else(|| key.strip_suffix("_ug"))
        .unwrap_or(key)
        .replace('_', " ")
}

/// An entry this version cannot read as an event (a kind it does not know, or a body of
/// another shape): its fields in words, volumes in mL and amounts in mg.
pub fn describe_unknown(kind: &str, body: &str) -> String {
    let head = kind_words(kind);
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(o)) => {
            let fields: Vec<String> = o
                .iter()
                .filter(|(k, _)| k.as_str() != "kind")
                .map(|(k, v)| format!("{}: {}", key_words(k), value_words(k, v)))
                .collect();
            if fields.is_empty() {
                head
            } else {
                format!("{head} — {}", fields.join("; "))
            }
        }
        _ => format!("{head} (this entry could not be read)"),
    }
}

/// Every record, oldest first, in words; `state` is the empty ledger (with its stock) the
/// records are replayed into. A record that cannot be read or replayed is still listed, its
/// fields in words.
pub fn entries(records: &[LedgerRecord], state: LedgerState) -> Vec<Entry> {
    let mut state = state;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let (text, containers) = match r.event() {
            Ok(e) => describe(&e, &state),
            Err(_) => (describe_unknown(&r.kind, &r.body), Vec::new()),
        };
        out.push(Entry {
            seq: r.seq,
            at: r.at.clone(),
            by: r.username.clone(),
            kind: r.kind.clone(),
            kind_words: kind_words(&r.kind),
            text,
            containers,
            session_id: r.session_id,
        });
        if let Ok(next) = replay(std::slice::from_ref(r), state.clone()) {
            state = next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::products::Stock;
    use super::super::*;
    use super::*;
    use crate::ledger::chain::LedgerRecord;
    use jiff::civil::date;

    fn stock() -> Stock {
        Stock::builtin().unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn who(id: i64, name: &str, role: Role) -> LedgerActor {
        LedgerActor {
            user_id: id,
            username: name.into(),
            role,
        }
    }

    fn wit(id: i64, name: &str, role: Role) -> Witness {
        Witness {
            user_id: id,
            username: name.into(),
            role,
        }
    }

    /// Records the events in order (each must be accepted) and returns the stored records.
    fn book(events: &[(LedgerActor, LedgerEvent)]) -> Vec<LedgerRecord> {
        let mut state = LedgerState::new(stock());
        let mut records: Vec<LedgerRecord> = Vec::new();
        let mut at: jiff::Timestamp = "2026-12-01T09:00:00Z"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}"));
        for (a, e) in events {
            let prev = records.last().map(|r| (r.seq, r.hash.as_str()));
            let r = LedgerRecord::next(prev, at, a, e).unwrap_or_else(|e| unreachable!("{e}"));
            state
                .apply(r.seq, at, a, e)
                .unwrap_or_else(|e| unreachable!("{e}"));
            records.push(r);
            at = at
                .checked_add(jiff::SignedDuration::from_mins(5))
                .unwrap_or(at);
        }
        records
    }

    fn texts() -> Vec<Entry> {
        let pharm = who(1, "phil", Role::Pharmacist);
        let nurse = who(2, "nina", Role::Nurse);
        let records = book(&[
            (
                pharm.clone(),
                LedgerEvent::Receive {
                    product: "ketamine-50".into(),
                    ndc: "67457-108-10".into(),
                    lot: "ABC".into(),
                    expiry: date(2027, 5, 1),
                    quantity: 3,
                    invoice: "INV-9".into(),
                    supplier: "Wholesaler".into(),
                },
            ),
            (
                nurse.clone(),
                LedgerEvent::Draw {
                    container: 3,
                    session_id: 12,
                    patient_id: 7,
                    volume_ul: 1500,
                },
            ),
            (
                nurse.clone(),
                LedgerEvent::Waste {
                    session_id: 12,
                    amount_ug: 15_000,
                    witness: Some(wit(3, "nell", Role::Nurse)),
                    note: "left in the syringe".into(),
                },
            ),
            (
                pharm.clone(),
                LedgerEvent::Count {
                    period: "day shift".into(),
                    lines: vec![
                        CountLine {
                            container: 1,
                            counted_ul: 9_500,
                        },
                        CountLine {
                            container: 3,
                            counted_ul: 8_500,
                        },
                    ],
                },
            ),
            (
                pharm.clone(),
                LedgerEvent::Resolve {
                    discrepancy: 4,
                    reason: "recounted, misread".into(),
                    adjust: true,
                },
            ),
            (
                pharm.clone(),
                LedgerEvent::Destroy {
                    container: 2,
                    method: "chemical digestion".into(),
                    witnesses: vec![wit(2, "nina", Role::Nurse), wit(3, "nell", Role::Nurse)],
                },
            ),
            (
                pharm.clone(),
                LedgerEvent::TheftLoss {
                    discovered: date(2026, 11, 30),
                    theft: true,
                    containers: vec![1],
                    amount_ug: 2_000,
                    description: "vial missing from the safe".into(),
                },
            ),
            (
                pharm.clone(),
                LedgerEvent::Inventory {
                    inventory: InventoryKind::Biennial,
                    taken: date(2026, 12, 1),
                    time: BusinessTime::Close,
                    registrant_name: "Hill Clinic".into(),
                    registrant_address: "1 Main St".into(),
                    dea_number: "AB1234563".into(),
                    lines: vec![InventoryLine {
                        product: "ketamine-50".into(),
                        label: "Ketamine 50 mg/mL, 500 mg/10 mL multiple-dose vial".into(),
                        strength: "50 mg/mL".into(),
                        form: products::Form::Vial,
                        containers: 1,
                        total_ul: 8_500,
                        total_ug: 425_000,
                    }],
                },
            ),
        ]);
        entries(&records, LedgerState::new(stock()))
    }

    fn no_internals(t: &str) {
        for bad in ["_ul", "_ug", "µL", "µg", "{", "\"", "volume_", "amount_"] {
            assert!(!t.contains(bad), "`{bad}` in {t}");
        }
    }

    #[test]
    fn every_kind_reads_as_a_sentence_in_ml_and_mg() {
        let e = texts();
        assert_eq!(e.len(), 8);
        for x in &e {
            no_internals(&x.text);
        }
        let t = |i: usize| e[i].text.as_str();
        assert_eq!(
            t(0),
            "Received 3 × Ketamine 50 mg/mL, 500 mg/10 mL multiple-dose vial (containers #1–#3), \
             NDC 67457-108-10, lot ABC, expiry 2027-05-01, invoice INV-9 from Wholesaler"
        );
        assert_eq!(e[0].containers, vec![1, 2, 3]);
        assert_eq!(e[0].kind_words, "Receipt");
        assert_eq!(
            t(1),
            "Drew 1.5 mL (75 mg) from container #3 (Ketamine 50 mg/mL, 500 mg/10 mL \
             multiple-dose vial, lot ABC) for session 12"
        );
        assert_eq!(
            (e[1].containers.clone(), e[1].session_id),
            (vec![3], Some(12))
        );
        assert_eq!(
            t(2),
            "Wasted 15 mg drawn for session 12, witnessed by nell (nurse) — note: left in the syringe"
        );
        assert_eq!(e[2].session_id, Some(12));
        assert_eq!(
            t(3),
            "Counted 2 containers for day shift: #1 counted 9.5 mL (475 mg), book 10 mL — \
             discrepancy; #3 counted 8.5 mL (425 mg), as the book"
        );
        assert_eq!(e[3].containers, vec![1, 3]);
        assert_eq!(
            t(4),
            "Resolved the discrepancy found by entry 4 on container #1 (book 10 mL, counted 9.5 mL): \
             reason “recounted, misread”; the book was set to the count, 9.5 mL (475 mg)"
        );
        assert_eq!(e[4].kind_words, "Discrepancy resolved");
        assert_eq!(
            t(5),
            "Destroyed container #2 (Ketamine 50 mg/mL, 500 mg/10 mL multiple-dose vial, lot ABC): \
             10 mL (500 mg) by chemical digestion, witnessed by nina (nurse) and nell (nurse)"
        );
        assert_eq!(
            t(6),
            "Theft discovered 2026-11-30: container #1 (9.5 mL on the book, 475 mg); 2 mg reported \
             — vial missing from the safe"
        );
        assert_eq!(e[6].kind_words, "Theft or loss");
        assert_eq!(
            t(7),
            "Biennial inventory taken 2026-12-01 at close of business for Hill Clinic, 1 Main St \
             (DEA AB1234563): Ketamine 50 mg/mL, 500 mg/10 mL multiple-dose vial: 1 container, \
             8.5 mL (425 mg)"
        );
    }

    #[test]
    fn the_last_draw_takes_what_the_book_has_left_and_a_resolution_may_keep_the_book() {
        let before = {
            let mut s = LedgerState::new(stock());
            let a = who(1, "phil", Role::Pharmacist);
            let at: jiff::Timestamp = "2026-12-01T09:00:00Z"
                .parse()
                .unwrap_or_else(|e| unreachable!("{e}"));
            s.apply(
                1,
                at,
                &a,
                &LedgerEvent::Receive {
                    product: "ketamine-10".into(),
                    ndc: "67457-108-10".into(),
                    lot: "L".into(),
                    expiry: date(2027, 5, 1),
                    quantity: 1,
                    invoice: "I".into(),
                    supplier: "S".into(),
                },
            )
            .unwrap_or_else(|e| unreachable!("{e}"));
            s
        };
        let (t, c) = describe(
            &LedgerEvent::Draw {
                container: 1,
                session_id: 5,
                patient_id: 0,
                volume_ul: 20_000,
            },
            &before,
        );
        assert!(
            t.starts_with("Drew 20 mL (200 mg) from container #1"),
            "{t}"
        );
        assert_eq!(c, vec![1]);
        let (t, _) = describe(
            &LedgerEvent::Resolve {
                discrepancy: 99,
                reason: "found".into(),
                adjust: false,
            },
            &before,
        );
        assert_eq!(
            t,
            "Resolved the discrepancy found by entry 99: reason “found”; the book was kept"
        );
        let (t, _) = describe(
            &LedgerEvent::Waste {
                session_id: 5,
                amount_ug: 1_250,
                witness: None,
                note: String::new(),
            },
            &before,
        );
        assert_eq!(t, "Wasted 1.25 mg drawn for session 5, no witness");
    }

    #[test]
    fn an_unknown_kind_still_reads_in_words_ml_and_mg() {
        let t = describe_unknown(
            "recall_return",
            r#"{"kind":"recall_return","container":3,"volume_ul":1500,"amount_ug":75000,"to":"Clinic B","sealed":true}"#,
        );
        // Fields in the order the JSON map keeps them.
        assert!(t.starts_with("Recall return — "), "{t}");
        for part in [
            "container: 3",
            "volume: 1.5 mL",
            "amount: 75 mg",
            "to: Clinic B",
            "sealed: yes",
        ] {
            assert!(t.contains(part), "{part} missing: {t}");
        }
        no_internals(&t);
        assert_eq!(kind_words("recall_return"), "Recall return");
        assert_eq!(kind_words("transfer_out"), "Transfer to another site");
        assert_eq!(
            describe_unknown("odd", "not json"),
            "Odd (this entry could not be read)"
        );
        // A known kind whose body this version cannot read falls back the same way.
        let t = describe_unknown("draw", r#"{"kind":"draw","container":1,"volume_ul":500}"#);
        assert!(
            t.starts_with("Draw — ") && t.contains("container: 1") && t.contains("volume: 0.5 mL"),
            "{t}"
        );
        // Every known kind has its words.
        for (k, w) in KINDS {
            assert_eq!(&kind_words(k), w);
        }
    }
}
