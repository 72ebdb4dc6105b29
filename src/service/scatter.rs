//! "Scatter by owning shard, gather by slot": the shape every multi-partition request
//! has. `route` gives each partition of a request a slot (its place in the answer),
//! answers at once the ones that have no owner, and groups the rest by the shard that
//! owns them; each operation then runs or forwards each group as suits it (appends in
//! order, long polls at once, lookups one after another), and `Gathered` puts the
//! answers back in request order.

pub use super::types::Slotted;
use super::Error;
use crate::partition::TopicPartition;
use crate::shard::{OwnerError, Shard};
use std::collections::BTreeMap;

/// A request's partitions grouped by owning shard, and the answers known already.
pub struct Routed<T, R> {
    pub by_shard: BTreeMap<u32, Vec<Slotted<T>>>,
    pub answers: Gathered<R>,
}

/// Answers by slot.
pub struct Gathered<R> {
    slots: Vec<Option<Result<R, Error>>>,
}

impl<R> Gathered<R> {
    pub fn new(count: usize) -> Gathered<R> {
        Gathered { slots: (0..count).map(|_| None).collect() }
    }

    pub fn set(&mut self, slot: usize, answer: Result<R, Error>) {
        self.slots[slot] = Some(answer);
    }

    /// Every slot of `slots` fails with `error` (a shard that stopped answering).
    pub fn fail(&mut self, slots: impl IntoIterator<Item = usize>, error: Error) {
        for slot in slots {
            self.set(slot, Err(error.clone()));
        }
    }

    /// The answers in request order; a slot nobody answered is a bug, reported as
    /// `ShuttingDown` (its shard dropped the work).
    pub fn into_answers(self) -> Vec<Result<R, Error>> {
        self.slots.into_iter().map(|answer| answer.unwrap_or(Err(Error::ShuttingDown))).collect()
    }
}

/// Gives each of `items` a slot, answers unknown topics and partitions, and groups the
/// rest by owning shard.
pub fn route<T, R>(shard: &Shard, items: Vec<(TopicPartition, T)>) -> Routed<T, R> {
    route_checked(shard, items, |_, _| Ok(()))
}

/// `route`, with `check` asked first of each item (authorization): an item it refuses
/// is answered with its error, before the topic's existence is looked at, so that a
/// client cannot learn which topics exist.
pub fn route_checked<T, R>(
    shard: &Shard,
    items: Vec<(TopicPartition, T)>,
    mut check: impl FnMut(&TopicPartition, &T) -> Result<(), Error>,
) -> Routed<T, R> {
    let mut answers = Gathered::new(items.len());
    let mut by_shard: BTreeMap<u32, Vec<Slotted<T>>> = BTreeMap::new();
    for (slot, (tp, item)) in items.into_iter().enumerate() {
        if let Err(error) = check(&tp, &item) {
            answers.set(slot, Err(error));
            continue;
        }
        match shard.owner(&tp.topic, tp.partition) {
            Ok(owner) => by_shard.entry(owner).or_default().push(Slotted { slot, tp, item }),
            Err(OwnerError::UnknownTopic) => answers.set(slot, Err(Error::UnknownTopic)),
            Err(OwnerError::UnknownPartition) => answers.set(slot, Err(Error::UnknownPartition)),
            Err(OwnerError::NotLeader) => answers.set(slot, Err(Error::NotLeader)),
        }
    }
    Routed { by_shard, answers }
}
