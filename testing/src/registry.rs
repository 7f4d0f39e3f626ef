//! An OCI registry on loopback for tests: Debian's `docker-registry`
//! (distribution 2.8) in a child process, with its storage in a directory
//! the test owns, and a way to push a Wasm component artifact to it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context;

/// A running registry; dropping it stops the process.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts `docker-registry` with its storage and log under `dir`, and
    /// waits until it answers `/v2/`.
    pub fn start(dir: &Path) -> anyhow::Result<Registry> {
        Registry::launch(dir, None)
    }

    /// The same, refusing anyone but `user` with `password` (htpasswd,
    /// HTTP Basic authentication).
    pub fn start_private(dir: &Path, user: &str, password: &str) -> anyhow::Result<Registry> {
        Registry::launch(dir, Some((user, password)))
    }

    fn launch(dir: &Path, login: Option<(&str, &str)>) -> anyhow::Result<Registry> {
        let addr = crate::free_addr()?;
        let config = dir.join("registry.yml");
        std::fs::create_dir_all(dir.join("registry"))?;
        let mut yaml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("registry").display()
        );
        if let Some((user, password)) = login {
            let htpasswd = dir.join("htpasswd");
            let hash = bcrypt::hash(password, 4).context("cannot hash the registry password")?;
            std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, yaml)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot run docker-registry (apt-get install -y docker-registry)")?;
        let registry = Registry { child, addr };
        // A private registry answers 401 until it is asked with a login.
        let answered = if login.is_some() { " 401" } else { " 200" };
        let answers = || -> std::io::Result<bool> {
            let mut s = TcpStream::connect(&registry.addr)?;
            s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n")?;
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            Ok(reply.starts_with("HTTP/1.") && reply.get(8..12) == Some(answered))
        };
        crate::eventually_blocking(
            Duration::from_secs(20),
            &format!("docker-registry to answer on {}", registry.addr),
            || answers().unwrap_or(false).then_some(()),
        )?;
        Ok(registry)
    }

    /// Pushes `component` as a Wasm OCI artifact (one `application/wasm`
    /// layer) under `name:tag`, over plain HTTP; returns the full
    /// reference.
    pub async fn push_wasm(&self, name_and_tag: &str, component: &[u8]) -> anyhow::Result<String> {
        self.push_wasm_as(name_and_tag, component, None).await
    }

    /// [`Registry::push_wasm`] with a login, for a private registry.
    pub async fn push_wasm_as(
        &self,
        name_and_tag: &str,
        component: &[u8],
        login: Option<(&str, &str)>,
    ) -> anyhow::Result<String> {
        let reference = format!("{}/{name_and_tag}", self.addr);
        let options = skiff_image::PullOptions {
            plain_http: true,
            basic_auth: login.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        skiff_image::push_component(&reference, component, &options)
            .await
            .with_context(|| format!("cannot push {reference}"))?;
        Ok(reference)
    }
}
