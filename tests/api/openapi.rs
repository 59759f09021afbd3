//! `GET /openapi.json` stays true: every documented route exists, and the
//! documented schemas list exactly the fields the server sends.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

fn required(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn the_document_matches_what_the_server_does() {
    let app = spawn_app().await;
    let doc: Value = app
        .call(reqwest::Method::GET, "/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every internal reference resolves (the admin rule body refers to the
    // fixture schemas embedded as components).
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.iter().any(|r| r.contains("fixture_rule")));
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }

    // The answers have exactly the documented fields.
    let answer: Value = app
        .upload(b"doc".to_vec(), "d.txt")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&answer), required(&doc, "FileUpload"));
    let error: Value = app
        .call(reqwest::Method::GET, "/nowhere")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&error), required(&doc, "Error"));
    let journal: Value = app
        .call(reqwest::Method::GET, "/__admin/requests")
        .await
        .json()
        .await
        .unwrap();
    let record = journal["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| !r["upload"].is_null())
        .unwrap();
    assert_eq!(keys(record), required(&doc, "RequestRecord"));
    assert_eq!(keys(&record["upload"]), required(&doc, "StoredUpload"));

    // The files API's answers too.
    let uuid = answer["file_uuid"].as_str().unwrap();
    let api = |path: String| {
        let req = app.client.get(app.url(&path)).header("x-api-key", "k");
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let list = api("/v2/files".into()).await;
    assert_eq!(keys(&list), required(&doc, "FileList"));
    assert_eq!(keys(&list["items"][0]), required(&doc, "FileDetail"));
    let detail = api(format!("/v2/files/{uuid}")).await;
    assert_eq!(keys(&detail), required(&doc, "FileDetail"));
    let status = api(format!("/v2/files/{uuid}/status")).await;
    assert_eq!(keys(&status), required(&doc, "FileStatus"));
    let created: Value = app
        .client
        .post(app.url("/v2/files"))
        .header("x-api-key", "k")
        .json(&serde_json::json!({"files": [{"local_file_path": "v.mp4"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&created), required(&doc, "FileCreateResponse"));
    assert_eq!(keys(&created["files"][0]), required(&doc, "FileUpload"));

    // Every documented route and method is served (never 404 for the route, never 405).
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{file_uuid}", uuid)
            .replace("{name}", "d.txt")
            .replace("{id}", "none");
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = app
                .client
                .request(m, app.url(&concrete))
                .header("x-api-key", "k")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let documented = item[method]["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&status.to_string()),
                "{method} {concrete} answered {status}, not among {:?}",
                documented.keys().collect::<Vec<_>>()
            );
            assert_ne!(status, 405, "{method} {concrete}");
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
