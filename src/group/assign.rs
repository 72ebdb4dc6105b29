//! Partition assignment for consumer groups, computed on the broker.
//!
//! Every strategy is a pure function of the members (sorted by id), their
//! subscriptions, the topics' partition counts and, for `sticky`, the current
//! assignment. `sticky` (the default) moves as few partitions as it can: a member keeps
//! what it has up to its fair share, and only the excess and the partitions of members
//! that left are dealt out again, to the members with the fewest. That is what lets a
//! rebalance be incremental: partitions that stay put are never revoked.

use std::collections::{BTreeMap, BTreeSet};

/// A topic partition.
pub type Tp = (String, u32);

/// How partitions are dealt to members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Keep each member's partitions where fair; deal the rest to the least loaded.
    Sticky,
    /// Per topic, contiguous ranges of partitions, in member order (Kafka's `range`).
    Range,
    /// All partitions in (topic, partition) order, dealt in turn to the members
    /// subscribed to each (Kafka's `roundrobin`).
    RoundRobin,
}

impl Strategy {
    /// The strategy named `name` (`""` is `sticky`).
    pub fn parse(name: &str) -> Option<Strategy> {
        match name {
            "" | "sticky" => Some(Strategy::Sticky),
            "range" => Some(Strategy::Range),
            "round-robin" | "roundrobin" => Some(Strategy::RoundRobin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Sticky => "sticky",
            Strategy::Range => "range",
            Strategy::RoundRobin => "round-robin",
        }
    }
}

/// The members' subscriptions, by member id.
pub type Subscriptions = BTreeMap<String, BTreeSet<String>>;
/// Partitions per member.
pub type Assignment = BTreeMap<String, BTreeSet<Tp>>;

/// Assigns every partition of every subscribed topic to exactly one member subscribed
/// to its topic. `counts` holds the partition count of each existing topic;
/// `current` is the assignment being replaced (used by `sticky`).
pub fn assign(
    strategy: Strategy,
    members: &Subscriptions,
    counts: &BTreeMap<String, u32>,
    current: &Assignment,
) -> Assignment {
    let mut out: Assignment = members.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    if members.is_empty() {
        return out;
    }
    // Every partition to deal, in (topic, partition) order.
    let topics: BTreeSet<&String> = members.values().flatten().filter(|t| counts.contains_key(*t)).collect();
    let subscribers = |topic: &str| -> Vec<&String> {
        members.iter().filter(|(_, topics)| topics.contains(topic)).map(|(m, _)| m).collect()
    };
    match strategy {
        Strategy::Range => {
            for topic in topics {
                let takers = subscribers(topic);
                let n = counts[topic];
                let (each, extra) = (n / takers.len() as u32, n % takers.len() as u32);
                let mut next = 0;
                for (i, member) in takers.iter().enumerate() {
                    let take = each + u32::from((i as u32) < extra);
                    for partition in next..next + take {
                        out.get_mut(*member).expect("a member").insert((topic.clone(), partition));
                    }
                    next += take;
                }
            }
        }
        Strategy::RoundRobin => {
            let mut turn = 0usize;
            let order: Vec<&String> = members.keys().collect();
            for topic in topics {
                for partition in 0..counts[topic] {
                    // The next member in the overall rotation that takes this topic.
                    for step in 0..order.len() {
                        let member = order[(turn + step) % order.len()];
                        if members[member].contains(topic) {
                            out.get_mut(member).expect("a member").insert((topic.clone(), partition));
                            turn = (turn + step + 1) % order.len();
                            break;
                        }
                    }
                }
            }
        }
        Strategy::Sticky => {
            let all: Vec<Tp> = topics.iter().flat_map(|t| (0..counts[*t]).map(move |p| ((*t).clone(), p))).collect();
            let total = all.len();
            let count = members.len();
            // Fair shares: `total / count` each, one more for `total % count` members,
            // given first to those already holding the most (so they keep them).
            let mut by_holding: Vec<&String> = members.keys().collect();
            let held = |m: &String| current.get(m).map_or(0, |set| set.len());
            by_holding.sort_by(|a, b| held(b).cmp(&held(a)).then(a.cmp(b)));
            let quota: BTreeMap<&String, usize> = by_holding
                .iter()
                .enumerate()
                .map(|(i, m)| (*m, total / count + usize::from(i < total % count)))
                .collect();
            let mut taken: BTreeSet<Tp> = BTreeSet::new();
            for (member, topics) in members {
                let Some(had) = current.get(member) else { continue };
                let keep = had
                    .iter()
                    .filter(|(t, p)| topics.contains(t) && counts.get(t).is_some_and(|&n| *p < n))
                    .filter(|tp| !taken.contains(*tp))
                    .take(quota[member])
                    .cloned()
                    .collect::<Vec<_>>();
                for tp in keep {
                    taken.insert(tp.clone());
                    out.get_mut(member).expect("a member").insert(tp);
                }
            }
            for tp in all {
                if taken.contains(&tp) {
                    continue;
                }
                // The subscriber with the fewest, under its quota if any is.
                let takers = subscribers(&tp.0);
                let pick = takers
                    .iter()
                    .min_by_key(|m| {
                        let have = out[**m].len();
                        (have >= quota[**m], have, (**m).clone())
                    })
                    .expect("a topic in `topics` has a subscriber");
                out.get_mut(*pick).expect("a member").insert(tp);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> Subscriptions {
        members.iter().map(|(m, topics)| (m.to_string(), topics.iter().map(|t| t.to_string()).collect())).collect()
    }

    fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// Every partition exactly once, each to a member subscribed to its topic.
    fn check_complete(assignment: &Assignment, members: &Subscriptions, counts: &BTreeMap<String, u32>) {
        let mut seen = BTreeSet::new();
        for (member, tps) in assignment {
            for tp in tps {
                assert!(members[member].contains(&tp.0), "{member} got {tp:?} without subscribing");
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        let subscribed: BTreeSet<&String> = members.values().flatten().collect();
        let expected: usize = counts.iter().filter(|(t, _)| subscribed.contains(t)).map(|(_, n)| *n as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    fn sizes(assignment: &Assignment) -> Vec<usize> {
        assignment.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn every_strategy_covers_every_partition_once_and_balances() {
        let members = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let counts = counts(&[("t", 12)]);
        for strategy in [Strategy::Sticky, Strategy::Range, Strategy::RoundRobin] {
            let out = assign(strategy, &members, &counts, &Assignment::new());
            check_complete(&out, &members, &counts);
            assert_eq!(sizes(&out), [4, 4, 4], "{strategy:?}");
        }
        let range = assign(Strategy::Range, &members, &counts, &Assignment::new());
        assert_eq!(range["a"].iter().map(|tp| tp.1).collect::<Vec<_>>(), [0, 1, 2, 3]);
        let rr = assign(Strategy::RoundRobin, &members, &counts, &Assignment::new());
        assert_eq!(rr["a"].iter().map(|tp| tp.1).collect::<Vec<_>>(), [0, 3, 6, 9]);
    }

    #[test]
    fn sticky_moves_only_what_it_must() {
        let counts = counts(&[("t", 12)]);
        let three = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let first = assign(Strategy::Sticky, &three, &counts, &Assignment::new());
        // c leaves: a and b keep all they had and split c's four.
        let two = subs(&[("a", &["t"]), ("b", &["t"])]);
        let second = assign(Strategy::Sticky, &two, &counts, &first);
        check_complete(&second, &two, &counts);
        assert_eq!(sizes(&second), [6, 6]);
        assert!(second["a"].is_superset(&first["a"]) && second["b"].is_superset(&first["b"]));
        // d joins: it takes two from each, and nothing else moves.
        let again = subs(&[("a", &["t"]), ("b", &["t"]), ("d", &["t"])]);
        let third = assign(Strategy::Sticky, &again, &counts, &second);
        check_complete(&third, &again, &counts);
        assert_eq!(sizes(&third), [4, 4, 4]);
        assert!(second["a"].is_superset(&third["a"]) && second["b"].is_superset(&third["b"]));
        // Uneven counts differ by one at most.
        let eleven = counts_of(11);
        let out = assign(Strategy::Sticky, &three, &eleven, &Assignment::new());
        let mut s = sizes(&out);
        s.sort_unstable();
        assert_eq!(s, [3, 4, 4]);
    }

    fn counts_of(n: u32) -> BTreeMap<String, u32> {
        counts(&[("t", n)])
    }

    #[test]
    fn subscriptions_and_missing_topics_are_respected() {
        let members = subs(&[("a", &["x", "y"]), ("b", &["y"]), ("c", &["gone"])]);
        let counts = counts(&[("x", 3), ("y", 4)]);
        for strategy in [Strategy::Sticky, Strategy::Range, Strategy::RoundRobin] {
            let out = assign(strategy, &members, &counts, &Assignment::new());
            check_complete(&out, &members, &counts);
            assert!(out["c"].is_empty());
            assert!(out["b"].iter().all(|tp| tp.0 == "y"));
        }
        // A shrunk topic's vanished partitions are dropped from what a member keeps.
        let had: Assignment = [("a".to_string(), [("x".to_string(), 7)].into_iter().collect())].into_iter().collect();
        let out = assign(Strategy::Sticky, &members, &counts, &had);
        check_complete(&out, &members, &counts);
    }

    #[test]
    fn strategy_names() {
        assert_eq!(Strategy::parse(""), Some(Strategy::Sticky));
        assert_eq!(Strategy::parse("round-robin"), Some(Strategy::RoundRobin));
        assert_eq!(Strategy::parse("cooperative"), None);
    }
}
