//! Billing prices per code.

use super::*;

impl SqlStore {
    pub(crate) async fn set_price(&self, actor: &Actor, code: &str, cents: i64) -> Result<()> {
        require(actor, Permission::SiteSettingsWrite)?;
        let book = ketcare_ops::billing::CodeBook::builtin()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        if book.get(code).is_none() {
            return Err(invalid("code", format!("unknown billing code `{code}`")));
        }
        if !(0..=100_000_000).contains(&cents) {
            return Err(invalid("price", "between 0 and 1,000,000.00"));
        }
        let mut tx = self.unit(actor).await?;
        let now = now_rfc3339();
        sqlx::query(
            "INSERT INTO ops_billing_prices (code, cents, set_by, set_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (code) DO UPDATE SET cents = excluded.cents, set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(code)
        .bind(cents)
        .bind(&actor.username)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
        audit(
            &mut tx,
            "billing.price",
            None,
            format!("{code}: {cents} cents"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn prices(&self, actor: &Actor) -> Result<PriceList> {
        if !(actor.may(Permission::BillingRead) || actor.may(Permission::SiteSettingsWrite)) {
            return Err(StoreError::Forbidden {
                permission: Permission::BillingRead,
            });
        }
        let mut out = PriceList::default();
        for (code, cents) in sqlx::query_as::<_, (String, i64)>(
            "SELECT code, cents FROM ops_billing_prices ORDER BY code",
        )
        .fetch_all(&self.pool)
        .await?
        {
            out.0.insert(code, cents);
        }
        Ok(out)
    }
}
