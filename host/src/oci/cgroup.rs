//! What a runc container uses, read from the cgroup [`bundle`](super::bundle)
//! puts it in (`/skiff/<id>`), as the kubelet's summary reads it: CPU as
//! the cumulative usage, memory as the working set (usage less inactive
//! file pages, which the kernel reclaims first).
//!
//! Both hierarchies are read: cgroup v2 (`cpu.stat` `usage_usec`,
//! `memory.current`, `memory.stat` `inactive_file`) and v1
//! (`cpuacct.usage`, `memory.usage_in_bytes`, `memory.stat`
//! `total_inactive_file`). The parsers are pure; [`read`] is the I/O.

use std::path::Path;
use std::time::Duration;

/// A container's CPU and memory use at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// CPU time used since the container started.
    pub cpu: Duration,
    /// Memory in use less what the kernel may drop at once.
    pub working_set_bytes: u64,
}

/// The usage of container `id` under the cgroup root `root`
/// (`/sys/fs/cgroup`), or `None` when its cgroup is gone or unreadable.
pub fn read(root: &Path, id: &str) -> Option<CgroupUsage> {
    let file = |path: std::path::PathBuf| std::fs::read_to_string(path).ok();
    if root.join("cgroup.controllers").exists() {
        let dir = root.join("skiff").join(id);
        let cpu = stat_field(&file(dir.join("cpu.stat"))?, "usage_usec")?;
        let usage = number(&file(dir.join("memory.current"))?)?;
        let inactive = stat_field(&file(dir.join("memory.stat"))?, "inactive_file").unwrap_or(0);
        Some(CgroupUsage {
            cpu: Duration::from_micros(cpu),
            working_set_bytes: usage.saturating_sub(inactive),
        })
    } else {
        let cpu = number(&file(root.join("cpuacct/skiff").join(id).join("cpuacct.usage"))?)?;
        let memory = root.join("memory/skiff").join(id);
        let usage = number(&file(memory.join("memory.usage_in_bytes"))?)?;
        let inactive = stat_field(&file(memory.join("memory.stat"))?, "total_inactive_file").unwrap_or(0);
        Some(CgroupUsage {
            cpu: Duration::from_nanos(cpu),
            working_set_bytes: usage.saturating_sub(inactive),
        })
    }
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| number(value)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn v2_usage_is_read() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "cgroup.controllers", "cpu memory pids\n");
        let dir = root.path().join("skiff/c1");
        write(
            &dir,
            "cpu.stat",
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        );
        write(&dir, "memory.current", "10485760\n");
        write(
            &dir,
            "memory.stat",
            "anon 4096\nfile 8192\ninactive_file 2097152\nactive_file 0\n",
        );
        assert_eq!(
            read(root.path(), "c1"),
            Some(CgroupUsage {
                cpu: Duration::from_millis(2500),
                working_set_bytes: 8 << 20,
            })
        );
        assert_eq!(read(root.path(), "gone"), None);
    }

    #[test]
    fn v1_usage_is_read() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("cpuacct/skiff/c1"), "cpuacct.usage", "1500000000\n");
        let memory = root.path().join("memory/skiff/c1");
        write(&memory, "memory.usage_in_bytes", "4194304\n");
        write(
            &memory,
            "memory.stat",
            "cache 0\ninactive_file 1\ntotal_inactive_file 1048576\n",
        );
        assert_eq!(
            read(root.path(), "c1"),
            Some(CgroupUsage {
                cpu: Duration::from_millis(1500),
                working_set_bytes: 3 << 20,
            })
        );
    }
}
