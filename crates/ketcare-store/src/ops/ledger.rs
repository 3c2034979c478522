//! The controlled-substance ledger: appending an event replayed against every earlier entry and
//! checked against the session record it names, reading, replaying and verifying the chain.

use super::*;

/// An `ops_ledger` row as stored (`LEDGER_COLUMNS`).
#[derive(sqlx::FromRow)]
struct LedgerRow {
    site_id: i64,
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
            site_id: r.site_id,
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

/// The record's fields as `LedgerRow` reads them: an entry's number is its site's (`site_seq`).
const LEDGER_COLUMNS: &str = "site_id, site_seq AS seq, at, user_id, username, role, kind, session_id, body, prev_hash, hash";

/// Every entry of `site`'s chain, in order.
pub(crate) async fn ledger_records_tx(tx: &mut Tx, site: i64) -> Result<Vec<LedgerRecord>> {
    Ok(sqlx::query_as::<_, LedgerRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {LEDGER_COLUMNS} FROM ops_ledger WHERE site_id = $1 ORDER BY site_seq"
    )))
    .bind(site)
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

/// The site a session was held at, as stored (`None`: no such session).
pub(crate) async fn session_site(tx: &mut Tx, session_id: i64) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT site_id FROM treatment_sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// The site whose ledger an event is entered in: a draw or a waste goes to its session's site
/// (a `site` that contradicts it is refused); anything else to the acting site.
async fn event_site(
    tx: &mut Tx,
    actor: &Actor,
    named: Option<i64>,
    event: &LedgerEvent,
) -> Result<i64> {
    let held = match event.session_id() {
        Some(sid) => session_site(tx, sid).await?,
        None => None,
    };
    match (held, named) {
        (Some(h), Some(n)) if h != n => Err(invalid(
            "site",
            format!(
                "session {} was held at site {h}: its drug is entered in that site's ledger",
                event.session_id().unwrap_or_default()
            ),
        )),
        (Some(h), _) => {
            crate::sites::check_site(
                tx,
                actor,
                h,
                format!("session {}", event.session_id().unwrap_or_default()),
            )
            .await?;
            Ok(h)
        }
        // A session that does not exist is named as such, before any question of site.
        (None, _) if event.session_id().is_some() => Err(invalid(
            "session_id",
            format!("no session {}", event.session_id().unwrap_or_default()),
        )),
        (None, n) => crate::sites::acting_site(tx, actor, n).await,
    }
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

/// The two registrations of a transfer between `site` and `other` (this site's, the other's),
/// in capitals: another site of the organisation, and both with a registration on record (a
/// transfer moves stock between two registrations). Refusals name `field`.
async fn transfer_parties(
    tx: &mut Tx,
    site: i64,
    other: i64,
    field: &str,
) -> Result<(String, String)> {
    if other == site {
        return Err(invalid(
            field,
            "that is this site: a transfer moves stock between two sites' ledgers",
        ));
    }
    let registration = |id: i64| {
        sqlx::query_scalar::<_, String>("SELECT dea_registration FROM sites WHERE id = $1").bind(id)
    };
    let theirs: Option<String> = registration(other).fetch_optional(&mut **tx).await?;
    let Some(theirs) = theirs else {
        return Err(invalid(field, format!("no site {other}")));
    };
    let ours: String = registration(site).fetch_one(&mut **tx).await?;
    for (id, dea) in [(site, &ours), (other, &theirs)] {
        if dea.trim().is_empty() {
            return Err(invalid(
                field,
                format!(
                    "site {id} has no DEA registration on record: a transfer is between two \
                     registrations (an administrator enters it under Sites on the users page)"
                ),
            ));
        }
    }
    Ok((ours.trim().to_uppercase(), theirs.trim().to_uppercase()))
}

/// A request's copy of what the record holds: empty (filled from the record), or the same.
fn same_or_fill<T: PartialEq + Clone + Default>(
    field: &str,
    given: &mut T,
    record: &T,
    words: impl FnOnce() -> String,
) -> Result<()> {
    if *given != T::default() && given != record {
        return Err(invalid(field, words()));
    }
    *given = record.clone();
    Ok(())
}

/// The first receipt of a transfer (by site and entry) that does not match the sending entry
/// it names, with why.
fn unpaired_transfer(chains: &[(i64, Vec<LedgerRecord>)]) -> Option<(i64, LedgerBreak)> {
    let parse = |r: &LedgerRecord| serde_json::from_str::<LedgerEvent>(&r.body).ok();
    for (site, records) in chains {
        for r in records.iter().filter(|r| r.kind == "transfer_in") {
            let broken = |reason: String| Some((*site, LedgerBreak { seq: r.seq, reason }));
            let Some(LedgerEvent::TransferIn {
                from_site,
                from_entry,
                from_registration,
                invoice,
                lines,
            }) = parse(r)
            else {
                return broken("the receipt of a transfer cannot be read".into());
            };
            let sent = chains
                .iter()
                .find(|(s, _)| *s == from_site)
                .and_then(|(_, rs)| rs.iter().find(|x| x.seq == from_entry))
                .and_then(parse);
            match sent {
                Some(LedgerEvent::TransferOut {
                    to_site,
                    from_registration: sent_by,
                    invoice: sent_invoice,
                    lines: sent_lines,
                    ..
                }) if to_site == *site
                    && sent_by == from_registration
                    && sent_invoice == invoice
                    && sent_lines == lines => {}
                _ => {
                    return broken(format!(
                        "the receipt does not match entry {from_entry} of site {from_site}'s ledger, the transfer it names"
                    ));
                }
            }
        }
    }
    None
}

/// Fills a transfer's sides from the record: the sending side's lines from its book and the
/// receiving site's registration; the receiving side's registration, invoice and lines from the
/// sending site's entry, which must be a transfer to this site. A request's copy of any of them
/// that contradicts the record is refused naming the field.
async fn fill_transfer(
    tx: &mut Tx,
    site: i64,
    state: &LedgerState,
    event: &mut LedgerEvent,
) -> Result<()> {
    match event {
        LedgerEvent::TransferOut {
            to_site,
            to_registration,
            from_registration,
            containers,
            lines,
            ..
        } => {
            let (ours, dea) = transfer_parties(tx, site, *to_site, "to_site").await?;
            *to_registration = to_registration.trim().to_uppercase();
            same_or_fill("to_registration", to_registration, &dea, || {
                format!("site {to_site}'s DEA registration is {dea}")
            })?;
            *from_registration = from_registration.trim().to_uppercase();
            same_or_fill("from_registration", from_registration, &ours, || {
                format!("this site's DEA registration is {ours}")
            })?;
            let book = state
                .transfer_lines(containers)
                .map_err(|e| invalid(&e.field, e.message))?;
            same_or_fill("lines", lines, &book, || {
                "must list the containers as this site's book has them".into()
            })
        }
        LedgerEvent::TransferIn {
            from_site,
            from_entry,
            from_registration,
            invoice,
            lines,
        } => {
            // Both registrations on record now; the sender's as it was when it sent them.
            transfer_parties(tx, site, *from_site, "from_site").await?;
            let sent: Option<(String, String)> = sqlx::query_as(
                "SELECT kind, body FROM ops_ledger WHERE site_id = $1 AND site_seq = $2",
            )
            .bind(*from_site)
            .bind(*from_entry)
            .fetch_optional(&mut **tx)
            .await?;
            let not_here = || {
                invalid(
                    "from_entry",
                    format!(
                        "entry {from_entry} of site {from_site}'s ledger is not a transfer to this site"
                    ),
                )
            };
            let Some((kind, body)) = sent else {
                return Err(not_here());
            };
            let sent: LedgerEvent = match kind.as_str() {
                "transfer_out" => serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("ledger entry body: {e}")))?,
                _ => return Err(not_here()),
            };
            let LedgerEvent::TransferOut {
                to_site,
                from_registration: dea,
                invoice: sent_invoice,
                lines: sent_lines,
                ..
            } = sent
            else {
                return Err(not_here());
            };
            if to_site != site {
                return Err(not_here());
            }
            *from_registration = from_registration.trim().to_uppercase();
            same_or_fill("from_registration", from_registration, &dea, || {
                format!("site {from_site}'s DEA registration is {dea}")
            })?;
            *invoice = invoice.trim().to_owned();
            same_or_fill("invoice", invoice, &sent_invoice, || {
                format!("the sending site's entry carries invoice {sent_invoice}")
            })?;
            same_or_fill("lines", lines, &sent_lines, || {
                "must list the containers as the sending site's entry does".into()
            })
        }
        _ => Ok(()),
    }
}

impl SqlStore {
    /// Replaces each witness's name and role with those of their account at `site` (where the
    /// witness must work: an account may hold another role at another site).
    async fn resolve_witnesses(
        &self,
        tx: &mut Tx,
        site: i64,
        event: &LedgerEvent,
    ) -> Result<LedgerEvent> {
        let mut e = event.clone();
        async fn fix(tx: &mut Tx, site: i64, field: &str, w: &mut Witness) -> Result<()> {
            let (username, role) = match crate::sites::role_at(tx, w.user_id, site).await? {
                Some(found) => found,
                None if user_exists(tx, w.user_id).await?.is_some() => {
                    return Err(invalid(
                        field,
                        format!(
                            "user {} does not work at site {site} (or the account is disabled)",
                            w.user_id
                        ),
                    ));
                }
                None => return Err(invalid(field, format!("no user {}", w.user_id))),
            };
            w.username = username;
            w.role = role;
            Ok(())
        }
        match &mut e {
            LedgerEvent::Waste {
                witness: Some(w), ..
            } => fix(tx, site, "witness", w).await?,
            LedgerEvent::Destroy { witnesses, .. } => {
                for (i, w) in witnesses.iter_mut().enumerate() {
                    fix(tx, site, &format!("witnesses[{i}]"), w).await?;
                }
            }
            _ => {}
        }
        Ok(e)
    }
    pub(crate) async fn ledger_append(
        &self,
        actor: &Actor,
        site: Option<i64>,
        event: &LedgerEvent,
    ) -> Result<LedgerRecord> {
        require(actor, event.permission())?;
        let la = ledger_actor(actor)?;
        let mut tx = self.unit(actor).await?;
        let site = event_site(&mut tx, actor, site, event).await?;
        // Lock the site's chain head too: the chain stays linear even if a future writer skips
        // the audit head.
        let (hseq, hhash): (i64, String) = sqlx::query_as(
            "UPDATE ops_ledger_heads SET seq = seq WHERE site_id = $1 RETURNING seq, hash",
        )
        .bind(site)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("site {site} has no ledger head")))?;
        let mut event = self.resolve_witnesses(&mut tx, site, event).await?;
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
        let records = ledger_records_tx(&mut tx, site).await?;
        let mut state = replay(&records)?;
        state
            .check_session(&event, target.as_ref())
            .map_err(|e| invalid(&e.field, e.message))?;
        if let LedgerEvent::Draw { patient_id, .. } = &event {
            load_patient(&mut tx, PatientId::new(*patient_id)).await?;
        }
        // An inventory records what the site's ledger holds at that moment, and the site's DEA
        // registration where the site record has one, whatever the request says.
        if let LedgerEvent::Inventory {
            dea_number, lines, ..
        } = &mut event
        {
            let registered: String =
                sqlx::query_scalar("SELECT dea_registration FROM sites WHERE id = $1")
                    .bind(site)
                    .fetch_one(&mut **tx)
                    .await?;
            let given = dea_number.trim();
            if !registered.is_empty()
                && !given.is_empty()
                && !registered.eq_ignore_ascii_case(given)
            {
                return Err(invalid(
                    "dea_number",
                    format!("the site's DEA registration is {registered}, not {given}"),
                ));
            }
            if !registered.is_empty() {
                *dea_number = registered;
            }
            *lines = state.inventory_lines();
        }
        fill_transfer(&mut tx, site, &state, &mut event).await?;
        let prev = (hseq > 0).then_some((hseq, hhash.as_str()));
        let now = Timestamp::now();
        let rec = LedgerRecord::next_at(site, prev, now, &la, &event)
            .map_err(|e| invalid(&e.field, e.message))?;
        state
            .apply(rec.seq, now, &la, &event)
            .map_err(|e| invalid(&e.field, e.message))?;
        // `seq` keys the row across the organisation; every write holds the audit chain's lock,
        // so the next key is free.
        let row_key: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM ops_ledger")
            .fetch_one(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO ops_ledger (seq, site_id, site_seq, at, user_id, username, role, kind, session_id, body, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(row_key)
        .bind(site)
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
        sqlx::query("UPDATE ops_ledger_heads SET seq = $1, hash = $2 WHERE site_id = $3")
            .bind(rec.seq)
            .bind(&rec.hash)
            .bind(site)
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
            format!("site {site} ledger entry {}", rec.seq),
        )
        .await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// `site`'s chain (the acting site when `None`), read under `LedgerRead` and audited.
    async fn ledger_read(&self, actor: &Actor, site: Option<i64>) -> Result<Vec<LedgerRecord>> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let site = crate::sites::acting_site(&mut tx, actor, site).await?;
        let out = ledger_records_tx(&mut tx, site).await?;
        audit(
            &mut tx,
            "ledger.read",
            None,
            format!("site {site}: {} entries", out.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn ledger_transfers_due(
        &self,
        actor: &Actor,
        site: Option<i64>,
    ) -> Result<Vec<TransferDue>> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let site = crate::sites::acting_site(&mut tx, actor, site).await?;
        let sent: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(
            "SELECT l.site_id, l.site_seq, l.at, l.username, l.body, s.name FROM ops_ledger l
             JOIN sites s ON s.id = l.site_id
             WHERE l.kind = 'transfer_out' AND l.site_id <> $1 ORDER BY l.seq",
        )
        .bind(site)
        .fetch_all(&mut **tx)
        .await?;
        let here = replay(&ledger_records_tx(&mut tx, site).await?)?;
        let mut due = Vec::new();
        for (from_site, from_entry, sent_at, sent_by, body, from_site_name) in sent {
            let event: LedgerEvent = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("ledger entry body: {e}")))?;
            if let LedgerEvent::TransferOut {
                to_site,
                invoice,
                lines,
                ..
            } = event
                && to_site == site
                && !here.has_received(from_site, from_entry)
            {
                due.push(TransferDue {
                    from_site,
                    from_site_name,
                    from_entry,
                    sent_at,
                    sent_by,
                    invoice,
                    lines,
                });
            }
        }
        audit(
            &mut tx,
            "ledger.read",
            None,
            format!("site {site}: {} transfers to receive", due.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(due)
    }

    pub(crate) async fn ledger_records(
        &self,
        actor: &Actor,
        site: Option<i64>,
    ) -> Result<Vec<LedgerRecord>> {
        self.ledger_read(actor, site).await
    }

    pub(crate) async fn ledger_state(
        &self,
        actor: &Actor,
        site: Option<i64>,
    ) -> Result<LedgerState> {
        replay(&self.ledger_read(actor, site).await?)
    }

    /// The ledger of the site `session` was held at, replayed (for its balance).
    pub(crate) async fn session_ledger_state(
        &self,
        actor: &Actor,
        session: i64,
    ) -> Result<LedgerState> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let site = session_site(&mut tx, session)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("session {session}"),
            })?;
        crate::sites::check_site(&mut tx, actor, site, format!("session {session}")).await?;
        let records = ledger_records_tx(&mut tx, site).await?;
        audit(
            &mut tx,
            "ledger.read",
            None,
            format!(
                "site {site}: {} entries, for session {session}",
                records.len()
            ),
        )
        .await?;
        tx.commit().await?;
        replay(&records)
    }

    /// Does a session's ledger balance? Its facts are the record's (`session_facts`, as the
    /// signature's gate reads them), on the ledger of the session's own site. The caller may
    /// add only what the record does not know yet: a `given` while the record documents none
    /// (the answer is then a preview, `given_from_record` false). A figure that contradicts the
    /// record — another patient, another `given`, the session cancelled or not — is refused
    /// naming the field.
    pub(crate) async fn ledger_balance(
        &self,
        actor: &Actor,
        session: SessionId,
        claimed: &BalanceClaim,
    ) -> Result<Balance> {
        let mut tx = self.write(actor, Permission::LedgerRead).await?;
        let rec = crate::sessions::load_session_for(&mut tx, actor, session).await?;
        let cancelled = rec.session.phase == ketcare_session::Phase::Cancelled;
        if claimed
            .patient_id
            .is_some_and(|p| p != rec.patient_id.get())
        {
            return Err(invalid(
                "patient_id",
                format!("session {session} is another patient's"),
            ));
        }
        if claimed.cancelled.is_some_and(|c| c != cancelled) {
            return Err(invalid(
                "cancelled",
                format!(
                    "the record says session {session} was {}cancelled",
                    if cancelled { "" } else { "not " }
                ),
            ));
        }
        // The record knows the mg given once it is documented or dosing has ended; before
        // that its running figure is not the session's.
        let s = &rec.session;
        let documented =
            s.given_confirmation.is_some() || s.given_mg.is_some() || s.dose_end().is_some();
        let known = if documented {
            crate::session_ops::session_facts(session, rec.patient_id, s)
        } else {
            Err(format!(
                "session {session} documents no mg given yet: enter the mg given to preview"
            ))
        };
        let (facts, from_record) = match known {
            Ok(f) => {
                if let Some(g) = claimed.given.filter(|g| *g != f.given) {
                    return Err(invalid(
                        "given",
                        format!(
                            "the record of session {session} says {} mg was given, not {} mg",
                            f.given, g
                        ),
                    ));
                }
                (f, true)
            }
            Err(missing) => {
                let given = match claimed.given {
                    Some(g) => g,
                    // Nothing is given in a cancelled session.
                    None if cancelled => ketcare_ops::Micrograms(0),
                    None => return Err(invalid("given", missing)),
                };
                use ketcare_ops::session_facts::Route;
                let (drug, route) = match rec.session.plan.mode {
                    ketcare_session::Mode::Infusion => (Drug::RacemicKetamine, Route::IvInfusion),
                    ketcare_session::Mode::Esketamine => (Drug::Esketamine, Route::Intranasal),
                };
                let facts = SessionFacts {
                    session_id: session.get(),
                    patient_id: rec.patient_id.get(),
                    drug,
                    route,
                    infusion_start: None,
                    infusion_stop: None,
                    infusion_minutes: None,
                    given,
                    cancelled,
                    em_level: None,
                    monitoring_minutes: None,
                };
                (facts, false)
            }
        };
        let records = ledger_records_tx(&mut tx, rec.site_id).await?;
        audit(
            &mut tx,
            "ledger.balance",
            Some(rec.patient_id.get()),
            format!("session {session} at site {}", rec.site_id),
        )
        .await?;
        tx.commit().await?;
        let mut b = ketcare_ops::session_balance(&facts, &replay(&records)?);
        if !from_record {
            b.given_from_record = false;
            b.message = format!(
                "Preview with the given you entered (the record documents none yet): {}",
                b.message
            );
        }
        Ok(b)
    }

    /// Verifies every site's chain on its own, against its own head.
    pub(crate) async fn verify_ledger(&self) -> Result<LedgerVerification> {
        let mut tx = self.pool.begin().await?;
        let heads: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT site_id, seq, hash FROM ops_ledger_heads ORDER BY site_id")
                .fetch_all(&mut *tx)
                .await?;
        let mut out = LedgerVerification {
            entries: 0,
            broken: None,
            site_id: None,
        };
        let mut chains: Vec<(i64, Vec<LedgerRecord>)> = Vec::new();
        for (site, hseq, hhash) in heads {
            let records = ledger_records_tx(&mut tx, site).await?;
            let head_ref = (hseq > 0).then_some((hseq, hhash.as_str()));
            let broken = match chain::verify(&records, head_ref) {
                // An intact chain is also replayed: every entry must still obey the rules.
                Ok(n) => {
                    out.entries += n;
                    chain::replay(&records, LedgerState::new(stock()?)).err()
                }
                Err(b) => {
                    out.entries += records.len() as u64;
                    Some(b)
                }
            };
            if out.broken.is_none() && broken.is_some() {
                out.broken = broken;
                out.site_id = Some(site);
            }
            chains.push((site, records));
        }
        // The two sides of every transfer agree: each receipt names a transfer to its own site
        // and copies its lines, invoice and sender's registration.
        if out.broken.is_none()
            && let Some((site, b)) = unpaired_transfer(&chains)
        {
            out.broken = Some(b);
            out.site_id = Some(site);
        }
        // An entry of a site with no head is outside every verified chain.
        let orphan: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(site_seq) FROM ops_ledger WHERE site_id NOT IN (SELECT site_id FROM ops_ledger_heads)",
        )
        .fetch_one(&mut *tx)
        .await?;
        if let (None, Some(seq)) = (&out.broken, orphan) {
            out.broken = Some(LedgerBreak {
                seq,
                reason: "the entry belongs to a site with no ledger head".into(),
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketcare_ops::ledger::TransferLine;

    fn line(lot: &str) -> TransferLine {
        TransferLine {
            container: 1,
            product: "ketamine-50".into(),
            ndc: "67457-108-10".into(),
            lot: lot.into(),
            expiry: jiff::civil::date(2030, 1, 31),
            remaining_ul: 10_000,
            remaining_ug: 500_000,
        }
    }

    fn record(site: i64, event: &LedgerEvent) -> LedgerRecord {
        let actor = LedgerActor {
            user_id: 1,
            username: "p".into(),
            role: ketcare_core::Role::Pharmacist,
        };
        LedgerRecord::next_at(site, None, Timestamp::UNIX_EPOCH, &actor, event)
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn a_receipt_must_match_the_transfer_it_names() {
        let sent = LedgerEvent::TransferOut {
            to_site: 2,
            to_registration: "FN1234563".into(),
            from_registration: "AB1234563".into(),
            containers: vec![1],
            invoice: "TR".into(),
            lines: vec![line("L1")],
        };
        let received = |lot: &str, from_entry: i64| LedgerEvent::TransferIn {
            from_site: 1,
            from_entry,
            from_registration: "AB1234563".into(),
            invoice: "TR".into(),
            lines: vec![line(lot)],
        };
        let chains = |r: LedgerEvent| vec![(1, vec![record(1, &sent)]), (2, vec![record(2, &r)])];
        assert!(unpaired_transfer(&chains(received("L1", 1))).is_none());
        // Another lot than was sent, or a receipt naming an entry that is not the transfer.
        for bad in [received("L2", 1), received("L1", 2)] {
            let (site, b) = unpaired_transfer(&chains(bad)).unwrap_or_else(|| unreachable!());
            assert_eq!((site, b.seq), (2, 1));
            assert!(b.reason.contains("does not match"), "{}", b.reason);
        }
        // A transfer to another site received here.
        let elsewhere = vec![
            (1, vec![record(1, &sent)]),
            (3, vec![record(3, &received("L1", 1))]),
        ];
        assert!(unpaired_transfer(&elsewhere).is_some());
    }
}
