//! Account-level settings: the minimum throughput billing commitment that
//! DescribeAccountSettings reports and UpdateAccountSettings changes. It matters to
//! the server because warm throughput on ON_DEMAND streams needs it enabled.
//!
//! AWS's rules, kept here: a commitment runs at least 24 hours; disabling it earlier
//! schedules the end at the earliest allowed time (status
//! `ENABLED_UNTIL_EARLIEST_ALLOWED_END`), and enabling it again before then cancels
//! the scheduled end.

use serde::{Deserialize, Serialize};

use crate::server::clock::Millis;

/// How long a commitment must run before it can end.
pub const COMMITMENT_MINIMUM_MS: Millis = 24 * 3_600_000;

/// One commitment, from its start to its (scheduled) end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub started_ms: Millis,
    pub earliest_end_ms: Millis,
    /// When it ends or ended; in the future while an early disable waits.
    pub ended_ms: Option<Millis>,
}

/// The commitment's status as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitmentStatus {
    Enabled,
    Disabled,
    EnabledUntilEarliestAllowedEnd,
}

impl CommitmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitmentStatus::Enabled => "ENABLED",
            CommitmentStatus::Disabled => "DISABLED",
            CommitmentStatus::EnabledUntilEarliestAllowedEnd => {
                "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
            }
        }
    }
}

/// The account's settings, persisted with the stream metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// The latest commitment, current or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<Commitment>,
}

impl AccountSettings {
    pub fn status(&self, now_ms: Millis) -> CommitmentStatus {
        match self.commitment {
            None => CommitmentStatus::Disabled,
            Some(Commitment {
                ended_ms: Some(end),
                ..
            }) if now_ms >= end => CommitmentStatus::Disabled,
            Some(Commitment {
                ended_ms: Some(_), ..
            }) => CommitmentStatus::EnabledUntilEarliestAllowedEnd,
            Some(_) => CommitmentStatus::Enabled,
        }
    }

    pub fn commitment_enabled(&self, now_ms: Millis) -> bool {
        self.status(now_ms) != CommitmentStatus::Disabled
    }

    /// Starts a commitment, or cancels the scheduled end of the current one.
    pub fn enable(&mut self, now_ms: Millis) {
        match (self.status(now_ms), self.commitment.as_mut()) {
            (CommitmentStatus::EnabledUntilEarliestAllowedEnd, Some(current)) => {
                current.ended_ms = None;
            }
            (CommitmentStatus::Enabled, _) => {}
            _ => {
                self.commitment = Some(Commitment {
                    started_ms: now_ms,
                    earliest_end_ms: now_ms + COMMITMENT_MINIMUM_MS,
                    ended_ms: None,
                });
            }
        }
    }

    /// Ends the commitment now, or at its earliest allowed end if that is later.
    pub fn disable(&mut self, now_ms: Millis) {
        if self.status(now_ms) == CommitmentStatus::Enabled
            && let Some(current) = self.commitment.as_mut()
        {
            current.ended_ms = Some(now_ms.max(current.earliest_end_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_disable_waits_for_the_earliest_end_and_enabling_again_cancels_it() {
        let mut account = AccountSettings::default();
        assert_eq!(account.status(0), CommitmentStatus::Disabled);
        account.enable(1_000);
        assert_eq!(account.status(1_000), CommitmentStatus::Enabled);
        account.disable(2_000);
        assert_eq!(
            account.status(2_000),
            CommitmentStatus::EnabledUntilEarliestAllowedEnd
        );
        assert!(account.commitment_enabled(2_000));
        assert_eq!(
            account.status(1_000 + COMMITMENT_MINIMUM_MS),
            CommitmentStatus::Disabled
        );
        account.enable(3_000);
        assert_eq!(
            account.status(1_000 + COMMITMENT_MINIMUM_MS),
            CommitmentStatus::Enabled
        );
        assert_eq!(account.commitment.map(|c| c.started_ms), Some(1_000));
    }

    #[test]
    fn a_disable_after_the_minimum_ends_at_once_and_a_new_enable_starts_afresh() {
        let mut account = AccountSettings::default();
        account.enable(0);
        let later = COMMITMENT_MINIMUM_MS + 5;
        account.disable(later);
        assert_eq!(account.status(later), CommitmentStatus::Disabled);
        assert_eq!(account.commitment.and_then(|c| c.ended_ms), Some(later));
        account.enable(later + 1);
        assert_eq!(account.commitment.map(|c| c.started_ms), Some(later + 1));
        assert_eq!(account.status(later + 1), CommitmentStatus::Enabled);
    }
}
