//! The local stack for the end-to-end tests: one per test, driven through its HTTP API only
//! (submissions, CAB decisions, exceptions, incidents, rollback validations, reads), with the gate schedule run in
//! steps on the stack's clock.

use std::path::PathBuf;
use std::time::Duration;

use eucora_domain::cab::Role;
use eucora_local::client::{Client, state_of};
use eucora_local::stack::local::{LocalStack, Options};
use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A sample submission from `events/deployments/`.
pub fn sample(name: &str) -> Value {
    let path = repo().join(format!("events/deployments/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("sample exists")).expect("JSON")
}

/// A state the control plane leaves by itself, without a gate run or a person: scoring, the
/// dispatch of an approved ring.
fn in_passage(state: &str) -> bool {
    ["submitted", "approved", "dispatching"]
        .iter()
        .any(|p| state == *p || state.starts_with(&format!("{p} ")))
}

/// A local stack and a client per person.
pub struct E2e {
    pub stack: LocalStack,
    /// Packaging engineer: submits.
    pub packager: Client,
    /// Three CAB members.
    pub cab: [Client; 3],
    pub security: Client,
    pub publisher: Client,
    pub auditor: Client,
}

impl std::fmt::Debug for E2e {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2e")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

/// The stack's clock starts at [`crate::TEST_START`] whatever the day, and runs 60 × the wall
/// clock (retry delays of seconds pass in a blink); the gate schedule is run by the test, in steps.
pub async fn start() -> E2e {
    start_with(test_options()).await
}

/// The options of [`start`].
fn test_options() -> Options {
    Options {
        speed: 60.0,
        start: Some(eucora_domain::Timestamp::parse(crate::TEST_START).expect("RFC 3339")),
        devices: 10,
        schedule: false,
        realistic_latency: false,
        ..Options::default()
    }
}

/// The options of [`start`], accepting also Entra ID tokens of tenant `tid` (issuer
/// [`eucora_local::api::jwt::entra_issuer`]) for each of `audiences`, as the template's
/// `JwtIssuer` and `JwtAudience` list configure API Gateway's authorizer. The local tokens of the
/// people of [`E2e`] are still accepted.
pub fn options_with_entra(tid: &str, audiences: &[&str]) -> Options {
    let mut options = test_options();
    options
        .jwt_issuers
        .push(eucora_local::api::jwt::entra_issuer(tid));
    options
        .jwt_audiences
        .extend(audiences.iter().map(|a| (*a).to_owned()));
    options
}

/// A stack started with `options` (the scale bench: 10,000 devices a ring, realistic latency).
pub async fn start_with(options: Options) -> E2e {
    let stack = LocalStack::start(&repo(), options)
        .await
        .expect("the local stack starts");
    let client = |sub: &str, roles: &[Role]| Client::new(&stack.api_url, &stack.token(sub, roles));
    E2e {
        packager: client("packager-alice", &[Role::Packaging]),
        cab: [
            client("cab-carol", &[Role::Cab]),
            client("cab-dave", &[Role::Cab]),
            client("cab-frank", &[Role::Cab]),
        ],
        security: client("security-sam", &[Role::SecurityReviewer]),
        publisher: client("publisher-pat", &[Role::Publisher]),
        auditor: client("auditor-erin", &[Role::Auditor]),
        stack,
    }
}

impl E2e {
    /// Builds the sample's packages into the artifact bucket and submits it; returns its id.
    pub async fn submit(&self, mut submission: Value) -> String {
        self.stack
            .stage_packages(&mut submission)
            .await
            .expect("packages staged");
        let r = self.packager.submit(&submission, None).await.expect("HTTP");
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    pub async fn get(&self, id: &str) -> Value {
        self.auditor
            .deployment(id)
            .await
            .expect("HTTP")
            .into_ok()
            .expect("200")
    }

    pub async fn state(&self, id: &str) -> String {
        state_of(&self.get(id).await)
    }

    /// Lets the queues drain (scoring, dispatch, status queries) and returns the state once it is
    /// settled: not one the control plane is still moving out of by itself (submitted, approved,
    /// dispatching). A state still in passage after 30 s is returned as it is, for the test to
    /// report.
    pub async fn settled(&self, id: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            self.stack
                .settle(Duration::from_secs(60))
                .await
                .expect("the queues settle");
            let state = self.state(id).await;
            if !in_passage(&state) || std::time::Instant::now() > deadline {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One step of the schedule: the clock jumps `hours`, the gate function runs, the connectors
    /// answer its status queries.
    pub async fn step(&self, hours: u64) {
        self.stack.advance(Duration::from_secs(hours * 3600));
        let mut report = self.stack.run_gates().await.expect("gate run");
        if !report.failed.is_empty() {
            // A deployment that lost an optimistic-lock race three times is evaluated by the
            // next run: run it now, and that one must succeed.
            assert!(
                report
                    .failed
                    .iter()
                    .all(|(_, e)| e.contains("concurrently")),
                "{:?}",
                report.failed
            );
            report = self.stack.run_gates().await.expect("gate run");
        }
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        self.stack
            .settle(Duration::from_secs(60))
            .await
            .expect("the queues settle");
    }

    /// Runs the schedule in 6-hour steps until the deployment has left `state` and come to rest in
    /// another settled state (at most 10 days); never returns a state it is still passing through.
    pub async fn until_not(&self, id: &str, state: &str) -> String {
        let mut passing = 0;
        for _ in 0..40 {
            let now = self.settled(id).await;
            if now != state && !in_passage(&now) {
                return now;
            }
            // A dispatch that a day of gate runs did not finish is stuck, not slow.
            passing = if in_passage(&now) { passing + 1 } else { 0 };
            assert!(passing <= 4, "{id} stuck in {now}");
            self.step(6).await;
        }
        panic!("{id} stayed {state}");
    }

    /// A publisher (not the submitter) records a passed rollback run on two Ring 0 devices: the
    /// rollback gate reads this record, not the packager's `validated_in_ring0`. Returns the
    /// answer (the validation, whether the gate is satisfied, the state).
    pub async fn validate_rollback(&self, id: &str) -> Value {
        let devices = ["lab-device-01".to_owned(), "lab-device-02".to_owned()];
        let r = self
            .publisher
            .validate_rollback(id, &devices, "passed", None)
            .await
            .expect("HTTP");
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["rollback_validated"], true, "{}", r.body);
        r.body
    }

    /// Approves `ring` with each of `members`, bound to the deployment's evidence hash.
    pub async fn approve(&self, id: &str, ring: u8, members: &[&Client], conditions: &[&str]) {
        let hash = self.get(id).await["evidence_hash"]
            .as_str()
            .expect("hash")
            .to_owned();
        let conditions: Vec<String> = conditions.iter().map(|c| (*c).to_owned()).collect();
        for m in members {
            let r = m
                .decide(id, ring, "approve", &hash, &conditions, None)
                .await
                .expect("HTTP");
            assert!(r.ok(), "{}", r.body);
        }
    }

    /// The audit trail's events.
    pub async fn audit(&self, id: &str) -> Vec<Value> {
        let trail = self
            .auditor
            .audit(id)
            .await
            .expect("HTTP")
            .into_ok()
            .expect("200");
        trail["events"]
            .as_array()
            .or_else(|| trail.as_array())
            .cloned()
            .unwrap_or_default()
    }

    /// Asserts that the trail's hash chain verifies.
    pub async fn verified(&self, id: &str) {
        let v = self
            .auditor
            .verify(id)
            .await
            .expect("HTTP")
            .into_ok()
            .expect("200");
        assert_eq!(v["valid"], true, "{v}");
    }
}
