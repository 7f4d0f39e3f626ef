//! CustomResourceDefinitions: the resources they define are served,
//! checked against their schema, with status and scale when declared.

use http::StatusCode;
use serde_json::json;

use crate::support::Api;

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const WIDGETS: &str = "/apis/example.dev/v1/namespaces/default/widgets";

fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "required": ["color"], "properties": {
                                "color": {"type": "string", "enum": ["red", "blue"]},
                                "replicas": {"type": "integer", "minimum": 0, "default": 1}
                            }},
                            "status": {"type": "object", "properties": {
                                "replicas": {"type": "integer"}, "selector": {"type": "string"}
                            }}
                        }
                    }},
                    "subresources": {"status": {}, "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector"
                    }}
                },
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]
        }
    })
}

#[tokio::test]
async fn a_crd_serves_its_resources() {
    let api = Api::start().await;
    let created = api.post(CRDS, widget_crd()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let conditions = created.body["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );

    let discovery = api.get("/apis/example.dev/v1").await;
    assert_eq!(discovery.status, StatusCode::OK);
    let names: Vec<&str> = discovery.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["widgets", "widgets/scale", "widgets/status"]);

    // Unknown fields are pruned (and refused under Strict), defaults apply.
    let widget = json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"color": "red", "shade": "dark"}});
    let strict = api
        .post(&format!("{WIDGETS}?fieldValidation=Strict"), widget.clone())
        .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        strict.body["message"],
        "strict decoding error: unknown field \"spec.shade\""
    );
    let made = api.post(WIDGETS, widget).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert!(made.body["spec"].get("shade").is_none());
    assert_eq!(made.body["spec"]["replicas"], 1);

    let invalid = api
        .post(
            WIDGETS,
            json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "bad"},
            "spec": {"color": "green", "replicas": -1}}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = invalid.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["spec.color", "spec.replicas"]);
    let missing = api
        .post(
            WIDGETS,
            json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {}}),
        )
        .await;
    assert_eq!(missing.body["details"]["causes"][0]["field"], "spec.color");

    // Status and scale subresources.
    let status = api
        .patch(
            &format!("{WIDGETS}/w/status"),
            "application/merge-patch+json",
            json!({"status": {"replicas": 1, "selector": "app=w"}, "spec": {"color": "blue"}}),
        )
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(status.body["spec"]["color"], "red", "a status patch leaves the spec");
    let scale = api
        .patch(
            &format!("{WIDGETS}/w/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 3}}),
        )
        .await;
    assert_eq!(scale.status, StatusCode::OK, "{}", scale.text);
    assert_eq!(scale.body["status"]["selector"], "app=w");
    assert_eq!(api.get(&format!("{WIDGETS}/w")).await.body["spec"]["replicas"], 3);

    // The other served version reads the same object.
    let beta = api.get("/apis/example.dev/v1beta1/namespaces/default/widgets/w").await;
    assert_eq!(beta.body["apiVersion"], "example.dev/v1beta1");
    assert_eq!(beta.body["spec"]["replicas"], 3);

    // Deleting the CRD stops serving it and removes its objects.
    let deleted = api.delete(&format!("{CRDS}/widgets.example.dev")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(api.get(WIDGETS).await.status, StatusCode::NOT_FOUND);
    let again = api.post(CRDS, widget_crd()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(api.get(WIDGETS).await.body["items"], json!([]), "old objects are gone");
}

#[tokio::test]
async fn bad_crds_are_refused() {
    let api = Api::start().await;
    let mut wrong_name = widget_crd();
    wrong_name["metadata"]["name"] = json!("gadgets.example.dev");
    let reply = api.post(CRDS, wrong_name).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut builtin = widget_crd();
    builtin["metadata"]["name"] = json!("deployments.apps");
    builtin["spec"]["group"] = json!("apps");
    builtin["spec"]["names"]["plural"] = json!("deployments");
    let reply = api.post(CRDS, builtin).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(api.get("/apis/apps/v1/namespaces/default/deployments").await.status == StatusCode::OK);
    let mut bad_column = widget_crd();
    bad_column["spec"]["versions"][0]["additionalPrinterColumns"] =
        json!([{"name": "Color", "type": "string", "jsonPath": ".spec[color"}]);
    let reply = api.post(CRDS, bad_column).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    assert!(
        reply
            .text
            .contains("spec.versions[0].additionalPrinterColumns[0].jsonPath"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn custom_resources_print_their_crds_columns() {
    let api = Api::start().await;
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = json!([
        {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"] =
        json!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    assert_eq!(api.post(CRDS, crd).await.status, StatusCode::CREATED);
    let created = api
        .post(
            WIDGETS,
            json!({"apiVersion": "example.dev/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"color": "red", "replicas": 2}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let status = api
        .put(
            &format!("{WIDGETS}/w/status"),
            json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"color": "red", "replicas": 2},
                "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}}),
        )
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    let table = api
        .request(
            http::Method::GET,
            WIDGETS,
            &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
            vec![],
        )
        .await;
    let columns: Vec<(&str, i64)> = table.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", 0),
            ("Color", 0),
            ("Replicas", 1),
            ("Ready", 0),
            ("Missing", 0),
            ("Age", 0)
        ]
    );
    let cells = table.body["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(
        cells[..5],
        [json!("w"), json!("red"), json!(2), json!("True"), json!(null)]
    );
    let age = cells[5].as_str().unwrap();
    assert!(
        age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok(),
        "an age: {age}"
    );
}

#[tokio::test]
async fn a_restarted_server_serves_stored_crds() {
    let api = Api::start().await;
    api.post(CRDS, widget_crd()).await;
    // A second API server on the same store learns the CRD at start.
    let second = skiff_api::ApiServer::new(api.store.clone(), skiff_api::auth::Authentication::new());
    second.bootstrap().await.unwrap();
    assert!(second.catalog.lookup("example.dev", "v1", "widgets").is_some());
    // …and follows later changes through its watch.
    api.delete(&format!("{CRDS}/widgets.example.dev")).await;
    skiff_testing::eventually(
        std::time::Duration::from_secs(5),
        "the second server to stop serving widgets",
        || async {
            second
                .catalog
                .lookup("example.dev", "v1", "widgets")
                .is_none()
                .then_some(())
        },
    )
    .await
    .unwrap();
}
