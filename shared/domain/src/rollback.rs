//! Rollback validation as evidence. The packager's `validated_in_ring0` is their statement; what
//! the rollback gate reads is a validation record: who ran the rollback, when, on which Ring 0
//! devices, and with which result. It is recorded by a publisher or a security reviewer who did
//! not submit the deployment (separation of duties, whatever roles the submitter holds). The
//! deployment counts as rollback-validated when its latest validation passed: a later failed one
//! undoes an earlier pass.

use serde::{Deserialize, Serialize};

use crate::cab::Role;
use crate::ids::ActorId;
use crate::lifecycle::DeploymentState;
use crate::time::Timestamp;

/// At most this many Ring 0 devices per validation.
pub const MAX_DEVICES: usize = 20;
/// A device id is at most this many bytes.
pub const MAX_DEVICE_ID_BYTES: usize = 128;
/// Notes are free text: at most this many characters ...
pub const MAX_NOTES_CHARS: usize = crate::fields::Text::MAX;
/// ... so at most this many bytes of UTF-8.
pub const MAX_NOTES_BYTES: usize = crate::fields::Text::MAX_BYTES;
/// The record keeps at most this many validations, the latest (the record stays one bounded item).
pub const MAX_VALIDATIONS: usize = 20;

/// The roles that may record a rollback validation.
pub const VALIDATOR_ROLES: &[Role] = &[Role::Publisher, Role::SecurityReviewer];

string_enum!(
    /// How the rollback went on the Ring 0 devices.
    RollbackResult {
        /// The rollback ran and the devices are back on the previous state.
        Passed => "passed",
        /// The rollback did not work.
        Failed => "failed",
    }
);

/// One rollback run in Ring 0, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackValidation {
    /// Who recorded it.
    pub by: ActorId,
    pub at: Timestamp,
    /// The Ring 0 devices the rollback ran on (platform device ids).
    pub devices: Vec<String>,
    pub result: RollbackResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// What a validator states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationInput {
    pub devices: Vec<String>,
    pub result: RollbackResult,
    pub notes: Option<String>,
}

/// A validation that may not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackValidationError {
    #[error("{0} submitted this deployment and may not validate its rollback")]
    OwnSubmission(ActorId),
    #[error("a rollback validation is recorded by a publisher or a security reviewer")]
    RoleRequired,
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("the deployment is {0}; its rollback can no longer be validated")]
    Finished(DeploymentState),
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> RollbackValidationError {
    RollbackValidationError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Checks that `validator` (holding `roles`) may record a validation on a deployment submitted by
/// `submitter`.
pub fn check_validator(
    validator: &ActorId,
    roles: &[Role],
    submitter: &ActorId,
) -> Result<(), RollbackValidationError> {
    if validator == submitter {
        return Err(RollbackValidationError::OwnSubmission(validator.clone()));
    }
    if !roles.iter().any(|r| VALIDATOR_ROLES.contains(r)) {
        return Err(RollbackValidationError::RoleRequired);
    }
    Ok(())
}

/// Why a device id is not acceptable, if it is not.
pub fn device_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".into());
    }
    if id.len() > MAX_DEVICE_ID_BYTES {
        return Some(format!("must be at most {MAX_DEVICE_ID_BYTES} bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
    {
        return Some("may contain only letters, digits and . _ : @ -".into());
    }
    None
}

/// Checks the stated devices and notes, naming the field at fault.
pub fn check_input(input: &ValidationInput) -> Result<(), RollbackValidationError> {
    if input.devices.is_empty() {
        return Err(invalid("devices", "name at least one Ring 0 device"));
    }
    if input.devices.len() > MAX_DEVICES {
        return Err(invalid("devices", format!("at most {MAX_DEVICES} devices")));
    }
    for (i, d) in input.devices.iter().enumerate() {
        if let Some(problem) = device_id_problem(d) {
            return Err(invalid(format!("devices[{i}]"), problem));
        }
    }
    if let Some(n) = &input.notes {
        if n.trim().is_empty() {
            return Err(invalid("notes", "must not be empty"));
        }
        if n.chars().count() > MAX_NOTES_CHARS {
            return Err(invalid(
                "notes",
                format!("must be at most {MAX_NOTES_CHARS} characters ({MAX_NOTES_BYTES} bytes)"),
            ));
        }
    }
    Ok(())
}

/// The validation `by` (holding `roles`) records on a deployment in `state` submitted by
/// `submitter`, which already has `previous` validations.
pub fn record(
    previous: &[RollbackValidation],
    state: DeploymentState,
    submitter: &ActorId,
    by: &ActorId,
    roles: &[Role],
    input: ValidationInput,
    at: Timestamp,
) -> Result<RollbackValidation, RollbackValidationError> {
    check_validator(by, roles, submitter)?;
    if state.is_terminal() {
        return Err(RollbackValidationError::Finished(state));
    }
    check_input(&input)?;
    // Only the latest counts, so a new one is always taken (`keep_latest` bounds the record).
    let _ = previous;
    Ok(RollbackValidation {
        by: by.clone(),
        at,
        devices: input.devices,
        result: input.result,
        notes: input.notes,
    })
}

/// Keeps the latest [`MAX_VALIDATIONS`] validations (the gate reads the latest; the audit trail
/// keeps every one), so that the record stays bounded and a new validation, passed or failed, is
/// always taken.
pub fn keep_latest(validations: &mut Vec<RollbackValidation>) {
    let over = validations.len().saturating_sub(MAX_VALIDATIONS);
    validations.drain(..over);
}

/// True when the latest validation (the last recorded) passed.
pub fn is_validated(validations: &[RollbackValidation]) -> bool {
    validations
        .last()
        .is_some_and(|v| v.result == RollbackResult::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(s: &str) -> ActorId {
        ActorId::parse(s).unwrap()
    }

    fn at(minutes: i64) -> Timestamp {
        Timestamp::parse("2026-11-23T08:00:00Z")
            .unwrap()
            .plus(time::Duration::minutes(minutes))
    }

    fn input(result: RollbackResult) -> ValidationInput {
        ValidationInput {
            devices: vec!["a1b2c3d4-0000-4000-8000-000000000001".into()],
            result,
            notes: None,
        }
    }

    const STATE: DeploymentState = DeploymentState::InRing {
        ring: crate::ring::Ring::Lab,
    };

    #[test]
    fn the_submitter_may_not_validate_even_holding_publisher() {
        let alice = actor("alice");
        let err = record(
            &[],
            STATE,
            &alice,
            &alice,
            &[Role::Packaging, Role::Publisher, Role::SecurityReviewer],
            input(RollbackResult::Passed),
            at(0),
        )
        .unwrap_err();
        assert_eq!(err, RollbackValidationError::OwnSubmission(alice));
    }

    #[test]
    fn an_auditor_or_cab_member_may_not_validate() {
        for roles in [
            &[Role::Auditor][..],
            &[Role::Cab, Role::Packaging][..],
            &[][..],
        ] {
            let err = record(
                &[],
                STATE,
                &actor("alice"),
                &actor("bob"),
                roles,
                input(RollbackResult::Passed),
                at(0),
            )
            .unwrap_err();
            assert_eq!(err, RollbackValidationError::RoleRequired, "{roles:?}");
        }
    }

    #[test]
    fn a_publisher_or_security_reviewer_may_validate() {
        for role in [Role::Publisher, Role::SecurityReviewer] {
            let v = record(
                &[],
                STATE,
                &actor("alice"),
                &actor("bob"),
                &[role],
                input(RollbackResult::Passed),
                at(0),
            )
            .unwrap();
            assert_eq!(v.by, actor("bob"));
            assert_eq!(v.at, at(0));
        }
    }

    #[test]
    fn no_devices_is_an_error_naming_the_field() {
        let mut i = input(RollbackResult::Passed);
        i.devices.clear();
        let err = record(
            &[],
            STATE,
            &actor("a"),
            &actor("b"),
            &[Role::Publisher],
            i,
            at(0),
        )
        .unwrap_err();
        assert!(
            matches!(&err, RollbackValidationError::Invalid { field, .. } if field == "devices"),
            "{err:?}"
        );
    }

    #[test]
    fn devices_and_notes_are_bounded() {
        let mut i = input(RollbackResult::Passed);
        i.devices = vec!["d".into(); MAX_DEVICES + 1];
        assert!(check_input(&i).is_err());
        i.devices = vec!["ok".into(), "x".repeat(MAX_DEVICE_ID_BYTES + 1)];
        assert!(
            matches!(check_input(&i), Err(RollbackValidationError::Invalid { field, .. }) if field == "devices[1]")
        );
        i.devices = vec!["bad id".into()];
        assert!(check_input(&i).is_err());
        i.devices = vec!["ok".into()];
        // Bytes, not characters: two-byte characters count twice.
        i.notes = Some("é".repeat(MAX_NOTES_CHARS + 1));
        assert!(
            matches!(check_input(&i), Err(RollbackValidationError::Invalid { field, .. }) if field == "notes")
        );
        i.notes = Some("😀".repeat(MAX_NOTES_CHARS));
        assert_eq!(i.notes.as_ref().map(String::len), Some(MAX_NOTES_BYTES));
        assert!(check_input(&i).is_ok());
    }

    #[test]
    fn the_latest_result_wins() {
        let ok = |m| RollbackValidation {
            by: actor("bob"),
            at: at(m),
            devices: vec!["d1".into()],
            result: RollbackResult::Passed,
            notes: None,
        };
        let failed = |m| RollbackValidation {
            result: RollbackResult::Failed,
            ..ok(m)
        };
        assert!(!is_validated(&[]));
        assert!(is_validated(&[ok(0)]));
        assert!(!is_validated(&[ok(0), failed(5)]));
        assert!(is_validated(&[failed(0), ok(5)]));
        assert!(!is_validated(&[failed(0)]));
    }

    #[test]
    fn not_on_a_terminal_deployment_and_not_more_than_the_bound() {
        let err = record(
            &[],
            DeploymentState::Completed,
            &actor("a"),
            &actor("b"),
            &[Role::Publisher],
            input(RollbackResult::Passed),
            at(0),
        )
        .unwrap_err();
        assert_eq!(
            err,
            RollbackValidationError::Finished(DeploymentState::Completed)
        );
        // Past the most kept, a new one is still taken (a failure can always be recorded) and
        // the oldest leaves the record.
        let mut kept: Vec<_> = (0..=MAX_VALIDATIONS)
            .map(|i| {
                record(
                    &[],
                    STATE,
                    &actor("a"),
                    &actor("b"),
                    &[Role::Publisher],
                    input(if i == MAX_VALIDATIONS {
                        RollbackResult::Failed
                    } else {
                        RollbackResult::Passed
                    }),
                    at(i64::try_from(i).unwrap()),
                )
                .unwrap()
            })
            .collect();
        keep_latest(&mut kept);
        assert_eq!(kept.len(), MAX_VALIDATIONS);
        assert_eq!(kept[0].at, at(1));
        assert!(!is_validated(&kept));
    }
}
