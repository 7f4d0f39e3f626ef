//! Object semantics through the router: CRUD, concurrency, metadata,
//! patches, subresources, selectors, paging and bad input.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Api, deployment};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn configmap_lifecycle() {
    let api = Api::start().await;
    let created = api
        .post(CMS, json!({"metadata": {"name": "a"}, "data": {"k": "v"}}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let object = &created.body;
    assert_eq!(object["kind"], "ConfigMap");
    assert_eq!(object["metadata"]["namespace"], "default");
    assert_eq!(object["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(object["metadata"]["creationTimestamp"].as_str().unwrap().ends_with('Z'));

    let again = api.post(CMS, json!({"metadata": {"name": "a"}})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["reason"], "AlreadyExists");
    assert_eq!(again.body["message"], "configmaps \"a\" already exists");

    let got = api.get(&format!("{CMS}/a")).await;
    assert_eq!(got.body, created.body);

    let mut changed = got.body.clone();
    changed["data"]["k"] = json!("w");
    let updated = api.put(&format!("{CMS}/a"), changed.clone()).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert!(rv(&updated.body) > rv(&created.body));
    assert_eq!(updated.body["metadata"]["uid"], created.body["metadata"]["uid"]);

    // The same body again carries a stale resourceVersion.
    let stale = api.put(&format!("{CMS}/a"), changed).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.body["reason"], "Conflict");
    assert!(
        stale.body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );

    let list = api.get(CMS).await;
    assert_eq!(list.body["kind"], "ConfigMapList");
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(
        rv(&list.body["items"][0])
            <= list.body["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
    );

    let deleted = api.delete(&format!("{CMS}/a")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["status"], "Success");
    let gone = api.get(&format!("{CMS}/a")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["message"], "configmaps \"a\" not found");
    assert_eq!(api.get(CMS).await.body["items"], json!([]));
}

#[tokio::test]
async fn names_namespaces_and_generated_names() {
    let api = Api::start().await;
    let generated = api.post(CMS, json!({"metadata": {"generateName": "web-"}})).await;
    assert_eq!(generated.status, StatusCode::CREATED);
    let name = generated.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");

    let missing_ns = api
        .post(
            "/api/v1/namespaces/nowhere/configmaps",
            json!({"metadata": {"name": "a"}}),
        )
        .await;
    assert_eq!(missing_ns.status, StatusCode::NOT_FOUND);
    assert_eq!(missing_ns.body["message"], "namespaces \"nowhere\" not found");

    let invalid = api.post(CMS, json!({"metadata": {"name": "Not_Valid"}})).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.body["details"]["causes"][0]["field"], "metadata.name");

    let nameless = api.post(CMS, json!({"metadata": {}})).await;
    assert_eq!(nameless.status, StatusCode::UNPROCESSABLE_ENTITY);

    let other_ns = api
        .post(CMS, json!({"metadata": {"name": "x", "namespace": "kube-system"}}))
        .await;
    assert_eq!(other_ns.status, StatusCode::BAD_REQUEST);

    // The same name in two namespaces; a cluster-wide list sees both.
    api.create_namespace("other").await;
    for ns in ["default", "other"] {
        let reply = api
            .post(
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                json!({"metadata": {"name": "same"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let all = api
        .get("/api/v1/configmaps?fieldSelector=metadata.name%3Dsame")
        .await
        .body;
    let namespaces: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["default", "other"]);
}

#[tokio::test]
async fn strict_field_validation_and_duplicates() {
    let api = Api::start().await;
    let before = api.store.revision();
    let mut body = deployment("web", "nginx");
    body["spec"]["foo"] = json!(1);
    let strict = api
        .post(&format!("{DEPLOYS}?fieldValidation=Strict"), body.clone())
        .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        strict.body["message"],
        "strict decoding error: unknown field \"spec.foo\""
    );

    let duplicate = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"e"}}"#;
    let reply = api
        .request(
            Method::POST,
            CMS,
            &[("content-type", "application/json")],
            duplicate.to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text.contains("duplicate field \\\"name\\\""), "{}", reply.text);
    assert_eq!(api.store.revision(), before, "rejected requests write nothing");

    let warned = api.post(DEPLOYS, body.clone()).await;
    assert_eq!(warned.status, StatusCode::CREATED);
    assert!(warned.headers["warning"].to_str().unwrap().contains("unknown field"));
    assert!(warned.body["spec"].get("foo").is_none(), "unknown fields are dropped");
}

#[tokio::test]
async fn patches_of_every_type() {
    let api = Api::start().await;
    let web = format!("{DEPLOYS}/web");
    let created = api.post(DEPLOYS, deployment("web", "nginx:1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["metadata"]["generation"], 1);

    let merged = api
        .patch(
            &web,
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"tier": "front"}}}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.text);
    assert_eq!(merged.body["metadata"]["labels"]["tier"], "front");
    assert_eq!(
        merged.body["metadata"]["generation"], 1,
        "metadata changes leave generation alone"
    );

    let json_patch = api
        .patch(
            &web,
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
        )
        .await;
    assert_eq!(json_patch.body["spec"]["replicas"], 3);
    assert_eq!(json_patch.body["metadata"]["generation"], 2);

    let strategic = api
        .patch(
            &web,
            "application/strategic-merge-patch+json",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}}),
        )
        .await;
    assert_eq!(strategic.status, StatusCode::OK, "{}", strategic.text);
    let containers = strategic.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(
        containers[0]["ports"][0]["containerPort"], 8080,
        "merged by name, not replaced"
    );

    let bad_op = api
        .patch(
            &web,
            "application/json-patch+json",
            json!([{"op": "test", "path": "/spec/replicas", "value": 9}]),
        )
        .await;
    assert_eq!(bad_op.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unsupported = api.patch(&web, "application/xml", json!({})).await;
    assert_eq!(unsupported.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let apply = |name: &str| {
        let mut d = deployment(name, "busybox");
        d["spec"]["replicas"] = json!(2);
        d
    };
    let no_manager = api
        .patch(
            &format!("{DEPLOYS}/applied"),
            "application/apply-patch+yaml",
            apply("applied"),
        )
        .await;
    assert_eq!(no_manager.status, StatusCode::BAD_REQUEST);
    let first = api
        .patch(
            &format!("{DEPLOYS}/applied?fieldManager=test"),
            "application/apply-patch+yaml",
            apply("applied"),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = api
        .patch(
            &format!("{DEPLOYS}/applied?fieldManager=test"),
            "application/apply-patch+yaml",
            apply("applied"),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(rv(&second.body), rv(&first.body), "an unchanged apply writes nothing");
}

#[tokio::test]
async fn patches_apply_to_the_object_as_read() {
    let api = Api::start().await;
    let maps = "/api/v1/namespaces/default/configmaps";
    let created = api
        .post(maps, json!({"metadata": {"name": "t1"}, "data": {"a": "1"}}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let current = created.body["metadata"]["resourceVersion"].clone();

    // How operator frameworks add a finalizer safely.
    let guarded = api
        .patch(
            &format!("{maps}/t1"),
            "application/json-patch+json",
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": current},
                {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
            ]),
        )
        .await;
    assert_eq!(guarded.status, StatusCode::OK, "{}", guarded.text);
    assert_eq!(guarded.body["metadata"]["labels"]["x"], "y");

    // Now stale: the test fails, names the object, and nothing changes.
    let stale = api
        .patch(
            &format!("{maps}/t1"),
            "application/json-patch+json",
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": current},
                {"op": "add", "path": "/metadata/labels/z", "value": "w"},
            ]),
        )
        .await;
    assert_eq!(stale.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", stale.text);
    let message = stale.body["message"].as_str().unwrap();
    assert!(message.starts_with("ConfigMap \"t1\" is invalid: "), "{message}");
    assert!(!message.contains(": : "), "{message}");
    assert_eq!(
        api.get(&format!("{maps}/t1")).await.body["metadata"]["labels"],
        json!({"x": "y"})
    );

    // Other server-filled fields can be tested too; a resourceVersion a
    // merge patch sets is a precondition.
    let uid = guarded.body["metadata"]["uid"].clone();
    let by_uid = api
        .patch(
            &format!("{maps}/t1"),
            "application/json-patch+json",
            json!([
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "test", "path": "/metadata/creationTimestamp", "value": created.body["metadata"]["creationTimestamp"]},
                {"op": "replace", "path": "/data/a", "value": "2"},
            ]),
        )
        .await;
    assert_eq!(by_uid.status, StatusCode::OK, "{}", by_uid.text);
    let conflicting = api
        .patch(
            &format!("{maps}/t1"),
            "application/merge-patch+json",
            json!({"metadata": {"resourceVersion": current}, "data": {"a": "3"}}),
        )
        .await;
    assert_eq!(conflicting.status, StatusCode::CONFLICT, "{}", conflicting.text);
}

#[tokio::test]
async fn error_bodies_are_the_text_kube_apiserver_writes() {
    let api = Api::start().await;
    let missing = api.get("/api/v1/namespaces/default/configmaps/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.text,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
         \"message\":\"configmaps \\\"nope\\\" not found\",\"reason\":\"NotFound\",\
         \"details\":{\"name\":\"nope\",\"kind\":\"configmaps\"},\"code\":404}\n"
    );
    // curl gets it indented, as kube-apiserver indents for people.
    let by_curl = api
        .request(
            Method::GET,
            "/api/v1/namespaces/default/configmaps/nope",
            &[("user-agent", "curl/8.5.0")],
            vec![],
        )
        .await;
    assert!(
        by_curl
            .text
            .starts_with("{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n"),
        "{}",
        by_curl.text
    );
    assert!(by_curl.text.ends_with("\"code\": 404\n}"), "{}", by_curl.text);
    let exists = api.post(DEPLOYS, deployment("twice", "nginx:1")).await;
    assert_eq!(exists.status, StatusCode::CREATED);
    let again = api.post(DEPLOYS, deployment("twice", "nginx:1")).await;
    assert_eq!(
        again.text,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
         \"message\":\"deployments.apps \\\"twice\\\" already exists\",\"reason\":\"AlreadyExists\",\
         \"details\":{\"name\":\"twice\",\"group\":\"apps\",\"kind\":\"deployments\"},\"code\":409}\n"
    );
}

#[tokio::test]
async fn deletes_answer_as_each_kind_does_in_kube_apiserver() {
    let api = Api::start().await;
    let services = "/api/v1/namespaces/default/services";
    let created = api
        .post(
            services,
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    // `ReturnDeletedObject`: the Service itself, not a Status.
    let deleted = api.delete(&format!("{services}/web")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["kind"], "Service");
    assert_eq!(deleted.body["metadata"]["uid"], created.body["metadata"]["uid"]);

    let maps = "/api/v1/namespaces/default/configmaps";
    let map = api.post(maps, json!({"metadata": {"name": "c"}})).await;
    let deleted = api.delete(&format!("{maps}/c")).await;
    assert_eq!(
        deleted.text,
        format!(
            "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Success\",\
             \"details\":{{\"name\":\"c\",\"kind\":\"configmaps\",\"uid\":\"{}\"}}}}\n",
            map.body["metadata"]["uid"].as_str().unwrap()
        )
    );

    // A Job deleted with no propagation policy orphans its pods, as the v1
    // default garbage-collection policy says; an explicit one is obeyed.
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let job = |name: &str| {
        json!({"metadata": {"name": name}, "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}],
        }}}})
    };
    assert_eq!(api.post(jobs, job("j1")).await.status, StatusCode::CREATED);
    let orphaning = api.delete(&format!("{jobs}/j1")).await;
    assert_eq!(orphaning.status, StatusCode::OK, "{}", orphaning.text);
    let warning = orphaning.headers["warning"].to_str().unwrap();
    assert!(
        warning.starts_with("299 - \"child pods are preserved by default"),
        "{warning}"
    );
    assert_eq!(orphaning.body["metadata"]["finalizers"], json!(["orphan"]));
    assert!(orphaning.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(api.post(jobs, job("j2")).await.status, StatusCode::CREATED);
    let background = api.delete(&format!("{jobs}/j2?propagationPolicy=Background")).await;
    assert_eq!(background.body["kind"], "Status", "{}", background.text);
}

#[tokio::test]
async fn new_objects_carry_the_empty_status_kube_apiserver_writes() {
    let api = Api::start().await;
    let template = json!({
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    let selector = json!({"matchLabels": {"app": "a"}});
    for (path, body, status) in [
        (
            "/api/v1/namespaces/default/services",
            json!({"spec": {"ports": [{"port": 80}]}}),
            json!({"loadBalancer": {}}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            json!({"spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}}),
            json!({"loadBalancer": {}}),
        ),
        (
            DEPLOYS,
            json!({"spec": {"selector": selector, "template": template}}),
            json!({}),
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({"spec": {"selector": selector, "template": template}}),
            json!({"replicas": 0}),
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({"spec": {"selector": selector, "template": template}}),
            json!({"replicas": 0, "availableReplicas": 0}),
        ),
        (
            "/apis/apps/v1/namespaces/default/daemonsets",
            json!({"spec": {"selector": selector, "template": template}}),
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
        ),
    ] {
        let mut body = body;
        body["metadata"] = json!({"name": "e"});
        let created = api.post(path, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{path}: {}", created.text);
        assert_eq!(created.body["status"], status, "{path}");
        assert_eq!(api.get(&format!("{path}/e")).await.body["status"], status, "{path}");
    }
    let namespace = api
        .post("/api/v1/namespaces", json!({"metadata": {"name": "named"}}))
        .await;
    assert_eq!(namespace.body["status"], json!({"phase": "Active"}));
    assert_eq!(namespace.body["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(
        namespace.body["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "named"})
    );
}

#[tokio::test]
async fn replication_controllers_default_validate_and_print_as_kubernetes() {
    let api = Api::start().await;
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    let rc = |selector: Value, restart: &str| {
        json!({"metadata": {"name": "rc"}, "spec": {"selector": selector, "template": {
            "metadata": {"labels": {"app": "a"}},
            "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]},
        }}})
    };
    let mismatched = api.post(rcs, rc(json!({"app": "b"}), "Always")).await;
    assert_eq!(
        mismatched.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        mismatched.text
    );
    assert!(mismatched.text.contains("`selector` does not match template `labels`"));
    let never = api.post(rcs, rc(json!({"app": "a"}), "Never")).await;
    assert_eq!(never.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", never.text);
    assert!(never.text.contains("spec.template.spec.restartPolicy"));
    assert_eq!(api.get(&format!("{rcs}/rc")).await.status, StatusCode::NOT_FOUND);

    let created = api.post(rcs, rc(Value::Null, "Always")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["spec"]["replicas"], 1);
    assert_eq!(created.body["spec"]["selector"], json!({"app": "a"}));
    assert_eq!(created.body["status"], json!({"replicas": 0}));
    let table = api
        .request(
            Method::GET,
            rcs,
            &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
            vec![],
        )
        .await;
    let names: Vec<&str> = table.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = &table.body["rows"][0]["cells"];
    assert_eq!(
        (&cells[0], &cells[1], &cells[7]),
        (&json!("rc"), &json!(1), &json!("app=a"))
    );
}

#[tokio::test]
async fn status_and_scale_subresources() {
    let api = Api::start().await;
    let web = format!("{DEPLOYS}/web");
    api.post(DEPLOYS, deployment("web", "nginx")).await;

    let mut with_status = api.get(&web).await.body;
    with_status["status"] = json!({"replicas": 1, "readyReplicas": 1});
    with_status["spec"]["replicas"] = json!(5);
    let status = api.put(&format!("{web}/status"), with_status).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(status.body["status"]["readyReplicas"], 1);
    assert_eq!(status.body["spec"]["replicas"], 1, "a status write keeps the spec");

    let mut main = api.get(&web).await.body;
    main["status"] = json!({});
    let updated = api.put(&web, main).await;
    assert_eq!(
        updated.body["status"]["readyReplicas"], 1,
        "a main write keeps the status"
    );

    let scale = api.get(&format!("{web}/scale")).await;
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["apiVersion"], "autoscaling/v1");
    assert_eq!(scale.body["spec"]["replicas"], 1);
    assert_eq!(scale.body["status"]["selector"], "app=web");
    let scaled = api
        .patch(
            &format!("{web}/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 4}}),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.text);
    assert_eq!(scaled.body["spec"]["replicas"], 4);
    assert_eq!(api.get(&web).await.body["spec"]["replicas"], 4);
    let negative = api
        .patch(
            &format!("{web}/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": -1}}),
        )
        .await;
    assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn finalizers_hold_objects_until_removed() {
    let api = Api::start().await;
    api.post(
        CMS,
        json!({"metadata": {"name": "held", "finalizers": ["skiff.dev/test"]}}),
    )
    .await;
    let marked = api.delete(&format!("{CMS}/held")).await;
    assert_eq!(marked.status, StatusCode::OK);
    assert!(
        marked.body["metadata"]["deletionTimestamp"].is_string(),
        "{}",
        marked.text
    );
    assert_eq!(api.get(&format!("{CMS}/held")).await.status, StatusCode::OK);

    let add = api
        .patch(
            &format!("{CMS}/held"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": ["skiff.dev/test", "another"]}}),
        )
        .await;
    assert_eq!(
        add.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no new finalizers while deleting"
    );

    let released = api
        .patch(
            &format!("{CMS}/held"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text);
    assert_eq!(api.get(&format!("{CMS}/held")).await.status, StatusCode::NOT_FOUND);

    let foreground = api
        .request(
            Method::DELETE,
            &format!("{DEPLOYS}/fg"),
            &[("content-type", "application/json")],
            json!({"propagationPolicy": "Foreground"}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(foreground.status, StatusCode::NOT_FOUND);
    api.post(DEPLOYS, deployment("fg", "x")).await;
    let foreground = api
        .request(
            Method::DELETE,
            &format!("{DEPLOYS}/fg"),
            &[("content-type", "application/json")],
            json!({"propagationPolicy": "Foreground"}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(foreground.body["metadata"]["finalizers"], json!(["foregroundDeletion"]));
}

#[tokio::test]
async fn selectors_and_paging() {
    let api = Api::start().await;
    for (i, tier) in ["a", "b", "a", "b", "a"].iter().enumerate() {
        let reply = api
            .post(
                CMS,
                json!({"metadata": {"name": format!("cm{i}"), "labels": {"tier": tier}}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&api.get(&format!("{CMS}?labelSelector=tier%3Da")).await.body),
        ["cm0", "cm2", "cm4"]
    );
    assert_eq!(
        names(&api.get(&format!("{CMS}?labelSelector=tier!%3Da")).await.body),
        ["cm1", "cm3"]
    );
    assert_eq!(
        names(&api.get(&format!("{CMS}?labelSelector=tier%20in%20(b)")).await.body),
        ["cm1", "cm3"]
    );
    assert_eq!(
        names(&api.get(&format!("{CMS}?fieldSelector=metadata.name%3Dcm3")).await.body),
        ["cm3"]
    );
    let bad_field = api.get(&format!("{CMS}?fieldSelector=spec.nope%3Dx")).await;
    assert_eq!(bad_field.status, StatusCode::BAD_REQUEST);
    let bad_label = api.get(&format!("{CMS}?labelSelector=a%20in%20(")).await;
    assert_eq!(bad_label.status, StatusCode::BAD_REQUEST);

    // Pages of two, at the first page's revision, while writes go on.
    let first = api.get(&format!("{CMS}?limit=2&labelSelector=tier%3Da")).await.body;
    assert_eq!(names(&first), ["cm0", "cm2"]);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    api.post(CMS, json!({"metadata": {"name": "cm9", "labels": {"tier": "a"}}}))
        .await;
    let second = api
        .get(&format!("{CMS}?limit=2&labelSelector=tier%3Da&continue={token}"))
        .await
        .body;
    assert_eq!(names(&second), ["cm4"], "the page is read at the first page's revision");
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert!(second["metadata"].get("continue").is_none());
    let garbage = api.get(&format!("{CMS}?limit=2&continue=bm9wZQ")).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn table_and_metadata_representations() {
    let api = Api::start().await;
    api.post(DEPLOYS, deployment("web", "nginx")).await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let table = api.request(Method::GET, DEPLOYS, &[("accept", accept)], vec![]).await;
    assert_eq!(table.body["kind"], "Table");
    let columns: Vec<&str> = table.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&columns[..5], ["Name", "Ready", "Up-to-date", "Available", "Age"]);
    assert_eq!(table.body["rows"][0]["cells"][0], "web");
    assert_eq!(table.body["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let accept = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";
    let partial = api.request(Method::GET, DEPLOYS, &[("accept", accept)], vec![]).await;
    assert_eq!(partial.body["kind"], "PartialObjectMetadataList");
    assert!(partial.body["items"][0].get("spec").is_none());
    let none = api
        .request(
            Method::GET,
            DEPLOYS,
            &[("accept", "application/vnd.kubernetes.protobuf")],
            vec![],
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn pod_binding_and_dry_run() {
    let api = Api::start().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let dry = api.post(&format!("{pods}?dryRun=All"), pod.clone()).await;
    assert_eq!(dry.status, StatusCode::CREATED);
    assert_eq!(
        api.get(&format!("{pods}/p")).await.status,
        StatusCode::NOT_FOUND,
        "dry run writes nothing"
    );
    let created = api.post(pods, pod).await;
    assert_eq!(created.body["status"]["phase"], "Pending");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let bound = api.post(&format!("{pods}/p/binding"), binding.clone()).await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    let pod = api.get(&format!("{pods}/p")).await.body;
    assert_eq!(pod["spec"]["nodeName"], "n1");
    assert_eq!(pod["status"]["conditions"][0]["type"], "PodScheduled");
    let again = api.post(&format!("{pods}/p/binding"), binding).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    // A bound pod is deleted gracefully: marked, for its node to finish.
    let marked = api.delete(&format!("{pods}/p")).await;
    assert_eq!(marked.body["metadata"]["deletionGracePeriodSeconds"], 30);
    let now = api.delete(&format!("{pods}/p?gracePeriodSeconds=0")).await;
    assert_eq!(now.status, StatusCode::OK);
    assert_eq!(api.get(&format!("{pods}/p")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let api = Api::start().await;
    let before = api.store.revision();
    let cases: Vec<(Method, String, &str, Vec<u8>, StatusCode)> = vec![
        (
            Method::POST,
            CMS.to_string(),
            "application/json",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            CMS.to_string(),
            "application/json",
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            CMS.to_string(),
            "application/yaml",
            b"a: [".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            CMS.to_string(),
            "text/plain",
            b"hi".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Method::POST,
            CMS.to_string(),
            "application/json",
            br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            CMS.to_string(),
            "application/json",
            format!(
                r#"{{"metadata":{{"name":"x","labels":{{"a":"{}"}}}}}}"#,
                "v".repeat(100)
            )
            .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            CMS.to_string(),
            "application/json",
            format!(
                r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
                "x".repeat(4 << 20)
            )
            .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::POST,
            CMS.to_string(),
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\xff\xff".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/widgets".to_string(),
            "application/json",
            b"{}".to_vec(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("{CMS}/named"),
            "application/json",
            b"{}".to_vec(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            format!("{CMS}/absent"),
            "application/json",
            b"{}".to_vec(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/nodes".to_string(),
            "",
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("{CMS}?limit=x"),
            "",
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("{CMS}?resourceVersion=abc&resourceVersionMatch=Exact"),
            "",
            vec![],
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, content_type, body, expected) in cases {
        let headers: Vec<(&str, &str)> = if content_type.is_empty() {
            vec![]
        } else {
            vec![("content-type", content_type)]
        };
        let reply = api.request(method.clone(), &path, &headers, body).await;
        assert_eq!(reply.status, expected, "{method} {path} {content_type}: {}", reply.text);
        assert_eq!(reply.body["kind"], "Status", "{method} {path}: {}", reply.text);
        assert_eq!(reply.body["code"], expected.as_u16());
    }
    assert_eq!(api.store.revision(), before, "nothing was written");
}

#[tokio::test]
async fn quantities_are_stored_canonical() {
    let api = Api::start().await;
    let mut d = deployment("q", "x");
    d["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "0.5", "memory": "1024Mi"}, "requests": {"cpu": 0.25, "memory": "1.5Gi"}});
    let made = api.post(DEPLOYS, d).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let resources = &made.body["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"], json!({"cpu": "500m", "memory": "1Gi"}));
    assert_eq!(resources["requests"], json!({"cpu": "250m", "memory": "1536Mi"}));
    let mut bad = deployment("bad", "x");
    bad["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "1Kb"}});
    let refused = api.post(DEPLOYS, bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
}

#[tokio::test]
async fn objects_being_deleted_survive_updates_until_released() {
    let api = Api::start().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"metadata": {"name": "g"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}});
    assert_eq!(api.post(pods, pod).await.status, StatusCode::CREATED);
    let marked = api.delete(&format!("{pods}/g")).await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.text);
    assert_eq!(marked.body["metadata"]["deletionGracePeriodSeconds"], 30);
    // The node reports the containers stopping: the pod stays.
    let status = api
        .patch(
            &format!("{pods}/g/status"),
            "application/merge-patch+json",
            json!({"status": {"phase": "Running"}}),
        )
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(api.get(&format!("{pods}/g")).await.status, StatusCode::OK);
    // Then it deletes the pod with no grace period left: gone.
    let done = api
        .request(
            Method::DELETE,
            &format!("{pods}/g"),
            &[("content-type", "application/json")],
            json!({"gracePeriodSeconds": 0}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(api.get(&format!("{pods}/g")).await.status, StatusCode::NOT_FOUND);

    // A terminating namespace keeps its spec finalizers through a label
    // change, and goes when they are finalized away.
    api.create_namespace("doomed").await;
    let ns = "/api/v1/namespaces/doomed";
    assert_eq!(api.delete(ns).await.status, StatusCode::OK);
    let labelled = api
        .patch(
            ns,
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await;
    assert_eq!(labelled.status, StatusCode::OK, "{}", labelled.text);
    let current = api.get(ns).await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(current.body["status"]["phase"], "Terminating");
    let mut finalized = current.body.clone();
    finalized["spec"]["finalizers"] = json!([]);
    let finalize = api.put(&format!("{ns}/finalize"), finalized).await;
    assert_eq!(finalize.status, StatusCode::OK, "{}", finalize.text);
    assert_eq!(api.get(ns).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_named_watch_sees_only_its_object() {
    let api = Api::start().await;
    let listed = api.get(CMS).await;
    let rv = listed.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    api.post(CMS, json!({"metadata": {"name": "other"}})).await;
    api.post(CMS, json!({"metadata": {"name": "mine"}})).await;
    let watched = api
        .get(&format!("{CMS}/mine?watch=true&resourceVersion={rv}&timeoutSeconds=1"))
        .await;
    assert_eq!(watched.status, StatusCode::OK, "{}", watched.text);
    let names: Vec<String> = watched
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["mine"]);
}
