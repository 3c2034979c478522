//! Which monitors may send vitals: the site's allow-list of sending facilities (MSH-4) and
//! network addresses (`mllp.allowed_senders`, a text setting such as
//! `SUITE-A, ICU-2, 10.20.0.0/16, 192.168.1.40`). Unset, any host that reaches the MLLP port is
//! accepted (and the settings page says so). Set, a message must come from a listed address (when
//! any address is listed) and name a listed facility (when any facility is listed); any other
//! gets ACK AR and an audit record.

use std::net::IpAddr;

/// The setting key.
pub const MLLP_ALLOWED_SENDERS: &str = "mllp.allowed_senders";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderAllowList {
    /// (network, prefix length).
    pub networks: Vec<(IpAddr, u8)>,
    /// Sending facilities (MSH-4), compared ignoring case.
    pub facilities: Vec<String>,
}

/// Parses the setting: entries separated by commas (or new lines), each an IP address, a
/// network in CIDR form, or a facility name (letters, digits, `-`, `_`, `.`, at most 64).
pub fn parse(text: &str) -> Result<SenderAllowList, String> {
    let mut list = SenderAllowList::default();
    for raw in text.split([',', '\n']) {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("`{entry}`: the prefix length must be 0–{max}"))?,
            };
            list.networks.push((ip, bits));
        } else if prefix.is_none()
            && entry.len() <= 64
            && entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            list.facilities.push(entry.to_owned());
        } else {
            return Err(format!(
                "`{entry}` is neither an address (10.0.0.5, 10.0.0.0/24) nor a facility name \
                 (letters, digits, -, _, .)"
            ));
        }
    }
    if list.networks.is_empty() && list.facilities.is_empty() {
        return Err("list at least one facility or address".into());
    }
    Ok(list)
}

fn in_network(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl SenderAllowList {
    /// Whether a message from `peer` (its IP, if known) naming `facility` (MSH-4) is accepted.
    pub fn admits(&self, peer: Option<IpAddr>, facility: &str) -> bool {
        let address_ok = self.networks.is_empty()
            || peer.is_some_and(|ip| self.networks.iter().any(|n| in_network(ip, *n)));
        let facility_ok = self.facilities.is_empty()
            || self
                .facilities
                .iter()
                .any(|f| f.eq_ignore_ascii_case(facility.trim()));
        address_ok && facility_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_networks_and_facilities() {
        let l = parse("SUITE-A, 10.20.0.0/16\n192.168.1.40").unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(l.admits(ip("10.20.3.4"), "suite-a"));
        assert!(l.admits(ip("192.168.1.40"), "SUITE-A"));
        assert!(!l.admits(ip("10.21.0.1"), "SUITE-A"), "outside the network");
        assert!(!l.admits(ip("10.20.3.4"), "ICU"), "unlisted facility");
        assert!(!l.admits(None, "SUITE-A"), "unknown address");
        let only_fac = parse("SUITE-A").unwrap();
        assert!(only_fac.admits(None, "SUITE-A"));
        assert!(parse("10.0.0.0/33").is_err());
        assert!(parse("Ward 7!").is_err());
        assert!(parse(" , ").is_err());
        let v6 = parse("fd00::/8").unwrap();
        assert!(v6.admits(ip("fd12::1"), "X"));
        assert!(!v6.admits(ip("10.0.0.1"), "X"));
    }
}
