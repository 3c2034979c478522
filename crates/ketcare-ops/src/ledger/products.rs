//! The products the ledger tracks and its rule numbers, from `data/ops/stock.toml`.

use crate::cited::{Cited, Provenance, data_error, line_near, parse_toml};
use crate::session_facts::Drug;
use ketcare_core::data::DataFileError;
use serde::{Deserialize, Serialize};

pub const BUILTIN_FILE: &str = "data/ops/stock.toml";
pub const BUILTIN_TEXT: &str = include_str!("../../../../data/ops/stock.toml");

/// A multiple-dose vial is tracked by volume; a single-use device whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Vial,
    Device,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductRow {
    key: String,
    drug: Drug,
    label: String,
    form: Form,
    concentration_mg_per_ml: Cited<f64>,
    volume_ml: Cited<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesRow {
    theft_loss_notice_business_days: Cited<u32>,
    form_106_days: Cited<u32>,
    biennial_inventory_years: Cited<u32>,
    destruction_witnesses: Cited<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StockFile {
    product: Vec<ProductRow>,
    rules: RulesRow,
}

/// A stock product with exact per-container amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub key: String,
    pub drug: Drug,
    pub label: String,
    pub form: Form,
    /// Concentration in µg per µL (= mg per mL), in thousandths: 50 mg/mL → 50_000.
    pub milli_mg_per_ml: i64,
    /// Volume of one container in µL.
    pub container_ul: i64,
    /// Amount of one container in µg.
    pub container_ug: i64,
    pub provenance: Vec<Provenance>,
}

impl Product {
    /// µg in `ul` microlitres of this product (exact for the stocked strengths).
    pub fn ug_in(&self, ul: i64) -> i64 {
        ul.saturating_mul(self.milli_mg_per_ml) / 1000
    }
    pub fn concentration_label(&self) -> String {
        crate::Micrograms(self.milli_mg_per_ml).to_string() + " mg/mL"
    }
}

/// A rule number with its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleValue {
    pub value: u32,
    pub source: Vec<String>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerRules {
    pub theft_loss_notice_business_days: RuleValue,
    pub form_106_days: RuleValue,
    pub biennial_inventory_years: RuleValue,
    pub destruction_witnesses: RuleValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    pub products: Vec<Product>,
    pub rules: LedgerRules,
}

fn thousandths(v: f64) -> Option<i64> {
    let t = (v * 1000.0).round();
    (v.is_finite() && v > 0.0 && (v * 1000.0 - t).abs() < 1e-6 && t < 1e12).then_some(t as i64)
}

impl Stock {
    pub fn builtin() -> Result<Self, DataFileError> {
        Self::parse(BUILTIN_FILE, BUILTIN_TEXT)
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, DataFileError> {
        let f: StockFile = parse_toml(file, text)?;
        let mut products = Vec::new();
        for p in f.product {
            let anchor = format!("key = \"{}\"", p.key);
            let fail = |field: &str, m: String| {
                data_error(
                    file,
                    line_near(text, &anchor, field),
                    &format!("product[{}].{field}", p.key),
                    m,
                )
            };
            if products.iter().any(|q: &Product| q.key == p.key) {
                return Err(fail("key", format!("product `{}` appears twice", p.key)));
            }
            let mut prov = Vec::new();
            let mut num = |field: &str, c: &Cited<f64>| -> Result<i64, DataFileError> {
                c.check(field).map_err(|(f, m)| fail(&f, m))?;
                match c {
                    Cited::Value {
                        value,
                        source,
                        status,
                        ..
                    } => {
                        prov.push(Provenance::Reference {
                            source: source.clone(),
                            status: status.clone(),
                        });
                        thousandths(*value).ok_or_else(|| {
                            fail(
                                field,
                                format!(
                                    "must be positive with at most three decimals; got {value}"
                                ),
                            )
                        })
                    }
                    Cited::SiteSetting { .. } => Err(fail(
                        field,
                        "a stock product's strength must be a cited value".into(),
                    )),
                }
            };
            let conc = num("concentration_mg_per_ml", &p.concentration_mg_per_ml)?;
            let vol = num("volume_ml", &p.volume_ml)?;
            let ug = vol.saturating_mul(conc) / 1000;
            products.push(Product {
                key: p.key,
                drug: p.drug,
                label: p.label,
                form: p.form,
                milli_mg_per_ml: conc,
                container_ul: vol,
                container_ug: ug,
                provenance: prov,
            });
        }
        let r = f.rules;
        let rule = |field: &str, c: &Cited<u32>| -> Result<RuleValue, DataFileError> {
            let fail = |m: String| {
                data_error(
                    file,
                    line_near(text, "[rules]", field),
                    &format!("rules.{field}"),
                    m,
                )
            };
            c.check(field).map_err(|(_, m)| fail(m))?;
            match c {
                Cited::Value {
                    value,
                    source,
                    status,
                    ..
                } if *value > 0 => Ok(RuleValue {
                    value: *value,
                    source: source.clone(),
                    status: status.clone(),
                }),
                _ => Err(fail("must be a cited value above 0".into())),
            }
        };
        Ok(Self {
            products,
            rules: LedgerRules {
                theft_loss_notice_business_days: rule(
                    "theft_loss_notice_business_days",
                    &r.theft_loss_notice_business_days,
                )?,
                form_106_days: rule("form_106_days", &r.form_106_days)?,
                biennial_inventory_years: rule(
                    "biennial_inventory_years",
                    &r.biennial_inventory_years,
                )?,
                destruction_witnesses: rule("destruction_witnesses", &r.destruction_witnesses)?,
            },
        })
    }

    pub fn product(&self, key: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_products_have_exact_amounts() {
        let s = Stock::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let amounts: Vec<(&str, i64, i64)> = s
            .products
            .iter()
            .map(|p| (p.key.as_str(), p.container_ul, p.container_ug))
            .collect();
        assert_eq!(
            amounts,
            vec![
                ("ketamine-10", 20_000, 200_000),
                ("ketamine-50", 10_000, 500_000),
                ("ketamine-100", 5_000, 500_000),
                ("esketamine-28", 200, 28_000),
            ]
        );
        assert_eq!(s.rules.form_106_days.value, 45);
    }

    #[test]
    fn a_bad_stock_file_names_the_field() {
        let t = BUILTIN_TEXT.replacen("volume_ml = { value = 10,", "volume_ml = { value = -10,", 1);
        let e = Stock::parse("stock.toml", &t)
            .err()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(e.field, "product[ketamine-50].volume_ml");
        assert!(e.line > 0);
        let t = BUILTIN_TEXT.replacen(
            "form_106_days = { value = 45",
            "form_106_days = { value = 0",
            1,
        );
        let e = Stock::parse("stock.toml", &t)
            .err()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(e.field, "rules.form_106_days");
    }
}
