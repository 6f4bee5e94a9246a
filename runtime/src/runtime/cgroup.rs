//! The container's memory limit, read from the process's cgroup: v2 `memory.max` (the smallest
//! limit on the path from the process's cgroup up to the hierarchy's root), else v1
//! `memory.limit_in_bytes`.
//!
//! Paths come from `/proc/self/cgroup` (which cgroup the process is in) and
//! `/proc/self/mountinfo` (where each hierarchy is mounted); every path is read under `root`, so
//! the parser runs on fixture trees in tests.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A cgroup v1 limit at or above this is the kernel's "no limit" (it rounds `i64::MAX` down to
/// a page multiple).
const V1_UNLIMITED: u64 = 1 << 62;

/// A memory limit found in a cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupLimit {
    /// The limit in bytes.
    pub(crate) bytes: u64,
    /// The file it was read from (under `root`).
    pub(crate) file: PathBuf,
}

/// The memory limit of the calling process's cgroup.
pub(crate) fn memory_limit() -> io::Result<CgroupLimit> {
    memory_limit_under(Path::new("/"))
}

/// As [`memory_limit`], reading every path under `root`.
pub(crate) fn memory_limit_under(root: &Path) -> io::Result<CgroupLimit> {
    let read = |p: &str| fs::read_to_string(root.join(p.trim_start_matches('/')));
    let cgroups = read("/proc/self/cgroup").map_err(|e| {
        not_found(format!(
            "cannot read /proc/self/cgroup ({e}): this system does not expose cgroups"
        ))
    })?;
    let mounts = read("/proc/self/mountinfo").unwrap_or_default();
    let mut checked = Vec::new();
    if let Some(found) = v2_limit(root, &cgroups, &mounts, &mut checked)? {
        return Ok(found);
    }
    if let Some(found) = v1_limit(root, &cgroups, &mounts, &mut checked)? {
        return Ok(found);
    }
    let checked = if checked.is_empty() {
        "no memory controller is listed in /proc/self/cgroup".to_string()
    } else {
        format!("checked {}", checked.join(", "))
    };
    Err(not_found(format!(
        "no cgroup memory limit is set for this process ({checked}); set one on the container \
         (for example `docker run --memory 512m` or a Kubernetes memory limit), or give the \
         runtime an explicit limit with `memory_limit(bytes)`"
    )))
}

fn not_found(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, msg)
}

/// A mount from `/proc/self/mountinfo`: the hierarchy path it exposes, where, its type and
/// its super options.
struct Mount<'a> {
    root: &'a str,
    point: &'a str,
    fstype: &'a str,
    options: &'a str,
}

fn mounts(mountinfo: &str) -> impl Iterator<Item = Mount<'_>> {
    mountinfo.lines().filter_map(|line| {
        // `id parent major:minor root point options [optional...] - fstype source super`
        let (pre, post) = line.split_once(" - ")?;
        let mut pre = pre.split(' ');
        let root = pre.nth(3)?;
        let point = pre.next()?;
        let mut post = post.split(' ');
        let fstype = post.next()?;
        let options = post.nth(1).unwrap_or("");
        Some(Mount {
            root,
            point,
            fstype,
            options,
        })
    })
}

/// The directory of cgroup `path` under `mount`, if the mount exposes it.
fn cgroup_dir(root: &Path, mount: &Mount<'_>, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path
    } else {
        path.strip_prefix(mount.root)?
    };
    let mut dir = root.join(mount.point.trim_start_matches('/'));
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
    }
    Some(dir)
}

fn v2_limit(
    root: &Path,
    cgroups: &str,
    mountinfo: &str,
    checked: &mut Vec<String>,
) -> io::Result<Option<CgroupLimit>> {
    let Some(path) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Ok(None);
    };
    let mount = mounts(mountinfo).find(|m| m.fstype == "cgroup2");
    let fallback = Mount {
        root: "/",
        point: "/sys/fs/cgroup",
        fstype: "cgroup2",
        options: "",
    };
    let mount = mount.unwrap_or(fallback);
    let Some(mut dir) = cgroup_dir(root, &mount, path.trim()) else {
        return Ok(None);
    };
    let top = root.join(mount.point.trim_start_matches('/'));
    let mut best: Option<CgroupLimit> = None;
    loop {
        let file = dir.join("memory.max");
        if let Ok(text) = fs::read_to_string(&file) {
            checked.push(format!("{} = {}", shown(root, &file), text.trim()));
            let text = text.trim();
            if text != "max" {
                let bytes = parse(text, &file)?;
                if best.as_ref().is_none_or(|b| bytes < b.bytes) {
                    best = Some(CgroupLimit {
                        bytes,
                        file: shown_path(root, &file),
                    });
                }
            }
        }
        if dir == top || !dir.pop() || !dir.starts_with(&top) {
            break;
        }
    }
    Ok(best)
}

fn v1_limit(
    root: &Path,
    cgroups: &str,
    mountinfo: &str,
    checked: &mut Vec<String>,
) -> io::Result<Option<CgroupLimit>> {
    let Some(path) = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    }) else {
        return Ok(None);
    };
    let mount = mounts(mountinfo)
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == "memory"));
    let fallback = Mount {
        root: "/",
        point: "/sys/fs/cgroup/memory",
        fstype: "cgroup",
        options: "memory",
    };
    let mount = mount.unwrap_or(fallback);
    let Some(dir) = cgroup_dir(root, &mount, path.trim()) else {
        return Ok(None);
    };
    let file = dir.join("memory.limit_in_bytes");
    let Ok(text) = fs::read_to_string(&file) else {
        checked.push(format!("{} (missing)", shown(root, &file)));
        return Ok(None);
    };
    checked.push(format!("{} = {}", shown(root, &file), text.trim()));
    let bytes = parse(text.trim(), &file)?;
    Ok((bytes < V1_UNLIMITED).then(|| CgroupLimit {
        bytes,
        file: shown_path(root, &file),
    }))
}

fn parse(text: &str, file: &Path) -> io::Result<u64> {
    text.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} holds `{text}`, not a byte count or `max`",
                file.display()
            ),
        )
    })
}

fn shown_path(root: &Path, file: &Path) -> PathBuf {
    Path::new("/").join(file.strip_prefix(root).unwrap_or(file))
}

fn shown(root: &Path, file: &Path) -> String {
    shown_path(root, file).display().to_string()
}

// The fixtures are files on disk, which Miri's isolation does not let a test open.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cgroup")
            .join(name)
    }

    #[test]
    fn v2_takes_the_smallest_limit_on_the_path_to_the_root() {
        let found = memory_limit_under(&fixture("v2-nested")).unwrap();
        assert_eq!(found.bytes, 268_435_456);
        assert_eq!(
            found.file,
            Path::new("/sys/fs/cgroup/kubepods/pod1/memory.max")
        );
    }

    #[test]
    fn v2_in_a_cgroup_namespace_reads_the_mount_root() {
        let found = memory_limit_under(&fixture("v2-namespace")).unwrap();
        assert_eq!(found.bytes, 536_870_912);
    }

    #[test]
    fn v2_max_everywhere_is_a_clear_error() {
        let err = memory_limit_under(&fixture("v2-unlimited")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let msg = err.to_string();
        assert!(msg.contains("/sys/fs/cgroup/app/memory.max = max"), "{msg}");
        assert!(msg.contains("memory_limit(bytes)"), "{msg}");
    }

    #[test]
    fn v1_reads_limit_in_bytes_under_the_memory_mount() {
        let found = memory_limit_under(&fixture("v1-limited")).unwrap();
        assert_eq!(found.bytes, 1_073_741_824);
        assert_eq!(
            found.file,
            Path::new("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes")
        );
    }

    #[test]
    fn v1_page_rounded_maximum_is_no_limit() {
        let err = memory_limit_under(&fixture("v1-unlimited")).unwrap_err();
        assert!(err.to_string().contains("9223372036854771712"), "{err}");
    }

    #[test]
    fn a_malformed_file_is_reported_with_its_path() {
        let err = memory_limit_under(&fixture("v2-garbage")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("memory.max holds `12k`"), "{err}");
    }

    #[test]
    fn no_cgroup_file_is_a_clear_error() {
        let err = memory_limit_under(&fixture("absent")).unwrap_err();
        assert!(err.to_string().contains("/proc/self/cgroup"), "{err}");
    }
}
