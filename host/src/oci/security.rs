//! What a container may do and as whom: Kubernetes' `securityContext`,
//! resolved by the agent ([`Security`]), applied to a runtime spec the way
//! containerd's CRI plugin applies it.
//!
//! * **User.** `runAsUser` replaces the image's user; the group is
//!   `runAsGroup`, else the image's group when the image's user is kept,
//!   else the uid's primary group in the image's `/etc/passwd` (0 when it
//!   has none). Supplementary groups: those the image's `/etc/group` lists
//!   the user in, then `supplementalGroups` and `fsGroup`.
//! * **runAsNonRoot** refuses a container that would run as uid 0, with
//!   the kubelet's words.
//! * **Capabilities.** containerd's default set ([`DEFAULT_CAPABILITIES`]),
//!   minus `drop`, plus `add` (`ALL` in either means every capability);
//!   a privileged container gets all of them.
//! * **privileged** also unmasks `/proc` and `/sys` paths (no masked or
//!   read-only paths) and lifts `no_new_privileges`.
//! * **readOnlyRootFilesystem** mounts the root read-only.
//! * **allowPrivilegeEscalation: false** sets `no_new_privileges`; the
//!   default allows it, as in Kubernetes.
//! * **seccompProfile** `RuntimeDefault` installs [`runtime_default_seccomp`];
//!   `Unconfined` (and no profile, Kubernetes' default) installs none;
//!   `Localhost` installs the profile at `localhostProfile` under the
//!   node's profiles directory (`<agent data>/seccomp/`, the kubelet's
//!   `<root-dir>/seccomp/`), in the runtime spec's JSON form (which
//!   Docker's profiles also read as).

use std::str::FromStr;

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxCapabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompBuilder,
    LinuxSyscallBuilder,
};

/// The securityContext of one container, pod-level fields merged in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Security {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub run_as_non_root: bool,
    /// `supplementalGroups`, then `fsGroup`.
    pub supplemental_groups: Vec<u32>,
    pub privileged: bool,
    pub read_only_root: bool,
    /// `allowPrivilegeEscalation`; `None` allows it.
    pub allow_privilege_escalation: Option<bool>,
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
    pub seccomp: Seccomp,
}

/// Which seccomp filter a container runs under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Seccomp {
    #[default]
    Unconfined,
    RuntimeDefault,
    /// A profile file on the node.
    Localhost(std::path::PathBuf),
}

/// Reads a `Localhost` profile.
pub fn localhost_seccomp(path: &std::path::Path) -> Result<LinuxSeccomp, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot load seccomp profile {:?}: {e}", path.display()))?;
    serde_json::from_slice(&text)
        .map_err(|e| format!("seccomp profile {:?} is not a valid profile: {e}", path.display()))
}

/// containerd's default capabilities for a container.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability this kernel generation knows (through
/// `CHECKPOINT_RESTORE`, 40).
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A capability name as Kubernetes writes it (`NET_ADMIN`), with or
/// without `CAP_`, in any case.
fn capability(name: &str) -> Result<Capability, String> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| format!("unknown capability {name:?}"))
}

/// The capability sets of a container with `security`.
pub fn capabilities(security: &Security) -> Result<LinuxCapabilities, String> {
    let is_all = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case("ALL"));
    let mut names: Vec<String> = if security.privileged || is_all(&security.add_capabilities) {
        ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    } else {
        let mut names: Vec<String> = if is_all(&security.drop_capabilities) {
            Vec::new()
        } else {
            DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect()
        };
        names.extend(security.add_capabilities.iter().cloned());
        names
    };
    if !security.privileged {
        let dropped: Vec<Capability> = security
            .drop_capabilities
            .iter()
            .filter(|n| !n.eq_ignore_ascii_case("ALL"))
            .map(|n| capability(n))
            .collect::<Result<_, _>>()?;
        let mut kept = Vec::new();
        for name in names.drain(..) {
            if !dropped.contains(&capability(&name)?) {
                kept.push(name);
            }
        }
        names = kept;
    }
    let set: Capabilities = names.iter().map(|n| capability(n)).collect::<Result<_, _>>()?;
    let mut linux = LinuxCapabilities::default();
    linux.set_bounding(Some(set.clone()));
    linux.set_effective(Some(set.clone()));
    linux.set_permitted(Some(set));
    linux.set_inheritable(None);
    linux.set_ambient(None);
    Ok(linux)
}

/// The refusal of a container that would run as root under
/// `runAsNonRoot`, in the kubelet's words; `None` when it may run.
pub fn non_root_refusal(security: &Security, uid: u32, pod: &str, container: &str) -> Option<String> {
    if !security.run_as_non_root || uid != 0 {
        return None;
    }
    Some(if security.run_as_user == Some(0) {
        format!("container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {container})")
    } else {
        format!("container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")
    })
}

/// Syscalls the runtime's default profile refuses (`EPERM`), everything
/// else being allowed: the list Docker documents as blocked by its default
/// profile (kernel modules, keyrings, clocks, mounts and namespaces,
/// reboot, swap, tracing of other processes, BPF, perf, and obsolete
/// calls). Docker's and containerd's profiles are allowlists that end up
/// refusing the same calls on x86_64 and aarch64, with exceptions by
/// capability (a container given `SYS_ADMIN` may mount, for example),
/// which this denylist does not grant.
pub const RUNTIME_DEFAULT_DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The `RuntimeDefault` profile: allow, but for
/// [`RUNTIME_DEFAULT_DENIED`], which fail with `EPERM`.
pub fn runtime_default_seccomp() -> Result<LinuxSeccomp, oci_spec::OciSpecError> {
    const EPERM: u32 = 1;
    let denied = LinuxSyscallBuilder::default()
        .names(RUNTIME_DEFAULT_DENIED.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(EPERM)
        .build()?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchAarch64])
        .syscalls(vec![denied])
        .build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(caps: &LinuxCapabilities) -> Vec<String> {
        let mut names: Vec<String> = caps.bounding().iter().flatten().map(|c| c.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn capabilities_start_from_containerds_defaults() {
        let default = capabilities(&Security::default()).unwrap();
        assert_eq!(names(&default).len(), DEFAULT_CAPABILITIES.len());
        let tuned = capabilities(&Security {
            add_capabilities: vec!["NET_ADMIN".into(), "CAP_SYS_TIME".into()],
            drop_capabilities: vec!["net_raw".into()],
            ..Security::default()
        })
        .unwrap();
        let tuned = names(&tuned);
        assert!(tuned.contains(&"NET_ADMIN".to_string()), "{tuned:?}");
        assert!(tuned.contains(&"SYS_TIME".to_string()));
        assert!(!tuned.contains(&"NET_RAW".to_string()));
        let minimal = capabilities(&Security {
            drop_capabilities: vec!["ALL".into()],
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            ..Security::default()
        })
        .unwrap();
        assert_eq!(names(&minimal), ["NET_BIND_SERVICE"]);
        let privileged = capabilities(&Security {
            privileged: true,
            drop_capabilities: vec!["ALL".into()],
            ..Security::default()
        })
        .unwrap();
        assert_eq!(names(&privileged).len(), ALL_CAPABILITIES.len());
        assert!(
            capabilities(&Security {
                add_capabilities: vec!["FLY".into()],
                ..Security::default()
            })
            .is_err()
        );
    }

    #[test]
    fn run_as_non_root_refuses_uid_zero_in_the_kubelets_words() {
        let non_root = Security {
            run_as_non_root: true,
            ..Security::default()
        };
        assert_eq!(non_root_refusal(&non_root, 1000, "ns/p", "c"), None);
        assert_eq!(
            non_root_refusal(&non_root, 0, "ns/p", "c").unwrap(),
            "container has runAsNonRoot and image will run as root (pod: \"ns/p\", container: c)"
        );
        let explicit = Security {
            run_as_user: Some(0),
            ..non_root
        };
        assert!(
            non_root_refusal(&explicit, 0, "ns/p", "c")
                .unwrap()
                .starts_with("container's runAsUser breaks non-root policy")
        );
    }

    #[test]
    fn the_default_profile_refuses_mounts_and_allows_the_rest() {
        let profile = runtime_default_seccomp().unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActAllow);
        let denied = &profile.syscalls().as_ref().unwrap()[0];
        assert!(denied.names().contains(&"mount".to_string()));
        assert_eq!(denied.action(), LinuxSeccompAction::ScmpActErrno);
    }
}
