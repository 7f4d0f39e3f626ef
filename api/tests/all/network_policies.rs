//! NetworkPolicies through the REST API: defaulted, listed, printed, and
//! refused with kube-apiserver's causes.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Api;

const NETPOLS: &str = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

fn policy(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec})
}

fn causes(body: &Value) -> Vec<String> {
    body["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policies_are_defaulted_listed_and_printed() {
    let api = Api::start().await;
    let web = api
        .post(
            NETPOLS,
            policy(
                "web",
                json!({
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "ingress": [{
                        "from": [{"podSelector": {"matchLabels": {"app": "client"}}},
                                 {"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}],
                        "ports": [{"port": 8080}, {"port": "metrics"}, {"port": 9000, "endPort": 9099}],
                    }],
                    "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}]}],
                }),
            ),
        )
        .await;
    assert_eq!(web.status, StatusCode::CREATED, "{}", web.text);
    // Kubernetes' defaults: both policy types (there are egress rules), TCP.
    assert_eq!(web.body["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(web.body["spec"]["ingress"][0]["ports"][1]["protocol"], "TCP");
    let deny = api
        .post(NETPOLS, policy("default-deny", json!({"podSelector": {}})))
        .await;
    assert_eq!(deny.status, StatusCode::CREATED, "{}", deny.text);
    assert_eq!(
        deny.body["spec"],
        json!({"podSelector": {}, "policyTypes": ["Ingress"]})
    );

    let listed = api.get(NETPOLS).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["kind"], "NetworkPolicyList");
    let names: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default-deny", "web"]);
    let fetched = api.get(&format!("{NETPOLS}/web")).await;
    assert_eq!(fetched.body["spec"], web.body["spec"]);

    let table = api.request(Method::GET, NETPOLS, &[("accept", TABLE)], vec![]).await;
    assert_eq!(table.status, StatusCode::OK, "{}", table.text);
    assert_eq!(table.body["kind"], "Table");
    let columns: Vec<&str> = table.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Pod-Selector", "Age"]);
    let rows: Vec<(&Value, &Value)> = table.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (&r["cells"][0], &r["cells"][1]))
        .collect();
    assert_eq!(
        rows,
        [
            (&json!("default-deny"), &json!("<none>")),
            (&json!("web"), &json!("app=web"))
        ]
    );

    // Discovery names it as kubectl looks it up.
    let group = api.get("/apis/networking.k8s.io/v1").await;
    let resource = group.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "networkpolicies")
        .cloned()
        .unwrap_or_else(|| panic!("networkpolicies missing from {}", group.text));
    assert_eq!(resource["kind"], "NetworkPolicy");
    assert_eq!(resource["namespaced"], true);
    assert_eq!(resource["shortNames"], json!(["netpol"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_network_policies_are_refused_and_not_stored() {
    let api = Api::start().await;
    let from = |peer: Value| json!({"ingress": [{"from": [peer]}]});
    let cases = [
        (
            from(json!({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {"matchLabels": {"app": "web"}}})),
            "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer",
        ),
        (
            json!({"egress": [{"ports": [{"protocol": "TCP", "endPort": 9000}]}]}),
            "spec.egress[0].ports[0].endPort: Invalid value: \"9000\": may not be specified when `port` is not specified",
        ),
        (
            from(json!({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}})),
            "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"10.1.0.0/24\": must be a strict subset of `cidr`",
        ),
        (
            json!({"ingress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]}),
            "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\"",
        ),
        (
            json!({"policyTypes": ["Sideways"]}),
            "spec.policyTypes[0]: Unsupported value: \"Sideways\"",
        ),
    ];
    for (spec, expected) in cases {
        let reply = api.post(NETPOLS, policy("bad", spec.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {}", reply.text);
        assert_eq!(reply.body["reason"], "Invalid", "{}", reply.text);
        assert_eq!(reply.body["details"]["kind"], "NetworkPolicy", "{}", reply.text);
        let found = causes(&reply.body);
        assert!(
            found.iter().any(|c| c.starts_with(expected)),
            "{spec}: {expected} not in {found:#?}"
        );
    }
    assert_eq!(api.get(&format!("{NETPOLS}/bad")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get(NETPOLS).await.body["items"], json!([]), "nothing was written");

    // An update is held to the same rules.
    let good = api.post(NETPOLS, policy("good", json!({"podSelector": {}}))).await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.text);
    let mut broken = good.body.clone();
    broken["spec"]["ingress"] = json!([{"from": [{}]}]);
    let refused = api.put(&format!("{NETPOLS}/good"), broken).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
    assert!(
        causes(&refused.body).contains(&"spec.ingress[0].from[0]: Required value: must specify a peer".to_owned()),
        "{}",
        refused.text
    );
}
