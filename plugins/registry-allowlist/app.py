"""registry-allowlist: an admission Validate plugin in Python.

Every container, init container and ephemeral container image of a Pod,
or of the pod template of a Deployment, ReplicaSet, StatefulSet,
DaemonSet or Job (and the job template of a CronJob), must start with one
of the prefixes in the configuration's ``registries``; the denial lists
each offending image. Objects of other kinds, and deletes, are allowed.

Configuration: ``{"registries": ["127.0.0.1:5000/"]}``. A prefix should
end with ``/`` (``127.0.0.1:5000`` alone would also admit
``127.0.0.1:50001/x``). An empty list denies every image.

Build (from this folder; see ../README.md)::

    componentize-py -d ../../wit -w admission-validate componentize app -o registry-allowlist.wasm
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.admission import Denial, Request, Verdict, Verdict_Allowed, Verdict_Denied

# Kinds whose pod template sits at spec.template.
TEMPLATE_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")

registries: list[str] = []


def parse_config(text: str) -> list[str]:
    """The prefixes of ``config.registries``; raises ValueError when malformed."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"config is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise ValueError("config must be a JSON object")
    prefixes = config.get("registries")
    if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
        raise ValueError('config.registries must be a list of non-empty strings, e.g. ["127.0.0.1:5000/"]')
    return prefixes


def pod_spec(kind: str, obj: dict) -> dict | None:
    """The pod spec an object of ``kind`` carries, if any."""
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in TEMPLATE_KINDS:
        return (spec.get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return (job.get("template") or {}).get("spec") or {}
    return None


def offending_images(spec: dict, prefixes: list[str]) -> list[str]:
    """Each ``field[i] name: image`` whose image starts with no prefix."""
    found = []
    for field in CONTAINER_FIELDS:
        for container in spec.get(field) or []:
            image = container.get("image") or ""
            if not any(image.startswith(p) for p in prefixes):
                found.append(f"{container.get('name', '?')} ({image or 'no image'})")
    return found


def decide(request: Request, prefixes: list[str]) -> Verdict:
    if request.object is None:
        return Verdict_Allowed()
    try:
        obj = json.loads(request.object)
    except json.JSONDecodeError as e:
        raise Err(f"the object is not JSON: {e}") from None
    spec = pod_spec(request.kind, obj)
    if spec is None:
        return Verdict_Allowed()
    bad = offending_images(spec, prefixes)
    if not bad:
        return Verdict_Allowed()
    name = request.name or (obj.get("metadata") or {}).get("generateName", "")
    allowed = ", ".join(prefixes) if prefixes else "none"
    message = (
        f"{request.kind} {json.dumps(name)} uses images from registries outside the allowlist ({allowed}): " + "; ".join(bad)
    )
    return Verdict_Denied(Denial(message=message, code=None))


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global registries
        try:
            registries = parse_config(config)
        except ValueError as e:
            raise Err(str(e)) from None

    def validate(self, request: Request) -> Verdict:
        return decide(request, registries)
