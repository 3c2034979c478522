//! The searchset `Bundle`: one page of matches with the total and absolute `self` and `next`
//! links on the server's own host.

use crate::search::Paging;
use serde_json::{Value, json};

/// One page of a search as a searchset: `total` matches in all, `matches` the page's (from
/// `paging.offset`), then the resources they `include` (search mode `include`). `self_url` is
/// the absolute URL of the search without `_count`/`_offset`; the links add them.
pub fn searchset(
    base: &str,
    self_url: &str,
    total: usize,
    matches: Vec<Value>,
    included: Vec<Value>,
    paging: Paging,
) -> Value {
    let entry = |r: Value, mode: &str| {
        let full_url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        json!({"fullUrl": full_url, "resource": r, "search": {"mode": mode}})
    };
    let page: Vec<Value> = matches
        .into_iter()
        .map(|r| entry(r, "match"))
        .chain(included.into_iter().map(|r| entry(r, "include")))
        .collect();
    let join = if self_url.contains('?') { '&' } else { '?' };
    let link = |offset: usize| format!("{self_url}{join}_count={}&_offset={offset}", paging.count);
    let mut links = vec![json!({"relation": "self", "url": link(paging.offset)})];
    if paging.offset + paging.count < total {
        links.push(json!({"relation": "next", "url": link(paging.offset + paging.count)}));
    }
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_the_total_and_a_next_link_until_the_last() {
        let all: Vec<Value> = (0..5)
            .map(|i| json!({"resourceType": "Patient", "id": i.to_string()}))
            .collect();
        let b = searchset(
            "http://h/fhir/r4",
            "http://h/fhir/r4/Patient?name=x",
            5,
            all[2..4].to_vec(),
            vec![json!({"resourceType": "Observation", "id": "q1"})],
            Paging {
                count: 2,
                offset: 2,
            },
        );
        assert_eq!(b["total"], 5);
        assert_eq!(b["entry"].as_array().map(Vec::len), Some(3));
        assert_eq!(b["entry"][2]["search"]["mode"], "include");
        assert_eq!(b["entry"][0]["fullUrl"], "http://h/fhir/r4/Patient/2");
        assert_eq!(
            b["link"][1]["url"],
            "http://h/fhir/r4/Patient?name=x&_count=2&_offset=4"
        );
        let last = searchset(
            "http://h/fhir/r4",
            "http://h/fhir/r4/Patient",
            5,
            all[4..].to_vec(),
            Vec::new(),
            Paging {
                count: 2,
                offset: 4,
            },
        );
        assert_eq!(last["link"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            last["link"][0]["url"],
            "http://h/fhir/r4/Patient?_count=2&_offset=4"
        );
    }
}
