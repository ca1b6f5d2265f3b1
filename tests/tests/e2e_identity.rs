//! Issue 13, point 2, through the HTTP API of the local stack: two tokens of one Entra ID person,
//! issued for two audiences (so with two different `sub` claims, as Entra ID's are pairwise),
//! are one person for a CAB quorum and for separation of duties.

use eucora_domain::cab::Role;
use eucora_local::client::Client;
use eucora_system_tests::local::{E2e, options_with_entra, sample, start_with};

const TENANT: &str = "8b2c6d0e-3f4a-4b5c-9d6e-7f8091a2b3c4";
/// The two applications (audiences) the API accepts tokens for, as `JwtAudience` lists them.
const AUDIENCES: [&str; 2] = ["api://eucora", "api://eucora-cli"];

async fn start() -> E2e {
    start_with(options_with_entra(TENANT, &AUDIENCES)).await
}

/// Person `oid`'s two clients: one with a token for each audience.
fn two_tokens(e: &E2e, oid: &str, roles: &[Role]) -> (Client, Client) {
    let client = |aud: &str| {
        Client::new(
            &e.stack.api_url,
            &e.stack.entra_token(TENANT, oid, aud, roles),
        )
    };
    (client(AUDIENCES[0]), client(AUDIENCES[1]))
}

async fn hash(e: &E2e, id: &str) -> String {
    e.get(id).await["evidence_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A CAB member approving a ring that needs two (a `BUSINESS_CRITICAL` app) under one token, then
/// under their token for the other audience, is refused the second time; the quorum is not
/// reached until another member approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_entra_person_with_two_audiences_counts_once_toward_a_quorum() {
    let e = start().await;
    let mut submission = sample("low-risk");
    submission["business_criticality"] = "BUSINESS_CRITICAL".into();
    let id = e.submit(submission).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let ring_1 = &e.get(&id).await["rings"][0];
    assert_eq!(ring_1["cab_status"]["quorum"], 2, "{ring_1}");

    let (token_a, token_b) = two_tokens(&e, "1c9e5a3b-7d2f-4b8e-a6c1-3e5f7a9b1d2c", &[Role::Cab]);
    let evidence = hash(&e, &id).await;
    let first = token_a
        .decide(&id, 1, "approve", &evidence, &[], None)
        .await
        .unwrap();
    assert!(first.ok(), "{}", first.body);
    let again = token_b
        .decide(&id, 1, "approve", &evidence, &[], None)
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    assert_eq!(e.get(&id).await["rings"][0]["cab_status"]["approvals"], 1);
    // The trail names one person, by tenant and object id, not by either token's sub.
    let approvers: Vec<String> = e
        .audit(&id)
        .await
        .iter()
        .filter(|ev| ev["kind"] == "cab.decided")
        .filter_map(|ev| ev["actor"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        approvers,
        [format!(
            "1c9e5a3b-7d2f-4b8e-a6c1-3e5f7a9b1d2c@entra:{TENANT}"
        )]
    );

    // Another person (of the same tenant) makes the quorum.
    let (other, _) = two_tokens(&e, "7f3a1c5e-9b2d-4f6a-8c0e-2d4f6b8a0c1e", &[Role::Cab]);
    let r = other
        .decide(&id, 1, "approve", &evidence, &[], None)
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.stack.shutdown().await;
}

/// A person who submitted under their token for one audience cannot approve the deployment under
/// their token for the other: the API refuses (403), as for their own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_entra_person_with_two_audiences_cannot_approve_their_own_submission() {
    let e = start().await;
    let (submitter, approver) = two_tokens(
        &e,
        "4d6f8a0c-2e4a-4c6e-8a0c-6e8a0c2e4a6c",
        &[Role::Packaging, Role::Cab],
    );
    let mut submission = sample("privileged");
    e.stack.stage_packages(&mut submission).await.unwrap();
    let r = submitter.submit(&submission, None).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");

    let evidence = hash(&e, &id).await;
    let r = approver
        .decide(&id, 1, "approve", &evidence, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(e.state(&id).await, "awaiting_cab 1");
    // A CAB member who is someone else approves.
    e.approve(&id, 1, &[&e.cab[0]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.stack.shutdown().await;
}
