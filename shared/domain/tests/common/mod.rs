//! Helpers shared by the domain's integration tests. The sample deployments are the same files
//! the local run and the functions' tests read, in `events/deployments/`.
#![allow(dead_code)]

use eucora_domain::cab::{BlastRadiusClass, CabContext, classify_blast_radius};
use eucora_domain::evidence::Submission;
use eucora_domain::exception::Waivers;
use eucora_domain::policy::Policy;
use eucora_domain::risk::{RiskAssessment, assess};
use eucora_domain::{ActorId, Timestamp};

pub fn sample(name: &str) -> Submission {
    let path = format!(
        "{}/../../events/deployments/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Submission::parse(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn policy() -> Policy {
    Policy::bundled()
}

pub fn actor(name: &str) -> ActorId {
    ActorId::parse(name).unwrap()
}

pub fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

pub fn t0() -> Timestamp {
    at("2026-11-23T09:00:00Z")
}

pub fn scored(s: &Submission) -> RiskAssessment {
    assess(s, &Waivers::default(), &policy())
}

pub fn context(s: &Submission) -> CabContext {
    CabContext {
        score: scored(s).score,
        privileged: s.privileged,
        class: classify_blast_radius(s, None),
    }
}

pub fn with_class(mut s: Submission, class: BlastRadiusClass) -> Submission {
    s.business_criticality = class;
    s
}
