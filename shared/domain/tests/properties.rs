//! Property tests of the domain's invariants.

mod common;

use common::{actor, policy, sample, t0};
use eucora_domain::audit::{AuditDraft, AuditEvent, AuditKind, ChainHead, verify};
use eucora_domain::evidence::Submission;
use eucora_domain::lifecycle::{DeploymentState, Lifecycle, LifecycleEvent};
use eucora_domain::risk::{Factor, FactorValues, Rubric, score_values};
use eucora_domain::units::Normalised;
use eucora_domain::{CorrelationId, DeploymentId, Ring};
use proptest::prelude::*;
use serde_json::Value;
use time::Duration;

fn values() -> impl Strategy<Value = FactorValues> {
    proptest::array::uniform8(0_u16..=1000)
        .prop_map(|a| a.map(|v| Normalised::from_per_mille(v).unwrap()))
}

proptest! {
    #[test]
    fn score_is_within_0_and_100(v in values()) {
        let a = score_values(&v, &policy());
        prop_assert!(a.score.value() <= 100);
        prop_assert!((0.0..=100.0).contains(&a.exact_score));
    }

    #[test]
    fn score_never_drops_when_a_factor_rises(v in values(), factor in 0_usize..8, up in 0_u16..=1000) {
        let p = policy();
        let before = score_values(&v, &p);
        let mut raised = v;
        let new = (raised[factor].per_mille() + up).min(1000);
        raised[factor] = Normalised::from_per_mille(new).unwrap();
        let after = score_values(&raised, &p);
        prop_assert!(after.score >= before.score, "{} -> {}", before.score, after.score);
        prop_assert!(after.exact_score >= before.exact_score);
    }
}

/// Rubric levels are ordered low → high: a higher level never has a lower value.
#[test]
fn rubric_values_never_decrease_along_the_levels() {
    fn check<L: Rubric>(t: &eucora_domain::policy::FactorTable<L>) {
        let vals: Vec<u16> = L::ALL.iter().map(|l| t.value(*l).per_mille()).collect();
        assert!(vals.windows(2).all(|w| w[0] <= w[1]), "{vals:?}");
    }
    let f = &policy().risk.factors;
    check(&f.privilege_impact);
    check(&f.supply_chain_trust);
    check(&f.exploitability);
    check(&f.data_access);
    check(&f.sbom_vulnerabilities);
    check(&f.blast_radius);
    check(&f.operational_complexity);
    check(&f.history);
    assert_eq!(Factor::ALL.len(), 8);
}

/// A tiny deterministic generator driven by the proptest seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Writes `v` with its object keys shuffled and random white space between tokens.
fn scramble(v: &Value, rng: &mut Lcg, out: &mut String) {
    let ws = |rng: &mut Lcg, out: &mut String| {
        for _ in 0..rng.next() % 3 {
            out.push([' ', '\n', '\t', '\r'][usize::try_from(rng.next() % 4).unwrap()]);
        }
    };
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            for i in (1..keys.len()).rev() {
                let j = usize::try_from(rng.next()).unwrap() % (i + 1);
                keys.swap(i, j);
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                out.push_str(&Value::String((*k).clone()).to_string());
                ws(rng, out);
                out.push(':');
                ws(rng, out);
                scramble(&m[k.as_str()], rng, out);
                ws(rng, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                scramble(x, rng, out);
            }
            ws(rng, out);
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #[test]
    fn hash_is_independent_of_key_order_and_white_space(seed in any::<u64>(), which in 0_usize..4) {
        let name = ["low-risk", "high-risk", "multi-platform", "critical-cve"][which];
        let original = sample(name);
        let value = serde_json::to_value(&original).unwrap();
        let mut text = String::new();
        scramble(&value, &mut Lcg(seed), &mut text);
        let reparsed = Submission::parse(&text).unwrap();
        prop_assert_eq!(&reparsed, &original);
        prop_assert_eq!(reparsed.content_hash(), original.content_hash());
    }
}

fn ring() -> impl Strategy<Value = Ring> {
    (0_i64..=4).prop_map(|n| Ring::from_number(n).unwrap())
}

fn event() -> impl Strategy<Value = LifecycleEvent> {
    use LifecycleEvent as E;
    prop_oneof![
        (any::<bool>(), any::<bool>()).prop_map(|(publish_blocked, cab_required)| E::Scored {
            publish_blocked,
            cab_required
        }),
        any::<bool>().prop_map(|cab_required| E::Unblocked { cab_required }),
        ring().prop_map(|ring| E::CabApproved { ring }),
        ring().prop_map(|ring| E::CabRejected { ring }),
        ring().prop_map(|ring| E::DispatchStarted { ring }),
        ring().prop_map(|ring| E::DispatchConfirmed { ring }),
        (ring(), any::<bool>()).prop_map(|(to, cab_required)| E::Promote { to, cab_required }),
        Just(E::Complete),
        Just(E::Halt),
        Just(E::Resume),
        Just(E::ResumeDispatch),
        Just(E::RolledBack),
        Just(E::Withdraw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn no_transition_skips_a_ring_or_leaves_a_terminal_state(
        first in 0_i64..=1,
        extra in 0_i64..=4,
        events in proptest::collection::vec(event(), 1..60),
    ) {
        let first = Ring::from_number(first).unwrap();
        let last = Ring::from_number((i64::from(first.number()) + extra).min(4)).unwrap();
        let mut l = Lifecycle::new(first, last);
        for e in events {
            let before = l;
            match l.apply(e) {
                Ok(next) => {
                    prop_assert!(!before.state.is_terminal(), "left terminal {:?} by {:?}", before.state, e);
                    if let Some(r) = next.state.ring() {
                        prop_assert!(r >= first && r <= last, "{:?} outside {first}..={last}", next.state);
                    }
                    if let (Some(a), Some(b)) = (before.live_ring(), next.live_ring()) {
                        prop_assert!(b >= a, "live ring went back from {a} to {b}");
                    }
                    if let (Some(a), Some(b)) = (before.state.ring(), next.state.ring()) {
                        prop_assert!(b.number() <= a.number() + 1, "skipped from {a} to {b} by {e:?}");
                        if b > a {
                            prop_assert!(matches!(e, LifecycleEvent::Promote { .. }), "ring rose by {e:?}");
                        }
                    }
                    if next.state == DeploymentState::Completed {
                        prop_assert_eq!(before.state, DeploymentState::InRing { ring: last });
                    }
                    l = next;
                }
                Err(_) => prop_assert_eq!(l, before),
            }
        }
    }
}

fn chain(n: usize) -> (DeploymentId, Vec<AuditEvent>) {
    let id = DeploymentId::parse("dep-chain").unwrap();
    let mut events: Vec<AuditEvent> = Vec::new();
    for i in 0..n {
        let head = events.last().map(AuditEvent::head);
        let kind = AuditKind::ALL[i % AuditKind::ALL.len()];
        events.push(AuditEvent::chain(
            &id,
            head.as_ref(),
            AuditDraft {
                at: t0().plus(Duration::minutes(i64::try_from(i).unwrap())),
                actor: actor(&format!("actor-{}", i % 3)),
                correlation_id: CorrelationId::parse("dp-20261123-0001").unwrap(),
                kind,
                detail: serde_json::json!({ "step": i, "note": format!("event {i}") }),
            },
        ));
    }
    (id, events)
}

#[derive(Debug, Clone)]
enum Tamper {
    AlterDetail(usize),
    AlterActor(usize),
    AlterTime(usize),
    AlterAndRehash(usize),
    Drop(usize),
    Insert(usize),
    Swap(usize),
}

fn tamper(n: usize) -> impl Strategy<Value = Tamper> {
    let i = 0..n;
    prop_oneof![
        i.clone().prop_map(Tamper::AlterDetail),
        i.clone().prop_map(Tamper::AlterActor),
        i.clone().prop_map(Tamper::AlterTime),
        i.clone().prop_map(Tamper::AlterAndRehash),
        i.clone().prop_map(Tamper::Drop),
        (0..=n).prop_map(Tamper::Insert),
        (0..n.saturating_sub(1).max(1)).prop_map(Tamper::Swap),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn the_verifier_catches_every_single_event_tamper(
        (n, t) in (2_usize..12).prop_flat_map(|n| (Just(n), tamper(n)))
    ) {
        let (id, mut events) = chain(n);
        let head: ChainHead = events.last().unwrap().head();
        prop_assert!(verify(&id, &events, Some(&head)).is_ok());
        match t {
            Tamper::AlterDetail(i) => events[i].detail["note"] = Value::String("edited".into()),
            Tamper::AlterActor(i) => events[i].actor = actor("mallory"),
            Tamper::AlterTime(i) => events[i].at = events[i].at.plus(Duration::seconds(1)),
            Tamper::AlterAndRehash(i) => {
                events[i].detail["note"] = Value::String("edited".into());
                events[i].hash = events[i].compute_hash();
            }
            Tamper::Drop(i) => {
                events.remove(i);
            }
            Tamper::Insert(i) => {
                // A forged event, properly chained to its predecessor and hashed.
                let prev = if i == 0 { None } else { Some(events[i - 1].head()) };
                let forged = AuditEvent::chain(&id, prev.as_ref(), AuditDraft {
                    at: t0(),
                    actor: actor("mallory"),
                    correlation_id: CorrelationId::parse("dp-forged").unwrap(),
                    kind: AuditKind::CabDecided,
                    detail: serde_json::json!({ "verdict": "approve" }),
                });
                events.insert(i, forged);
            }
            Tamper::Swap(i) => events.swap(i, i + 1),
        }
        prop_assert!(verify(&id, &events, Some(&head)).is_err(), "tamper not caught");
    }
}

proptest! {
    /// A stored event is JSON text read back later (DynamoDB holds it as a string): every float in
    /// its detail (gate hours, percentages, risk contributions) must come back bit for bit, or the
    /// event no longer matches its hash. serde_json parses floats exactly only with its
    /// `float_roundtrip` feature, which the workspace turns on.
    #[test]
    fn an_event_with_floats_verifies_after_a_json_round_trip(x in any::<f64>().prop_filter("finite", |x| x.is_finite()), hours in 0.0_f64..1000.0) {
        let id = DeploymentId::parse("dep-floats").unwrap();
        let e = AuditEvent::chain(
            &id,
            None,
            AuditDraft {
                at: t0(),
                actor: actor("gate"),
                correlation_id: CorrelationId::parse("dp-20261123-0001").unwrap(),
                kind: AuditKind::GateEvaluated,
                detail: serde_json::json!({ "actual": { "unit": "hours", "value": hours }, "x": x, "third": hours / 3.0 }),
            },
        );
        let stored = serde_json::to_string(&e).unwrap();
        let back: AuditEvent = serde_json::from_str(&stored).unwrap();
        prop_assert_eq!(back.compute_hash(), e.hash.clone());
        prop_assert!(verify(&id, &[back], Some(&e.head())).is_ok());
    }
}
