//! Where a consuming stage puts what it gives up on: a dead letter on
//! `deadletter.{stage}.…`, counted by kind, with the message terminated only once the dead
//! letter is stored (otherwise it comes back and is given up again, deduplicated).

use bcfy_bus::consume::POISON;
use bcfy_bus::{Delivery, Failure, Publisher, Stage};
use prost::{Message, Name};

/// A stage's dead letters and their counter (`…_dead_letters_total{kind}`).
#[derive(Debug, Clone)]
pub struct DeadLetters {
    publisher: Publisher,
    stage: Stage,
    counted: prometheus::IntCounterVec,
}

impl DeadLetters {
    /// Dead letters of `stage`, published with `publisher`, counted in `counted` by kind.
    pub fn new(publisher: Publisher, stage: Stage, counted: prometheus::IntCounterVec) -> Self {
        Self {
            publisher,
            stage,
            counted,
        }
    }

    /// Gives `delivery` up for `failure`.
    pub async fn give_up(&self, delivery: Delivery, failure: Failure) {
        self.counted.with_label_values(&[failure.kind]).inc();
        delivery
            .dead_letter_or_retry(&self.publisher, self.stage, failure)
            .await;
    }

    /// The delivery's message as `M`, or `None` once a message that is not one has been given
    /// up as poison.
    pub async fn decode<M: Message + Name + Default>(
        &self,
        delivery: Delivery,
    ) -> Option<(Delivery, M)> {
        match delivery.decode::<M>() {
            Ok(message) => Some((delivery, message)),
            Err(error) => {
                self.poison(delivery, &error).await;
                None
            }
        }
    }

    /// Gives `delivery` up as poison for `reason`.
    pub async fn poison(&self, delivery: Delivery, reason: &impl std::fmt::Display) {
        self.give_up(delivery, Failure::new(POISON, reason.to_string(), None))
            .await;
    }
}
