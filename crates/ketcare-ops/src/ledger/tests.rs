use super::chain::{self, LedgerRecord};
use super::products::Stock;
use super::*;
use crate::session_facts::{Drug, Route};
use jiff::civil::date;

fn actor(id: i64, role: Role) -> LedgerActor {
    LedgerActor {
        user_id: id,
        username: format!("user{id}"),
        role,
    }
}
fn witness(id: i64, role: Role) -> Option<Witness> {
    Some(Witness {
        user_id: id,
        username: format!("user{id}"),
        role,
    })
}

const PHARMACIST: i64 = 1;
const NURSE: i64 = 2;
const NURSE_B: i64 = 3;
const ADMIN: i64 = 4;
const PRESCRIBER: i64 = 5;

/// A small ledger that keeps its stored records, so every test also exercises the chain.
struct Book {
    state: LedgerState,
    records: Vec<LedgerRecord>,
    at: Timestamp,
}

impl Book {
    fn new() -> Self {
        let stock = Stock::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let mut b = Self {
            state: LedgerState::new(stock),
            records: Vec::new(),
            at: "2026-12-07T09:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
        };
        b.ok(PHARMACIST, Role::Pharmacist, receive("ketamine-50", 2));
        b.ok(PHARMACIST, Role::Pharmacist, receive("esketamine-28", 3));
        b
    }
    fn try_(&mut self, id: i64, role: Role, e: LedgerEvent) -> Result<(), LedgerError> {
        let a = actor(id, role);
        let prev = self.records.last().map(|r| (r.seq, r.hash.as_str()));
        let r = LedgerRecord::next(prev, self.at, &a, &e)?;
        self.state.apply(r.seq, self.at, &a, &e)?;
        self.records.push(r);
        Ok(())
    }
    fn ok(&mut self, id: i64, role: Role, e: LedgerEvent) {
        if let Err(err) = self.try_(id, role, e) {
            unreachable!("refused: {err}");
        }
    }
    fn field(&mut self, id: i64, role: Role, e: LedgerEvent) -> String {
        match self.try_(id, role, e) {
            Err(err) => err.field,
            Ok(()) => "accepted".into(),
        }
    }
    fn balance(&self, session: i64, given_mg: i64, cancelled: bool) -> Balance {
        self.balance_ug(session, Micrograms::from_mg(given_mg).0, cancelled)
    }
    fn balance_ug(&self, session: i64, given_ug: i64, cancelled: bool) -> Balance {
        session_balance(
            &SessionFacts {
                infusion_minutes: None,
                session_id: session,
                patient_id: 9,
                drug: Drug::RacemicKetamine,
                route: Route::IvInfusion,
                infusion_start: None,
                infusion_stop: None,
                given: Micrograms(given_ug),
                cancelled,
                em_level: None,
                monitoring_minutes: None,
            },
            &self.state,
        )
    }
}

fn receive(product: &str, quantity: u32) -> LedgerEvent {
    LedgerEvent::Receive {
        product: product.into(),
        ndc: if product.starts_with("esk") {
            "50458-028-03"
        } else {
            "67457-108-10"
        }
        .into(),
        lot: "L123".into(),
        expiry: date(2027, 6, 30),
        quantity,
        invoice: "INV-1".into(),
        supplier: "Wholesaler".into(),
    }
}
fn draw(container: i64, session: i64, ul: i64) -> LedgerEvent {
    LedgerEvent::Draw {
        container,
        session_id: session,
        patient_id: 9,
        volume_ul: ul,
    }
}
fn waste(session: i64, mg: i64, w: Option<Witness>) -> LedgerEvent {
    LedgerEvent::Waste {
        session_id: session,
        amount_ug: mg * 1000,
        witness: w,
        note: String::new(),
    }
}

#[test]
fn receipt_creates_tracked_containers() {
    let b = Book::new();
    assert_eq!(b.state.containers.len(), 5);
    assert_eq!(b.state.containers[0].remaining_ug, 500_000);
    assert_eq!(b.state.containers[4].remaining_ug, 28_000);
    assert!(
        b.state
            .containers
            .iter()
            .all(|c| c.status == ContainerStatus::Sealed)
    );
}

#[test]
fn exact_draw_balances_and_leaves_a_partial_vial() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700)); // 0.7 mL × 50 mg/mL = 35 mg
    let c = b.state.container(1).cloned();
    assert_eq!(
        c.as_ref().map(|c| (c.remaining_ul, c.remaining_ug)),
        Some((9_300, 465_000))
    );
    assert_eq!(c.map(|c| c.status), Some(ContainerStatus::Open));
    assert!(b.balance(100, 35, false).balanced);
}

#[test]
fn a_balance_of_any_figure_answers_without_overflow() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 1_000)); // 50 mg drawn
    for given in [i64::MIN, -1, i64::MAX] {
        let bal = b.balance_ug(100, given, false);
        assert!(!bal.balanced, "{given}: {}", bal.message);
    }
}

#[test]
fn partial_vial_waste_needs_a_witness_to_balance() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 1_000)); // 50 mg drawn
    let bal = b.balance(100, 35, false);
    assert!(!bal.balanced);
    assert_eq!(bal.unaccounted_ug, 15_000);
    b.ok(
        NURSE,
        Role::Nurse,
        waste(100, 15, witness(NURSE_B, Role::Nurse)),
    );
    assert!(b.balance(100, 35, false).balanced);
}

#[test]
fn waste_without_a_witness_is_refused_and_the_session_stays_unbalanced() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 1_000));
    assert_eq!(b.field(NURSE, Role::Nurse, waste(100, 15, None)), "witness");
    assert!(!b.balance(100, 35, false).balanced);
}

#[test]
fn the_person_who_gave_the_drug_cannot_witness_its_waste() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 1_000));
    b.ok(NURSE_B, Role::Nurse, draw(2, 100, 100));
    // The administering nurse as her own witness.
    assert_eq!(
        b.field(
            NURSE,
            Role::Nurse,
            waste(100, 15, witness(NURSE, Role::Nurse))
        ),
        "witness"
    );
    // Another nurse who also drew for this session.
    assert_eq!(
        b.field(
            NURSE,
            Role::Nurse,
            waste(100, 15, witness(NURSE_B, Role::Nurse))
        ),
        "witness"
    );
    // An administrator account is not a clinical witness.
    assert_eq!(
        b.field(
            NURSE,
            Role::Nurse,
            waste(100, 15, witness(ADMIN, Role::Administrator))
        ),
        "witness"
    );
    b.ok(
        NURSE,
        Role::Nurse,
        waste(100, 20, witness(PRESCRIBER, Role::Prescriber)),
    );
    assert!(b.balance(100, 35, false).balanced);
}

#[test]
fn session_cancelled_after_draw_must_waste_everything() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700));
    let bal = b.balance(100, 35, true);
    assert!(!bal.balanced, "cancelled: nothing was given");
    assert_eq!(bal.unaccounted_ug, 35_000);
    b.ok(
        NURSE,
        Role::Nurse,
        waste(100, 35, witness(NURSE_B, Role::Nurse)),
    );
    assert!(b.balance(100, 0, true).balanced);
}

#[test]
fn more_given_than_drawn_does_not_balance_and_waste_cannot_exceed_drawn() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700));
    let bal = b.balance(100, 40, false);
    assert_eq!(bal.unaccounted_ug, -5_000);
    assert!(!bal.balanced);
    assert_eq!(
        b.field(
            NURSE,
            Role::Nurse,
            waste(100, 36, witness(NURSE_B, Role::Nurse))
        ),
        "amount_mg"
    );
    assert_eq!(
        b.field(
            NURSE,
            Role::Nurse,
            waste(101, 1, witness(NURSE_B, Role::Nurse))
        ),
        "session_id"
    );
}

#[test]
fn a_session_with_no_draws_and_nothing_given_balances() {
    assert!(Book::new().balance(100, 0, false).balanced);
}

#[test]
fn overdraw_expired_and_partial_device_are_refused() {
    let mut b = Book::new();
    assert_eq!(
        b.field(NURSE, Role::Nurse, draw(1, 100, 10_001)),
        "volume_ml"
    );
    assert_eq!(b.field(NURSE, Role::Nurse, draw(4, 100, 100)), "volume_ml");
    b.ok(NURSE, Role::Nurse, draw(3, 100, 200)); // one whole 28 mg device
    assert_eq!(
        b.state.container(3).map(|c| c.status),
        Some(ContainerStatus::Empty)
    );
    assert_eq!(b.field(NURSE, Role::Nurse, draw(3, 100, 200)), "container");
    b.at = "2027-07-01T09:00:00Z".parse().unwrap_or(b.at);
    assert_eq!(b.field(NURSE, Role::Nurse, draw(1, 101, 100)), "container");
    assert_eq!(b.field(NURSE, Role::Nurse, draw(99, 101, 100)), "container");
}

#[test]
fn draining_a_vial_in_uneven_draws_loses_nothing() {
    let mut b = Book::new();
    for s in 0..3 {
        b.ok(NURSE, Role::Nurse, draw(1, 200 + s, 3_333));
    }
    b.ok(NURSE, Role::Nurse, draw(1, 203, 1));
    let drawn: i64 = b.state.sessions.values().map(|s| s.drawn_ug).sum();
    assert_eq!(drawn, 500_000);
    assert_eq!(b.state.container(1).map(|c| c.remaining_ug), Some(0));
}

#[test]
fn roles_are_checked_per_event() {
    let mut b = Book::new();
    assert_eq!(
        b.field(NURSE, Role::Nurse, receive("ketamine-10", 1)),
        "actor"
    );
    assert_eq!(
        b.field(ADMIN, Role::Administrator, draw(1, 1, 100)),
        "actor"
    );
    assert_eq!(
        b.field(PHARMACIST, Role::Pharmacist, receive("morphine", 1)),
        "product"
    );
    let mut bad = receive("ketamine-10", 1);
    if let LedgerEvent::Receive { ndc, .. } = &mut bad {
        *ndc = "12-34".into();
    }
    assert_eq!(b.field(PHARMACIST, Role::Pharmacist, bad), "ndc");
}

#[test]
fn a_count_mismatch_is_held_open_until_resolved_with_a_reason() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700));
    let count = LedgerEvent::Count {
        period: "2026-12-07 day".into(),
        lines: vec![
            CountLine {
                container: 1,
                counted_ul: 9_000,
            },
            CountLine {
                container: 2,
                counted_ul: 10_000,
            },
        ],
    };
    b.ok(PHARMACIST, Role::Pharmacist, count);
    let open: Vec<_> = b.state.open_discrepancies().cloned().collect();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].container, open[0].expected_ul, open[0].counted_ul),
        (1, 9_300, 9_000)
    );
    let resolve = |reason: &str| LedgerEvent::Resolve {
        discrepancy: open[0].id,
        reason: reason.into(),
        adjust: true,
    };
    assert_eq!(
        b.field(PHARMACIST, Role::Pharmacist, resolve(" ")),
        "reason"
    );
    assert_eq!(b.state.open_discrepancies().count(), 1);
    b.ok(
        PHARMACIST,
        Role::Pharmacist,
        resolve("meniscus misread at the first count; recounted 9.0 mL"),
    );
    assert_eq!(b.state.open_discrepancies().count(), 0);
    assert_eq!(b.state.container(1).map(|c| c.remaining_ug), Some(450_000));
    assert_eq!(
        b.field(PHARMACIST, Role::Pharmacist, resolve("again")),
        "discrepancy"
    );
}

#[test]
fn a_balanced_count_opens_nothing() {
    let mut b = Book::new();
    b.ok(
        PHARMACIST,
        Role::Pharmacist,
        LedgerEvent::Count {
            period: "day".into(),
            lines: vec![CountLine {
                container: 1,
                counted_ul: 10_000,
            }],
        },
    );
    assert_eq!(b.state.open_discrepancies().count(), 0);
}

#[test]
fn destruction_needs_two_different_witnesses() {
    let mut b = Book::new();
    let destroy = |w: Vec<Option<Witness>>| LedgerEvent::Destroy {
        container: 2,
        method: "denatured in a disposal kit".into(),
        witnesses: w.into_iter().flatten().collect(),
    };
    assert_eq!(
        b.field(
            PHARMACIST,
            Role::Pharmacist,
            destroy(vec![witness(NURSE, Role::Nurse)])
        ),
        "witnesses"
    );
    assert_eq!(
        b.field(
            PHARMACIST,
            Role::Pharmacist,
            destroy(vec![
                witness(NURSE, Role::Nurse),
                witness(NURSE, Role::Nurse)
            ])
        ),
        "witnesses[1]"
    );
    assert_eq!(
        b.field(
            PHARMACIST,
            Role::Pharmacist,
            destroy(vec![
                witness(PHARMACIST, Role::Pharmacist),
                witness(NURSE, Role::Nurse)
            ])
        ),
        "witnesses[0]"
    );
    b.ok(
        PHARMACIST,
        Role::Pharmacist,
        destroy(vec![
            witness(NURSE, Role::Nurse),
            witness(PRESCRIBER, Role::Prescriber),
        ]),
    );
    assert_eq!(
        b.state.container(2).map(|c| c.status),
        Some(ContainerStatus::Destroyed)
    );
}

#[test]
fn theft_report_carries_its_deadlines_and_removes_stock() {
    let mut b = Book::new();
    b.ok(
        PHARMACIST,
        Role::Pharmacist,
        LedgerEvent::TheftLoss {
            discovered: date(2026, 12, 4),
            theft: true,
            containers: vec![5],
            amount_ug: 28_000,
            description: "device missing from the locked cabinet".into(),
        },
    );
    let r = &b.state.reports[0];
    assert_eq!(r.deadlines.notice_due, date(2026, 12, 7));
    assert_eq!(r.deadlines.form_106_due, date(2027, 1, 18));
    assert_eq!(
        b.state.container(5).map(|c| c.status),
        Some(ContainerStatus::Lost)
    );
    let lines = b.state.inventory_lines();
    assert_eq!(
        lines
            .iter()
            .find(|l| l.product == "esketamine-28")
            .map(|l| l.containers),
        Some(2)
    );
}

#[test]
fn chain_verifies_and_replays_to_the_same_state() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700));
    b.ok(
        NURSE,
        Role::Nurse,
        waste(100, 5, witness(NURSE_B, Role::Nurse)),
    );
    let head = b.records.last().map(|r| (r.seq, r.hash.as_str()));
    assert_eq!(chain::verify(&b.records, head), Ok(4));
    let stock = Stock::builtin().unwrap_or_else(|e| unreachable!("{e}"));
    let replayed = chain::replay(&b.records, LedgerState::new(stock));
    assert_eq!(replayed.ok(), Some(b.state.clone()));
}

#[test]
fn any_edit_to_the_ledger_is_detected() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700));
    b.ok(
        NURSE,
        Role::Nurse,
        waste(100, 5, witness(NURSE_B, Role::Nurse)),
    );
    let head = b.records.last().map(|r| (r.seq, r.hash.clone()));
    let head = head.as_ref().map(|(s, h)| (*s, h.as_str()));

    let mut edited = b.records.clone();
    edited[2].body = edited[2].body.replace("700", "500");
    assert_eq!(chain::verify(&edited, head).map_err(|e| e.seq), Err(3));

    let mut who = b.records.clone();
    who[3].username = "someone".into();
    assert_eq!(chain::verify(&who, head).map_err(|e| e.seq), Err(4));

    let mut dropped = b.records.clone();
    dropped.remove(1);
    assert_eq!(chain::verify(&dropped, head).map_err(|e| e.seq), Err(2));

    let truncated = &b.records[..3];
    assert!(chain::verify(truncated, head).is_err());

    // A rehashed forgery still fails against the head.
    let mut forged = b.records.clone();
    forged[3].body = forged[3].body.replace("5000", "4000");
    let prev = forged.get(2).map(|r| (r.seq, r.hash.clone()));
    let prev = prev.as_ref().map(|(s, h)| (*s, h.as_str()));
    let ev = forged[3].event().unwrap_or_else(|e| unreachable!("{e}"));
    let a = actor(NURSE, Role::Nurse);
    let re = LedgerRecord::next(prev, b.at, &a, &ev).unwrap_or_else(|e| unreachable!("{e}"));
    forged[3] = re;
    assert!(chain::verify(&forged, head).is_err());
}

#[test]
fn a_rewritten_chain_that_breaks_a_rule_fails_replay() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700));
    b.ok(
        NURSE,
        Role::Nurse,
        waste(100, 5, witness(NURSE_B, Role::Nurse)),
    );
    // Someone with the database rewrites the waste so the nurse witnessed herself, and rehashes
    // the chain and its head: the hashes agree, the rules do not.
    let mut forged: Vec<LedgerRecord> = b.records[..3].to_vec();
    let prev = forged.last().map(|r| (r.seq, r.hash.clone()));
    let prev = prev.as_ref().map(|(s, h)| (*s, h.as_str()));
    let self_witnessed = waste(100, 5, witness(NURSE, Role::Nurse));
    let rec = LedgerRecord::next(prev, b.at, &actor(NURSE, Role::Nurse), &self_witnessed)
        .unwrap_or_else(|e| unreachable!("{e}"));
    forged.push(rec);
    let head = forged.last().map(|r| (r.seq, r.hash.clone()));
    let head = head.as_ref().map(|(s, h)| (*s, h.as_str()));
    assert_eq!(chain::verify(&forged, head), Ok(4));
    let stock = Stock::builtin().unwrap_or_else(|e| unreachable!("{e}"));
    let broken = chain::replay(&forged, LedgerState::new(stock)).err();
    assert_eq!(broken.map(|b| b.seq), Some(4));
}

#[test]
fn count_sheets_show_the_book_before_each_count_beside_the_count() {
    let mut b = Book::new();
    b.ok(NURSE, Role::Nurse, draw(1, 100, 700));
    let count = |period: &str, c1: i64| LedgerEvent::Count {
        period: period.into(),
        lines: vec![
            CountLine {
                container: 1,
                counted_ul: c1,
            },
            CountLine {
                container: 2,
                counted_ul: 10_000,
            },
        ],
    };
    b.ok(PHARMACIST, Role::Pharmacist, count("day shift", 9_300));
    b.ok(NURSE, Role::Nurse, draw(1, 101, 1_000));
    b.ok(PHARMACIST, Role::Pharmacist, count("night shift", 8_000));
    let stock = Stock::builtin().unwrap_or_else(|e| unreachable!("{e}"));
    let sheets = reports::count_sheets(&b.records, LedgerState::new(stock))
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(sheets.len(), 2);
    assert_eq!(sheets[0].period, "day shift");
    assert_eq!(sheets[0].by, format!("user{PHARMACIST}"));
    assert_eq!(
        sheets[0]
            .lines
            .iter()
            .map(|l| (l.container, l.expected_ul, l.counted_ul, l.matches()))
            .collect::<Vec<_>>(),
        vec![(1, 9_300, 9_300, true), (2, 10_000, 10_000, true)]
    );
    // The second count is checked against the book after the second draw.
    assert_eq!(sheets[1].lines[0].expected_ul, 8_300);
    assert!(!sheets[1].lines[0].matches());
    assert_eq!(sheets[1].lines[0].product, "ketamine-50");
}

fn target(patient: i64, drug: Drug) -> SessionTarget {
    SessionTarget {
        session_id: 7,
        patient_id: patient,
        drug,
        vial_milli_mg_per_ml: None,
        draw_refused: None,
        waste_refused: None,
    }
}

#[test]
fn a_draw_must_name_a_real_session_of_that_patient_and_the_drug_of_its_order() {
    let b = Book::new();
    // Container 1 is racemic ketamine 50 mg/mL; container 3 an esketamine device.
    let d = LedgerEvent::Draw {
        container: 1,
        session_id: 7,
        patient_id: 9,
        volume_ul: 1_000,
    };
    let field = |t: Option<&SessionTarget>, e: &LedgerEvent| {
        b.state
            .check_session(e, t)
            .map_err(|e| e.field)
            .err()
            .unwrap_or_else(|| "accepted".into())
    };
    assert_eq!(field(None, &d), "session_id", "no such session");
    assert_eq!(
        field(Some(&target(10, Drug::RacemicKetamine)), &d),
        "patient_id",
        "another patient's session"
    );
    assert_eq!(
        field(Some(&target(9, Drug::Esketamine)), &d),
        "container",
        "a racemic vial for an esketamine session"
    );
    let mut closed = target(9, Drug::RacemicKetamine);
    closed.draw_refused = Some("cancelled".into());
    assert_eq!(field(Some(&closed), &d), "session_id");
    let mut strength = target(9, Drug::RacemicKetamine);
    strength.vial_milli_mg_per_ml = Some(10_000);
    assert_eq!(
        field(Some(&strength), &d),
        "container",
        "a 50 mg/mL vial for an order prepared from 10 mg/mL"
    );
    strength.vial_milli_mg_per_ml = Some(50_000);
    assert_eq!(field(Some(&strength), &d), "accepted");
    assert_eq!(
        field(Some(&target(9, Drug::RacemicKetamine)), &d),
        "accepted"
    );
    // A waste names a real session with draws.
    let w = waste(7, 1, witness(NURSE_B, Role::Nurse));
    assert_eq!(field(None, &w), "session_id");
    assert_eq!(
        field(Some(&target(9, Drug::RacemicKetamine)), &w),
        "session_id",
        "nothing drawn yet"
    );
}

#[test]
fn dea_registration_check_digit() {
    // 1 + 3 + 5 + 2 × (2 + 4 + 6) = 33: the check digit is 3.
    assert!(dea_registration_is_valid("AB1234563"));
    assert!(!dea_registration_is_valid("AB1234567"));
    assert!(!dea_registration_is_valid("A11234563"));
    assert!(!dea_registration_is_valid("AB123456"));
    assert!(!dea_registration_is_valid("AB12345é3"));
}

fn transfer_out(book: &Book, containers: &[i64]) -> LedgerEvent {
    LedgerEvent::TransferOut {
        to_site: 2,
        to_registration: "FN1234563".into(),
        from_registration: "AB1234563".into(),
        containers: containers.to_vec(),
        invoice: "TR-1".into(),
        lines: book
            .state
            .transfer_lines(containers)
            .unwrap_or_else(|e| unreachable!("{e}")),
    }
}

#[test]
fn a_transfer_moves_sealed_containers_from_one_book_to_the_other() {
    let mut a = Book::new();
    // Container 1 is opened by a draw; 2 (ketamine) and 3 (a device) stay sealed.
    a.ok(NURSE, Role::Nurse, draw(1, 7, 1_000));
    let out = transfer_out(&a, &[2, 3]);
    let LedgerEvent::TransferOut { lines, .. } = &out else {
        unreachable!()
    };
    let lines = lines.clone();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0].container, lines[0].remaining_ug), (2, 500_000));
    a.ok(PHARMACIST, Role::Pharmacist, out);
    for id in [2, 3] {
        let c = a.state.container(id).unwrap_or_else(|| unreachable!());
        assert_eq!(c.status, ContainerStatus::Transferred);
        assert_eq!(c.book_ul(), 0);
    }
    // What left is no longer this site's: it cannot be drawn, sent again or destroyed here.
    assert_eq!(a.field(NURSE, Role::Nurse, draw(2, 8, 100)), "container");
    assert_eq!(
        a.state.transfer_lines(&[2]).map_err(|e| e.field),
        Err("containers".into())
    );
    // A count that finds it still on the shelf opens a discrepancy, but the book of a container
    // sent away is not set back here.
    a.ok(
        PHARMACIST,
        Role::Pharmacist,
        LedgerEvent::Count {
            period: "day".into(),
            lines: vec![CountLine {
                container: 2,
                counted_ul: 10_000,
            }],
        },
    );
    let found = a.records.len() as i64;
    let adjust = LedgerEvent::Resolve {
        discrepancy: found,
        reason: "found on the shelf".into(),
        adjust: true,
    };
    assert_eq!(a.field(PHARMACIST, Role::Pharmacist, adjust), "adjust");
    // The receiving book gets them sealed, numbered in its own sequence, with the same lot.
    let mut b = Book::new();
    let before = b.state.containers.len() as i64;
    let incoming = LedgerEvent::TransferIn {
        from_site: 1,
        from_entry: 4,
        from_registration: String::new(),
        invoice: "TR-1".into(),
        lines: lines.clone(),
    };
    b.ok(PHARMACIST, Role::Pharmacist, incoming.clone());
    let got = b
        .state
        .container(before + 1)
        .unwrap_or_else(|| unreachable!());
    assert_eq!(
        (
            got.status,
            got.lot.as_str(),
            got.remaining_ug,
            got.invoice.as_str()
        ),
        (ContainerStatus::Sealed, "L123", 500_000, "TR-1")
    );
    assert_eq!(b.state.containers.len() as i64, before + 2);
    assert!(b.state.has_received(1, 4));
    // Received once only.
    assert_eq!(
        b.field(PHARMACIST, Role::Pharmacist, incoming),
        "from_entry"
    );
    // And what arrived can be drawn at the receiving site.
    b.ok(NURSE, Role::Nurse, draw(before + 1, 9, 1_000));
}

#[test]
fn a_transfer_is_refused_naming_the_field() {
    let mut a = Book::new();
    a.ok(NURSE, Role::Nurse, draw(1, 7, 1_000));
    // An opened vial stays where it was opened.
    assert_eq!(
        a.state.transfer_lines(&[1]).map_err(|e| e.field),
        Err("containers".into())
    );
    for (bad, field) in [
        (vec![], "containers"),
        (vec![99], "containers"),
        (vec![2, 2], "containers"),
    ] {
        assert_eq!(
            a.state.transfer_lines(&bad).map_err(|e| e.field),
            Err(field.to_owned())
        );
    }
    let mut out = transfer_out(&a, &[2]);
    if let LedgerEvent::TransferOut { invoice, .. } = &mut out {
        *invoice = " ".into();
    }
    assert_eq!(a.field(PHARMACIST, Role::Pharmacist, out), "invoice");
    let mut out = transfer_out(&a, &[2]);
    if let LedgerEvent::TransferOut { lines, .. } = &mut out {
        lines[0].remaining_ug += 1;
    }
    assert_eq!(a.field(PHARMACIST, Role::Pharmacist, out), "lines");
    let mut out = transfer_out(&a, &[2]);
    if let LedgerEvent::TransferOut {
        to_registration, ..
    } = &mut out
    {
        *to_registration = "FN1234560".into();
    }
    assert_eq!(
        a.field(PHARMACIST, Role::Pharmacist, out),
        "to_registration"
    );
    // A nurse may draw but not move stock between registrations.
    assert_eq!(a.field(NURSE, Role::Nurse, transfer_out(&a, &[2])), "actor");
    // Nothing refused changed the book.
    assert_eq!(
        a.state.container(2).map(|c| c.status),
        Some(ContainerStatus::Sealed)
    );
}
