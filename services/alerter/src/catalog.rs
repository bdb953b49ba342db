//! The rules in force: the config file's, with the `alert-rules` bucket's on top, rebuilt into
//! a fresh [`RuleSet`] on every change of the bucket, so an edit applies to the next
//! transcript without a restart. Each bucket key is a rule's name and its value the rule in
//! YAML or JSON (the name may be left out). An invalid rule is reported with its name and the
//! reason, and the others stay in force.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::rule::{Rule, RuleError, RuleSpec};
use crate::rules::RuleSet;

/// Pause before watching the bucket again after the watch failed.
const WATCH_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// The rules in force, shared by every task; cheap to read.
#[derive(Debug)]
pub struct Catalog {
    file: Vec<RuleSpec>,
    from_bucket: Mutex<BTreeMap<String, Result<RuleSpec, RuleError>>>,
    current: RwLock<Arc<RuleSet>>,
    metrics: Metrics,
}

impl Catalog {
    /// The catalog of the config file's rules (the bucket's come with [`Catalog::follow`]).
    pub fn new(file: Vec<RuleSpec>, metrics: Metrics) -> Arc<Self> {
        let catalog = Arc::new(Self {
            file,
            from_bucket: Mutex::default(),
            current: RwLock::default(),
            metrics,
        });
        catalog.rebuild();
        catalog
    }

    /// The rules in force now.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the bucket's rules, then applies every change until `shutdown`. Returns once the
    /// rules already in the bucket are in force; the watch goes on in the background.
    pub async fn follow(self: &Arc<Self>, bucket: kv::Store, shutdown: CancellationToken) {
        let catalog = Arc::clone(self);
        let (loaded, loaded_rx) = tokio::sync::oneshot::channel();
        let mut loaded = Some(loaded);
        tokio::spawn(async move {
            loop {
                match bucket.watch_with_history(">").await {
                    Ok(mut changes) => {
                        // The watch first replays every current entry, then follows changes;
                        // the catalog is complete once the replay has caught up.
                        let empty = bucket.status().await.is_ok_and(|s| s.values() == 0);
                        if empty {
                            announce(&mut loaded);
                        }
                        loop {
                            let change = tokio::select! {
                                change = changes.next() => change,
                                () = shutdown.cancelled() => return,
                            };
                            let Some(Ok(entry)) = change else { break };
                            catalog.apply(&entry);
                            if entry.delta == 0 {
                                announce(&mut loaded);
                            }
                        }
                        tracing::warn!("The alert-rules watch ended; watching again.");
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "Cannot watch alert-rules; retrying.");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(WATCH_RETRY) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
        // Shutdown before the rules were read drops the sender: nothing is waited for then.
        loaded_rx.await.unwrap_or_default();
    }

    /// Applies one change of the bucket.
    fn apply(&self, entry: &kv::Entry) {
        let name = entry.key.clone();
        {
            let mut from_bucket = self
                .from_bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match entry.operation {
                kv::Operation::Put => {
                    from_bucket.insert(name.clone(), parse(&name, &entry.value));
                    tracing::info!(rule = %name, revision = entry.revision, "Rule set in alert-rules.");
                }
                kv::Operation::Delete | kv::Operation::Purge => {
                    from_bucket.remove(&name);
                    tracing::info!(rule = %name, "Rule removed from alert-rules.");
                }
            }
        }
        self.rebuild();
    }

    /// Compiles the rules in force, reporting each invalid one.
    fn rebuild(&self) {
        let from_bucket = self
            .from_bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut specs: BTreeMap<&str, Result<&RuleSpec, &RuleError>> = BTreeMap::new();
        let mut errors = Vec::new();
        for spec in &self.file {
            if specs.insert(&spec.name, Ok(spec)).is_some() {
                errors.push(RuleError {
                    rule: spec.name.clone(),
                    reason: "another rule of the config file has this name; the last one is used"
                        .into(),
                });
            }
        }
        for (name, parsed) in from_bucket.iter() {
            specs.insert(name, parsed.as_ref());
        }
        let mut rules = Vec::new();
        for parsed in specs.into_values() {
            let compiled = match parsed {
                Ok(spec) => Rule::compile(spec.clone()),
                Err(error) => Err(error.clone()),
            };
            match compiled {
                Ok(rule) => rules.push(Arc::new(rule)),
                Err(error) => errors.push(error),
            }
        }
        self.metrics.rule_invalid.reset();
        for error in &errors {
            tracing::error!(rule = %error.rule, reason = %error.reason, "Invalid alert rule; the others stay in force.");
            self.metrics
                .rule_invalid
                .with_label_values(&[&error.rule])
                .set(1);
        }
        self.metrics
            .rules
            .set(i64::try_from(rules.len()).unwrap_or(i64::MAX));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(RuleSet::new(rules));
    }
}

/// Tells the starter that the bucket's rules are in force (once).
fn announce(loaded: &mut Option<tokio::sync::oneshot::Sender<()>>) {
    if let Some(done) = loaded.take() {
        // The starter may be gone (shutdown); nobody is left to tell.
        done.send(()).unwrap_or_default();
    }
}

/// The rule stored under `name`.
pub(crate) fn parse(name: &str, value: &[u8]) -> Result<RuleSpec, RuleError> {
    let fail = |reason: String| RuleError {
        rule: name.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(value).map_err(|_| fail("the value is not UTF-8".into()))?;
    let document =
        bcfy_config::yaml::document(text).map_err(|error| fail(format!("not a rule: {error}")))?;
    let mut spec: RuleSpec =
        serde_json::from_value(document).map_err(|error| fail(format!("not a rule: {error}")))?;
    if spec.name.is_empty() {
        spec.name = name.to_owned();
    } else if spec.name != name {
        return Err(fail(format!(
            "the rule is named `{}` but stored under `{name}`",
            spec.name
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_values_are_yaml_or_json_named_by_their_key() {
        let yaml = parse("fire", b"keywords: [structure fire]\ncooldown: 5m\n").unwrap();
        assert_eq!(yaml.name, "fire");
        assert_eq!(yaml.keywords, ["structure fire"]);
        assert_eq!(yaml.cooldown, std::time::Duration::from_secs(300));
        let json = parse("fire", br#"{"name": "fire", "talkgroups": [12]}"#).unwrap();
        assert_eq!(json.talkgroups, [12]);
        assert!(
            parse("fire", br#"{"name": "other"}"#)
                .unwrap_err()
                .reason
                .contains("stored under `fire`")
        );
        let unknown = parse("fire", b"keyword: [x]\n").unwrap_err();
        assert_eq!(unknown.rule, "fire");
        assert!(unknown.reason.contains("keyword"), "{}", unknown.reason);
    }

    /// The `alert_rule` fuzz target's finding: through the config loader, the key
    /// `coote3ote3[33333333]` was an array index and this rule took 3 GiB and 10 s to refuse.
    #[test]
    fn a_key_that_looks_like_an_index_is_an_unknown_key() {
        let input = br#"{"name":"fuzz","regex":"(m?i)e]][]]nzote3ote3[33333333]","coote3ote3[33333333]","cooldown":"5m"}"#;
        let refused = parse("fuzz", input).unwrap_err();
        assert!(
            refused
                .reason
                .contains("unknown field `coote3ote3[33333333]`"),
            "{}",
            refused.reason
        );
    }

    #[test]
    fn aliases_are_refused_before_they_are_copied() {
        let laughs = b"name: fire
keywords: &a [x, x, x, x, x, x, x, x]
ignore: [*a, *a, *a]
";
        let refused = parse("fire", laughs).unwrap_err();
        assert!(refused.reason.contains("aliases"), "{}", refused.reason);
    }
}
