//! `ImageLocality`: prefers nodes that already have the pod's images (OCI
//! images or Wasm components), so the pod starts without a pull.
//!
//! A node says what it has in `status.images`. The score is the share of
//! the pod's images (app and init containers) present on the node,
//! weighted by size: an image counts with the largest size any node
//! reports for it, or 1 where no size is reported. A node that lists no
//! images scores 0, so the plugin is harmless before agents publish them.
//!
//! Kubernetes scores by absolute size between a 23 MB and a 1 GB
//! threshold, damped by how many nodes have the image. Wasm components are
//! often well under a megabyte, so they would all score 0 there; the share
//! gives a component the same pull as a container image.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin, Status};
use crate::snapshot::{NodeInfo, Snapshot, normalize_image_name};

const PRE_SCORE_KEY: &str = "PreScoreImageLocality";

#[derive(Debug, Default)]
pub struct ImageLocality;

impl Plugin for ImageLocality {
    fn name(&self) -> &str {
        super::IMAGE_LOCALITY
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// The pod's images, normalised, each with the weight it counts with.
struct PodImages(BTreeMap<String, i64>);

impl PreScorePlugin for ImageLocality {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _: &[&NodeInfo], snapshot: &Snapshot) -> Status {
        let Some(spec) = pod.spec.as_ref() else {
            return Status::skip();
        };
        let mut images: BTreeMap<String, i64> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .filter_map(|c| c.image.as_deref())
            .map(|image| (normalize_image_name(image), 1))
            .collect();
        if images.is_empty() {
            return Status::skip();
        }
        for node in snapshot.nodes() {
            for (image, weight) in images.iter_mut() {
                if let Some(size) = node.image_size(image) {
                    *weight = (*weight).max(size);
                }
            }
        }
        state.write(PRE_SCORE_KEY, PodImages(images));
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let PodImages(images) = state.require::<PodImages>(PRE_SCORE_KEY)?;
        let total: i128 = images.values().map(|&w| i128::from(w)).sum();
        Ok(nodes
            .iter()
            .map(|node| {
                let present: i128 = images
                    .iter()
                    .filter(|(image, _)| node.image_size(image).is_some())
                    .map(|(_, &w)| i128::from(w))
                    .sum();
                if total == 0 {
                    0
                } else {
                    i64::try_from(present * i128::from(MAX_NODE_SCORE) / total).unwrap_or(0)
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::{Value, json};

    fn with_images(name: &str, images: Value) -> std::sync::Arc<k8s_openapi::api::core::v1::Node> {
        node(name, json!({"status": {"images": images}}))
    }

    fn using(images: &[&str]) -> Value {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        json!({"containers": containers})
    }

    #[test]
    fn nodes_with_the_images_score_higher() {
        let nodes = [
            with_images("cold", json!([])),
            with_images("big", json!([{"names": ["docker.io/library/db:1"], "sizeBytes": 900}])),
            with_images(
                "both",
                json!([
                    {"names": ["docker.io/library/db:1"], "sizeBytes": 900},
                    {"names": ["ghcr.io/team/app.wasm:v2"]},
                ]),
            ),
            with_images(
                "small",
                json!([{"names": ["ghcr.io/team/app.wasm:v2"], "sizeBytes": 100}]),
            ),
        ];
        let decision = decide(
            &[plugin(ImageLocality)],
            &pod(using(&["db:1", "ghcr.io/team/app.wasm:v2"])),
            &nodes,
        );
        assert_eq!(outcome(&decision), Ok("both".to_string()));
        assert_eq!(
            scores(&decision),
            [
                ("big".to_string(), 90),
                ("both".to_string(), 100),
                ("cold".to_string(), 0),
                ("small".to_string(), 10),
            ]
        );
    }

    #[test]
    fn unsized_images_count_equally() {
        let nodes = [
            with_images("a", json!([{"names": ["localhost/one.wasm:latest"]}])),
            with_images("b", json!([])),
        ];
        let decision = decide(
            &[plugin(ImageLocality)],
            &pod(using(&["localhost/one.wasm", "localhost/two.wasm"])),
            &nodes,
        );
        assert_eq!(scores(&decision), [("a".to_string(), 50), ("b".to_string(), 0)]);
        let nothing = decide(
            &[plugin(ImageLocality)],
            &pod(using(&["x"])),
            &[with_images("a", json!([])), with_images("b", json!([]))],
        );
        assert_eq!(scores(&nothing), [("a".to_string(), 0), ("b".to_string(), 0)]);
    }
}
