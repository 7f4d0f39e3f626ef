//! From a pod spec to what a runtime needs: environment variables (with
//! `valueFrom`, `envFrom` and `$(VAR)` references) and volumes on disk
//! (emptyDir, configMap, secret, downwardAPI and projected, the last with
//! ServiceAccount tokens).
//!
//! The pure parts (expansion, field references, key selection, when a
//! token is due for renewal) are functions of the pod and of the
//! ConfigMaps, Secrets and tokens it names; the caller fetches those from
//! the API ([`Sources`], [`Sources::tokens_wanted`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Service, ServiceAccountTokenProjection, Volume,
};

use super::runtime::Mount;
use crate::oci::{Seccomp, Security};
use crate::podnet::HostPort;

/// Why a container's configuration cannot be resolved: its waiting reason
/// is `CreateContainerConfigError` with this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The ConfigMaps and Secrets of the pod's namespace that it refers to
/// (absent ones are missing), and the ServiceAccount tokens its projected
/// volumes hold.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    pub tokens: BTreeMap<TokenSlot, String>,
}

/// Where a projected ServiceAccount token goes: the volume and the path
/// in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenSlot {
    pub volume: String,
    pub path: String,
}

/// A token a projected volume asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenWanted {
    pub slot: TokenSlot,
    /// None: the API server's own audiences.
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

/// The lifetime a projected token asks for when it names none (an hour).
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// When a token that is valid for `lifetime` from now is renewed: after
/// 80% of it, and at least daily, as the kubelet's token manager does.
pub fn token_renewal(lifetime: std::time::Duration) -> std::time::Duration {
    (lifetime * 4 / 5).min(std::time::Duration::from_secs(24 * 3600))
}

impl Sources {
    /// Names of the ConfigMaps and Secrets a pod refers to, for the caller
    /// to fetch.
    pub fn wanted(pod: &Pod) -> (Vec<String>, Vec<String>) {
        let mut maps = Vec::new();
        let mut secrets = Vec::new();
        let spec = pod.spec.clone().unwrap_or_default();
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            for e in c.env.iter().flatten() {
                if let Some(from) = &e.value_from {
                    if let Some(r) = &from.config_map_key_ref {
                        maps.push(r.name.clone());
                    }
                    if let Some(r) = &from.secret_key_ref {
                        secrets.push(r.name.clone());
                    }
                }
            }
            for e in c.env_from.iter().flatten() {
                if let Some(r) = &e.config_map_ref {
                    maps.push(r.name.clone());
                }
                if let Some(r) = &e.secret_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(c) = &v.config_map {
                maps.push(c.name.clone());
            }
            if let Some(s) = &v.secret
                && let Some(name) = &s.secret_name
            {
                secrets.push(name.clone());
            }
            for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(c) = &source.config_map {
                    maps.push(c.name.clone());
                }
                if let Some(s) = &source.secret {
                    secrets.push(s.name.clone());
                }
            }
        }
        maps.sort();
        maps.dedup();
        secrets.sort();
        secrets.dedup();
        (maps, secrets)
    }

    /// The ServiceAccount tokens a pod's projected volumes hold, for the
    /// caller to request (bound to the pod).
    pub fn tokens_wanted(pod: &Pod) -> Vec<TokenWanted> {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut wanted = Vec::new();
        for v in spec.volumes.iter().flatten() {
            for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(ServiceAccountTokenProjection {
                    audience,
                    expiration_seconds,
                    path,
                }) = &source.service_account_token
                {
                    wanted.push(TokenWanted {
                        slot: TokenSlot {
                            volume: v.name.clone(),
                            path: path.clone(),
                        },
                        audience: audience.clone().filter(|a| !a.is_empty()),
                        expiration_seconds: expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
                    });
                }
            }
        }
        wanted
    }

    /// The keys and values of a ConfigMap (`data` and `binaryData`).
    fn config_map_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let map = self.config_maps.get(name)?;
        let mut all: BTreeMap<String, Vec<u8>> = map
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        all.extend(
            map.binary_data
                .iter()
                .flatten()
                .map(|(k, ByteString(v))| (k.clone(), v.clone())),
        );
        Some(all)
    }

    fn config_map_value(&self, name: &str, key: &str) -> Option<String> {
        let map = self.config_maps.get(name)?;
        if let Some(v) = map.data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.clone());
        }
        map.binary_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    }

    fn secret_value(&self, name: &str, key: &str) -> Option<String> {
        let data = self.secret_data(name)?;
        data.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// A Secret's keys and values (the API server has already merged
    /// `stringData` into `data`).
    fn secret_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let secret = self.secrets.get(name)?;
        Some(
            secret
                .data
                .iter()
                .flatten()
                .map(|(k, ByteString(v))| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// A `metadata.*`, `spec.*` or `status.*` field the downward API exposes.
fn field_ref(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let label_or_annotation = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = label_or_annotation("metadata.labels['", &meta.labels) {
        return Ok(v);
    }
    if let Some(v) = label_or_annotation("metadata.annotations['", &meta.annotations) {
        return Ok(v);
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        other => return Err(ConfigError(format!("unsupported fieldRef {other:?}"))),
    })
}

/// Expands `$(NAME)` from `vars` as Kubernetes does: `$$` is a literal `$`,
/// and a reference to an unknown name stays as written.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The longest hostname the kernel takes: 64 bytes with the terminating
/// NUL, so 63.
const HOSTNAME_MAX: usize = 63;

/// The hostname of the pod's containers, as the kubelet gives it
/// (`GeneratePodHostNameAndDomain`): `spec.hostname` when set, else the
/// pod's name, cut to 63 bytes with any `-` or `.` the cut leaves at the
/// end trimmed (`truncatePodHostnameIfNeeded`). A name that leaves
/// nothing is refused, as the kubelet refuses it.
pub fn hostname(pod: &Pod) -> Result<String, ConfigError> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let wanted = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    if wanted.len() <= HOSTNAME_MAX {
        return Ok(wanted.to_string());
    }
    // Names are DNS labels or subdomains, so ASCII; the cut still keeps
    // to a character boundary.
    let mut end = HOSTNAME_MAX;
    while !wanted.is_char_boundary(end) {
        end -= 1;
    }
    let truncated = wanted[..end].trim_end_matches(['-', '.']);
    if truncated.is_empty() {
        return Err(ConfigError(format!(
            "hostname for pod {name:?} was invalid: {wanted:?}"
        )));
    }
    Ok(truncated.to_string())
}

/// The securityContext of `container`, its own fields over the pod's.
/// Ids outside 0..2^32 and profiles this node cannot load are refused.
pub fn security(pod: &Pod, container: &Container, seccomp_root: &Path) -> Result<Security, ConfigError> {
    let pod_context = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let own = container.security_context.clone().unwrap_or_default();
    let id = |what: &str, value: Option<i64>| -> Result<Option<u32>, ConfigError> {
        value
            .map(|v| u32::try_from(v).map_err(|_| ConfigError(format!("securityContext.{what} {v} is not a valid id"))))
            .transpose()
    };
    let mut supplemental_groups = Vec::new();
    for group in pod_context.supplemental_groups.iter().flatten() {
        supplemental_groups.extend(id("supplementalGroups", Some(*group))?);
    }
    supplemental_groups.extend(id("fsGroup", pod_context.fs_group)?);
    let profile = own.seccomp_profile.as_ref().or(pod_context.seccomp_profile.as_ref());
    let seccomp = match profile.map(|p| p.type_.as_str()) {
        None | Some("Unconfined") => Seccomp::Unconfined,
        Some("RuntimeDefault") => Seccomp::RuntimeDefault,
        Some("Localhost") => {
            let name = profile.and_then(|p| p.localhost_profile.as_deref()).unwrap_or_default();
            let relative = Path::new(name);
            if name.is_empty()
                || relative.is_absolute()
                || relative
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ConfigError(format!(
                    "seccompProfile Localhost needs a localhostProfile relative to the node's profiles directory, got {name:?}"
                )));
            }
            Seccomp::Localhost(seccomp_root.join(relative))
        }
        Some(other) => {
            return Err(ConfigError(format!(
                "seccompProfile {other} is not supported (RuntimeDefault, Localhost and Unconfined are)"
            )));
        }
    };
    let capabilities = own.capabilities.unwrap_or_default();
    Ok(Security {
        run_as_user: id("runAsUser", own.run_as_user.or(pod_context.run_as_user))?,
        run_as_group: id("runAsGroup", own.run_as_group.or(pod_context.run_as_group))?,
        run_as_non_root: own.run_as_non_root.or(pod_context.run_as_non_root).unwrap_or(false),
        supplemental_groups,
        privileged: own.privileged.unwrap_or(false),
        read_only_root: own.read_only_root_filesystem.unwrap_or(false),
        allow_privilege_escalation: own.allow_privilege_escalation,
        add_capabilities: capabilities.add.unwrap_or_default(),
        drop_capabilities: capabilities.drop.unwrap_or_default(),
        seccomp,
    })
}

/// The `hostPort`s of the pod's containers, to forward to the pod.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p != 0)?;
            let protocol = match p.protocol.as_deref() {
                None | Some("TCP") => "tcp",
                Some("UDP") => "udp",
                Some(_) => return None,
            };
            Some(HostPort {
                protocol,
                host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
                host_port,
                container_port: u16::try_from(p.container_port).ok()?,
            })
        })
        .collect()
}

/// The pod's `fsGroup`, if it sets one.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    let group = pod.spec.as_ref()?.security_context.as_ref()?.fs_group?;
    u32::try_from(group).ok()
}

/// Gives a volume to the pod's `fsGroup`, as the kubelet does: every
/// file and directory group-owned by it, directories set-group-ID (so
/// what is made in them inherits the group) and open to the group, files
/// readable (and, in a writable volume, writable) by it.
pub fn apply_fs_group(dir: &Path, gid: u32, writable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let group = rustix::fs::Gid::from_raw(gid);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        rustix::fs::chown(&path, None, Some(group))?;
        let mode = meta.permissions().mode() & 0o7777;
        let wanted = if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
            mode | 0o2000 | if writable { 0o070 } else { 0o050 }
        } else {
            mode | if writable { 0o060 } else { 0o040 }
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))?;
    }
    Ok(())
}

/// The `/etc/hosts` of a pod with its own network, as the kubelet writes
/// it: loopback, then the pod's address with its hostname, then
/// `hostAliases`.
pub fn hosts_file(pod: &Pod, pod_ip: &str, hostname: &str) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = match spec.and_then(|s| s.subdomain.as_deref()).filter(|d| !d.is_empty()) {
        Some(subdomain) => format!("{hostname}.{subdomain}.{namespace}.svc.cluster.local\t{hostname}"),
        None => hostname.to_string(),
    };
    text.push_str(&format!("{pod_ip}\t{name}\n"));
    for alias in spec.and_then(|s| s.host_aliases.as_ref()).into_iter().flatten() {
        let names = alias.hostnames.clone().unwrap_or_default().join("\t");
        if !names.is_empty() {
            text.push_str(&format!("\n# Entries added by HostAliases.\n{}\t{names}\n", alias.ip));
        }
    }
    text
}

/// The `/etc/resolv.conf` an OCI container gets, by the pod's
/// `dnsPolicy`: `ClusterFirst` (the default) and `ClusterFirstWithHostNet`
/// name the cluster DNS first, with Kubernetes' search path for the pod's
/// namespace and `ndots:5`; `None` takes `dnsConfig` alone; `Default`
/// keeps the node's own file (`None` is returned). `dnsConfig` adds its
/// nameservers, searches and options to the first two. Without a cluster
/// DNS, the cluster policies also keep the node's file.
pub fn resolv_conf(pod: &Pod, cluster_dns: Option<std::net::IpAddr>) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let config = spec.dns_config.as_ref();
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
            "Default" => return None,
            "None" => (Vec::new(), Vec::new(), Vec::new()),
            _ => {
                let dns = cluster_dns?;
                (
                    vec![dns.to_string()],
                    vec![
                        format!("{namespace}.svc.cluster.local"),
                        "svc.cluster.local".into(),
                        "cluster.local".into(),
                    ],
                    vec!["ndots:5".into()],
                )
            }
        };
    servers.extend(config.iter().flat_map(|c| c.nameservers.iter().flatten()).cloned());
    searches.extend(config.iter().flat_map(|c| c.searches.iter().flatten()).cloned());
    for option in config.iter().flat_map(|c| c.options.iter().flatten()) {
        let text = match &option.value {
            Some(value) => format!("{}:{value}", option.name.as_deref().unwrap_or_default()),
            None => option.name.clone().unwrap_or_default(),
        };
        let key = text.split(':').next().unwrap_or_default().to_string();
        options.retain(|o| o.split(':').next() != Some(key.as_str()));
        options.push(text);
    }
    let mut file = String::new();
    for server in servers.iter().take(3) {
        file.push_str(&format!("nameserver {server}\n"));
    }
    if !searches.is_empty() {
        file.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        file.push_str(&format!("options {}\n", options.join(" ")));
    }
    Some(file)
}

/// The variables Kubernetes gives a container for each Service with a
/// ClusterIP in its namespace (`enableServiceLinks`, on by default):
/// `WEB_SERVICE_HOST`, `WEB_SERVICE_PORT`, `WEB_SERVICE_PORT_<NAME>` and the
/// Docker-link style `WEB_PORT`, `WEB_PORT_80_TCP`, `..._PROTO`, `..._PORT`,
/// `..._ADDR`. Services are taken in name order. Every pod, whatever its
/// namespace and `enableServiceLinks`, gets those of `default/kubernetes`
/// (`KUBERNETES_SERVICE_HOST`…), as the kubelet gives them, so in-cluster
/// clients find the API.
pub fn service_links(pod: &Pod, services: &[Arc<Service>]) -> Vec<(String, String)> {
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let is_api = |s: &Service| {
        s.metadata.namespace.as_deref() == Some("default") && s.metadata.name.as_deref() == Some("kubernetes")
    };
    let mut chosen: Vec<&Service> = services
        .iter()
        .map(Arc::as_ref)
        .filter(|s| (links && s.metadata.namespace.as_deref() == Some(namespace)) || is_api(s))
        .collect();
    chosen.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut vars = Vec::new();
    for service in chosen {
        let Some(spec) = service.spec.as_ref() else { continue };
        let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else {
            continue;
        };
        let name = service
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        vars.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        vars.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for port in ports {
            if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                vars.push((
                    format!("{name}_SERVICE_PORT_{}", port_name.to_uppercase().replace('-', "_")),
                    port.port.to_string(),
                ));
            }
        }
        let protocol = |p: &k8s_openapi::api::core::v1::ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
        vars.push((
            format!("{name}_PORT"),
            format!("{}://{ip}:{}", protocol(first).to_lowercase(), first.port),
        ));
        for port in ports {
            let proto = protocol(port);
            let prefix = format!("{name}_PORT_{}_{}", port.port, proto.to_uppercase());
            vars.push((prefix.clone(), format!("{}://{ip}:{}", proto.to_lowercase(), port.port)));
            vars.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            vars.push((format!("{prefix}_PORT"), port.port.to_string()));
            vars.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    vars
}

/// A container's environment, in order: the Services' variables, then
/// `envFrom` sources, then `env` (later entries override earlier ones,
/// and may refer to them).
pub fn environment(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    pod_ip: &str,
    host_ip: &str,
    services: &[Arc<Service>],
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars: Vec<(String, String)> = service_links(pod, services);
    let set = |vars: &mut Vec<(String, String)>, name: String, value: String| {
        if let Some(slot) = vars.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            vars.push((name, value));
        }
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(map) => {
                    for (k, v) in map.data.iter().flatten() {
                        set(&mut vars, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secret_data(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut vars,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in container.env.iter().flatten() {
        let known: BTreeMap<String, String> = vars.iter().cloned().collect();
        let value = if let Some(from) = &e.value_from {
            if let Some(r) = &from.field_ref {
                field_ref(pod, &r.field_path, pod_ip, host_ip)?
            } else if let Some(r) = &from.config_map_key_ref {
                match sources.config_map_value(&r.name, &r.key) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {}/{}",
                            r.key,
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            r.name
                        )));
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                match sources.secret_value(&r.name, &r.key) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {}/{}",
                            r.key,
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            r.name
                        )));
                    }
                }
            } else {
                return Err(ConfigError(format!("env {}: unsupported valueFrom", e.name)));
            }
        } else {
            expand(e.value.as_deref().unwrap_or_default(), &known)
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

/// The files of a ConfigMap or Secret volume: every key, or the listed
/// items at their paths.
fn projected_files(
    all: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    what: &str,
) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(all.into_iter().collect());
    };
    let mut files = Vec::new();
    for item in items {
        match all.get(&item.key) {
            Some(bytes) => files.push((item.path.clone(), bytes.clone())),
            None if optional => {}
            None => return Err(ConfigError(format!("{what}: key {} not found", item.key))),
        }
    }
    Ok(files)
}

/// A relative path with no `..`: what a volume item may be written to.
fn safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.is_relative() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// The files of a downward API item: one field, or a whole label or
/// annotation map as sorted `key="value"` lines.
fn downward_file(pod: &Pod, item: &DownwardAPIVolumeFile) -> Result<File, ConfigError> {
    let Some(field) = &item.field_ref else {
        return Err(ConfigError(format!(
            "downward API item {}: only fieldRef is supported",
            item.path
        )));
    };
    let whole = match field.field_path.as_str() {
        "metadata.labels" => Some(&pod.metadata.labels),
        "metadata.annotations" => Some(&pod.metadata.annotations),
        _ => None,
    };
    let text = match whole {
        Some(map) => map
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>(),
        None => field_ref(pod, &field.field_path, "", "")?,
    };
    Ok((item.path.clone(), text.into_bytes()))
}

/// A file of a volume: its path in the volume and its bytes.
type File = (String, Vec<u8>);

/// The files a volume holds, or `None` for an empty directory.
fn volume_files(volume: &Volume, pod: &Pod, sources: &Sources) -> Result<Option<Vec<File>>, ConfigError> {
    let config_map = |name: &str, items: Option<&Vec<KeyToPath>>, optional: Option<bool>| {
        let optional = optional == Some(true);
        let all = match sources.config_map_data(name) {
            Some(all) => all,
            None if optional => BTreeMap::new(),
            None => return Err(ConfigError(format!("configmap \"{name}\" not found"))),
        };
        projected_files(all, items, optional, &format!("configmap {name}"))
    };
    let secret = |name: &str, items: Option<&Vec<KeyToPath>>, optional: Option<bool>| {
        let optional = optional == Some(true);
        let all = match sources.secret_data(name) {
            Some(data) => data,
            None if optional => BTreeMap::new(),
            None => return Err(ConfigError(format!("secret \"{name}\" not found"))),
        };
        projected_files(all, items, optional, &format!("secret {name}"))
    };
    let downward = |items: Option<&Vec<DownwardAPIVolumeFile>>| {
        items
            .into_iter()
            .flatten()
            .map(|item| downward_file(pod, item))
            .collect::<Result<Vec<_>, _>>()
    };
    if volume.empty_dir.is_some() {
        return Ok(None);
    }
    let files = if let Some(source) = &volume.config_map {
        config_map(&source.name, source.items.as_ref(), source.optional)?
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        secret(&name, source.items.as_ref(), source.optional)?
    } else if let Some(source) = &volume.downward_api {
        downward(source.items.as_ref())?
    } else if let Some(projected) = &volume.projected {
        let mut files = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(c) = &source.config_map {
                files.extend(config_map(&c.name, c.items.as_ref(), c.optional)?);
            }
            if let Some(s) = &source.secret {
                files.extend(secret(&s.name, s.items.as_ref(), s.optional)?);
            }
            if let Some(d) = &source.downward_api {
                files.extend(downward(d.items.as_ref())?);
            }
            if let Some(t) = &source.service_account_token {
                let slot = TokenSlot {
                    volume: volume.name.clone(),
                    path: t.path.clone(),
                };
                let token = sources
                    .tokens
                    .get(&slot)
                    .ok_or_else(|| ConfigError(format!("volume {}: no ServiceAccount token yet", volume.name)))?;
                files.push((t.path.clone(), token.clone().into_bytes()));
            }
        }
        files
    } else {
        return Err(ConfigError(format!(
            "volume {}: only emptyDir, configMap, secret, downwardAPI and projected volumes are supported",
            volume.name
        )));
    };
    Ok(Some(files))
}

/// Replaces `dir/file` by `bytes` at once: written aside, then renamed,
/// so that a container reading it (a rotated token) never sees half.
pub fn write_file_atomically(dir: &Path, file: &str, bytes: &[u8]) -> Result<(), ConfigError> {
    if !safe_relative(file) {
        return Err(ConfigError(format!("invalid item path {file:?}")));
    }
    let io = |e: std::io::Error| ConfigError(format!("cannot write {}: {e}", dir.join(file).display()));
    let target = dir.join(file);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let aside = target.with_file_name(format!(
        "..{}.tmp",
        target.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    std::fs::write(&aside, bytes).map_err(io)?;
    std::fs::rename(&aside, &target).map_err(io)
}

/// Creates a pod volume under `dir` (`<pod dir>/volumes/<name>`).
pub fn materialize(volume: &Volume, pod: &Pod, sources: &Sources, dir: &Path) -> Result<PathBuf, ConfigError> {
    let path = dir.join(&volume.name);
    let io = |e: std::io::Error| ConfigError(format!("volume {}: {e}", volume.name));
    let Some(files) = volume_files(volume, pod, sources)? else {
        std::fs::create_dir_all(&path).map_err(io)?;
        return Ok(path);
    };
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).map_err(io)?;
    for (file, bytes) in files {
        write_file_atomically(&path, &file, &bytes)
            .map_err(|ConfigError(e)| ConfigError(format!("volume {}: {e}", volume.name)))?;
    }
    Ok(path)
}

/// A container's mounts, from its `volumeMounts` and the volumes made on
/// disk. ConfigMap, Secret, downward API and projected volumes are always
/// read-only.
pub fn mounts(
    pod: &Pod,
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let host = volumes
            .get(&m.name)
            .ok_or_else(|| ConfigError(format!("volume mount {}: no such volume", m.name)))?;
        let read_only_source = spec.volumes.iter().flatten().any(|v| {
            v.name == m.name
                && (v.config_map.is_some() || v.secret.is_some() || v.projected.is_some() || v.downward_api.is_some())
        });
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if safe_relative(sub) => host.join(sub),
            Some(sub) => return Err(ConfigError(format!("volume mount {}: invalid subPath {sub:?}", m.name))),
            None => host.clone(),
        };
        out.push(Mount {
            host,
            path: m.mount_path.clone(),
            read_only: m.read_only == Some(true) || read_only_source,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_containers_security_context_overrides_the_pods() {
        let p = pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": true,
                "supplementalGroups": [4000], "fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}],
        }));
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let resolved = security(&p, &c, Path::new("/seccomp")).unwrap();
        assert_eq!(
            resolved,
            Security {
                run_as_user: Some(1001),
                run_as_group: Some(3000),
                run_as_non_root: true,
                supplemental_groups: vec![4000, 2000],
                privileged: false,
                read_only_root: true,
                allow_privilege_escalation: Some(false),
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["ALL".into()],
                seccomp: Seccomp::RuntimeDefault,
            }
        );
        assert_eq!(fs_group(&p), Some(2000));
        let plain = Container {
            name: "plain".into(),
            ..Container::default()
        };
        let bad = pod(json!({"securityContext": {"runAsUser": -1}, "containers": [{"name": "c"}]}));
        assert!(security(&bad, &plain, Path::new("/seccomp")).is_err());
        let local = pod(
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}, "containers": [{"name": "c"}]}),
        );
        assert_eq!(
            security(&local, &plain, Path::new("/seccomp")).unwrap().seccomp,
            Seccomp::Localhost("/seccomp/x.json".into())
        );
        let escaping = pod(
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "../x.json"}}, "containers": [{"name": "c"}]}),
        );
        assert!(
            security(&escaping, &plain, Path::new("/seccomp"))
                .unwrap_err()
                .0
                .contains("relative")
        );
    }

    #[test]
    fn the_hosts_file_names_the_pod() {
        let p = pod(
            json!({"subdomain": "web", "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["db", "db.local"]}], "containers": []}),
        );
        let hosts = hosts_file(&p, "127.34.0.2", "p");
        assert!(hosts.contains("127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("127.34.0.2\tp.web.ns.svc.cluster.local\tp\n"), "{hosts}");
        assert!(hosts.ends_with("10.0.0.9\tdb\tdb.local\n"), "{hosts}");
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$A $", &vars), "$A $");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn environment_from_every_source() {
        let p = pod(json!({
            "nodeName": "n1",
            "containers": [{
                "name": "c", "image": "i",
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-$(CM_k)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "none", "key": "x", "optional": true}}},
                ],
            }],
        }));
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "cm".into(),
            serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"k": "v"}})).unwrap(),
        );
        sources.secrets.insert(
            "s".into(),
            serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"pw": "aHVudGVyMg=="}})).unwrap(),
        );
        let container = p.spec.as_ref().unwrap().containers[0].clone();
        let env = environment(&p, &container, &sources, "127.1.0.3", "127.0.0.1", &[]).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CM_k"), Some("v"));
        assert_eq!(get("B"), Some("a-v"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("127.1.0.3"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("OPT"), None);
        assert_eq!(
            Sources::wanted(&p),
            (vec!["cm".to_string()], vec!["none".to_string(), "s".to_string()])
        );

        sources.secrets.clear();
        let missing = environment(&p, &container, &sources, "", "", &[]).unwrap_err();
        assert!(missing.0.contains("couldn't find key pw in Secret ns/s"), "{missing}");
    }

    #[test]
    fn volumes_are_written_and_mounted() {
        let dir = tempfile::tempdir().unwrap();
        let p = pod(json!({
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "cm", "items": [{"key": "k", "path": "sub/file.txt"}]}},
                {"name": "evil", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../x"}]}},
                {"name": "host", "hostPath": {"path": "/etc"}},
            ],
            "containers": [{"name": "c", "image": "i", "volumeMounts": [
                {"name": "scratch", "mountPath": "/tmp"},
                {"name": "conf", "mountPath": "/etc/app"},
            ]}],
        }));
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "cm".into(),
            serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"k": "v", "other": "o"}})).unwrap(),
        );
        let volumes = p.spec.as_ref().unwrap().volumes.clone().unwrap();
        let mut made = BTreeMap::new();
        for v in &volumes[..2] {
            made.insert(v.name.clone(), materialize(v, &p, &sources, dir.path()).unwrap());
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("conf/sub/file.txt")).unwrap(),
            "v"
        );
        assert!(!dir.path().join("conf/other").exists());
        assert!(
            materialize(&volumes[2], &p, &sources, dir.path()).is_err(),
            "no escaping the volume"
        );
        assert!(
            materialize(&volumes[3], &p, &sources, dir.path()).is_err(),
            "no host paths"
        );
        let container = p.spec.as_ref().unwrap().containers[0].clone();
        let mounts = mounts(&p, &container, &made).unwrap();
        assert!(!mounts[0].read_only);
        assert!(mounts[1].read_only, "configMap volumes are read-only");
        assert_eq!(mounts[1].path, "/etc/app");
    }

    #[test]
    fn projected_volumes_hold_a_token_the_ca_and_the_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pod(json!({
            "volumes": [
                {"name": "kube-api-access-abcde", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                ]}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                ]}},
            ],
            "containers": [{"name": "c", "image": "i", "volumeMounts": [
                {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
            ]}],
        }));
        p.metadata.labels = Some([("app".to_string(), "web".to_string()), ("tier".into(), "a b".into())].into());
        let wanted = Sources::tokens_wanted(&p);
        assert_eq!(
            wanted,
            vec![TokenWanted {
                slot: TokenSlot {
                    volume: "kube-api-access-abcde".into(),
                    path: "token".into()
                },
                audience: None,
                expiration_seconds: 3607,
            }]
        );
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "kube-root-ca.crt".into(),
            serde_json::from_value(json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "PEM"}}))
                .unwrap(),
        );
        let volumes = p.spec.as_ref().unwrap().volumes.clone().unwrap();
        assert!(
            materialize(&volumes[0], &p, &sources, dir.path()).is_err(),
            "no volume before its token"
        );
        sources.tokens.insert(wanted[0].slot.clone(), "jwt".into());
        let made = materialize(&volumes[0], &p, &sources, dir.path()).unwrap();
        let read = |f: &str| std::fs::read_to_string(made.join(f)).unwrap();
        assert_eq!(
            (read("token"), read("ca.crt"), read("namespace")),
            ("jwt".into(), "PEM".into(), "ns".into())
        );
        write_file_atomically(&made, "token", b"rotated").unwrap();
        assert_eq!(read("token"), "rotated");
        assert_eq!(std::fs::read_dir(&made).unwrap().count(), 3, "nothing left aside");

        let info = materialize(&volumes[1], &p, &sources, dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(info.join("labels")).unwrap(),
            "app=\"web\"\ntier=\"a b\"\n"
        );
        assert_eq!(std::fs::read_to_string(info.join("name")).unwrap(), "p");
        let container = p.spec.as_ref().unwrap().containers[0].clone();
        let made = BTreeMap::from([("kube-api-access-abcde".to_string(), made)]);
        assert!(
            mounts(&p, &container, &made).unwrap()[0].read_only,
            "projected volumes are read-only"
        );
    }

    #[test]
    fn tokens_are_renewed_after_four_fifths_of_their_life_and_at_least_daily() {
        let hour = Duration::from_secs(3600);
        assert_eq!(token_renewal(hour), Duration::from_secs(2880));
        assert_eq!(token_renewal(hour * 24 * 365), hour * 24);
    }

    #[test]
    fn services_in_the_namespace_become_variables() {
        let service = |namespace: &str, name: &str, ip: &str| -> Arc<Service> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace},
                    "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}, {"name": "metrics-tls", "port": 9443}]}}))
                .unwrap(),
            )
        };
        let services = [
            service("default", "hello-http", "127.96.0.9"),
            service("other", "elsewhere", "127.96.0.10"),
            service("default", "headless", "None"),
        ];
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": []}}),
        )
        .unwrap();
        let vars: BTreeMap<String, String> = service_links(&pod, &services).into_iter().collect();
        assert_eq!(vars["HELLO_HTTP_SERVICE_HOST"], "127.96.0.9");
        assert_eq!(vars["HELLO_HTTP_SERVICE_PORT"], "80");
        assert_eq!(vars["HELLO_HTTP_SERVICE_PORT_METRICS_TLS"], "9443");
        assert_eq!(vars["HELLO_HTTP_PORT"], "tcp://127.96.0.9:80");
        assert_eq!(vars["HELLO_HTTP_PORT_9443_TCP_ADDR"], "127.96.0.9");
        assert_eq!(vars["HELLO_HTTP_PORT_80_TCP_PROTO"], "tcp");
        assert_eq!(vars.len(), 13, "{vars:?}");
        let mut opted_out = pod.clone();
        opted_out.spec.as_mut().unwrap().enable_service_links = Some(false);
        assert!(service_links(&opted_out, &services).is_empty());

        // The API's Service reaches every pod, opted out or elsewhere.
        let api = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {"clusterIP": "127.96.0.1", "ports": [{"name": "https", "port": 443}]}}))
            .unwrap(),
        );
        let with_api = [services[0].clone(), services[1].clone(), api];
        let mut elsewhere = opted_out.clone();
        elsewhere.metadata.namespace = Some("other".into());
        let vars: BTreeMap<String, String> = service_links(&elsewhere, &with_api).into_iter().collect();
        assert_eq!(vars["KUBERNETES_SERVICE_HOST"], "127.96.0.1");
        assert_eq!(vars["KUBERNETES_SERVICE_PORT"], "443");
        assert_eq!(vars["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert!(vars.keys().all(|k| k.starts_with("KUBERNETES_")), "{vars:?}");
    }

    #[test]
    fn hostname_is_the_pod_hostname_or_name_cut_as_the_kubelet_cuts_it() {
        let named = |name: &str, spec: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
        };
        let bare = json!({"containers": []});
        assert_eq!(hostname(&named("web-0", bare.clone())).unwrap(), "web-0");
        let chosen = json!({"containers": [], "hostname": "db"});
        assert_eq!(hostname(&named("web-0", chosen)).unwrap(), "db");
        let empty = json!({"containers": [], "hostname": ""});
        assert_eq!(hostname(&named("web-0", empty)).unwrap(), "web-0");

        let exact = "a".repeat(63);
        assert_eq!(hostname(&named(&exact, bare.clone())).unwrap(), exact);
        let long = format!("{}{}", "a".repeat(60), "b".repeat(40));
        assert_eq!(
            hostname(&named(&long, bare.clone())).unwrap(),
            format!("{}bbb", "a".repeat(60))
        );
        // What the cut leaves at the end is trimmed, and only then.
        let dashed = format!("{}-.{}", "a".repeat(61), "c".repeat(37));
        assert_eq!(hostname(&named(&dashed, bare.clone())).unwrap(), "a".repeat(61));
        let dotted = format!("{}.{}", "a".repeat(62), "c".repeat(37));
        assert_eq!(hostname(&named(&dotted, bare.clone())).unwrap(), "a".repeat(62));
        let long_hostname = json!({"containers": [], "hostname": format!("{}-x", "h".repeat(62))});
        assert_eq!(hostname(&named("p", long_hostname)).unwrap(), "h".repeat(62));
        let hopeless = format!("{}x", "-".repeat(63));
        assert!(hostname(&named(&hopeless, bare)).is_err());
    }

    #[test]
    fn resolv_conf_follows_the_dns_policy() {
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec})).unwrap()
        };
        let dns = Some("127.96.0.10".parse().unwrap());
        assert_eq!(
            resolv_conf(&pod(json!({"containers": []})), dns).unwrap(),
            "nameserver 127.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
        assert_eq!(
            resolv_conf(&pod(json!({"containers": [], "dnsPolicy": "Default"})), dns),
            None
        );
        assert_eq!(resolv_conf(&pod(json!({"containers": []})), None), None);
        let custom = pod(json!({"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["10.0.0.53"], "searches": ["corp"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            resolv_conf(&custom, dns).unwrap(),
            "nameserver 10.0.0.53\nsearch corp\noptions ndots:2 edns0\n"
        );
        let added = pod(json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}));
        assert!(resolv_conf(&added, dns).unwrap().ends_with("options ndots:1\n"));
    }
}
