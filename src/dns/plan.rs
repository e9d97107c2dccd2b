//! Pure decisions about record sets: how to add our DNS-01 values without clobbering
//! anyone else's, how to take exactly ours away again, and whether the CNAME to the
//! broker is already right, missing, or in conflict.
//!
//! Owns: the change lists. Does not own: reading current records or sending changes.

use std::collections::BTreeMap;

use super::{ChangeAction, RecordChange, RecordSet, RecordType};

/// TTL for DNS-01 TXT records we create (short: they live for seconds).
pub const CHALLENGE_TTL: u32 = 60;

/// One DNS-01 value to publish at a name in a zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TxtValue {
    /// Hosted zone id.
    pub zone_id: String,
    /// Record name (`_acme-challenge.…` or where its CNAME points).
    pub name: String,
    /// The unquoted TXT value.
    pub value: String,
}

/// Groups values by zone and then by name: one change batch per zone, one record set per name.
pub fn group_by_zone(values: &[TxtValue]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for v in values {
        let vals = out
            .entry(v.zone_id.clone())
            .or_default()
            .entry(v.name.clone())
            .or_default();
        if !vals.contains(&v.value) {
            vals.push(v.value.clone());
        }
    }
    out
}

/// The change that adds `ours` to the TXT set at `name`, keeping every value already there.
pub fn add_txt_values(name: &str, existing: Option<&RecordSet>, ours: &[String]) -> RecordChange {
    let mut values: Vec<String> = existing.map(|s| s.values.clone()).unwrap_or_default();
    for v in ours {
        if !values.contains(v) {
            values.push(v.clone());
        }
    }
    RecordChange {
        action: ChangeAction::Upsert,
        set: RecordSet {
            name: name.to_string(),
            rtype: RecordType::Txt,
            ttl: existing.map_or(CHALLENGE_TTL, |s| s.ttl),
            values,
        },
    }
}

/// The change that removes exactly `ours` from the TXT set as it is now: `None` if none of
/// ours is there; a DELETE of the exact set if nothing else remains; else an UPSERT of the rest.
pub fn remove_txt_values(current: Option<&RecordSet>, ours: &[String]) -> Option<RecordChange> {
    let current = current?;
    if !current.values.iter().any(|v| ours.contains(v)) {
        return None;
    }
    let rest: Vec<String> = current
        .values
        .iter()
        .filter(|v| !ours.contains(v))
        .cloned()
        .collect();
    Some(if rest.is_empty() {
        RecordChange {
            action: ChangeAction::Delete,
            set: current.clone(),
        }
    } else {
        RecordChange {
            action: ChangeAction::Upsert,
            set: RecordSet {
                values: rest,
                ..current.clone()
            },
        }
    })
}

/// Of the TXT sets several nameservers serve at one name, the one to remove our values from:
/// the set holding the most of `ours` (a nameserver that lags behind Route 53 serves an older
/// set without them, and reading only that one would leave our values behind). `None` when
/// no nameserver serves any of ours.
pub fn freshest_with_ours<'a>(
    served: &'a [Option<RecordSet>],
    ours: &[String],
) -> Option<&'a RecordSet> {
    served
        .iter()
        .flatten()
        .map(|set| (set.values.iter().filter(|v| ours.contains(v)).count(), set))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
        .map(|(_, set)| set)
}

/// The DELETE of `ours` at `name` exactly as this tool writes a new set (TTL
/// [`CHALLENGE_TTL`], no other value): for when no nameserver serves them yet, so the current
/// set cannot be read. Route 53 refuses it if the set is different (someone else's values
/// share the name) and says "not found" if it is gone; it never removes anything else.
pub fn delete_as_written(name: &str, ours: &[String]) -> RecordChange {
    RecordChange {
        action: ChangeAction::Delete,
        set: RecordSet {
            name: name.to_string(),
            rtype: RecordType::Txt,
            ttl: CHALLENGE_TTL,
            values: ours.to_vec(),
        },
    }
}

/// What to do about `name CNAME target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CnamePlan {
    /// The identical record exists: leave it alone.
    Keep,
    /// Write these changes (create, or replace with `--force`).
    Write(Vec<RecordChange>),
    /// Something else is there and `--force` was not given: describes what is there.
    Conflict(String),
}

/// Decides the CNAME step from the record sets found at `name` (CNAME, A, AAAA, TXT...).
pub fn plan_cname(
    name: &str,
    target: &str,
    ttl: u32,
    existing: &[RecordSet],
    force: bool,
) -> CnamePlan {
    let target = target.trim_end_matches('.').to_ascii_lowercase();
    let wanted = RecordSet {
        name: name.to_string(),
        rtype: RecordType::Cname,
        ttl,
        values: vec![target.clone()],
    };
    if existing.is_empty() {
        return CnamePlan::Write(vec![RecordChange {
            action: ChangeAction::Create,
            set: wanted,
        }]);
    }
    if let [only] = existing
        && only.rtype == RecordType::Cname
        && only.values.len() == 1
        && only.values[0]
            .trim_end_matches('.')
            .eq_ignore_ascii_case(&target)
    {
        return CnamePlan::Keep;
    }
    if !force {
        let found = existing
            .iter()
            .map(|s| format!("{} {}", s.rtype, s.values.join(" ")))
            .collect::<Vec<_>>()
            .join(", ");
        return CnamePlan::Conflict(found);
    }
    // A CNAME cannot coexist with other data: delete what is there, then create ours.
    let mut changes: Vec<RecordChange> = existing
        .iter()
        .map(|s| RecordChange {
            action: ChangeAction::Delete,
            set: s.clone(),
        })
        .collect();
    changes.push(RecordChange {
        action: ChangeAction::Create,
        set: wanted,
    });
    CnamePlan::Write(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(values: &[&str], ttl: u32) -> RecordSet {
        RecordSet {
            name: "_acme-challenge.example.com".into(),
            rtype: RecordType::Txt,
            ttl,
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn grouping_merges_apex_and_wildcard_values_at_one_name() {
        let v = |z: &str, n: &str, val: &str| TxtValue {
            zone_id: z.into(),
            name: n.into(),
            value: val.into(),
        };
        let groups = group_by_zone(&[
            v("Z1", "_acme-challenge.example.com", "a"),
            v("Z1", "_acme-challenge.example.com", "b"),
            v("Z1", "_acme-challenge.mqtt.example.com", "c"),
            v("Z2", "_acme-challenge.other.test", "d"),
            v("Z1", "_acme-challenge.example.com", "a"),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups["Z1"]["_acme-challenge.example.com"], vec!["a", "b"]);
        assert_eq!(groups["Z1"].len(), 2);
    }

    #[test]
    fn removal_reads_the_freshest_set_a_lagging_nameserver_does_not_hide_ours() {
        let ours = vec!["new".to_string()];
        // The first nameserver lags (no set yet), the second serves ours and a foreign value.
        let served = vec![
            None,
            Some(txt(&["foreign", "new"], 300)),
            Some(txt(&["foreign"], 300)),
        ];
        let set = freshest_with_ours(&served, &ours).unwrap();
        assert_eq!(set.values, ["foreign", "new"]);
        let c = remove_txt_values(Some(set), &ours).unwrap();
        assert_eq!(c.action, ChangeAction::Upsert);
        assert_eq!(c.set.values, ["foreign"]);
        // Nobody serves ours: no set to remove from (the caller deletes them as written).
        assert!(freshest_with_ours(&[None, Some(txt(&["foreign"], 300))], &ours).is_none());
        assert!(freshest_with_ours(&[], &ours).is_none());
        // Two values of ours (apex + wildcard): the set with both wins over one with one.
        let two = vec!["a".to_string(), "b".to_string()];
        let served = vec![Some(txt(&["a"], 60)), Some(txt(&["a", "b"], 60))];
        assert_eq!(
            freshest_with_ours(&served, &two).unwrap().values,
            ["a", "b"]
        );
    }

    #[test]
    fn deleting_as_written_names_exactly_our_values_and_our_ttl() {
        let c = delete_as_written("_acme-challenge.x.test", &["v1".into(), "v2".into()]);
        assert_eq!(c.action, ChangeAction::Delete);
        assert_eq!(c.set.rtype, RecordType::Txt);
        assert_eq!(c.set.ttl, CHALLENGE_TTL);
        assert_eq!(c.set.values, ["v1", "v2"]);
        // It is what adding them to an empty name writes.
        let added = add_txt_values("_acme-challenge.x.test", None, &["v1".into(), "v2".into()]);
        assert_eq!(added.set, c.set);
    }

    #[test]
    fn adding_keeps_foreign_values_and_their_ttl() {
        let existing = txt(&["theirs"], 300);
        let c = add_txt_values(
            "_acme-challenge.example.com",
            Some(&existing),
            &["ours".into()],
        );
        assert_eq!(c.action, ChangeAction::Upsert);
        assert_eq!(c.set.values, vec!["theirs", "ours"]);
        assert_eq!(c.set.ttl, 300);
        let c = add_txt_values("_acme-challenge.example.com", None, &["ours".into()]);
        assert_eq!(c.set.ttl, CHALLENGE_TTL);
    }

    #[test]
    fn removing_leaves_foreign_values() {
        let current = txt(&["theirs", "ours"], 60);
        let c = remove_txt_values(Some(&current), &["ours".into()]).unwrap();
        assert_eq!(c.action, ChangeAction::Upsert);
        assert_eq!(c.set.values, vec!["theirs"]);
    }

    #[test]
    fn removing_last_values_deletes_the_exact_set() {
        let current = txt(&["a", "b"], 60);
        let c = remove_txt_values(Some(&current), &["a".into(), "b".into()]).unwrap();
        assert_eq!(c.action, ChangeAction::Delete);
        assert_eq!(c.set, current);
    }

    #[test]
    fn removing_when_ours_is_gone_does_nothing() {
        assert_eq!(remove_txt_values(None, &["a".into()]), None);
        assert_eq!(
            remove_txt_values(Some(&txt(&["x"], 60)), &["a".into()]),
            None
        );
    }

    #[test]
    fn cname_identical_is_kept_case_and_dot_insensitive() {
        let existing = [RecordSet {
            name: "mqtt.example.com".into(),
            rtype: RecordType::Cname,
            ttl: 300,
            values: vec!["Deploy.EMQXSL.com.".into()],
        }];
        assert_eq!(
            plan_cname(
                "mqtt.example.com",
                "deploy.emqxsl.com",
                300,
                &existing,
                false
            ),
            CnamePlan::Keep
        );
    }

    #[test]
    fn cname_conflicts_describe_what_is_there_and_force_replaces() {
        let existing = [RecordSet {
            name: "mqtt.example.com".into(),
            rtype: RecordType::A,
            ttl: 300,
            values: vec!["192.0.2.1".into()],
        }];
        match plan_cname("mqtt.example.com", "d.emqxsl.com", 300, &existing, false) {
            CnamePlan::Conflict(found) => assert_eq!(found, "A 192.0.2.1"),
            other => panic!("{other:?}"),
        }
        match plan_cname("mqtt.example.com", "d.emqxsl.com", 300, &existing, true) {
            CnamePlan::Write(ch) => {
                assert_eq!(ch.len(), 2);
                assert_eq!(ch[0].action, ChangeAction::Delete);
                assert_eq!(ch[1].action, ChangeAction::Create);
                assert_eq!(ch[1].set.values, vec!["d.emqxsl.com"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cname_absent_is_created() {
        match plan_cname("mqtt.example.com", "d.emqxsl.com", 300, &[], false) {
            CnamePlan::Write(ch) => assert_eq!(ch[0].action, ChangeAction::Create),
            other => panic!("{other:?}"),
        }
    }
}
