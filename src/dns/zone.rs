//! Which hosted zone holds a name: a pure decision over the provider's zone list.
//!
//! Owns: the longest-public-suffix rule and the explicit-id override.
//! Does not own: listing zones (the provider does that).

use super::{DnsError, HostedZone};
use crate::names::DomainName;

/// Picks the zone for `name`: the explicit `zone_id` if given (it must exist and hold the
/// name), else the longest **public** zone whose apex is `name` or a parent of it.
pub fn choose_zone<'a>(
    name: &DomainName,
    zones: &'a [HostedZone],
    zone_id: Option<&str>,
) -> Result<&'a HostedZone, DnsError> {
    let describe = || {
        zones
            .iter()
            .map(|z| {
                format!(
                    "{} ({}, {})",
                    z.name,
                    z.id,
                    if z.private { "private" } else { "public" }
                )
            })
            .collect::<Vec<_>>()
    };
    if let Some(id) = zone_id {
        let id = id.trim_start_matches("/hostedzone/");
        return match zones.iter().find(|z| z.id == id) {
            Some(z) if name.is_within(&z.name) => Ok(z),
            Some(z) => Err(DnsError::Provider {
                operation: "ListHostedZones",
                message: format!(
                    "the configured hosted_zone_id {id} is the zone `{}`, which cannot hold \
                     `{name}`. Fix `hosted_zone_id` for this certificate or remove it to let \
                     brokercert choose the zone",
                    z.name
                ),
            }),
            None => Err(DnsError::Provider {
                operation: "ListHostedZones",
                message: format!(
                    "the configured hosted_zone_id {id} is not among the account's zones ({}). \
                     Fix `hosted_zone_id` (flag `--hosted-zone-id`) or check the AWS account",
                    describe().join(", ")
                ),
            }),
        };
    }
    zones
        .iter()
        .filter(|z| !z.private && name.is_within(&z.name))
        .max_by_key(|z| z.name.len())
        .ok_or_else(|| DnsError::NoZone {
            name: name.to_string(),
            zones: describe(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(id: &str, name: &str, private: bool) -> HostedZone {
        HostedZone {
            id: id.into(),
            name: name.into(),
            private,
        }
    }

    fn n(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn longest_public_suffix_wins() {
        let zones = [
            z("Z1", "example.com", false),
            z("Z2", "iot.example.com", false),
            z("Z3", "mqtt.iot.example.com", true),
        ];
        let got = choose_zone(&n("mqtt.iot.example.com"), &zones, None).unwrap();
        assert_eq!(
            got.id, "Z2",
            "private zone of the same name must not be chosen"
        );
    }

    #[test]
    fn public_beats_private_of_same_name() {
        let zones = [z("ZP", "example.com", true), z("ZQ", "example.com", false)];
        assert_eq!(
            choose_zone(&n("a.example.com"), &zones, None).unwrap().id,
            "ZQ"
        );
    }

    #[test]
    fn label_boundaries_matter() {
        let zones = [z("Z1", "ample.com", false)];
        let err = choose_zone(&n("mqtt.example.com"), &zones, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("mqtt.example.com") && msg.contains("ample.com (Z1, public)"),
            "{msg}"
        );
    }

    #[test]
    fn explicit_id_wins_even_if_private_or_shorter() {
        let zones = [
            z("Z1", "example.com", false),
            z("Z2", "iot.example.com", true),
        ];
        let got = choose_zone(&n("mqtt.iot.example.com"), &zones, Some("/hostedzone/Z1")).unwrap();
        assert_eq!(got.id, "Z1");
        let got = choose_zone(&n("mqtt.iot.example.com"), &zones, Some("Z2")).unwrap();
        assert_eq!(got.id, "Z2");
    }

    #[test]
    fn explicit_id_must_exist_and_hold_the_name() {
        let zones = [z("Z1", "example.com", false)];
        assert!(choose_zone(&n("a.example.com"), &zones, Some("Z9")).is_err());
        let zones = [z("Z1", "example.org", false)];
        let msg = choose_zone(&n("a.example.com"), &zones, Some("Z1"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("cannot hold"), "{msg}");
    }

    #[test]
    fn no_zone_lists_what_exists() {
        let msg = choose_zone(&n("a.example.com"), &[], None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no hosted zones"), "{msg}");
    }
}
