//! A Model's aliases and its `Ready` condition, decided without I/O: the
//! gates a new version must pass to take the promotion alias, the user's
//! pins (which win), and what the Model says about its versions.

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    AliasMove, CHALLENGER_ALIAS, Model, ModelStatus, ModelVersion, PromotionPolicy,
    REASON_ANNOTATION, REASON_ANNOTATION_LIMIT, REASON_FOR_ANNOTATION, REQUESTED_BY_ANNOTATION,
    VersionPhase, annotation,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::ALIAS_HISTORY_LIMIT;
use super::promotion::{self, Verdict};
use crate::conditions::Wanted;
use crate::events::{Notice, Severity};

/// Runs the gates on a new Ready version and moves aliases as the policy and
/// the pins allow; records the verdict on the version.
pub(super) fn judge(
    model: &Model,
    status: &mut ModelStatus,
    version: &mut ModelVersion,
    now: &Time,
    notices: &mut Vec<Notice>,
) {
    let promotion = &model.spec.promotion;
    let alias = promotion.alias.as_str();
    let holder = status
        .aliases
        .get(alias)
        .and_then(|h| status.versions.iter().find(|v| v.version == *h));
    let verdict = promotion::judge(version, holder, &promotion.gates);
    let pinned = |name: &str| model.spec.aliases.contains_key(name);
    let n = version.version;
    let (reason, message, moves): (&str, String, Option<&str>) = match verdict {
        Verdict::Fail(evidence) => (reasons::GATES_FAILED, evidence, None),
        Verdict::Challenger(evidence) => (
            reasons::NOT_BETTER_THAN_CHAMPION,
            evidence,
            Some(CHALLENGER_ALIAS),
        ),
        Verdict::Promote(evidence) if pinned(alias) => (
            crate::events::reasons::ALIAS_PINNED,
            format!("passed the gates ({evidence}) but {alias} is pinned in spec.aliases"),
            None,
        ),
        Verdict::Promote(evidence)
            if promotion.backtest.is_some() && holder.is_some_and(|h| h.version != n) =>
        {
            (
                reasons::BACKTESTING,
                format!(
                    "passed the gates ({evidence}); waits for its backtest against the holder of {alias}"
                ),
                None,
            )
        }
        Verdict::Promote(evidence)
            if promotion.shadow.is_some() && holder.is_some_and(|h| h.version != n) =>
        {
            (
                reasons::SHADOW_TRIAL,
                format!(
                    "passed the gates ({evidence}); as the challenger, waits for its shadow trial beside the holder of {alias}"
                ),
                Some(CHALLENGER_ALIAS),
            )
        }
        Verdict::Promote(evidence) if promotion.policy == PromotionPolicy::Manual => (
            reasons::AWAITING_MANUAL_PROMOTION,
            format!(
                "passed the gates ({evidence}); promotion is Manual: pin {alias}: {n} in spec.aliases to promote"
            ),
            None,
        ),
        Verdict::Promote(evidence) => ("Promoted", evidence, Some(alias)),
    };
    version.reason = (reason != "Promoted").then(|| reason.to_owned());
    version.message = Some(message.clone());
    let severity = if reason == reasons::GATES_FAILED {
        Severity::Warning
    } else {
        Severity::Normal
    };
    notices.push(Notice {
        severity,
        reason: if reason == "Promoted" {
            reasons::VERSION_REGISTERED.into()
        } else {
            reason.to_owned()
        },
        note: format!("version {n} registered: {message}"),
    });
    if let Some(target) = moves.filter(|t| !pinned(t)) {
        let why = if target == alias {
            "Promoted"
        } else {
            "Challenger"
        };
        move_alias(status, target, n, Why::decided(why, message), now, notices);
    }
}

/// Why an alias moves, as its history records it.
pub(super) struct Why {
    /// `Promoted`, `Challenger`, `Pinned`, …
    pub reason: &'static str,
    /// The evidence or the reason given.
    pub message: Option<String>,
    /// Who moved it, when a person did.
    pub by: Option<String>,
}

impl Why {
    /// A move the operator decided, with its evidence.
    pub(super) fn decided(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message: Some(message),
            by: None,
        }
    }
}

pub(super) fn move_alias(
    status: &mut ModelStatus,
    alias: &str,
    to: i64,
    why: Why,
    now: &Time,
    notices: &mut Vec<Notice>,
) {
    let Why {
        reason,
        message,
        by,
    } = why;
    let from = status.aliases.insert(alias.to_owned(), to);
    if from == Some(to) {
        return;
    }
    let shown_from = from.map_or_else(|| "unset".to_owned(), |v| format!("v{v}"));
    notices.push(Notice {
        severity: Severity::Normal,
        reason: crate::events::reasons::ALIAS_MOVED.into(),
        note: format!(
            "{alias}: {shown_from} -> v{to} ({reason}){}",
            message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
    });
    status.alias_history.push(AliasMove {
        alias: alias.to_owned(),
        from,
        to,
        reason: reason.to_owned(),
        message,
        by,
        time: now.clone(),
    });
    let excess = status
        .alias_history
        .len()
        .saturating_sub(ALIAS_HISTORY_LIMIT);
    status.alias_history.drain(..excess);
}

/// Points every alias pinned in `spec.aliases` at its version; returns the
/// pins that cannot be honoured.
pub(super) fn apply_pins(
    model: &Model,
    status: &mut ModelStatus,
    now: &Time,
    notices: &mut Vec<Notice>,
) -> Vec<String> {
    let annotation = |key: &str| annotation(&model.metadata, key);
    let by = annotation(REQUESTED_BY_ANNOTATION).cloned();
    let given = annotation(REASON_ANNOTATION)
        .map(|r| r.chars().take(REASON_ANNOTATION_LIMIT).collect::<String>());
    let explained = annotation(REASON_FOR_ANNOTATION);
    let mut unresolved = Vec::new();
    for (alias, &version) in &model.spec.aliases {
        match status.versions.iter().find(|v| v.version == version) {
            Some(v) if v.phase == VersionPhase::Ready => {
                let why = Why {
                    reason: "Pinned",
                    message: given
                        .clone()
                        .filter(|_| explained == Some(&format!("{alias}={version}"))),
                    by: by.clone(),
                };
                move_alias(status, alias, version, why, now, notices)
            }
            Some(_) => unresolved.push(format!(
                "{alias} is pinned to v{version}, which was Rejected"
            )),
            None => unresolved.push(format!(
                "{alias} is pinned to v{version}, which does not exist"
            )),
        }
    }
    unresolved
}

/// The `Ready` condition: unresolved pins, no Ready version, or how many
/// are Ready and where the promotion alias points.
pub(super) fn ready_condition(
    model: &Model,
    status: &ModelStatus,
    unresolved: &[String],
    blocked: Option<&str>,
) -> Wanted<'static> {
    let ready_versions = status
        .versions
        .iter()
        .filter(|v| v.phase == VersionPhase::Ready)
        .count();
    let alias = &model.spec.promotion.alias;
    let (ready, reason, message) = if let Some(blocked) = blocked {
        (false, reasons::VALIDATION_BLOCKED, blocked.to_owned())
    } else if !unresolved.is_empty() {
        (false, reasons::ALIAS_UNRESOLVED, unresolved.join("; "))
    } else if let Some(rejected) = status
        .versions
        .iter()
        .rev()
        .find(|v| v.phase == VersionPhase::Rejected)
        .filter(|_| ready_versions == 0)
    {
        (
            false,
            reasons::VERSIONS_REJECTED,
            format!(
                "every version was rejected; the latest, v{}: {}",
                rejected.version,
                rejected.message.as_deref().unwrap_or("no reason given")
            ),
        )
    } else if ready_versions == 0 {
        (
            false,
            reasons::NO_READY_VERSION,
            "no version is Ready yet".to_owned(),
        )
    } else {
        let pointer = status.aliases.get(alias).map_or_else(
            || format!("{alias} is not set"),
            |v| format!("{alias} -> v{v}"),
        );
        (
            true,
            reasons::AS_EXPECTED,
            format!("{ready_versions} Ready version(s); {pointer}"),
        )
    };
    Wanted {
        type_: types::READY,
        status: ready,
        reason,
        message,
    }
}

#[cfg(test)]
mod tests;
