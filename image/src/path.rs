//! Paths inside archives (image layout tars, layer tars), kept inside
//! the directory they are unpacked into.

use std::path::{Component, Path, PathBuf};

/// A path relative to an archive root, or `None` if it would leave it
/// (`..`, or a Windows prefix). Leading `/` and `./` are dropped.
pub fn safe_relative_path(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(safe_relative_path(Path::new("/./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative_path(Path::new("a/../../b")), None);
        assert_eq!(safe_relative_path(Path::new("./")), Some(PathBuf::new()));
    }
}
