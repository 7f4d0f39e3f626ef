//! Pushing a Wasm component to a registry, as the CNCF Wasm OCI artifact
//! the store pulls: one `application/wasm` layer and an
//! `application/vnd.wasm.config.v0+json` config.

use oci_client::client::{Config, ImageLayer};

use super::pull::{connect, registry_error};
use super::{PullOptions, Result};

/// The config of a Wasm component artifact.
const WASM_CONFIG: &[u8] = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#;
const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// Pushes `component` to `reference` (plain HTTP only to a loopback
/// registry, as for pulls); returns the manifest's URL.
pub async fn push_component(reference: &str, component: &[u8], options: &PullOptions) -> Result<String> {
    let (parsed, client, auth) = connect(reference, options)?;
    let layer = ImageLayer::new(component.to_vec(), crate::WASM_LAYER_MEDIA_TYPE.to_owned(), None);
    let config = Config::new(WASM_CONFIG.to_vec(), WASM_CONFIG_MEDIA_TYPE.to_owned(), None);
    let pushed = client
        .push(&parsed, &[layer], config, &auth, None)
        .await
        .map_err(|source| registry_error(reference, source))?;
    Ok(pushed.manifest_url)
}
