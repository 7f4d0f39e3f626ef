//! The admission chain: mutating plugins, the kind's validation again,
//! validating plugins; a denial reads like a webhook's.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};
use skiff_api::admission::{Attributes, Denial, MutatingPlugin, Operation, ValidatingPlugin};

use crate::support::Api;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[derive(Debug)]
struct AddLabel;

impl MutatingPlugin for AddLabel {
    fn name(&self) -> &str {
        "add-label"
    }
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.resource.kind == "ConfigMap" && attributes.operation != Operation::Delete
    }
    fn mutate(&self, attributes: &Attributes<'_>, object: &mut Value, _old: Option<&Value>) -> Result<(), Denial> {
        object["metadata"]["labels"]["admitted-by"] = json!(attributes.user.name.replace(':', "-"));
        if attributes.name == "break-me" {
            object["metadata"]["labels"]["bad"] = json!("not a valid value!");
        }
        Ok(())
    }
}

#[derive(Debug)]
struct DenyNames;

impl ValidatingPlugin for DenyNames {
    fn name(&self) -> &str {
        "deny-names.skiff.dev"
    }
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.resource.kind == "ConfigMap"
    }
    fn validate(&self, attributes: &Attributes<'_>, object: &Value, _old: Option<&Value>) -> Result<(), Denial> {
        if attributes.name.starts_with("forbidden") {
            return Err(Denial::new(format!("{} is not an allowed name", attributes.name)));
        }
        if attributes.operation == Operation::Delete && object["metadata"]["labels"]["keep"] == "true" {
            return Err(Denial {
                message: "this one is kept".into(),
                code: Some(403),
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn plugins_mutate_validate_and_deny() {
    let api = Api::start().await;
    let admission = api.server.registry.admission();
    admission.add_mutating(Arc::new(AddLabel));
    admission.add_validating(Arc::new(DenyNames));

    let made = api.post(CMS, json!({"metadata": {"name": "a"}})).await;
    assert_eq!(made.status, StatusCode::CREATED);
    assert_eq!(made.body["metadata"]["labels"]["admitted-by"], "skiff-admin");

    let before = api.store.revision();
    let denied = api.post(CMS, json!({"metadata": {"name": "forbidden-1"}})).await;
    assert_eq!(denied.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        denied.body["message"],
        "admission webhook \"deny-names.skiff.dev\" denied the request: forbidden-1 is not an allowed name"
    );
    assert!(denied.body.get("reason").is_none(), "{}", denied.text);

    // What a mutating plugin produces is validated again.
    let broken = api.post(CMS, json!({"metadata": {"name": "break-me"}})).await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", broken.text);
    assert_eq!(api.store.revision(), before, "refused writes change nothing");

    api.post(CMS, json!({"metadata": {"name": "kept", "labels": {"keep": "true"}}}))
        .await;
    let kept = api.delete(&format!("{CMS}/kept")).await;
    assert_eq!(kept.status, StatusCode::FORBIDDEN);
    assert_eq!(api.get(&format!("{CMS}/kept")).await.status, StatusCode::OK);

    // Plugins come and go without a restart.
    admission.remove("deny-names.skiff.dev");
    let allowed = api.post(CMS, json!({"metadata": {"name": "forbidden-2"}})).await;
    assert_eq!(allowed.status, StatusCode::CREATED);
}
