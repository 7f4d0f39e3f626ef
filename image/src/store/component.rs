//! Importing a bare Wasm component as an image: it is stored as the CNCF
//! Wasm OCI artifact a registry would serve (a `application/wasm` layer,
//! a `application/vnd.wasm.config.v0+json` config), so pulled and
//! imported components are the same thing to the rest of the agent.

use serde_json::json;

use super::{ImageStore, Result, WASM_CONFIG_MEDIA_TYPE};
use crate::digest::sha256_of;
use crate::{Image, WASM_LAYER_MEDIA_TYPE};

impl ImageStore {
    /// Stores `component` (the bytes of a `.wasm` file) under `reference`.
    /// Importing the same bytes again is a no-op apart from the tag.
    pub fn import_component(&self, component: &[u8], reference: &str) -> Result<Image> {
        let layer_digest = sha256_of(component);
        self.put_blob(&layer_digest, component)?;
        let config = json!({
            "created": null,
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer_digest],
        });
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let config_digest = sha256_of(&config);
        self.put_blob(&config_digest, config.as_slice())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": WASM_CONFIG_MEDIA_TYPE,
            "config": {
                "mediaType": WASM_CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": WASM_LAYER_MEDIA_TYPE,
                "digest": layer_digest,
                "size": component.len(),
            }],
        });
        let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
        let manifest_digest = sha256_of(&manifest);
        self.put_blob(&manifest_digest, manifest.as_slice())?;
        self.tag(reference, &manifest_digest)?;
        self.load(reference, &manifest_digest)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ImageKind, ImageStore};

    #[test]
    fn an_imported_component_is_a_wasm_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let bytes = b"\0asm\x0d\0\x01\0";
        let image = store.import_component(bytes, "local/hello:1").unwrap();
        assert_eq!(image.kind, ImageKind::Wasm);
        let path = image.wasm_component_path().unwrap();
        assert_eq!(std::fs::read(path).unwrap(), bytes);
        let again = store.get("local/hello:1").unwrap().unwrap();
        assert_eq!(again.manifest_digest, image.manifest_digest);
    }
}
