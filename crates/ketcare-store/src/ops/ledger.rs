//! The controlled-substance ledger: appending an event replayed against every earlier entry and
//! checked against the session record it names, reading, replaying and verifying the chain.

use super::*;

/// An `ops_ledger` row as stored (`LEDGER_COLUMNS`).
#[derive(sqlx::FromRow)]
struct LedgerRow {
    seq: i64,
    at: String,
    user_id: i64,
    username: String,
    role: String,
    kind: String,
    session_id: Option<i64>,
    body: String,
    prev_hash: String,
    hash: String,
}

impl From<LedgerRow> for LedgerRecord {
    fn from(r: LedgerRow) -> Self {
        LedgerRecord {
            seq: r.seq,
            at: r.at,
            user_id: r.user_id,
            username: r.username,
            role: r.role,
            kind: r.kind,
            session_id: r.session_id,
            body: r.body,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

const LEDGER_COLUMNS: &str =
    "seq, at, user_id, username, role, kind, session_id, body, prev_hash, hash";
pub(crate) async fn ledger_records_tx(tx: &mut Tx) -> Result<Vec<LedgerRecord>> {
    Ok(sqlx::query_as::<_, LedgerRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LEDGER_COLUMNS} FROM ops_ledger ORDER BY seq"
    )))
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(LedgerRecord::from)
    .collect())
}

fn stock() -> Result<Stock> {
    Stock::builtin().map_err(|e| StoreError::Config(e.to_string()))
}

pub(crate) fn replay(records: &[LedgerRecord]) -> Result<LedgerState> {
    chain::replay(records, LedgerState::new(stock()?))
        .map_err(|b| StoreError::Corrupt(b.to_string()))
}
/// The session a ledger draw or waste names, from its record: its patient, the drug of its
/// verified order (and the vial strength the order was prepared from, where the stored order
/// names one), and whether its state allows a draw or a waste. `None` when there is no such
/// session.
///
/// A draw is allowed once a verified dose order is attached to the session and until the
/// record is signed, except in a cancelled session: the ledger is reconciled before the
/// signature, so a draw made before dosing may still be entered after discharge or transfer,
/// but nothing is drawn for a session that was cancelled or is signed. A waste is allowed
/// until the record is signed (drug drawn for a session later cancelled is wasted).
async fn session_target(tx: &mut Tx, session_id: i64) -> Result<Option<SessionTarget>> {
    use ketcare_session::{Mode, Phase, Session};
    let Some((patient_id, body, signed)) = sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT patient_id, body, signed FROM treatment_sessions WHERE id = $1",
    )
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let session: Session =
        serde_json::from_str(&body).map_err(|_| corrupt("treatment_sessions.body", &body))?;
    let mut drug = match session.plan.mode {
        Mode::Infusion => Drug::RacemicKetamine,
        Mode::Esketamine => Drug::Esketamine,
    };
    let mut vial = None;
    let dose = session.checklist.dose.as_ref();
    if let Some(d) = dose {
        // The stored order, where it is this patient's: its drug and vial strength.
        let order = sqlx::query(
            "SELECT body FROM clinical_records WHERE id = $1 AND patient_id = $2 AND kind = 'dose_order'",
        )
        .bind(d.order_id)
        .bind(patient_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(o) = order {
            let body: String = o.try_get("body")?;
            let v: serde_json::Value =
                serde_json::from_str(&body).map_err(|_| corrupt("clinical_records.body", &body))?;
            let calc = &v["calculation"];
            if !calc["esketamine"].is_null() {
                drug = Drug::Esketamine;
            } else if calc["components"].is_array() {
                drug = Drug::RacemicKetamine;
                vial = calc["components"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["preparation"]["vial_concentration"]["value"].as_f64())
                    .map(|mg_per_ml| (mg_per_ml * 1000.0).round() as i64)
                    .next();
            }
        }
    }
    let signed = signed != 0 || session.signature.is_some();
    let draw_refused = if signed {
        Some(format!(
            "session {session_id} is signed: its ledger is closed"
        ))
    } else if session.phase == Phase::Cancelled {
        Some(format!(
            "session {session_id} was cancelled: nothing is drawn for it"
        ))
    } else if dose.is_none() {
        Some(format!(
            "session {session_id} has no verified dose order attached: attach the verified order before drawing"
        ))
    } else {
        None
    };
    let waste_refused =
        signed.then(|| format!("session {session_id} is signed: its ledger is closed"));
    Ok(Some(SessionTarget {
        session_id,
        patient_id,
        drug,
        vial_milli_mg_per_ml: vial,
        draw_refused,
        waste_refused,
    }))
}

fn ledger_actor(actor: &Actor) -> Result<LedgerActor> {
    match (actor.user_id, actor.role) {
        (Some(id), Some(role)) => Ok(LedgerActor {
            user_id: id.get(),
            username: actor.username.clone(),
            role,
        }),
        _ => Err(StoreError::Forbidden {
            permission: Permission::LedgerDraw,
        }),
    }
}

impl SqlStore {
    /// Replaces each witness's name and role with those of their account.
    async fn resolve_witnesses(&self, tx: &mut Tx, event: &LedgerEvent) -> Result<LedgerEvent> {
        let mut e = event.clone();
        async fn fix(tx: &mut Tx, field: &str, w: &mut Witness) -> Result<()> {
            let (username, role) = user_exists(tx, w.user_id)
                .await?
                .ok_or_else(|| invalid(field, format!("no user {}", w.user_id)))?;
            w.username = username;
            w.role = role;
            Ok(())
        }
        match &mut e {
            LedgerEvent::Waste {
                witness: Some(w), ..
            } => fix(tx, "witness", w).await?,
            LedgerEvent::Destroy { witnesses, .. } => {
                for (i, w) in witnesses.iter_mut().enumerate() {
                    fix(tx, &format!("witnesses[{i}]"), w).await?;
                }
            }
            _ => {}
        }
        Ok(e)
    }
    pub(crate) async fn ledger_append(
        &self,
        actor: &Actor,
        event: &LedgerEvent,
    ) -> Result<LedgerRecord> {
        require(actor, event.permission())?;
        let la = ledger_actor(actor)?;
        let mut tx = self.unit(actor).await?;
        // Lock the ledger's head too: the chain stays linear even if a future writer skips the
        // audit head.
        sqlx::query("UPDATE ops_ledger_head SET seq = seq WHERE id = 1")
            .execute(&mut **tx)
            .await?;
        let mut event = self.resolve_witnesses(&mut tx, event).await?;
        // A draw or a waste is checked against the session it names, as the record has it.
        let target = match event.session_id() {
            Some(sid) => session_target(&mut tx, sid).await?,
            None => None,
        };
        if let (LedgerEvent::Draw { patient_id, .. }, Some(t)) = (&mut event, &target)
            && *patient_id == 0
        {
            *patient_id = t.patient_id;
        }
        let records = ledger_records_tx(&mut tx).await?;
        let mut state = replay(&records)?;
        state
            .check_session(&event, target.as_ref())
            .map_err(|e| invalid(&e.field, e.message))?;
        if let LedgerEvent::Draw { patient_id, .. } = &event {
            load_patient(&mut tx, PatientId::new(*patient_id)).await?;
        }
        // An inventory records what the ledger holds at that moment, whatever the request says.
        let event = match event {
            LedgerEvent::Inventory {
                inventory,
                taken,
                time,
                registrant_name,
                registrant_address,
                dea_number,
                ..
            } => LedgerEvent::Inventory {
                inventory,
                taken,
                time,
                registrant_name,
                registrant_address,
                dea_number,
                lines: state.inventory_lines(),
            },
            other => other,
        };
        let (hseq, hhash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM ops_ledger_head WHERE id = 1")
                .fetch_one(&mut **tx)
                .await?;
        let prev = (hseq > 0).then_some((hseq, hhash.as_str()));
        let now = Timestamp::now();
        let rec =
            LedgerRecord::next(prev, now, &la, &event).map_err(|e| invalid(&e.field, e.message))?;
        state
            .apply(rec.seq, now, &la, &event)
            .map_err(|e| invalid(&e.field, e.message))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO ops_ledger ({LEDGER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )))
        .bind(rec.seq)
        .bind(&rec.at)
        .bind(rec.user_id)
        .bind(&rec.username)
        .bind(&rec.role)
        .bind(&rec.kind)
        .bind(rec.session_id)
        .bind(&rec.body)
        .bind(&rec.prev_hash)
        .bind(&rec.hash)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE ops_ledger_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(rec.seq)
            .bind(&rec.hash)
            .execute(&mut **tx)
            .await?;
        let patient = match &event {
            LedgerEvent::Draw { patient_id, .. } => Some(*patient_id),
            LedgerEvent::Waste { session_id, .. } => {
                state.sessions.get(session_id).map(|s| s.patient_id)
            }
            _ => None,
        };
        audit(
            &mut tx,
            &format!("ledger.{}", rec.kind),
            patient,
            format!("ledger entry {}", rec.seq),
        )
        .await?;
        tx.commit().await?;
        Ok(rec)
    }

    pub(crate) async fn ledger_records(&self, actor: &Actor) -> Result<Vec<LedgerRecord>> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let out = ledger_records_tx(&mut tx).await?;
        audit(
            &mut tx,
            "ledger.read",
            None,
            format!("{} entries", out.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn ledger_state(&self, actor: &Actor) -> Result<LedgerState> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let records = ledger_records_tx(&mut tx).await?;
        audit(
            &mut tx,
            "ledger.read",
            None,
            format!("{} entries", records.len()),
        )
        .await?;
        tx.commit().await?;
        replay(&records)
    }

    pub(crate) async fn verify_ledger(&self) -> Result<LedgerVerification> {
        let mut tx = self.pool.begin().await?;
        let records = ledger_records_tx(&mut tx).await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM ops_ledger_head WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let head_ref = head
            .as_ref()
            .map(|(s, h)| (*s, h.as_str()))
            .filter(|(s, _)| *s > 0);
        let n = records.len() as u64;
        Ok(match chain::verify(&records, head_ref) {
            // An intact chain is also replayed: every entry must still obey the ledger's rules.
            Ok(n) => LedgerVerification {
                entries: n,
                broken: chain::replay(&records, LedgerState::new(stock()?)).err(),
            },
            Err(b) => LedgerVerification {
                entries: n,
                broken: Some(b),
            },
        })
    }
}
