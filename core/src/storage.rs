//! Invoice files on disk, under the storage root (`storage.root`, `uploads` by default):
//! `invoices/<uuid>.pdf`. Synchronous `std::fs`; async callers run it in `spawn_blocking`.
//!
//! Writes are atomic and durable: the bytes go to a temporary file in the same directory,
//! which is fsynced, renamed over the final name, and the directory fsynced. A failed write
//! leaves no partial file behind. Paths are never built from user input: the relative paths
//! accepted by [`Storage::read`], [`Storage::verify`] and [`Storage::absolute_path`] must
//! have exactly the shape this module produces, so nothing can reach outside the root.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The directory, under the root, holding invoice PDFs.
const INVOICES_DIR: &str = "invoices";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("stored file {0} does not exist")]
    NotFound(String),
    #[error("stored file {path} is corrupted: expected SHA-256 {expected}, found {actual}")]
    Corrupted {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("refused storage path {0:?}: only invoices/<uuid>.pdf is accepted")]
    UnsafePath(String),
    #[error("storage I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    /// Whether trying again later may succeed. I/O errors are (a full disk, an interrupted
    /// call…), except those that need an operator to change something first (permissions,
    /// a file where the directory should be, a read-only file system); a missing or
    /// corrupted file or a refused path never fixes itself.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::AlreadyExists
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::IsADirectory
                    | io::ErrorKind::ReadOnlyFilesystem
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::Unsupported
            ),
            StorageError::NotFound(_)
            | StorageError::Corrupted { .. }
            | StorageError::UnsafePath(_) => false,
        }
    }
}

/// What was written: where (relative to the root), its hash and size, to record in the
/// database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// `invoices/<uuid>.pdf`
    pub relative_path: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The relative path of an invoice's PDF.
fn invoice_path(invoice_id: Uuid) -> String {
    format!("{INVOICES_DIR}/{}.pdf", invoice_id.hyphenated())
}

/// Accepts exactly `invoices/<uuid>.pdf` (canonical lowercase hyphenated UUID): no other
/// directory, no `..`, no absolute path, no second separator, nothing else.
fn validate(relative_path: &str) -> Result<(), StorageError> {
    let refuse = || StorageError::UnsafePath(relative_path.to_owned());
    let name = relative_path
        .strip_prefix(INVOICES_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(refuse)?;
    let id = name.strip_suffix(".pdf").ok_or_else(refuse)?;
    let uuid = Uuid::try_parse(id).map_err(|_| refuse())?;
    if invoice_path(uuid) != relative_path {
        return Err(refuse());
    }
    Ok(())
}

impl Storage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Storage { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes (or atomically replaces) the PDF of `invoice_id`.
    pub fn write_invoice(
        &self,
        invoice_id: Uuid,
        bytes: &[u8],
    ) -> Result<StoredFile, StorageError> {
        let relative_path = invoice_path(invoice_id);
        let dir = self.root.join(INVOICES_DIR);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let target = self.root.join(&relative_path);
        // Unique per attempt, so concurrent writers of the same id never share a temp file;
        // starts with a dot and ends in .tmp so it can never be mistaken for an invoice.
        let temp = dir.join(format!(
            ".{}.{}.tmp",
            invoice_id.hyphenated(),
            Uuid::new_v4().simple()
        ));
        if let Err(e) = write_synced(&temp, bytes).and_then(|()| rename(&temp, &target)) {
            // Best effort: the temp file may not even exist.
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        sync_dir(&dir)?;
        Ok(StoredFile {
            relative_path,
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        })
    }

    /// Removes temporary files a killed writer left behind (a SIGKILL between creating
    /// the temp file and the rename cannot clean up). Run at start-up, before any write.
    /// Returns how many were removed.
    pub fn remove_stale_temp_files(&self) -> Result<usize, StorageError> {
        let dir = self.root.join(INVOICES_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error(&dir)(e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                fs::remove_file(entry.path()).map_err(io_error(&entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The bytes of a stored file.
    pub fn read(&self, relative_path: &str) -> Result<Vec<u8>, StorageError> {
        let path = self.resolve(relative_path)?;
        fs::read(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StorageError::NotFound(relative_path.to_owned())
            } else {
                StorageError::Io { path, source }
            }
        })
    }

    /// The bytes of a stored file, checked against the hash recorded when it was written.
    pub fn verify(
        &self,
        relative_path: &str,
        expected_sha256: &str,
    ) -> Result<Vec<u8>, StorageError> {
        let bytes = self.read(relative_path)?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected_sha256.trim()) {
            return Err(StorageError::Corrupted {
                path: relative_path.to_owned(),
                expected: expected_sha256.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The absolute path of a stored file (whether or not it exists), e.g. to stream it.
    pub fn absolute_path(&self, relative_path: &str) -> Result<PathBuf, StorageError> {
        let path = self.resolve(relative_path)?;
        std::path::absolute(&path).map_err(io_error(&path))
    }

    fn resolve(&self, relative_path: &str) -> Result<PathBuf, StorageError> {
        validate(relative_path)?;
        Ok(self.root.join(relative_path))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::rename(from, to).map_err(io_error(to))
}

/// Makes the rename durable: on Unix a directory is fsynced through a read-only handle.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir))
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, File::open);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn stale_temp_files_from_a_killed_writer_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(root.path());
        let kept = storage
            .write_invoice(Uuid::new_v4(), b"%PDF-1.7 kept")
            .unwrap();
        let dir = root.path().join(INVOICES_DIR);
        fs::write(
            dir.join(format!(".{}.abc.tmp", Uuid::new_v4())),
            b"%PDF-1.7 parti",
        )
        .unwrap();
        assert_eq!(storage.remove_stale_temp_files().unwrap(), 1);
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1);
        assert!(storage.read(&kept.relative_path).is_ok());
        assert_eq!(
            Storage::new(root.path().join("absent"))
                .remove_stale_temp_files()
                .unwrap(),
            0
        );
    }

    #[test]
    fn writes_and_reads_back_with_the_right_hash() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(root.path());
        let id = Uuid::new_v4();
        let stored = storage.write_invoice(id, b"%PDF-1.7 test").unwrap();
        assert_eq!(stored.relative_path, format!("invoices/{id}.pdf"));
        assert_eq!(stored.size, 13);
        let on_disk = fs::read(root.path().join(&stored.relative_path)).unwrap();
        assert_eq!(on_disk, b"%PDF-1.7 test");
        assert_eq!(stored.sha256, sha256_hex(&on_disk));
        // Known vector: SHA-256 of the empty string.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(storage.read(&stored.relative_path).unwrap(), on_disk);
        assert_eq!(
            storage
                .verify(&stored.relative_path, &stored.sha256)
                .unwrap(),
            on_disk
        );
        let abs = storage.absolute_path(&stored.relative_path).unwrap();
        assert!(abs.is_absolute());
        assert_eq!(fs::read(abs).unwrap(), on_disk);
        // Only the invoice is left in the directory: no temporary file.
        assert_eq!(
            entries(&root.path().join("invoices")),
            [format!("{id}.pdf")]
        );
    }

    #[test]
    fn writing_the_same_id_twice_replaces_the_file() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(root.path());
        let id = Uuid::new_v4();
        let first = storage.write_invoice(id, b"first version").unwrap();
        let second = storage.write_invoice(id, b"second").unwrap();
        assert_eq!(first.relative_path, second.relative_path);
        assert_ne!(first.sha256, second.sha256);
        assert_eq!(storage.read(&second.relative_path).unwrap(), b"second");
        assert_eq!(
            entries(&root.path().join("invoices")),
            [format!("{id}.pdf")]
        );
        // The old hash no longer matches: that is what `verify` reports.
        let err = storage
            .verify(&first.relative_path, &first.sha256)
            .unwrap_err();
        assert!(matches!(err, StorageError::Corrupted { .. }), "{err}");
        assert!(!err.is_transient());
    }

    #[test]
    fn missing_and_corrupted_files_are_told_apart() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(root.path());
        let missing = format!("invoices/{}.pdf", Uuid::new_v4());
        assert!(matches!(
            storage.read(&missing),
            Err(StorageError::NotFound(_))
        ));
        assert!(matches!(
            storage.verify(&missing, "00"),
            Err(StorageError::NotFound(_))
        ));
        let stored = storage.write_invoice(Uuid::new_v4(), b"original").unwrap();
        fs::write(root.path().join(&stored.relative_path), b"tampered").unwrap();
        let err = storage
            .verify(&stored.relative_path, &stored.sha256)
            .unwrap_err();
        match err {
            StorageError::Corrupted {
                expected, actual, ..
            } => {
                assert_eq!(expected, stored.sha256);
                assert_eq!(actual, sha256_hex(b"tampered"));
            }
            other => panic!("expected Corrupted, got {other}"),
        }
    }

    #[test]
    fn paths_outside_the_invoice_shape_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(root.path().join("uploads"));
        // A file next to the root that a traversal would reach.
        fs::write(root.path().join("x"), b"secret").unwrap();
        let id = Uuid::new_v4();
        for bad in [
            "../etc/passwd".to_owned(),
            "/etc/passwd".to_owned(),
            "invoices/../../x".to_owned(),
            "invoices/../x".to_owned(),
            "invoices/../../x.pdf".to_owned(),
            format!("invoices/{id}.pdf/../../../x"),
            format!("invoices//{id}.pdf"),
            format!("invoices/./{id}.pdf"),
            format!("./invoices/{id}.pdf"),
            format!("invoices\\{id}.pdf"),
            format!("invoices/{id}.PDF"),
            format!("invoices/{}.pdf", id.simple()),
            format!(
                "invoices/{}.pdf",
                id.hyphenated().to_string().to_uppercase()
            ),
            format!("invoices/{id}.pdf\0"),
            format!("other/{id}.pdf"),
            format!("{id}.pdf"),
            "invoices/".to_owned(),
            String::new(),
        ] {
            for result in [
                storage.read(&bad).map(drop),
                storage.verify(&bad, "x").map(drop),
                storage.absolute_path(&bad).map(drop),
            ] {
                assert!(
                    matches!(result, Err(StorageError::UnsafePath(_))),
                    "{bad:?} was not refused"
                );
            }
        }
        // The canonical shape is accepted.
        assert!(storage.absolute_path(&format!("invoices/{id}.pdf")).is_ok());
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        // Tests run as root, so permissions cannot make a directory unwritable. Real
        // failures instead: `invoices` is a regular file (ENOTDIR / EEXIST when creating
        // under it), and a rename onto a non-empty directory (after the temp file exists).
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(root.path());
        fs::write(root.path().join("invoices"), b"not a directory").unwrap();
        let err = storage.write_invoice(Uuid::new_v4(), b"pdf").unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        assert_eq!(entries(root.path()), ["invoices"]);
        assert_eq!(
            fs::read(root.path().join("invoices")).unwrap(),
            b"not a directory"
        );

        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(root.path());
        let id = Uuid::new_v4();
        let blocker = root.path().join(format!("invoices/{id}.pdf"));
        fs::create_dir_all(blocker.join("occupied")).unwrap();
        let err = storage.write_invoice(id, b"pdf").unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        // The temp file written before the failed rename was removed.
        assert_eq!(
            entries(&root.path().join("invoices")),
            [format!("{id}.pdf")]
        );
        assert!(blocker.is_dir());
        assert_eq!(entries(&blocker), ["occupied"]);
    }

    #[test]
    fn transient_errors() {
        let io = |kind| StorageError::Io {
            path: PathBuf::from("x"),
            source: io::Error::from(kind),
        };
        assert!(io(io::ErrorKind::StorageFull).is_transient());
        assert!(io(io::ErrorKind::Interrupted).is_transient());
        assert!(!io(io::ErrorKind::PermissionDenied).is_transient());
        assert!(!io(io::ErrorKind::NotADirectory).is_transient());
        assert!(!StorageError::NotFound("x".into()).is_transient());
        assert!(!StorageError::UnsafePath("x".into()).is_transient());
    }
}
