// max-replicas: an admission Validate plugin in JavaScript. Deployments,
// StatefulSets and ReplicaSets asking for more than `max` replicas
// (default 10) are denied; other kinds, objects without `spec.replicas`,
// and deletes are allowed. The `scale` subresource carries the count too
// (`spec.replicas` of a Scale), so `kubectl scale` is held to it as well
// when the match rules send it.
//
// Configuration: {"max": 10} (optional; a whole number, 0 or more).
//
// Build (from this folder; see ../README.md): node build.mjs

const KINDS = new Set(["Deployment", "StatefulSet", "ReplicaSet", "Scale"]);
const DEFAULT_MAX = 10;

let max = DEFAULT_MAX;

// `result<_, string>`: returning is `ok`, throwing a string is `err`.
export function init(config) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (e) {
    throw `config is not JSON: ${e.message}`;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw "config must be a JSON object";
  }
  if (parsed.max === undefined || parsed.max === null) {
    max = DEFAULT_MAX;
  } else if (Number.isInteger(parsed.max) && parsed.max >= 0) {
    max = parsed.max;
  } else {
    throw `config.max must be a whole number, 0 or more, not ${JSON.stringify(parsed.max)}`;
  }
}

export function validate(request) {
  if (!KINDS.has(request.kind) || request.object === undefined || request.object === null) {
    return { tag: "allowed" };
  }
  let object;
  try {
    object = JSON.parse(request.object);
  } catch (e) {
    throw `the object is not JSON: ${e.message}`;
  }
  const replicas = object?.spec?.replicas;
  if (typeof replicas !== "number" || replicas <= max) {
    return { tag: "allowed" };
  }
  const what = request.subResource === "scale" ? `${request.resource}/scale` : request.kind;
  const where = request.namespace ? ` in namespace ${JSON.stringify(request.namespace)}` : "";
  return {
    tag: "denied",
    val: {
      message: `${what} ${JSON.stringify(request.name)}${where} asks for ${replicas} replicas; at most ${max} are allowed`,
      code: undefined,
    },
  };
}
