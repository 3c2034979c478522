//! The clinic's licensed item wording, one version per upload and instrument.

use super::*;

async fn text_versions(tx: &mut Tx, only_current: bool) -> Result<Vec<TextVersion>> {
    let sql = if only_current {
        "SELECT id, instrument, version, uploaded_by, uploaded_at FROM measure_text_versions v
         WHERE version = (SELECT MAX(version) FROM measure_text_versions w WHERE w.instrument = v.instrument)
         ORDER BY instrument"
    } else {
        "SELECT id, instrument, version, uploaded_by, uploaded_at FROM measure_text_versions
         ORDER BY instrument, version DESC"
    };
    let heads: Vec<(i64, String, i64, String, String)> =
        sqlx::query_as(sql).fetch_all(&mut **tx).await?;
    let mut out = Vec::with_capacity(heads.len());
    for (id, instrument, version, uploaded_by, uploaded_at) in heads {
        let items = sqlx::query_as::<_, ItemText>(
            "SELECT item, text FROM measure_item_texts WHERE version_id = $1 ORDER BY item",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        out.push(TextVersion {
            id,
            instrument,
            version,
            uploaded_by,
            uploaded_at,
            items,
        });
    }
    Ok(out)
}

impl SqlStore {
    pub(crate) async fn upload_item_texts(
        &self,
        actor: &Actor,
        instrument: &str,
        items: &[ItemText],
    ) -> Result<TextVersion> {
        require(actor, Permission::SiteSettingsWrite)?;
        if items.is_empty() {
            return Err(StoreError::Invalid(FieldErrors::single(
                "items",
                "at least one item text is required",
            )));
        }
        let mut tx = self.unit(actor).await?;
        let last: Option<i64> = sqlx::query(
            "SELECT MAX(version) AS v FROM measure_text_versions WHERE instrument = $1",
        )
        .bind(instrument)
        .fetch_one(&mut **tx)
        .await?
        .try_get("v")?;
        let version = last.unwrap_or(0) + 1;
        let id: i64 = sqlx::query(
            "INSERT INTO measure_text_versions (instrument, version, uploaded_by, uploaded_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(instrument)
        .bind(version)
        .bind(&actor.username)
        .bind(now_rfc3339())
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        for it in items {
            sqlx::query(
                "INSERT INTO measure_item_texts (version_id, item, text) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(it.item)
            .bind(&it.text)
            .execute(&mut **tx)
            .await?;
        }
        tx.audit(&AuditEvent::new(
            "measure_text.upload",
            None,
            format!("{instrument} version {version}: {} items", items.len()),
        ))
        .await?;
        let stored = text_versions(&mut tx, false)
            .await?
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| StoreError::Corrupt("measure_text_versions: row vanished".into()))?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(crate) async fn current_item_texts(&self) -> Result<Vec<TextVersion>> {
        // Not patient data, read without an actor: no audit record, and a read transaction only.
        let mut tx = self.pool.begin().await?;
        let out = text_versions(&mut tx, true).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn item_text_versions(&self, actor: &Actor) -> Result<Vec<TextVersion>> {
        require(actor, Permission::SiteSettingsWrite)?;
        // The clinic's wording, not patient data: not audited, so a read transaction only.
        let mut tx = self.pool.begin().await?;
        let out = text_versions(&mut tx, false).await?;
        tx.commit().await?;
        Ok(out)
    }
}
