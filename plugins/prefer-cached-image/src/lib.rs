//! `prefer-cached-image`: a scheduler Score plugin. Each node scores the
//! share of the pod's images (containers and init containers, each image
//! once) it already holds, from 0 (none) to 100 (all), so pods — Wasm
//! components in particular, whose compilation the node caches with the
//! image — land where their images are.
//!
//! Image names are compared after adding the `:latest` tag a name without
//! tag or digest implies (`hello` and `hello:latest` are one image).
//!
//! Configuration: none (`{}`).

use std::collections::BTreeSet;

use serde_json::Value;

wit_bindgen::generate!({
    path: "../../wit",
    world: "scheduler-score",
});

/// `name` with the `:latest` tag it implies when it has neither tag nor
/// digest. A `:` before the last `/` belongs to a registry's port.
fn normalize(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// The score of each node for a pod using `images`.
fn scores(images: &BTreeSet<String>, nodes: &[Node]) -> Vec<i64> {
    nodes
        .iter()
        .map(|node| {
            if images.is_empty() {
                return 0;
            }
            let held: BTreeSet<String> = node.images.iter().map(|i| normalize(i)).collect();
            let cached = images.iter().filter(|i| held.contains(*i)).count();
            // Rounded to the nearest point; both counts are tiny.
            let total = images.len();
            i64::try_from((cached * 100 + total / 2) / total).unwrap_or(100)
        })
        .collect()
}

fn pod_images(pod: &Pod) -> BTreeSet<String> {
    pod.containers
        .iter()
        .chain(&pod.init_containers)
        .filter(|c| !c.image.is_empty())
        .map(|c| normalize(&c.image))
        .collect()
}

struct PreferCachedImage;

impl Guest for PreferCachedImage {
    fn init(config: String) -> Result<(), String> {
        match serde_json::from_str::<Value>(&config) {
            Ok(Value::Object(_)) => Ok(()),
            Ok(_) => Err("config must be a JSON object".to_string()),
            Err(e) => Err(format!("config is not JSON: {e}")),
        }
    }

    fn score(pod: Pod, nodes: Vec<Node>) -> Result<Vec<i64>, String> {
        Ok(scores(&pod_images(&pod), &nodes))
    }
}

export!(PreferCachedImage);

#[cfg(test)]
mod tests {
    use super::*;
    use skiff::plugins::types::Resources;

    fn node(images: &[&str]) -> Node {
        let none = || Resources {
            milli_cpu: 0,
            memory: 0,
            pods: 0,
        };
        Node {
            name: "n".into(),
            labels: Vec::new(),
            taints: Vec::new(),
            allocatable: none(),
            free: none(),
            pod_count: 0,
            images: images.iter().map(|i| i.to_string()).collect(),
        }
    }

    fn images(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| normalize(n)).collect()
    }

    #[test]
    fn names_gain_the_implied_tag() {
        assert_eq!(normalize("hello"), "hello:latest");
        assert_eq!(normalize("hello:v1"), "hello:v1");
        assert_eq!(
            normalize("127.0.0.1:5000/apps/hello"),
            "127.0.0.1:5000/apps/hello:latest"
        );
        assert_eq!(normalize("r/x@sha256:ab"), "r/x@sha256:ab");
    }

    #[test]
    fn the_score_is_the_cached_share() {
        let pod = images(&["a", "b:v2", "c"]);
        let nodes = [
            node(&[]),
            node(&["a:latest"]),
            node(&["a", "b:v2"]),
            node(&["c", "b:v2", "a", "z"]),
        ];
        assert_eq!(scores(&pod, &nodes), vec![0, 33, 67, 100]);
    }

    #[test]
    fn a_pod_without_images_scores_zero() {
        assert_eq!(scores(&BTreeSet::new(), &[node(&["a"])]), vec![0]);
    }
}
