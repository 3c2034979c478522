//! Chairs, staff on site and bookings: planning a course, moving and cancelling, with the
//! conflicts checked inside the write transaction.

use super::*;
use crate::sites::SiteScope;

fn parse_datetime(col: &str, s: &str) -> Result<DateTime> {
    s.parse().map_err(|_| corrupt(col, s))
}
const BOOKING_COLUMNS: &str = "id, course_id, patient_id, chair_id, nurse_id, prescriber_required, start_at, end_at, status, phase";

/// An `ops_bookings` row as stored (`BOOKING_COLUMNS`).
#[derive(sqlx::FromRow)]
struct BookingRow {
    id: BookingId,
    course_id: Option<i64>,
    patient_id: i64,
    chair_id: i64,
    nurse_id: i64,
    prescriber_required: i64,
    start_at: String,
    end_at: String,
    status: String,
    phase: String,
}

impl TryFrom<BookingRow> for Booking {
    type Error = StoreError;
    fn try_from(r: BookingRow) -> Result<Self> {
        Ok(Booking {
            id: r.id,
            course_id: r.course_id,
            patient_id: r.patient_id,
            chair_id: r.chair_id,
            nurse_id: r.nurse_id,
            prescriber_required: r.prescriber_required != 0,
            start: parse_datetime("start_at", &r.start_at)?,
            end: parse_datetime("end_at", &r.end_at)?,
            status: BookingStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            phase: PhaseKind::parse(&r.phase).ok_or_else(|| corrupt("phase", &r.phase))?,
        })
    }
}
/// Booking `id` and its site, as `actor` may see them: not found outside the actor's sites.
async fn load_booking_for(tx: &mut Tx, actor: &Actor, id: BookingId) -> Result<(Booking, i64)> {
    let b = load_booking(tx, id).await?;
    let site: i64 = sqlx::query_scalar("SELECT site_id FROM ops_bookings WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    crate::sites::check_site(tx, actor, site, format!("booking {id}")).await?;
    Ok((b, site))
}

async fn load_booking(tx: &mut Tx, id: BookingId) -> Result<Booking> {
    let row = sqlx::query_as::<_, BookingRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM ops_bookings WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("booking {id}"),
    })?;
    Booking::try_from(row)
}

/// The bookings of `sites` overlapping the window (conflicts are checked against every site's:
/// a chair or a nurse is in one place at a time).
async fn bookings_in(
    tx: &mut Tx,
    sites: &SiteScope,
    from: DateTime,
    to: DateTime,
) -> Result<Vec<Booking>> {
    sqlx::query_as::<_, BookingRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM ops_bookings WHERE start_at < $1 AND end_at > $2 AND {} ORDER BY start_at, id",
        sites.sql("site_id")
    )))
    .bind(to.to_string())
    .bind(from.to_string())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(Booking::try_from)
    .collect()
}

/// The prescribers rostered at `sites` in the window (a prescriber on site covers that site's
/// chairs only).
async fn on_site_in(
    tx: &mut Tx,
    sites: &SiteScope,
    from: DateTime,
    to: DateTime,
) -> Result<Vec<OnSite>> {
    sqlx::query_as::<_, (i64, i64, String, String)>(sqlx::AssertSqlSafe(format!(
        "SELECT id, user_id, start_at, end_at FROM ops_on_site
         WHERE start_at < $1 AND end_at > $2 AND {}
           AND user_id NOT IN (SELECT id FROM users WHERE disabled_at IS NOT NULL)
         ORDER BY start_at",
        sites.sql("site_id")
    )))
    .bind(to.to_string())
    .bind(from.to_string())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(id, user_id, start, end)| {
        Ok(OnSite {
            id,
            user_id,
            start: parse_datetime("start_at", &start)?,
            end: parse_datetime("end_at", &end)?,
        })
    })
    .collect()
}

/// The bookings at `site` that need a prescriber on site and would lose it were the roster
/// entries `leaving` taken off: those `entry` (one of them) covers that the site's other entries
/// do not. Each named with its time.
pub(crate) async fn left_uncovered(
    tx: &mut Tx,
    site: i64,
    entry: &OnSite,
    leaving: &[i64],
) -> Result<Vec<String>> {
    let here = SiteScope::Only(vec![site]);
    let needing: Vec<Booking> = bookings_in(tx, &here, entry.start, entry.end)
        .await?
        .into_iter()
        .filter(|b| {
            b.status == BookingStatus::Booked
                && b.prescriber_required
                && b.start < entry.end
                && entry.start < b.end
        })
        .collect();
    let Some((from, to)) = span(&needing) else {
        return Ok(Vec::new());
    };
    // The other entries over the whole of those bookings (one may run past this entry).
    let others: Vec<OnSite> = on_site_in(tx, &here, from, to)
        .await?
        .into_iter()
        .filter(|o| !leaving.contains(&o.id))
        .collect();
    Ok(needing
        .into_iter()
        .filter(|b| !ketcare_ops::schedule::covered(&others, b.start, b.end))
        .map(|b| format!("booking {} ({} – {})", b.id, b.start, b.end))
        .collect())
}

/// The window a set of bookings spans (for loading what they could conflict with).
fn span(bs: &[Booking]) -> Option<(DateTime, DateTime)> {
    let from = bs.iter().map(|b| b.start).min()?;
    let to = bs.iter().map(|b| b.end).max()?;
    Some((from, to))
}

impl SqlStore {
    pub(crate) async fn add_chair(
        &self,
        actor: &Actor,
        site: Option<i64>,
        name: &str,
    ) -> Result<Chair> {
        require(actor, Permission::Schedule)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(invalid("name", "a chair needs a name of 1–60 characters"));
        }
        let mut tx = self.unit(actor).await?;
        let site = crate::sites::acting_site(&mut tx, actor, site).await?;
        // Chair names are unique across the organisation: the monitors name a chair, and a
        // session is found by it.
        let taken = sqlx::query("SELECT id FROM ops_chairs WHERE LOWER(name) = LOWER($1)")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_some() {
            return Err(invalid("name", "a chair of that name exists"));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO ops_chairs (name, created_at, site_id) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(now_rfc3339())
        .bind(site)
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        audit(
            &mut tx,
            "chair.create",
            None,
            format!("chair {id}: {name} at site {site}"),
        )
        .await?;
        tx.commit().await?;
        Ok(Chair {
            id,
            name: name.to_owned(),
            site_id: site,
        })
    }

    pub(crate) async fn chairs(&self, actor: &Actor) -> Result<Vec<Chair>> {
        require(actor, Permission::Schedule)?;
        let mut tx = self.pool.begin().await?;
        let scope = crate::sites::scope_of(&mut tx, actor).await?;
        let out = sqlx::query_as::<_, (i64, String, i64)>(sqlx::AssertSqlSafe(format!(
            "SELECT id, name, site_id FROM ops_chairs WHERE {} ORDER BY id",
            scope.sql("site_id")
        )))
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(id, name, site_id)| Chair { id, name, site_id })
        .collect();
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn add_on_site(
        &self,
        actor: &Actor,
        site: Option<i64>,
        user: UserId,
        start: DateTime,
        end: DateTime,
    ) -> Result<OnSite> {
        require(actor, Permission::Schedule)?;
        if end <= start {
            return Err(invalid("end", "must be after the start"));
        }
        let mut tx = self.unit(actor).await?;
        if user_exists(&mut tx, user.get()).await?.is_none() {
            return Err(invalid("user_id", "no such user"));
        }
        let site = crate::sites::acting_site(&mut tx, actor, site).await?;
        // The role the account holds at this site (it may hold another elsewhere).
        match crate::sites::role_at(&mut tx, user.get(), site).await? {
            Some((_, Role::Prescriber)) => {}
            Some(_) => {
                return Err(invalid(
                    "user_id",
                    format!(
                        "only a prescriber is rostered on site, and user {user} is not one at site {site}"
                    ),
                ));
            }
            None => {
                return Err(invalid(
                    "user_id",
                    format!(
                        "user {user} does not work at site {site} (or the account is disabled)"
                    ),
                ));
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ops_on_site (user_id, start_at, end_at, site_id) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user.get())
        .bind(start.to_string())
        .bind(end.to_string())
        .bind(site)
        .fetch_one(&mut **tx)
        .await?;
        audit(
            &mut tx,
            "roster.prescriber_on_site",
            None,
            format!("user {user} at site {site}: {start} – {end}"),
        )
        .await?;
        tx.commit().await?;
        Ok(OnSite {
            id,
            user_id: user.get(),
            start,
            end,
        })
    }

    /// Takes roster entry `id` off the roster, audited; refused, naming `on_site`, while a booking
    /// that needs a prescriber on site is covered by it and by no other entry.
    pub(crate) async fn remove_on_site(&self, actor: &Actor, id: i64) -> Result<OnSite> {
        require(actor, Permission::Schedule)?;
        let mut tx = self.unit(actor).await?;
        let row: Option<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT user_id, start_at, end_at, site_id FROM ops_on_site WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((user_id, start, end, site)) = row else {
            return Err(StoreError::NotFound {
                what: format!("roster entry {id}"),
            });
        };
        crate::sites::check_site(&mut tx, actor, site, format!("roster entry {id}")).await?;
        // What was rostered once the entry began is the record of who was on site: kept.
        let zone: Option<String> = sqlx::query_scalar("SELECT time_zone FROM sites WHERE id = $1")
            .bind(site)
            .fetch_optional(&mut **tx)
            .await?;
        let began = start
            .parse::<DateTime>()
            .ok()
            .and_then(|s| {
                s.to_zoned(crate::sites::zone_named(zone.as_deref().unwrap_or("")))
                    .ok()
            })
            .is_none_or(|s| s.timestamp() <= Timestamp::now());
        if began {
            return Err(invalid(
                "on_site",
                format!(
                    "roster entry {id} began at {start}: what was rostered then is kept as the record of who was on site"
                ),
            ));
        }
        let entry = OnSite {
            id,
            user_id,
            start: parse_datetime("start_at", &start)?,
            end: parse_datetime("end_at", &end)?,
        };
        let uncovered = left_uncovered(&mut tx, site, &entry, &[id]).await?;
        if !uncovered.is_empty() {
            return Err(invalid(
                "on_site",
                format!(
                    "{} {} a prescriber on site that only this entry covers; roster another prescriber first",
                    uncovered.join(", "),
                    if uncovered.len() == 1 {
                        "needs"
                    } else {
                        "need"
                    }
                ),
            ));
        }
        sqlx::query("DELETE FROM ops_on_site WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        audit(
            &mut tx,
            "roster.prescriber_off_site",
            None,
            format!("roster entry {id}: user {user_id} at site {site}: {start} – {end}, removed"),
        )
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    pub(crate) async fn on_site(
        &self,
        actor: &Actor,
        from: DateTime,
        to: DateTime,
    ) -> Result<Vec<OnSite>> {
        require(actor, Permission::Schedule)?;
        let mut tx = self.pool.begin().await?;
        let scope = crate::sites::scope_of(&mut tx, actor).await?;
        let out = on_site_in(&mut tx, &scope, from, to).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn staff(
        &self,
        actor: &Actor,
        role: Role,
    ) -> Result<Vec<(i64, String, String)>> {
        // The staff directory (names and roles, no credentials) is also the care team's: whoever
        // may read a patient may see who acts on the record.
        if !(actor.may(Permission::Schedule)
            || actor.may(Permission::LedgerRead)
            || actor.may(Permission::PatientRead))
        {
            return Err(StoreError::Forbidden {
                permission: Permission::Schedule,
            });
        }
        // The staff of the actor's sites holding `role` there: those of every site whose own role
        // it is, and those listed at one of the actor's sites with it (their own there, or the
        // account's).
        let mut tx = self.pool.begin().await?;
        let scope = crate::sites::scope_of(&mut tx, actor).await?;
        let out = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, username, display_name FROM users u
             WHERE (u.all_sites = 1 AND u.role = $1)
                OR (u.all_sites = 0 AND u.id IN (SELECT us.user_id FROM user_sites us
                     WHERE us.user_id = u.id AND COALESCE(us.role, u.role) = $1 AND {}))
             ORDER BY username",
            scope.sql("us.site_id")
        )))
        .bind(role.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn bookings(
        &self,
        actor: &Actor,
        from: DateTime,
        to: DateTime,
    ) -> Result<Vec<Booking>> {
        let mut tx = self.write(actor, Permission::Schedule).await?;
        let scope = crate::sites::scope_of(&mut tx, actor).await?;
        let out = bookings_in(&mut tx, &scope, from, to).await?;
        // Each patient shown on the calendar is an audited access.
        let mut patients: Vec<i64> = out.iter().map(|b| b.patient_id).collect();
        patients.sort_unstable();
        patients.dedup();
        if patients.is_empty() {
            // No patient shown, nothing to record: the unit is dropped (nothing was written).
            return Ok(out);
        }
        for p in patients {
            audit(&mut tx, "schedule.view", Some(p), format!("{from} – {to}")).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn course_groups(
        &self,
        actor: &Actor,
    ) -> Result<Vec<(String, Vec<PatientId>)>> {
        let mut tx = self.write(actor, Permission::ClinicalRead).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT DISTINCT protocol_id, patient_id FROM ops_courses ORDER BY protocol_id, patient_id",
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut groups: Vec<(String, Vec<PatientId>)> = Vec::new();
        for (protocol, patient) in rows {
            match groups.last_mut() {
                Some((p, members)) if *p == protocol => members.push(PatientId::new(patient)),
                _ => groups.push((protocol, vec![PatientId::new(patient)])),
            }
        }
        audit(
            &mut tx,
            "group.list",
            None,
            format!("{} course groups", groups.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(groups)
    }

    pub(crate) async fn patient_bookings(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<Booking>> {
        let mut tx = self.write(actor, Permission::PatientRead).await?;
        let scope = crate::sites::scope_of(&mut tx, actor).await?;
        let out = sqlx::query_as::<_, BookingRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {BOOKING_COLUMNS} FROM ops_bookings WHERE patient_id = $1 AND {} ORDER BY start_at, id",
            scope.sql("site_id")
        )))
        .bind(patient)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(Booking::try_from)
        .collect::<Result<Vec<_>>>()?;
        audit(
            &mut tx,
            "booking.read",
            Some(patient.get()),
            format!("{} bookings", out.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn booking(&self, actor: &Actor, id: BookingId) -> Result<Booking> {
        let mut tx = self.write(actor, Permission::Schedule).await?;
        let (b, _) = load_booking_for(&mut tx, actor, id).await?;
        audit(
            &mut tx,
            "booking.read",
            Some(b.patient_id),
            format!("booking {id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(b)
    }

    pub(crate) async fn book(
        &self,
        actor: &Actor,
        course: Option<&NewCourse>,
        requests: &[Booking],
        staffing: Staffing,
    ) -> Result<BookOutcome> {
        require(actor, Permission::Schedule)?;
        let Some((from, to)) = span(requests) else {
            return Err(invalid("sessions", "nothing to book"));
        };
        let mut tx = self.unit(actor).await?;
        let mut patients: Vec<i64> = requests.iter().map(|b| b.patient_id).collect();
        patients.dedup();
        for p in &patients {
            load_patient(&mut tx, PatientId::new(*p)).await?;
        }
        // Every session of one request is at one site: its chairs' (each chair's site as
        // stored), which must be the actor's; its nurse must work there.
        let scope = crate::sites::scope_of(&mut tx, actor).await?;
        let mut site = None;
        for b in requests {
            let chair_site: Option<i64> =
                sqlx::query_scalar("SELECT site_id FROM ops_chairs WHERE id = $1")
                    .bind(b.chair_id)
                    .fetch_optional(&mut **tx)
                    .await?;
            let chair_site = match chair_site {
                Some(s) if scope.admits(s) => s,
                _ => return Err(invalid("chair_id", format!("no chair {}", b.chair_id))),
            };
            if site.is_some_and(|s| s != chair_site) {
                return Err(invalid(
                    "chair_id",
                    "the sessions of one booking are at one site",
                ));
            }
            site = Some(chair_site);
            // The role the nurse holds at the chair's site (it may be another elsewhere).
            match crate::sites::role_at(&mut tx, b.nurse_id, chair_site).await? {
                Some((_, Role::Nurse)) => {}
                Some(_) => {
                    return Err(invalid(
                        "nurse_id",
                        format!("user {} is not a nurse at site {chair_site}", b.nurse_id),
                    ));
                }
                None if user_exists(&mut tx, b.nurse_id).await?.is_some() => {
                    return Err(invalid(
                        "nurse_id",
                        format!(
                            "user {} does not work at site {chair_site} (or the account is disabled)",
                            b.nurse_id
                        ),
                    ));
                }
                None => {
                    return Err(invalid(
                        "nurse_id",
                        format!("user {} is not a nurse", b.nurse_id),
                    ));
                }
            }
        }
        let site = site.unwrap_or(crate::sites::DEFAULT_SITE);
        if let Some(c) = course {
            crate::sites::check_protocol_site(&mut tx, &c.protocol_id, site, "protocol_id").await?;
        }
        // Chairs and people are checked across every site (a nurse is in one place at a time);
        // the prescriber on site must be at this one.
        let existing = bookings_in(&mut tx, &SiteScope::All, from, to).await?;
        let prescribers = on_site_in(&mut tx, &SiteScope::Only(vec![site]), from, to).await?;
        let refused =
            ketcare_ops::schedule::conflicts_all(&existing, requests, &prescribers, staffing);
        if !refused.is_empty() {
            return Ok(BookOutcome::Refused(refused));
        }
        let now = now_rfc3339();
        let course_id = match course {
            Some(c) => {
                if patients != [c.patient_id.get()] {
                    return Err(invalid("patient_id", "a course is for one patient"));
                }
                Some(
                    sqlx::query(
                        "INSERT INTO ops_courses (patient_id, template_id, protocol_id, created_by, created_at)
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(c.patient_id.get())
                    .bind(&c.template_id)
                    .bind(&c.protocol_id)
                    .bind(&actor.username)
                    .bind(&now)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get::<i64, _>("id")?,
                )
            }
            None => None,
        };
        let mut booked = Vec::new();
        for b in requests {
            let id: BookingId = sqlx::query(
                "INSERT INTO ops_bookings (course_id, patient_id, chair_id, nurse_id, prescriber_required, start_at, end_at, status, phase, updated_at, site_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'booked', $8, $9, $10) RETURNING id",
            )
            .bind(course_id)
            .bind(b.patient_id)
            .bind(b.chair_id)
            .bind(b.nurse_id)
            .bind(i64::from(b.prescriber_required))
            .bind(b.start.to_string())
            .bind(b.end.to_string())
            .bind(b.phase.as_str())
            .bind(&now)
            .bind(site)
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?;
            audit(
                &mut tx,
                "booking.create",
                Some(b.patient_id),
                format!("booking {id}: chair {} {} – {}", b.chair_id, b.start, b.end),
            )
            .await?;
            booked.push(load_booking(&mut tx, id).await?);
        }
        tx.commit().await?;
        Ok(BookOutcome::Booked {
            course_id,
            bookings: booked,
        })
    }

    pub(crate) async fn move_booking(
        &self,
        actor: &Actor,
        id: BookingId,
        new_start: DateTime,
        mode: MoveMode,
        staffing: Staffing,
        apply: bool,
    ) -> Result<MovePlan> {
        let mut tx = self.write(actor, Permission::Schedule).await?;
        let (target, site) = load_booking_for(&mut tx, actor, id).await?;
        // Everything from the earlier of the two starts onwards may be involved.
        let from = target.start.min(new_start);
        let horizon = from
            .checked_add(jiff::Span::new().days(400))
            .map_err(|_| invalid("start", "out of range"))?;
        let existing = bookings_in(
            &mut tx,
            &SiteScope::All,
            from.saturating_sub(jiff::Span::new().days(1)),
            horizon,
        )
        .await?;
        let prescribers = on_site_in(&mut tx, &SiteScope::Only(vec![site]), from, horizon).await?;
        let plan = ketcare_ops::schedule::plan_move(
            &existing,
            id,
            new_start,
            mode,
            &prescribers,
            staffing,
        )
        .map_err(|e| invalid("start", e.to_string()))?;
        // A clear plan with no move changes nothing (and has nothing to record).
        if apply && plan.is_clear() && !plan.moves.is_empty() {
            let now = now_rfc3339();
            for m in &plan.moves {
                let b = existing
                    .iter()
                    .find(|b| b.id == m.booking_id)
                    .ok_or_else(|| StoreError::Corrupt(format!("booking {}", m.booking_id)))?;
                let len = b
                    .start
                    .until(b.end)
                    .map_err(|_| corrupt("booking", &b.id.to_string()))?;
                let end =
                    m.to.checked_add(len)
                        .map_err(|_| invalid("start", "out of range"))?;
                sqlx::query("UPDATE ops_bookings SET start_at = $1, end_at = $2, updated_at = $3 WHERE id = $4")
                    .bind(m.to.to_string())
                    .bind(end.to_string())
                    .bind(&now)
                    .bind(m.booking_id)
                    .execute(&mut **tx)
                    .await?;
                audit(
                    &mut tx,
                    "booking.move",
                    Some(b.patient_id),
                    format!("booking {}: {} → {}", m.booking_id, m.from, m.to),
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(plan)
    }

    pub(crate) async fn set_booking_status(
        &self,
        actor: &Actor,
        id: BookingId,
        status: BookingStatus,
        reason: &str,
    ) -> Result<Booking> {
        require(actor, Permission::Schedule)?;
        if matches!(status, BookingStatus::Cancelled | BookingStatus::NoShow)
            && reason.trim().is_empty()
        {
            return Err(invalid("reason", "say why"));
        }
        let mut tx = self.unit(actor).await?;
        let (b, _) = load_booking_for(&mut tx, actor, id).await?;
        let to = b
            .status
            .transition(status)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        sqlx::query("UPDATE ops_bookings SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(to.as_str())
            .bind(reason.trim())
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        audit(
            &mut tx,
            &format!("booking.{}", to.as_str()),
            Some(b.patient_id),
            format!("booking {id}: {}", reason.trim()),
        )
        .await?;
        let out = load_booking(&mut tx, id).await?;
        tx.commit().await?;
        Ok(out)
    }
}
