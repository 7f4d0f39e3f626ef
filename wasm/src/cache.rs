//! Components compiled once per digest: native code is kept on disk, so a
//! restarted agent (or a second pod of the same image) does not compile
//! again, and in memory, so instances of one component share it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::WasmError;

/// The version/layer bytes after `\0asm` that mark a component, as opposed
/// to a core module (`01 00 00 00`).
const COMPONENT_HEADER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Compiled components by content digest.
#[derive(Debug)]
pub struct ComponentCache {
    engine: Engine,
    dir: PathBuf,
    /// Which engine configuration the files in `dir` were compiled for.
    compatibility: String,
    /// One slot per digest; a slot's lock is held while its component is
    /// compiled or read from disk, so pods of a new image starting at once
    /// wait for one compilation instead of each running their own.
    loaded: Mutex<HashMap<String, Arc<Mutex<Option<Component>>>>>,
    compilations: AtomicU64,
    metrics: crate::Metrics,
}

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl ComponentCache {
    /// A cache of components compiled by `engine`, kept on disk in `dir`.
    pub fn new(engine: Engine, dir: impl Into<PathBuf>) -> Result<ComponentCache, WasmError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| WasmError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ComponentCache {
            compatibility: format!("{:016x}", hasher.finish()),
            engine,
            dir,
            loaded: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
            metrics: crate::Metrics::default(),
        })
    }

    /// Times compilations into `metrics`.
    pub(crate) fn set_metrics(&mut self, metrics: crate::Metrics) {
        self.metrics = metrics;
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn path_for(&self, digest: &str) -> PathBuf {
        let name = digest.replace(':', "-");
        self.dir.join(format!("{name}-{}.cwasm", self.compatibility))
    }

    /// The compiled component for these bytes, compiling at most once.
    pub fn load(&self, bytes: &[u8]) -> Result<(String, Component), WasmError> {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(WasmError::NotWasm);
        }
        if bytes[4..8] != COMPONENT_HEADER {
            return Err(WasmError::NotAComponent);
        }
        let digest = digest(bytes);
        let slot = self.lock().entry(digest.clone()).or_default().clone();
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(component) = slot.as_ref() {
            return Ok((digest, component.clone()));
        }
        let path = self.path_for(&digest);
        let component = match self.deserialize(&path) {
            Some(component) => component,
            None => {
                self.compilations.fetch_add(1, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let component =
                    Component::new(&self.engine, bytes).map_err(|e| WasmError::Compile(format!("{e:#}")))?;
                self.metrics.compiled(started.elapsed());
                if let Err(error) = self.store(&path, &component) {
                    tracing::warn!(%error, path = %path.display(), "cannot cache the compiled component");
                }
                component
            }
        };
        *slot = Some(component.clone());
        Ok((digest, component))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Option<Component>>>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deserialize(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is native code this cache wrote itself, into a
        // directory only the agent writes, named by the component's digest
        // and the engine's compatibility hash; wasmtime still checks that it
        // was produced for this engine configuration.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(&self.engine, path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "discarding an unusable compiled component");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    fn store(&self, path: &Path, component: &Component) -> Result<(), WasmError> {
        let bytes = component.serialize().map_err(|e| WasmError::Compile(e.to_string()))?;
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).map_err(|source| WasmError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, path).map_err(|source| WasmError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// How many components this cache has compiled, rather than found in
    /// memory or on disk.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Whether compiled code for `digest` is on disk (for tests and status).
    pub fn is_cached_on_disk(&self, digest: &str) -> bool {
        self.path_for(digest).exists()
    }
}
