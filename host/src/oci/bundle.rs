//! The runtime-spec `config.json` of a container bundle.
//!
//! Kubernetes' rules decide the process: `command` replaces the image
//! entrypoint and drops its cmd, `args` replace the image cmd; the
//! environment is the image's overridden by the container's; the working
//! directory is the container's, else the image's, else `/`. The container
//! gets its own pid, ipc, uts (with the spec's hostname) and mount
//! namespaces, and joins the pod's network namespace (else it is on the
//! host network), the usual `/proc`, `/dev`, `/sys`
//! mounts plus the spec's bind mounts, a cgroup at `/skiff/<id>` with the
//! memory and CPU limits, and a terminal if it asks for one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder,
    MountBuilder, RootBuilder, Spec, UserBuilder,
};

use super::ContainerSpec;
use super::security::{self, Seccomp, Security};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// CFS period used with quotas derived from millicores.
const CPU_PERIOD_US: u64 = 100_000;
/// Host files bind-mounted read-only when present into containers on the
/// host network (the agent mounts a pod's own over them when it has some).
const HOST_NETWORK_FILES: &[&str] = &["/etc/hosts", "/etc/resolv.conf"];

/// Errors building a bundle. None is worth retrying: the spec or image must
/// change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither the container nor the image names a program.
    #[error("container {id} has no command: set command/args or use an image with an entrypoint or cmd")]
    NoCommand { id: String },
    /// The image's user or group is a name its `/etc/passwd` or
    /// `/etc/group` does not have.
    #[error("image user {user:?}: no {what} {name:?} in the image's /etc/{file}")]
    UnknownUser {
        user: String,
        what: &'static str,
        name: String,
        file: &'static str,
    },
    /// The securityContext forbids what the container would do (run as
    /// root under `runAsNonRoot`, an unknown capability).
    #[error("{0}")]
    Refused(String),
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
    let file = |name: &str| image_file(rootfs, name).unwrap_or_default();
    let (uid, gid, groups) = effective_user(
        &spec.security,
        image.user().as_deref().unwrap_or_default(),
        &file("passwd"),
        &file("group"),
    )?;
    if let Some(message) = security::non_root_refusal(&spec.security, uid, &spec.pod, &spec.container) {
        return Err(Error::Refused(message));
    }
    let privileged = spec.security.privileged;

    let mut runtime = Spec::default();
    runtime.set_hostname(Some(spec.hostname.clone()));
    runtime.set_annotations(None);
    runtime.set_root(Some(
        RootBuilder::default()
            .path(rootfs.to_path_buf())
            .readonly(spec.security.read_only_root)
            .build()?,
    ));

    let mut process = runtime.process().clone().unwrap_or_default();
    process.set_terminal(Some(spec.terminal));
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    let mut user = UserBuilder::default().uid(uid).gid(gid);
    if !groups.is_empty() {
        user = user.additional_gids(groups);
    }
    process.set_user(user.build()?);
    process.set_capabilities(Some(security::capabilities(&spec.security).map_err(Error::Refused)?));
    process.set_no_new_privileges(Some(
        !privileged && spec.security.allow_privilege_escalation == Some(false),
    ));
    runtime.set_process(Some(process));

    let mut mounts = runtime.mounts().clone().unwrap_or_default();
    for file in HOST_NETWORK_FILES.iter().filter(|_| spec.netns.is_none()) {
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
    .chain(spec.netns.iter().map(|path| {
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(path.clone())
            .build()
    }))
    .collect::<Result<Vec<_>, _>>()?;
    linux.set_namespaces(Some(namespaces));
    if privileged {
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    }
    match &spec.security.seccomp {
        _ if privileged => {}
        Seccomp::RuntimeDefault => {
            linux.set_seccomp(Some(security::runtime_default_seccomp()?));
        }
        Seccomp::Localhost(path) => {
            linux.set_seccomp(Some(security::localhost_seccomp(path).map_err(Error::Refused)?));
        }
        Seccomp::Unconfined => {}
    }
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

/// `/etc/<name>` of the container's root filesystem, if it is a regular
/// file there: a symbolic link (`/etc` or the file) could point at the
/// node's own files, so none is followed.
fn image_file(rootfs: &Path, name: &str) -> Option<String> {
    let etc = rootfs.join("etc");
    let file = etc.join(name);
    let regular = |path: &Path| fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    let directory = fs::symlink_metadata(&etc).is_ok_and(|m| m.file_type().is_dir());
    (directory && regular(&file))
        .then(|| fs::read_to_string(&file).ok())
        .flatten()
}

/// The user a container runs as: the image config's `User`, unless the
/// securityContext names a `runAsUser` (then its primary group in the
/// image's `passwd`, and the groups that list it) or a `runAsGroup`;
/// then `supplementalGroups` and `fsGroup` join the groups.
fn effective_user(security: &Security, image_user: &str, passwd: &str, group: &str) -> Result<(u32, u32, Vec<u32>)> {
    let (uid, mut gid, mut groups) = match security.run_as_user {
        Some(uid) => resolve_user(&uid.to_string(), passwd, group)?,
        None => resolve_user(image_user, passwd, group)?,
    };
    if let Some(run_as_group) = security.run_as_group {
        gid = run_as_group;
    }
    for extra in &security.supplemental_groups {
        if !groups.contains(extra) {
            groups.push(*extra);
        }
    }
    Ok((uid, gid, groups))
}

/// The image config's `User` (`user`, `uid`, `user:group`, `uid:gid`, …;
/// empty is root) as uid, gid and supplementary groups, names looked up
/// in the image's own `passwd` and `group`, as containerd does: without a
/// group, the user's primary group from `passwd` (0 if the uid has no
/// entry), and the groups that list the user by name.
fn resolve_user(user: &str, passwd: &str, group: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let unknown = |what, name: &str, file| Error::UnknownUser {
        user: user.to_owned(),
        what,
        name: name.to_owned(),
        file,
    };
    // name:password:uid:gid:…
    let accounts: Vec<(&str, u32, u32)> = passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((name, uid, gid))
        })
        .collect();
    // name:password:gid:member,member
    let groups: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse().ok()?;
            let members = fields
                .next()
                .unwrap_or_default()
                .split(',')
                .filter(|m| !m.is_empty())
                .collect();
            Some((name, gid, members))
        })
        .collect();
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let account = match user_part.parse::<u32>() {
        Ok(uid) => accounts
            .iter()
            .find(|(_, id, _)| *id == uid)
            .copied()
            .or(Some(("", uid, 0))),
        Err(_) => accounts.iter().find(|(name, _, _)| *name == user_part).copied(),
    };
    let (name, uid, primary) = account.ok_or_else(|| unknown("user", user_part, "passwd"))?;
    let gid = match group_part {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|(n, _, _)| *n == g)
                .map(|(_, gid, _)| *gid)
                .ok_or_else(|| unknown("group", g, "group"))?,
        },
    };
    let supplementary = match group_part {
        Some(_) => Vec::new(),
        None if name.is_empty() => Vec::new(),
        None => groups
            .iter()
            .filter(|(_, id, members)| *id != gid && members.contains(&name))
            .map(|(_, id, _)| *id)
            .collect(),
    };
    Ok((uid, gid, supplementary))
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
            pod: "default/p".into(),
            container: "c".into(),
            security: Security::default(),
            mounts: Vec::new(),
            memory_limit_bytes: None,
            cpu_millis: None,
            netns: None,
            stdout: PathBuf::from("/dev/null"),
            stderr: PathBuf::from("/dev/null"),
            stdin: None,
            terminal: false,
        };
        assert!(spec.id.len() > 64);
        let runtime = runtime_spec(&spec, &dir.path().join("rootfs")).unwrap();
        let path = write(dir.path(), &runtime).unwrap();
        let written: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
        assert_eq!(written["hostname"], "h".repeat(62));
    }

    #[test]
    fn users_and_cpu() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n";
        let group = "root:x:0:\nnginx:x:101:\nwww:x:33:nginx,other\nadm:x:4:\n";
        let resolve = |user| resolve_user(user, passwd, group).ok();
        assert_eq!(resolve(""), Some((0, 0, vec![])));
        assert_eq!(resolve("1000:100"), Some((1000, 100, vec![])));
        // A name: its uid, primary group and the groups listing it.
        assert_eq!(resolve("nginx"), Some((101, 101, vec![33])));
        // A uid with an entry takes its primary group; without, group 0.
        assert_eq!(resolve("101"), Some((101, 101, vec![33])));
        assert_eq!(resolve("2000"), Some((2000, 0, vec![])));
        assert_eq!(resolve("nginx:adm"), Some((101, 4, vec![])));
        assert_eq!(resolve("nginx:7"), Some((101, 7, vec![])));
        let unknown = resolve_user("nobody", passwd, group).unwrap_err().to_string();
        assert!(unknown.contains("no user \"nobody\""), "{unknown}");
        assert!(resolve_user("nginx:staff", passwd, group).is_err());
        // An image without the files knows numbers only.
        assert!(resolve_user("nginx", "", "").is_err());
        // The files are the image's own: a link out is not followed.
        let rootfs = tempfile::tempdir().unwrap();
        fs::create_dir(rootfs.path().join("etc")).unwrap();
        fs::write(rootfs.path().join("etc/group"), group).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", rootfs.path().join("etc/passwd")).unwrap();
        assert_eq!(image_file(rootfs.path(), "group").as_deref(), Some(group));
        assert_eq!(image_file(rootfs.path(), "passwd"), None);
        assert_eq!(cpu_from_millis(500), (512, 50_000));
        assert_eq!(cpu_from_millis(1), (2, 1000));
    }

    #[test]
    fn run_as_user_and_group_override_the_images_user() {
        let passwd = "root:x:0:0::/root:/bin/sh\nnginx:x:101:102::/:/bin/false\n";
        let group = "root:x:0:\nnginx:x:102:\nwww:x:33:nginx\n";
        let as_user = |security: &Security| effective_user(security, "nginx", passwd, group).unwrap();
        assert_eq!(as_user(&Security::default()), (101, 102, vec![33]));
        let root = Security {
            run_as_user: Some(0),
            ..Security::default()
        };
        assert_eq!(as_user(&root), (0, 0, vec![]));
        let stranger = Security {
            run_as_user: Some(5000),
            supplemental_groups: vec![2000, 3000],
            ..Security::default()
        };
        assert_eq!(as_user(&stranger), (5000, 0, vec![2000, 3000]));
        let group_only = Security {
            run_as_group: Some(7),
            ..Security::default()
        };
        assert_eq!(as_user(&group_only), (101, 7, vec![33]));
    }
}
