//! Every rule in force, indexed so a transcript costs about one hash lookup per word however
//! many rules there are: each keyword is filed under its first word, and only the rules whose
//! keywords start somewhere in the transcript (plus those without keywords) are checked. Every
//! rule's expression is also in one `RegexSet`, so one pass over the text tells which
//! expressions can match instead of one pass per expression.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bcfy_proto::{AlertMatch, AlertMatchKind};
use regex::{RegexSet, RegexSetBuilder};

use crate::rule::{REGEX_SIZE_LIMIT, Rule, Subject, offset, phrase_at};

/// The rules in force, ready to evaluate.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    /// First word of a keyword → (rule, keyword) pairs.
    by_first_word: HashMap<String, Vec<(usize, usize)>>,
    /// Rules that have no keywords: checked on every transcript.
    without_keywords: Vec<usize>,
    /// Every expression at once, and the rule of each (`None` when the set is too large to
    /// compile: each expression is then tried on its own).
    expressions: Option<(RegexSet, Vec<usize>)>,
}

/// A rule that fired, and what matched.
#[derive(Debug)]
pub struct Fired {
    /// The rule.
    pub rule: Arc<Rule>,
    /// What matched, in text order, then flags and tones.
    pub matches: Vec<AlertMatch>,
}

impl RuleSet {
    /// The set of `rules`, in their order.
    pub fn new(rules: Vec<Arc<Rule>>) -> Self {
        let mut by_first_word: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut without_keywords = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                without_keywords.push(r);
            }
            for (k, keyword) in rule.keywords.iter().enumerate() {
                by_first_word
                    .entry(keyword[0].clone())
                    .or_default()
                    .push((r, k));
            }
        }
        let with_expression: Vec<usize> = (0..rules.len())
            .filter(|&r| rules[r].pattern().is_some())
            .collect();
        let expressions =
            RegexSetBuilder::new(with_expression.iter().filter_map(|&r| rules[r].pattern()))
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT.saturating_mul(with_expression.len().max(1)))
                .build()
                .ok()
                .map(|set| (set, with_expression));
        Self {
            rules,
            by_first_word,
            without_keywords,
            expressions,
        }
    }

    /// How many rules are in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|rule| rule.spec.name == name)
    }

    /// Every rule that fires on `subject`, in the set's order.
    pub fn evaluate(&self, subject: &Subject<'_>) -> Vec<Fired> {
        let mut keyword_matches: HashMap<usize, Vec<AlertMatch>> = HashMap::new();
        for (at, word) in subject.words.iter().enumerate() {
            let Some(entries) = self.by_first_word.get(&word.norm) else {
                continue;
            };
            for &(r, k) in entries {
                let keyword = &self.rules[r].keywords[k];
                if phrase_at(subject.words, at, keyword) {
                    let (start, end) = (word.start, subject.words[at + keyword.len() - 1].end);
                    keyword_matches.entry(r).or_default().push(AlertMatch {
                        kind: AlertMatchKind::Keyword.into(),
                        term: self.rules[r].spec.keywords[k].clone(),
                        text: subject.text[start..end].to_owned(),
                        start: offset(start),
                        end: offset(end),
                        tone: None,
                    });
                }
            }
        }
        let expressions_matching: Option<HashSet<usize>> =
            self.expressions.as_ref().map(|(set, rules)| {
                set.matches(subject.text)
                    .into_iter()
                    .map(|i| rules[i])
                    .collect()
            });
        let mut candidates: Vec<usize> = keyword_matches
            .keys()
            .copied()
            .chain(self.without_keywords.iter().copied())
            // A rule whose expression cannot match cannot fire.
            .filter(|&r| {
                self.rules[r].pattern().is_none()
                    || expressions_matching
                        .as_ref()
                        .is_none_or(|matching| matching.contains(&r))
            })
            .collect();
        candidates.sort_unstable();
        candidates
            .into_iter()
            .filter_map(|r| {
                let rule = &self.rules[r];
                let found = keyword_matches.remove(&r).unwrap_or_default();
                rule.check(subject, found).map(|matches| Fired {
                    rule: Arc::clone(rule),
                    matches,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use bcfy_proto::{Tone, ToneKind};
    use bcfy_words::words;

    use super::*;
    use crate::rule::{RuleSpec, TonePair};

    fn set(specs: Vec<RuleSpec>) -> RuleSet {
        RuleSet::new(
            specs
                .into_iter()
                .map(|spec| Arc::new(Rule::compile(spec).unwrap()))
                .collect(),
        )
    }

    fn keywords(name: &str, keywords: &[&str]) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
            ..RuleSpec::default()
        }
    }

    struct Call {
        text: &'static str,
        tg: i64,
        units: Vec<i64>,
        emergency: bool,
        tones: Vec<Tone>,
    }

    fn call(text: &'static str) -> Call {
        Call {
            text,
            tg: 100,
            units: vec![5001],
            emergency: false,
            tones: vec![],
        }
    }

    fn fired(rules: &RuleSet, call: &Call) -> Vec<(String, Vec<String>)> {
        let words = words(call.text);
        let subject = Subject {
            text: call.text,
            words: &words,
            sid: 7001,
            tg: call.tg,
            units: &call.units,
            emergency: call.emergency,
            tones: &call.tones,
        };
        rules
            .evaluate(&subject)
            .into_iter()
            .map(|f| {
                let texts = f.matches.iter().map(|m| m.text.clone()).collect();
                (f.rule.spec.name.clone(), texts)
            })
            .collect()
    }

    fn names(rules: &RuleSet, call: &Call) -> Vec<String> {
        fired(rules, call)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn keywords_match_whole_words_in_any_case_with_numbers_normalised() {
        let rules = set(vec![
            keywords("engine", &["engine 12"]),
            keywords("fire", &["structure fire", "working fire"]),
        ]);
        assert_eq!(
            fired(&rules, &call("Engine twelve, respond to a Structure Fire.")),
            [
                ("engine".to_owned(), vec!["Engine twelve".to_owned()]),
                ("fire".to_owned(), vec!["Structure Fire".to_owned()])
            ]
        );
        assert!(names(&rules, &call("engine 120 and firestructure fires")).is_empty());
        assert_eq!(names(&rules, &call("ENGINE 12")), ["engine"]);
    }

    #[test]
    fn positions_point_at_the_text() {
        let rules = set(vec![keywords("fire", &["working fire"])]);
        let text = "we have a working fire here";
        let found = words(text);
        let subject = Subject {
            text,
            words: &found,
            sid: 1,
            tg: 1,
            units: &[],
            emergency: false,
            tones: &[],
        };
        let matched = &rules.evaluate(&subject)[0].matches[0];
        assert_eq!(
            &text[matched.start as usize..matched.end as usize],
            "working fire"
        );
    }

    #[test]
    fn the_ignore_list_stops_a_rule() {
        let rules = set(vec![RuleSpec {
            ignore: vec!["test".into(), "fire alarm".into()],
            ..keywords("fire", &["fire"])
        }]);
        assert_eq!(names(&rules, &call("fire on main street")), ["fire"]);
        assert!(names(&rules, &call("this is a test of the fire tones")).is_empty());
        assert!(names(&rules, &call("fire alarm at the school")).is_empty());
        assert_eq!(
            names(&rules, &call("fire, testing")),
            ["fire"],
            "whole words only"
        );
    }

    #[test]
    fn scope_limits_systems_talkgroups_and_units() {
        let rules = set(vec![
            RuleSpec {
                talkgroups: vec![200],
                ..keywords("tg", &["fire"])
            },
            RuleSpec {
                units: vec![5001],
                ..keywords("unit", &["fire"])
            },
            RuleSpec {
                systems: vec![1],
                ..keywords("sys", &["fire"])
            },
        ]);
        assert_eq!(names(&rules, &call("fire")), ["unit"]);
        let other = Call {
            tg: 200,
            units: vec![],
            ..call("fire")
        };
        assert_eq!(names(&rules, &other), ["tg"]);
    }

    #[test]
    fn every_kind_of_condition_must_hold() {
        let page = Tone {
            kind: ToneKind::TwoTone.into(),
            frequency_hz: 601.5,
            second_frequency_hz: 1151.0,
            ..Tone::default()
        };
        let rules = set(vec![
            RuleSpec {
                regex: Some(r"\bmedic \d+\b".into()),
                ..RuleSpec {
                    name: "regex".into(),
                    ..RuleSpec::default()
                }
            },
            RuleSpec {
                name: "mayday".into(),
                emergency: true,
                keywords: vec!["mayday".into()],
                ..RuleSpec::default()
            },
            RuleSpec {
                name: "station-1".into(),
                tones: vec![TonePair {
                    a_hz: 600.9,
                    b_hz: 1153.4,
                    tolerance_hz: 5.0,
                }],
                ..RuleSpec::default()
            },
        ]);
        assert_eq!(
            fired(&rules, &call("Medic 7 respond")),
            [("regex".to_owned(), vec!["Medic 7".to_owned()])]
        );
        assert!(names(&rules, &call("mayday mayday")).is_empty(), "no flag");
        let flagged = Call {
            emergency: true,
            ..call("mayday")
        };
        assert_eq!(names(&rules, &flagged), ["mayday"]);
        let paged = Call {
            tones: vec![page.clone()],
            ..call("")
        };
        assert_eq!(names(&rules, &paged), ["station-1"]);
        let other_page = Call {
            tones: vec![Tone {
                frequency_hz: 349.0,
                ..page
            }],
            ..call("")
        };
        assert!(names(&rules, &other_page).is_empty());
    }

    #[test]
    fn invalid_rules_say_which_and_why() {
        let error = |spec: RuleSpec| Rule::compile(spec).unwrap_err().to_string();
        assert_eq!(
            error(keywords("a b", &["x"])),
            "rule `a b`: the name must be letters, digits, `-` or `_`"
        );
        assert_eq!(
            error(keywords("system", &["x"])),
            "rule `system`: `system` is the integration monitor's name"
        );
        assert_eq!(
            error(keywords("empty", &[])),
            "rule `empty`: nothing to match: set keywords, regex, emergency or tones"
        );
        assert_eq!(
            error(keywords("blank", &[" , "])),
            "rule `blank`: keyword ` , ` has no words"
        );
        assert!(
            error(RuleSpec {
                regex: Some("(".into()),
                ..keywords("bad-regex", &[])
            })
            .starts_with("rule `bad-regex`: regex: ")
        );
    }

    #[test]
    fn among_many_expressions_only_those_that_match_fire() {
        let specs = (0..300)
            .map(|n| RuleSpec {
                name: format!("box-{n}"),
                regex: Some(format!(r"\bbox alarm {n}\b")),
                ..RuleSpec::default()
            })
            .collect();
        let rules = set(specs);
        assert!(rules.expressions.is_some(), "one set for all of them");
        assert_eq!(
            fired(
                &rules,
                &call("Box Alarm 42 for the mall, box alarm 142 next door")
            ),
            [
                ("box-42".to_owned(), vec!["Box Alarm 42".to_owned()]),
                ("box-142".to_owned(), vec!["box alarm 142".to_owned()])
            ]
        );
    }

    #[test]
    fn a_disabled_rule_never_fires() {
        let rules = set(vec![RuleSpec {
            enabled: false,
            ..keywords("off", &["fire"])
        }]);
        assert!(names(&rules, &call("fire")).is_empty());
    }
}
