//! The audit log file, rotated by size and count as kube-apiserver's
//! `--audit-log-maxsize` and `--audit-log-maxbackup` rotate it.
//!
//! kube-apiserver writes its log through the Go package lumberjack, and
//! tools that collect the log know its naming, so this file follows it:
//! when writing a line would take the file past the maximum size, the
//! file is renamed `<stem>-<UTC time, ms>.<ext>` beside it (`audit.log`
//! becomes `audit-2024-05-01T12-00-00.123.log`), a new file takes its
//! place, and the oldest rotated files beyond the count kept are removed
//! (0 keeps them all). Files are made mode 0600 in a directory made 0700,
//! as kube-apiserver makes them.
//!
//! It is written here rather than taken from a crate because none found
//! does exactly this: `file-rotate` and `logroller` append their suffix
//! after the whole name (`audit.log.1`, `audit.log.20240501T120000`), so
//! log shippers configured for kube-apiserver's names would miss the
//! rotated files. Two deliberate differences from lumberjack: a line
//! longer than the maximum is written (alone in a fresh file) instead of
//! refused, because an audit event is worth more than the size limit; and
//! two rotations within one millisecond get distinct names (the later one
//! a millisecond on) instead of the second overwriting the first.
//!
//! Every `write` call must be one whole event, so that rotation falls
//! between events; the writer thread ([`super::sink`]) writes that way.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// lumberjack's size when none is given: 100 MB.
pub const DEFAULT_MAX_MEGABYTES: u64 = 100;

/// The log file and its rotation.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    file: Option<File>,
    size: u64,
    now: Box<dyn FnMut() -> jiff::Timestamp + Send>,
}

impl std::fmt::Debug for RotatingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingFile")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .field("max_backups", &self.max_backups)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl RotatingFile {
    /// Opens (creating) the log at `path`, to rotate past `max_megabytes`
    /// (of 1 MiB; 0 means [`DEFAULT_MAX_MEGABYTES`]) keeping `max_backups`
    /// rotated files (0: all).
    pub fn open(path: &Path, max_megabytes: u64, max_backups: usize) -> io::Result<RotatingFile> {
        let megabytes = if max_megabytes == 0 {
            DEFAULT_MAX_MEGABYTES
        } else {
            max_megabytes
        };
        RotatingFile::with_clock(
            path,
            megabytes.saturating_mul(1024 * 1024),
            max_backups,
            Box::new(jiff::Timestamp::now),
        )
    }

    /// The same with the size in bytes and the clock given (for tests).
    pub fn with_clock(
        path: &Path,
        max_bytes: u64,
        max_backups: usize,
        now: Box<dyn FnMut() -> jiff::Timestamp + Send>,
    ) -> io::Result<RotatingFile> {
        let mut log = RotatingFile {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            max_backups,
            file: None,
            size: 0,
            now,
        };
        log.open_current()?;
        Ok(log)
    }

    fn open_current(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// Renames the current file aside, starts a new one, and removes the
    /// rotated files beyond the count kept.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let mut at = (self.now)();
        let backup = loop {
            let candidate = backup_path(&self.path, at);
            if !candidate.exists() {
                break candidate;
            }
            at += jiff::SignedDuration::from_millis(1);
        };
        match std::fs::rename(&self.path, &backup) {
            Ok(()) => {}
            // Removed by someone else: there is nothing to keep.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        self.open_current()?;
        self.remove_old_backups()
    }

    fn remove_old_backups(&self) -> io::Result<()> {
        if self.max_backups == 0 {
            return Ok(());
        }
        let mut backups = backups(&self.path)?;
        // Newest first: the names sort as their times do.
        backups.sort_by(|a, b| b.cmp(a));
        for old in backups.iter().skip(self.max_backups) {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }
}

impl Write for RotatingFile {
    /// Writes `line` whole, rotating first if it would not fit.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let len = line.len() as u64;
        if self.file.is_none() {
            self.open_current()?;
        }
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the audit log is not open"));
        };
        if let Err(error) = file.write_all(line) {
            // Opened again on the next line, which may succeed.
            self.file = None;
            return Err(error);
        }
        self.size += len;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// `dir/audit.log` → (`audit`, `.log`); an extension is what follows the
/// name's last dot, as Go's `filepath.Ext` says.
fn stem_and_ext(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(dot) => (name[..dot].to_string(), name[dot..].to_string()),
        None => (name, String::new()),
    }
}

/// Where the current file goes when rotated at `at`.
fn backup_path(path: &Path, at: jiff::Timestamp) -> PathBuf {
    let (stem, ext) = stem_and_ext(path);
    let t = at.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let name = format!(
        "{stem}-{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}{ext}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.subsec_nanosecond() / 1_000_000
    );
    path.with_file_name(name)
}

/// The rotated files of the log at `path`: those named as
/// [`backup_path`] names them, and nothing else in the directory.
fn backups(path: &Path) -> io::Result<Vec<PathBuf>> {
    let (stem, ext) = stem_and_ext(path);
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    let prefix = format!("{stem}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(time) = name.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(&ext)) else {
            continue;
        };
        if is_backup_time(time) && entry.file_type()?.is_file() {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// `2024-05-01T12-00-00.123`.
fn is_backup_time(text: &str) -> bool {
    const SHAPE: &[u8] = b"0000-00-00T00-00-00.000";
    text.len() == SHAPE.len()
        && text.bytes().zip(SHAPE).all(|(c, s)| match s {
            b'0' => c.is_ascii_digit(),
            other => c == *other,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    /// A clock that starts at 2024-05-01T12:00:00Z and moves a second a
    /// call.
    fn clock() -> (Arc<AtomicI64>, Box<dyn FnMut() -> jiff::Timestamp + Send>) {
        let ms = Arc::new(AtomicI64::new(1_714_564_800_000));
        let shared = ms.clone();
        let now =
            Box::new(move || jiff::Timestamp::from_millisecond(shared.fetch_add(1000, Ordering::SeqCst)).unwrap());
        (ms, now)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotates_by_size_with_lumberjack_names_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let (_, now) = clock();
        let mut log = RotatingFile::with_clock(&path, 25, 2, now).unwrap();
        std::fs::write(dir.path().join("logs/unrelated-file.log"), "x").unwrap();
        for i in 0..5 {
            log.write_all(format!("event {i} is 20 bytes\n").as_bytes()).unwrap();
        }
        // Each 21-byte line fills a file: four rotations, the two newest kept.
        assert_eq!(
            names(&dir.path().join("logs")),
            [
                "audit-2024-05-01T12-00-02.000.log",
                "audit-2024-05-01T12-00-03.000.log",
                "audit.log",
                "unrelated-file.log"
            ]
        );
        let read = |name: &str| std::fs::read_to_string(dir.path().join("logs").join(name)).unwrap();
        assert_eq!(read("audit.log"), "event 4 is 20 bytes\n");
        assert_eq!(read("audit-2024-05-01T12-00-03.000.log"), "event 3 is 20 bytes\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn lines_share_a_file_up_to_the_limit_and_an_existing_file_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit");
        std::fs::write(&path, "0123456789\n").unwrap();
        let (_, now) = clock();
        let mut log = RotatingFile::with_clock(&path, 30, 0, now).unwrap();
        log.write_all(b"abcdefghi\n").unwrap(); // 21 bytes: fits
        log.write_all(b"abcdefghi\n").unwrap(); // 31: rotates first
        log.write_all(&[b'x'; 40]).unwrap(); // longer than the limit: alone
        log.write_all(b"y\n").unwrap();
        assert_eq!(
            names(dir.path()),
            [
                "audit",
                "audit-2024-05-01T12-00-00.000",
                "audit-2024-05-01T12-00-01.000",
                "audit-2024-05-01T12-00-02.000"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit-2024-05-01T12-00-00.000")).unwrap(),
            "0123456789\nabcdefghi\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "y\n");
    }

    #[test]
    fn rotations_in_the_same_millisecond_do_not_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let still = jiff::Timestamp::from_millisecond(1_714_564_800_000).unwrap();
        let mut log = RotatingFile::with_clock(&path, 5, 0, Box::new(move || still)).unwrap();
        for line in [b"aaaa\n", b"bbbb\n", b"cccc\n"] {
            log.write_all(line).unwrap();
        }
        assert_eq!(
            names(dir.path()),
            [
                "audit-2024-05-01T12-00-00.000.log",
                "audit-2024-05-01T12-00-00.001.log",
                "audit.log"
            ]
        );
    }

    #[test]
    fn backup_times_have_one_shape() {
        assert!(is_backup_time("2024-05-01T12-00-00.123"));
        assert!(!is_backup_time("2024-05-01T12:00:00.123"));
        assert!(!is_backup_time("notes"));
    }
}
