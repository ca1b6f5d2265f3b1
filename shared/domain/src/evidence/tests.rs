use super::*;

const LOW_RISK: &str = include_str!("../../../../events/deployments/low-risk.json");
const MULTI: &str = include_str!("../../../../events/deployments/multi-platform.json");
const INCOMPLETE: &str = include_str!("../../../../events/invalid/incomplete.json");

#[test]
fn the_samples_are_valid() {
    let s = Submission::parse(LOW_RISK).unwrap();
    assert_eq!(s.app.name, "7-Zip");
    assert_eq!(s.evidence.rollout.first_ring(), Ring::Canary);
    let m = Submission::parse(MULTI).unwrap();
    assert_eq!(m.platforms().len(), 2);
    assert!(m.artifact(Platform::Macos).unwrap().signing.notarized);
}

/// Reverses the key order of every object.
fn reverse(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m.iter().rev() {
                out.insert(k.clone(), reverse(x));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(reverse).collect()),
        other => other.clone(),
    }
}

#[test]
fn hash_ignores_key_order_and_white_space() {
    let a = Submission::parse(LOW_RISK).unwrap();
    let raw: serde_json::Value = serde_json::from_str(LOW_RISK).unwrap();
    let reordered = serde_json::to_string_pretty(&reverse(&raw)).unwrap();
    let b = Submission::parse(&reordered).unwrap();
    assert_eq!(a.content_hash(), b.content_hash());
    assert_eq!(a.content_hash().as_str().len(), 64);
}

#[test]
fn hash_changes_with_content() {
    let a = Submission::parse(LOW_RISK).unwrap();
    let changed = LOW_RISK.replace("\"target_devices\": 1000", "\"target_devices\": 1001");
    let b = Submission::parse(&changed).unwrap();
    assert_ne!(a.content_hash(), b.content_hash());
}

#[test]
fn uppercase_digests_hash_like_lowercase() {
    let a = Submission::parse(LOW_RISK).unwrap();
    let upper = LOW_RISK.replace(
        "9f1c6d0b3a2e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c",
        "9F1C6D0B3A2E4F5A6B7C8D9E0F1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C",
    );
    assert_eq!(
        a.content_hash(),
        Submission::parse(&upper).unwrap().content_hash()
    );
}

#[test]
fn every_missing_or_invalid_field_is_named_in_one_answer() {
    let err = Submission::parse(INCOMPLETE).unwrap_err();
    assert_eq!(err.code(), "EVIDENCE_INCOMPLETE");
    let fields: Vec<&str> = err.fields().iter().map(|f| f.field.as_str()).collect();
    for expected in [
        "correlation_id",
        "app.name",
        "app.vendor",
        "app.vendor_known",
        "business_criticality",
        "evidence.surprise",
        "evidence.artifacts[0].file_name",
        "evidence.artifacts[0].sha256",
        "evidence.artifacts[0].size_bytes",
        "evidence.artifacts[0].location",
        "evidence.artifacts[0].signing.signer",
        "evidence.artifacts[0].detection.kind",
        "evidence.artifacts[0].install_command",
        "evidence.artifacts[0].uninstall_command",
        "evidence.sbom",
        "evidence.vulnerabilities.critical",
        "evidence.vulnerabilities.scanned_at",
        "evidence.installation",
        "evidence.behaviour",
        "evidence.rollout.rings",
        "evidence.rollback",
        "evidence.tests.passed",
        "evidence.history",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:#?}"
        );
    }
}

#[test]
fn not_json_is_its_own_error() {
    let err = Submission::parse("{not json").unwrap_err();
    assert_eq!(err.code(), "MALFORMED_JSON");
}

#[test]
fn a_body_that_is_not_an_object_is_named() {
    let err = Submission::parse("[]").unwrap_err();
    assert_eq!(err.fields()[0].field, "(body)");
}

#[test]
fn duplicate_platform_and_non_contiguous_rings_are_refused() {
    let mut v: serde_json::Value = serde_json::from_str(MULTI).unwrap();
    v["evidence"]["artifacts"][1] = v["evidence"]["artifacts"][0].clone();
    v["evidence"]["rollout"]["rings"][1]["ring"] = 3.into();
    let err = Submission::from_value(&v).unwrap_err();
    let fields: Vec<&str> = err.fields().iter().map(|f| f.field.as_str()).collect();
    assert!(
        fields.contains(&"evidence.artifacts[1].platform"),
        "{fields:?}"
    );
    assert!(fields.contains(&"evidence.rollout.rings"), "{fields:?}");
}

#[test]
fn packages_up_to_each_platforms_limit_are_taken_and_larger_ones_named() {
    let mut v: serde_json::Value = serde_json::from_str(MULTI).unwrap();
    // 4 GiB, and each platform's own limit: taken.
    v["evidence"]["artifacts"][0]["size_bytes"] = (4_u64 << 30).into();
    v["evidence"]["artifacts"][1]["size_bytes"] = 20_000_000_000_u64.into();
    assert!(Submission::from_value(&v).is_ok());
    v["evidence"]["artifacts"][0]["size_bytes"] = 30_000_000_000_u64.into();
    assert!(Submission::from_value(&v).is_ok());
    // One byte over: refused, naming the field and the limit.
    v["evidence"]["artifacts"][0]["size_bytes"] = 30_000_000_001_u64.into();
    v["evidence"]["artifacts"][1]["size_bytes"] = 20_000_000_001_u64.into();
    let err = Submission::from_value(&v).unwrap_err();
    let named = |field: &str| {
        err.fields()
            .iter()
            .find(|f| f.field == field)
            .map(|f| f.problem.clone())
            .unwrap_or_default()
    };
    assert!(
        named("evidence.artifacts[0].size_bytes").contains("Intune's limit of 30 GB"),
        "{err:?}"
    );
    assert!(
        named("evidence.artifacts[1].size_bytes").contains("20 GB"),
        "{err:?}"
    );
}

#[test]
fn lists_and_texts_are_bounded_and_an_overrun_is_named() {
    let exception = |controls: usize, text: &str| {
        serde_json::json!({
            "kind": "vulnerability_scan",
            "justification": text,
            "compensating_controls": vec![text; controls],
        })
    };
    let mut v: serde_json::Value = serde_json::from_str(LOW_RISK).unwrap();
    // At the limits, in the widest characters (4 bytes each): taken.
    let widest = "😀".repeat(crate::fields::Text::MAX);
    assert_eq!(widest.len(), crate::fields::Text::MAX_BYTES);
    v["evidence"]["exceptions"] = vec![exception(10, &widest); 5].into();
    v["evidence"]["rollback"]["plan"] = widest.clone().into();
    assert!(Submission::from_value(&v).is_ok());
    // One over each: refused, naming the list or the text.
    let mut over = v.clone();
    over["evidence"]["exceptions"] = vec![exception(1, "ok"); 6].into();
    let err = Submission::from_value(&over).unwrap_err();
    assert!(
        err.fields()
            .iter()
            .any(|f| f.field == "evidence.exceptions" && f.problem.contains("at most 5 items")),
        "{err:?}"
    );
    let mut over = v.clone();
    over["evidence"]["exceptions"] = vec![exception(11, "ok")].into();
    let err = Submission::from_value(&over).unwrap_err();
    assert!(
        err.fields()
            .iter()
            .any(|f| f.field == "evidence.exceptions[0].compensating_controls"),
        "{err:?}"
    );
    let mut over = v;
    over["evidence"]["rollback"]["plan"] = format!("{widest}x").into();
    let err = Submission::from_value(&over).unwrap_err();
    assert!(
        err.fields()
            .iter()
            .any(|f| f.field == "evidence.rollback.plan" && f.problem.contains("1000")),
        "{err:?}"
    );
}
