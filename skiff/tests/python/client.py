"""The Python `kubernetes` client against a running skiff server.

Run by skiff/tests/python.rs with KUBECONFIG pointing at the server's admin
kubeconfig. Exits non-zero (with a traceback) on the first failed check.
"""

import os
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
core = client.CoreV1Api()
apps = client.AppsV1Api()

NS = "py"


def expect_status(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected HTTP {code}, the call succeeded")


core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))

# CRUD
cm = core.create_namespaced_config_map(
    NS,
    client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one", labels={"app": "a"}), data={"k": "v"}),
)
assert cm.metadata.uid and cm.metadata.resource_version
got = core.read_namespaced_config_map("one", NS)
assert got.data == {"k": "v"}
got.data["k"] = "w"
updated = core.replace_namespaced_config_map("one", NS, got)
assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
patched = core.patch_namespaced_config_map("one", NS, {"metadata": {"labels": {"tier": "x"}}})
assert patched.metadata.labels == {"app": "a", "tier": "x"}

# 409: AlreadyExists, and Conflict on a stale resourceVersion
e = expect_status(409, core.create_namespaced_config_map, NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one")))
assert "AlreadyExists" in e.body
expect_status(409, core.replace_namespaced_config_map, "one", NS, got)

# 404
expect_status(404, core.read_namespaced_config_map, "absent", NS)
expect_status(404, core.delete_namespaced_config_map, "absent", NS)

# list with selectors
core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two", labels={"app": "b"})))
names = [i.metadata.name for i in core.list_namespaced_config_map(NS, label_selector="app=a").items]
assert names == ["one"], names
names = [i.metadata.name for i in core.list_namespaced_config_map(NS, label_selector="app in (a,b)").items]
assert names == ["one", "two"], names
names = [i.metadata.name for i in core.list_namespaced_config_map(NS, field_selector="metadata.name!=one").items]
assert "one" not in names and "two" in names, names
assert core.list_namespaced_config_map(NS, label_selector="app=none").items == []

# a Deployment through apps/v1, scaled through the scale subresource
apps.create_namespaced_deployment(
    NS,
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "registry.local/web:1"}]},
            },
        },
    },
)
apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4

# watch resumes from a resourceVersion. The server compacts every second
# keeping 5 revisions (for the 410 below), so the controllers' own writes
# may compact `start` away before the watch begins; the step is then tried
# again, a bounded number of times, with an object of its own each time.
for attempt in range(5):
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    name = f"resume-{attempt}"
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
    core.delete_namespaced_config_map(name, NS)
    seen = []
    w = watch.Watch()
    try:
        for event in w.stream(core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()
    except ApiException as e:
        assert e.status == 410, e
        continue
    break
assert seen == [("ADDED", name), ("DELETED", name)], seen

# 410: the server compacts every second keeping 5 revisions (flags set by
# the test); after enough writes, `start` is gone. The client retries a 410
# watch once, then raises.
for i in range(20):
    core.patch_namespaced_config_map("one", NS, {"data": {"i": str(i)}})
# A watch from `start` replays from start+1, which may still be readable
# when `start` itself is not: wait until start+1 is compacted too.
after_start = str(int(start) + 1)
deadline = time.time() + 30
while True:
    try:
        core.list_namespaced_config_map(NS, resource_version=after_start, resource_version_match="Exact")
    except ApiException as e:
        assert e.status == 410, e
        break
    assert time.time() < deadline, "the server never compacted"
    time.sleep(0.5)
e = expect_status(410, lambda: list(watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=5)))

# A ServiceAccount's token: the client authenticates with it (no client
# certificate) and gets what its Role grants, and 403 beyond that.
core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader")))
rbac = client.RbacAuthorizationV1Api()
rbac.create_namespaced_role(NS, client.V1Role(
    metadata=client.V1ObjectMeta(name="cm-reader"),
    rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch"])],
))
rbac.create_namespaced_role_binding(NS, client.V1RoleBinding(
    metadata=client.V1ObjectMeta(name="reader-reads"),
    role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"),
    subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=NS)],
))
request = core.create_namespaced_service_account_token(
    "reader", NS, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)))
token = request.status.token
assert token.count(".") == 2, token
scoped = client.Configuration.get_default_copy()
scoped.cert_file = None
scoped.key_file = None
scoped.api_key = {"authorization": "Bearer " + token}
reader = client.ApiClient(scoped)
reader_core = client.CoreV1Api(reader)
names = [m.metadata.name for m in reader_core.list_namespaced_config_map(NS).items]
assert "one" in names, names
expect_status(403, reader_core.list_namespaced_secret, NS)
expect_status(403, reader_core.create_namespaced_config_map, NS,
              client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope")))
me = client.AuthenticationV1Api(reader).create_self_subject_review(client.V1SelfSubjectReview())
assert me.status.user_info.username == f"system:serviceaccount:{NS}:reader", me.status
core.delete_namespaced_service_account("reader", NS)
expect_status(401, reader_core.list_namespaced_config_map, NS)

# delete, then the namespace's objects are listed empty (but for the root
# CA every namespace holds, as in Kubernetes)
core.delete_namespaced_config_map("one", NS)
core.delete_namespaced_config_map("two", NS)
left = [m.metadata.name for m in core.list_namespaced_config_map(NS).items]
assert left in ([], ["kube-root-ca.crt"]), left
print("python client: ok")
