//! Property tests: random and mutated multipart bodies and fixture JSON never
//! panic the server, always get a documented answer (or a clean close), and
//! never leave a file behind for a rejected upload.

use proptest::prelude::*;
use serde_json::Value;

use crate::helpers::*;

/// A valid body, then mutated: bytes flipped, cut, or junk spliced in.
fn mutated_body() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let name = prop_oneof![Just("a.txt".to_owned()), "[ -~]{0,40}", "\\PC{0,20}"];
    let content = proptest::collection::vec(any::<u8>(), 0..4096);
    let mutations =
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..6);
    (name, content, mutations).prop_map(|(name, content, mutations)| {
        let mut body = multipart_body(
            &name.replace('"', ""),
            Some("application/octet-stream"),
            &content,
        );
        let mutated = !mutations.is_empty();
        for (at, byte, op) in mutations {
            if body.is_empty() {
                break;
            }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => body.truncate(i),
                2 => body
                    .splice(i..i, std::iter::repeat_n(byte, 37))
                    .for_each(drop),
                _ => body.splice(i..i, b"\r\n--".iter().copied()).for_each(drop),
            }
        }
        (body, mutated)
    })
}

const DOCUMENTED: [u16; 6] = [200, 400, 408, 413, 422, 500];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_multipart_bodies_get_documented_answers((body, mutated) in mutated_body()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let app = spawn_app().await;
            let mut request = upload_head(app.server.address(), body.len(), "").into_bytes();
            request.extend_from_slice(&body);
            match raw_exchange(app.server.address(), &request).await {
                Ok((status, head, answer)) => {
                    assert!(DOCUMENTED.contains(&status), "status {status}");
                    assert!(header(&head, "x-request-id").is_some());
                    let answer: Value = serde_json::from_slice(&answer).expect("JSON answer");
                    if status == 200 {
                        assert!(answer["file_uuid"].is_string());
                    } else {
                        assert!(answer["error"]["code"].is_string(), "{answer}");
                        assert_eq!(answer["request_id"], answer["error"]["request_id"]);
                    }
                    let stored = app.server.uploads().await.len();
                    assert_eq!(stored, usize::from(status == 200));
                    let files = app.stored_files();
                    assert_eq!(files.len(), stored, "files left: {files:?}");
                    if !mutated {
                        assert_eq!(status, 200);
                    }
                }
                // A clean close without an answer is allowed; nothing may be left.
                Err(_) => assert!(app.stored_files().is_empty()),
            }
        });
    }

    #[test]
    fn random_fixture_json_is_parsed_or_refused_without_panicking(json in fixture_json()) {
        let text = json.to_string();
        match aymara_mock::Rule::from_json(&text) {
            Ok(rule) => {
                // What parses serialises back to an equivalent rule.
                let again: aymara_mock::Rule = serde_json::from_value(serde_json::to_value(&rule).unwrap()).unwrap();
                assert_eq!(again, rule);
            }
            Err(err) => assert!(!err.message.is_empty()),
        }
    }
}

/// JSON shaped like rules, with random field names and values mixed in.
fn fixture_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0.0f64..2.0).prop_map(Value::from),
        prop_oneof![
            Just("reset"),
            Just("hang"),
            Just("truncate"),
            Just("request"),
            Just("upload"),
            Just("complete"),
            Just("*.mp4"),
            Just("video/*"),
            Just("64KiB"),
            Just("x\\"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let key = prop_oneof![
        Just("respond"),
        Just("fault"),
        Just("pass"),
        Just("match"),
        Just("when"),
        Just("phase"),
        Just("status"),
        Just("kind"),
        Just("after_bytes"),
        Just("for_ms"),
        Just("after"),
        Just("times"),
        Just("probability"),
        Just("headers"),
        Just("filename"),
        Just("content_type"),
        Just("size"),
        Just("min"),
        Just("max"),
        Just("delay_ms"),
        Just("throttle_bytes_per_sec"),
        Just("keep_upload"),
        Just("merge"),
        Just("body"),
        Just("id"),
        Just("stauts"),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}
