//! The runtime-spec `config.json` of a container bundle.
//!
//! Kubernetes' rules decide the process: `command` replaces the image
//! entrypoint and drops its cmd, `args` replace the image cmd; the
//! environment is the image's overridden by the container's; the working
//! directory is the container's, else the image's, else `/`. The container
//! gets its own pid, ipc, uts (with the spec's hostname) and mount
//! namespaces but the host network, the usual `/proc`, `/dev`, `/sys`
//! mounts plus the spec's bind mounts, a cgroup at `/skiff/<id>` with the
//! memory and CPU limits, and no terminal.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, MountBuilder, RootBuilder, Spec, UserBuilder,
};

use super::ContainerSpec;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// CFS period used with quotas derived from millicores.
const CPU_PERIOD_US: u64 = 100_000;
/// Host files bind-mounted read-only when present, since containers share
/// the host network.
const HOST_NETWORK_FILES: &[&str] = &["/etc/hosts", "/etc/resolv.conf"];

/// Errors building a bundle. None is worth retrying: the spec or image must
/// change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither the container nor the image names a program.
    #[error("container {id} has no command: set command/args or use an image with an entrypoint or cmd")]
    NoCommand { id: String },
    /// The image user is a name; only numeric `uid[:gid]` is supported.
    #[error("image user {user:?} is not numeric; set the container user (uid/gid) explicitly")]
    NonNumericUser { user: String },
    /// A relative working directory or mount destination.
    #[error("{what} {path:?} must be an absolute path")]
    RelativePath { what: &'static str, path: String },
    /// oci-spec refused a value.
    #[error("cannot build the runtime spec")]
    Spec {
        #[source]
        source: OciSpecError,
    },
    /// Writing `config.json` failed.
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The Kubernetes waiting reason an agent reports for this failure.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            Error::Io { .. } => "CreateContainerError",
            _ => "CreateContainerConfigError",
        }
    }
}

impl From<OciSpecError> for Error {
    fn from(source: OciSpecError) -> Self {
        Error::Spec { source }
    }
}

/// Result of bundle operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The runtime spec for `spec` with its root filesystem at `rootfs`.
pub fn runtime_spec(spec: &ContainerSpec, rootfs: &Path) -> Result<Spec> {
    let image = spec.image.config.config().clone().unwrap_or_default();

    let args = process_args(
        &spec.command,
        &spec.args,
        image.entrypoint().as_deref().unwrap_or_default(),
        image.cmd().as_deref().unwrap_or_default(),
    );
    if args.is_empty() {
        return Err(Error::NoCommand { id: spec.id.clone() });
    }
    let env = merge_env(image.env().as_deref().unwrap_or_default(), &spec.env);
    let cwd = spec
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| image.working_dir().clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".to_owned());
    if !cwd.starts_with('/') {
        return Err(Error::RelativePath {
            what: "working directory",
            path: cwd,
        });
    }
    let (uid, gid) = match spec.user {
        Some(user) => user,
        None => parse_user(image.user().as_deref().unwrap_or_default())?,
    };

    let mut runtime = Spec::default();
    runtime.set_hostname(Some(spec.hostname.clone()));
    runtime.set_annotations(None);
    runtime.set_root(Some(
        RootBuilder::default()
            .path(rootfs.to_path_buf())
            .readonly(false)
            .build()?,
    ));

    let mut process = runtime.process().clone().unwrap_or_default();
    process.set_terminal(Some(false));
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    process.set_user(UserBuilder::default().uid(uid).gid(gid).build()?);
    process.set_capabilities(Some(default_capabilities()));
    runtime.set_process(Some(process));

    let mut mounts = runtime.mounts().clone().unwrap_or_default();
    for file in HOST_NETWORK_FILES {
        if Path::new(file).is_file() {
            mounts.push(bind_mount(Path::new(file), Path::new(file), true)?);
        }
    }
    for mount in &spec.mounts {
        if !mount.destination.is_absolute() {
            return Err(Error::RelativePath {
                what: "mount destination",
                path: mount.destination.display().to_string(),
            });
        }
        mounts.push(bind_mount(&mount.source, &mount.destination, mount.read_only)?);
    }
    runtime.set_mounts(Some(mounts));

    let mut linux = runtime.linux().clone().unwrap_or_default();
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
    .collect::<Result<Vec<_>, _>>()?;
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(PathBuf::from(format!("/skiff/{}", spec.id))));
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(limit) = spec.memory_limit_bytes {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if let Some(millis) = spec.cpu_millis {
        let (shares, quota) = cpu_from_millis(millis);
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .shares(shares)
                .quota(quota)
                .period(CPU_PERIOD_US)
                .build()?,
        );
    }
    linux.set_resources(Some(resources.build()?));
    runtime.set_linux(Some(linux));
    Ok(runtime)
}

/// Writes `config.json` into `bundle_dir` and returns its path.
pub fn write(bundle_dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let path = bundle_dir.join("config.json");
    let json = serde_json::to_vec_pretty(spec).map_err(|e| Error::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    fs::write(&path, json).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Kubernetes' combination of container command/args and image
/// entrypoint/cmd.
pub fn process_args(command: &[String], args: &[String], entrypoint: &[String], cmd: &[String]) -> Vec<String> {
    if !command.is_empty() {
        return command.iter().chain(args).cloned().collect();
    }
    let tail = if args.is_empty() { cmd } else { args };
    entrypoint.iter().chain(tail).cloned().collect()
}

/// Image `KEY=VALUE` entries overridden by the container's; `PATH` defaulted.
/// Order: image keys in image order, then new keys in container order.
pub fn merge_env(image: &[String], container: &[(String, String)]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let image_pairs = image.iter().map(|entry| entry.split_once('=').unwrap_or((entry, "")));
    let container_pairs = container.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in image_pairs.chain(container_pairs) {
        if values.insert(key.to_owned(), value.to_owned()).is_none() {
            order.push(key.to_owned());
        }
    }
    if !values.contains_key("PATH") {
        let (key, value) = DEFAULT_PATH.split_once('=').unwrap_or_default();
        values.insert(key.to_owned(), value.to_owned());
        order.push(key.to_owned());
    }
    order
        .into_iter()
        .map(|key| {
            let value = values.get(&key).map(String::as_str).unwrap_or_default();
            format!("{key}={value}")
        })
        .collect()
}

/// `""` → root, `"uid"` → `(uid, 0)`, `"uid:gid"` numeric.
fn parse_user(user: &str) -> Result<(u32, u32)> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let non_numeric = || Error::NonNumericUser { user: user.to_owned() };
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    let uid = uid.parse().map_err(|_| non_numeric())?;
    let gid = gid.parse().map_err(|_| non_numeric())?;
    Ok((uid, gid))
}

/// cpu shares (1024 per core, at least 2) and CFS quota (per 100 ms period,
/// at least 1 ms) for a number of millicores.
pub fn cpu_from_millis(millis: u64) -> (u64, i64) {
    let shares = (millis.saturating_mul(1024) / 1000).max(2);
    let quota = millis.saturating_mul(CPU_PERIOD_US) / 1000;
    (shares, i64::try_from(quota.max(1000)).unwrap_or(i64::MAX))
}

fn bind_mount(source: &Path, destination: &Path, read_only: bool) -> Result<oci_spec::runtime::Mount> {
    let mode = if read_only { "ro" } else { "rw" };
    Ok(MountBuilder::default()
        .destination(destination.to_path_buf())
        .typ("bind")
        .source(source.to_path_buf())
        .options(vec!["rbind".to_owned(), "rprivate".to_owned(), mode.to_owned()])
        .build()?)
}

/// The capability set container engines grant by default.
fn default_capabilities() -> LinuxCapabilities {
    let caps: Capabilities = [
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fsetid,
        Capability::Fowner,
        Capability::Mknod,
        Capability::NetRaw,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setfcap,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::SysChroot,
        Capability::Kill,
        Capability::AuditWrite,
    ]
    .into_iter()
    .collect();
    let mut linux = LinuxCapabilities::default();
    linux.set_bounding(Some(caps.clone()));
    linux.set_effective(Some(caps.clone()));
    linux.set_permitted(Some(caps));
    linux.set_inheritable(None);
    linux.set_ambient(None);
    linux
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kubernetes_command_rules() {
        let ep = s(&["/ep"]);
        let cmd = s(&["c1"]);
        assert_eq!(process_args(&[], &[], &ep, &cmd), s(&["/ep", "c1"]));
        assert_eq!(process_args(&[], &s(&["a"]), &ep, &cmd), s(&["/ep", "a"]));
        assert_eq!(process_args(&s(&["/x"]), &[], &ep, &cmd), s(&["/x"]));
        assert_eq!(process_args(&s(&["/x"]), &s(&["a"]), &ep, &cmd), s(&["/x", "a"]));
    }

    #[test]
    fn env_override_and_path() {
        let env = merge_env(
            &s(&["A=1", "B=2"]),
            &[("B".into(), "3".into()), ("C".into(), "4".into())],
        );
        assert_eq!(env[..3], s(&["A=1", "B=3", "C=4"]));
        assert!(env[3].starts_with("PATH="));
    }

    /// A container of a pod named with 100 characters: its id (pod uid,
    /// container name, run) is longer than the kernel's 64 bytes, and
    /// so is the name; `config.json` has the name cut as the kubelet cuts
    /// it.
    #[test]
    fn config_json_has_the_pods_hostname_within_the_kernels_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_image::ImageStore::open(dir.path().join("images")).unwrap();
        let image = store.import_component(b"\0asm", "example.test/app:1").unwrap();
        let name = format!("{}.{}", "h".repeat(62), "t".repeat(37));
        assert_eq!(name.len(), 100);
        let pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": {"containers": []}}))
                .unwrap();
        let spec = ContainerSpec {
            id: format!("0c7d0a8e-5b3e-4a39-9d3e-6f1c2b7e9a41-{}-0", "c".repeat(40)),
            hostname: crate::agent::spec::hostname(&pod).unwrap(),
            image,
            command: s(&["/bin/sh"]),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            user: None,
            mounts: Vec::new(),
            memory_limit_bytes: None,
            cpu_millis: None,
            stdout: PathBuf::from("/dev/null"),
            stderr: PathBuf::from("/dev/null"),
        };
        assert!(spec.id.len() > 64);
        let runtime = runtime_spec(&spec, &dir.path().join("rootfs")).unwrap();
        let path = write(dir.path(), &runtime).unwrap();
        let written: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
        assert_eq!(written["hostname"], "h".repeat(62));
    }

    #[test]
    fn users_and_cpu() {
        assert_eq!(parse_user("").ok(), Some((0, 0)));
        assert_eq!(parse_user("1000:100").ok(), Some((1000, 100)));
        assert!(parse_user("nobody").is_err());
        assert_eq!(cpu_from_millis(500), (512, 50_000));
        assert_eq!(cpu_from_millis(1), (2, 1000));
    }
}
