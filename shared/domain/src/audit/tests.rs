//! The streaming verifier and its checkpoints.

use serde_json::json;

use super::*;

fn id() -> DeploymentId {
    DeploymentId::parse("dep-stream").unwrap()
}

fn trail(n: u64) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = Vec::new();
    for i in 0..n {
        let head = out.last().map(AuditEvent::head);
        out.push(AuditEvent::chain(
            &id(),
            head.as_ref(),
            AuditDraft {
                at: Timestamp::from_unix_seconds(1_795_425_060).unwrap(),
                actor: ActorId::parse("auditor-erin").unwrap(),
                correlation_id: CorrelationId::parse("dp-20261123-0001").unwrap(),
                kind: AuditKind::GateEvaluated,
                detail: json!({ "n": i }),
            },
        ));
    }
    out
}

fn stream(v: &mut ChainVerifier, events: &[AuditEvent]) -> Result<(), ChainError> {
    events.iter().try_for_each(|e| v.push(e))
}

#[test]
fn the_streaming_verifier_agrees_with_the_whole_trail_and_answers_the_head_as_checkpoint() {
    let events = trail(10);
    let head = events[9].head();
    let mut v = ChainVerifier::new(&id());
    stream(&mut v, &events).unwrap();
    assert_eq!(v.finish(&head).unwrap(), head.checkpoint());
    assert_eq!(
        head.checkpoint().unwrap(),
        Checkpoint {
            seq: 9,
            hash: events[9].hash.clone()
        }
    );
    assert_eq!((v.verified(), v.checked()), (10, 10));
    verify(&id(), &events, Some(&head)).unwrap();
}

#[test]
fn an_empty_trail_has_no_checkpoint() {
    let v = ChainVerifier::new(&id());
    let head = ChainHead {
        len: 0,
        hash: GENESIS.into(),
    };
    assert_eq!(v.finish(&head).unwrap(), None);
}

#[test]
fn verification_resumes_from_a_checkpoint_and_reads_only_what_follows() {
    let events = trail(10);
    let head = events[9].head();
    let at = events[3].head().checkpoint().unwrap();
    let mut v = ChainVerifier::resume(&id(), &at);
    stream(&mut v, &events[4..]).unwrap();
    assert_eq!(v.checked(), 6);
    assert_eq!(v.finish(&head).unwrap(), head.checkpoint());
    // At the last event: nothing to read, the head must match.
    let v = ChainVerifier::resume(&id(), &head.checkpoint().unwrap());
    assert_eq!(v.finish(&head).unwrap(), head.checkpoint());
}

#[test]
fn a_wrong_checkpoint_never_verifies() {
    let events = trail(10);
    let head = events[9].head();
    let at = |seq: u64, hash: &str| Checkpoint {
        seq,
        hash: hash.to_owned(),
    };
    // Another event's hash: the next event does not link.
    let mut v = ChainVerifier::resume(&id(), &at(3, &events[2].hash));
    assert_eq!(
        stream(&mut v, &events[4..]),
        Err(ChainError::CheckpointMismatch { seq: 3 })
    );
    // The right hash at the wrong position: the events read do not start where expected.
    let mut v = ChainVerifier::resume(&id(), &at(4, &events[3].hash));
    assert_eq!(
        stream(&mut v, &events[4..]),
        Err(ChainError::OutOfSequence { index: 5, seq: 4 })
    );
    // A checkpoint at the last position with another hash.
    let v = ChainVerifier::resume(&id(), &at(9, &events[8].hash));
    assert_eq!(
        v.finish(&head),
        Err(ChainError::CheckpointMismatch { seq: 9 })
    );
    // Past the trail's end.
    let v = ChainVerifier::resume(&id(), &at(10, &events[9].hash));
    assert_eq!(
        v.finish(&head),
        Err(ChainError::UnknownCheckpoint { seq: 10, len: 10 })
    );
    // Not a hash at all.
    let mut v = ChainVerifier::resume(&id(), &at(3, "nope"));
    assert_eq!(
        stream(&mut v, &events[4..]),
        Err(ChainError::CheckpointMismatch { seq: 3 })
    );
}

#[test]
fn an_event_tampered_after_the_checkpoint_is_found() {
    let mut events = trail(10);
    let head = events[9].head();
    let at = events[3].head().checkpoint().unwrap();
    events[6].detail = json!({ "n": "edited" });
    let mut v = ChainVerifier::resume(&id(), &at);
    assert_eq!(
        stream(&mut v, &events[4..]),
        Err(ChainError::Altered { index: 6 })
    );
    // Rehashed: the link to it holds, the next one breaks.
    events[6].hash = events[6].compute_hash();
    let mut v = ChainVerifier::resume(&id(), &at);
    assert_eq!(
        stream(&mut v, &events[4..]),
        Err(ChainError::BrokenLink { index: 7 })
    );
    // The first event after the checkpoint rehashed with another link.
    let mut events = trail(10);
    events[4].prev_hash = events[2].hash.clone();
    events[4].hash = events[4].compute_hash();
    let mut v = ChainVerifier::resume(&id(), &at);
    assert_eq!(
        stream(&mut v, &events[4..]),
        Err(ChainError::CheckpointMismatch { seq: 3 })
    );
    let _ = head;
}

#[test]
fn the_verifier_holds_a_fixed_amount_of_state() {
    // No collection: the deployment id, two numbers, the checkpoint's position and a fixed-size
    // hash. Pushing events changes values, never sizes.
    let events = trail(50);
    let mut v = ChainVerifier::new(&id());
    let before = v.clone();
    stream(&mut v, &events).unwrap();
    assert_eq!(std::mem::size_of_val(&before), std::mem::size_of_val(&v));
    assert_eq!(v.deployment_id, before.deployment_id);
    let fields = std::mem::size_of::<DeploymentId>()
        + std::mem::size_of::<Option<[u8; 64]>>()
        + std::mem::size_of::<Option<u64>>()
        + 2 * std::mem::size_of::<u64>();
    assert!(
        std::mem::size_of::<ChainVerifier>() <= fields.next_multiple_of(8),
        "the verifier's fields are the deployment id, two counters, the checkpoint position and one hash"
    );
}

#[test]
fn checkpoints_read_and_write_seq_dot_hash() {
    let c = Checkpoint {
        seq: 41,
        hash: "ab".repeat(32),
    };
    assert_eq!(c.to_string(), format!("41.{}", "ab".repeat(32)));
    assert_eq!(Checkpoint::parse(&c.to_string()), Ok(c));
    let h = "0".repeat(64);
    assert!(Checkpoint::parse(&format!("0.{h}")).is_ok());
    assert!(Checkpoint::parse(&format!("9999999999999999999.{h}")).is_ok());
    for bad in [
        String::new(),
        h.clone(),
        format!("01.{h}"),
        format!("+1.{h}"),
        format!("-1.{h}"),
        format!("1.{}", "A".repeat(64)),
        format!("1.{}", "a".repeat(63)),
        format!("1.{h}\n"),
        format!("99999999999999999999.{h}"),
        format!(".{h}"),
    ] {
        assert_eq!(Checkpoint::parse(&bad), Err(CheckpointSyntax), "{bad:?}");
    }
    let re = Checkpoint::PATTERN;
    assert!(re.starts_with('^') && re.ends_with('$'));
}
