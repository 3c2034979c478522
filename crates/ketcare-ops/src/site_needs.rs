//! Every site setting operations reads, with what it is for and what stays blocked while it is
//! unset, gathered from the data files (course templates, billing codes) and the core's own
//! settings, so the settings page can list them without a copy of the keys.

use crate::billing::{CodeBook, SiteBilling};
use crate::cited::Cited;
use crate::schedule::{NURSE_MAX_CONCURRENT_SETTING, Templates};
use serde::Serialize;
use std::collections::BTreeMap;

/// What an unset setting holds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Blocks {
    /// A course cannot be booked until the site sets it.
    Booking,
    /// A code is left off the superbill until the site turns it on.
    BillingLine,
    /// Nothing is blocked: the strictest reading applies while it is unset.
    Nothing,
}

impl Blocks {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Booking => "booking is refused while unset",
            Self::BillingLine => "the code is left off every superbill while unset",
            Self::Nothing => "unset: the strictest reading applies",
        }
    }
}

/// One site setting operations needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SettingNeed {
    pub key: String,
    /// What the value is for, and how to write it.
    pub purpose: String,
    pub blocks: Blocks,
    /// The course templates or billing codes that read it.
    pub used_by: Vec<String>,
}

fn add(
    out: &mut BTreeMap<String, SettingNeed>,
    key: &str,
    purpose: String,
    blocks: Blocks,
    user: &str,
) {
    let e = out.entry(key.to_owned()).or_insert_with(|| SettingNeed {
        key: key.to_owned(),
        purpose,
        blocks,
        used_by: Vec::new(),
    });
    e.blocks = e.blocks.min(blocks);
    if !e.used_by.iter().any(|u| u == user) {
        e.used_by.push(user.to_owned());
    }
}

fn site_key<T>(c: &Cited<T>) -> Option<&str> {
    match c {
        Cited::SiteSetting { site_setting, .. } => Some(site_setting),
        Cited::Value { .. } => None,
    }
}

/// The settings operations reads, sorted by key.
pub fn settings_needed(templates: &Templates, codes: &CodeBook) -> Vec<SettingNeed> {
    let mut out = BTreeMap::new();
    for t in templates.all() {
        let user = format!("course {} ({})", t.id, t.protocols.join(", "));
        let fields: [(Option<&str>, &str); 3] = [
            (
                site_key(&t.dose_minutes),
                "Dose time of one session, in minutes.",
            ),
            (
                site_key(&t.observation_minutes),
                "Minimum observation after the dose, in minutes; every slot is dose + observation.",
            ),
            (
                site_key(&t.prescriber_on_site),
                "Whether a prescriber must be on site during the session: 1 = yes, 2 = no.",
            ),
        ];
        for (key, purpose) in fields {
            if let Some(k) = key {
                add(&mut out, k, purpose.to_owned(), Blocks::Booking, &user);
            }
        }
        for p in &t.phase {
            for c in [&p.weeks, &p.sessions_per_week, &p.every_weeks] {
                if let Some(k) = site_key(c) {
                    add(
                        &mut out,
                        k,
                        format!("Length or frequency of the {} phase.", p.kind.as_str()),
                        Blocks::Booking,
                        &user,
                    );
                }
            }
        }
    }
    for c in codes.all() {
        if let Some(k) = &c.site_setting {
            let purpose = match k.as_str() {
                SiteBilling::EM => {
                    "Bill E/M visit codes (modifier 25 on infusion day): 1 = yes, 2 = no."
                }
                SiteBilling::C96372 => "Bill 96372 for an injection: 1 = yes, 2 = no.",
                SiteBilling::ESK_DRUG => {
                    "Add the esketamine drug line for non-Medicare payers: 1 = yes, 2 = no."
                }
                _ => "Turns this code on: 1 = yes, 2 = no.",
            };
            add(
                &mut out,
                k,
                purpose.to_owned(),
                Blocks::BillingLine,
                &format!("code {}", c.code),
            );
        }
    }
    add(
        &mut out,
        NURSE_MAX_CONCURRENT_SETTING,
        "How many patients one nurse may monitor at once (1 to 20); one while unset.".to_owned(),
        Blocks::Nothing,
        "booking (nurse conflicts)",
    );
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_site_setting_in_the_data_files_is_listed_once() {
        let t = Templates::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let b = CodeBook::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let needs = settings_needed(&t, &b);
        let keys: Vec<&str> = needs.iter().map(|n| n.key.as_str()).collect();
        for k in [
            "observation.ketamine_psychiatric_minutes",
            "schedule.ketamine_prescriber_on_site",
            NURSE_MAX_CONCURRENT_SETTING,
            SiteBilling::EM,
            SiteBilling::C96372,
            SiteBilling::ESK_DRUG,
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let mut dedup = keys.clone();
        dedup.dedup();
        assert_eq!(dedup, keys);
        let em = needs.iter().find(|n| n.key == SiteBilling::EM);
        assert_eq!(em.map(|n| n.used_by.len()), Some(3));
        let obs = needs
            .iter()
            .find(|n| n.key == "observation.ketamine_psychiatric_minutes");
        assert_eq!(obs.map(|n| n.blocks), Some(Blocks::Booking));
        assert!(needs.iter().all(|n| !n.purpose.is_empty()));
    }
}
