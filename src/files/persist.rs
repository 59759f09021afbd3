//! The files API's state on disk, so that it survives a restart when the
//! user chose the storage directory (`--storage-dir`). Under
//! `<dir>/.files-api/`: one small JSON file per file the files API
//! announced (or a rule gave a verdict), written whenever the file changes
//! (to a temporary name, then renamed, so a crash never leaves half a
//! record) and removed with it; and `uploads.jsonl`, the index of the other
//! stored uploads (the multipart endpoint's), written once at a graceful
//! shutdown, so that the upload endpoint pays nothing per upload; and
//! `deleted.txt`, the deleted files' uuids (their tombstones). Records
//! whose bytes are gone are skipped when read back. A temp dir, removed on
//! exit, keeps none.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::entry::Entry;
use crate::rules::model::Processing;
use crate::storage::{Target, UploadRecord};

/// The shutdown snapshot of the uploads the catalog does not hold.
const UPLOADS: &str = "uploads.jsonl";
/// The uuids of deleted files, one per line, appended as they are deleted:
/// a deleted file's presigned URL stays refused after a restart (with
/// `--presign-secret` the URL itself would still verify).
const DELETED: &str = "deleted.txt";

/// One line of [`UPLOADS`].
#[derive(Serialize, Deserialize)]
struct UploadLine {
    file_uuid: String,
    name: String,
    workspace: String,
    content_type: String,
    size: u64,
    sha256: String,
    stored_at_ms: u64,
}

/// The directory under the storage root.
pub(crate) const DIR: &str = ".files-api";

/// Largest record read back (a record is a few hundred bytes).
const MAX_RECORD: u64 = 64 * 1024;
/// Largest list of tombstones read back (a million deletes).
const MAX_DELETED: u64 = 64 << 20;
/// The last millisecond of year 9999: a later time cannot be written as
/// RFC 3339, so a record that claims one is not trusted.
const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Where the catalog's entries are saved.
#[derive(Debug)]
pub(crate) struct Saved {
    dir: PathBuf,
}

/// An entry as saved.
#[derive(Serialize, Deserialize)]
struct Record {
    file_uuid: String,
    name: String,
    workspace: String,
    content_type: String,
    workspace_uuid: Option<String>,
    original: Option<String>,
    /// A `remote_uri` file; absent from the records of earlier versions,
    /// whose remote files are those whose source is an `http://` URL.
    #[serde(default)]
    remote: Option<bool>,
    created_at_ms: u64,
    stored_at_ms: Option<u64>,
    outcome: Option<Processing>,
    size: Option<u64>,
    sha256: Option<String>,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.min(MAX_TIME_MS))
}

/// A saved file's name is taken only if it is what the upload sanitiser
/// makes of it: one safe path component, as every stored name is.
fn safe_name(name: &str) -> bool {
    crate::request::name::SafeFileName::parse(name).as_ref() == name
}

/// Whether `root/file_uuid/name` holds the stored bytes of a record: a
/// regular file (not a link) of `size` bytes in a real directory, inside
/// `root` once every link on the way is resolved.
/// `root` is the storage directory, canonical.
fn stored_bytes_ok(root: &Path, file_uuid: &str, name: &str, size: u64) -> bool {
    if !plain(file_uuid) || !safe_name(name) {
        return false;
    }
    let dir = root.join(file_uuid);
    let path = dir.join(name);
    let real_dir = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
    let real_file =
        std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file() && m.len() == size);
    real_dir && real_file && std::fs::canonicalize(&path).is_ok_and(|path| path.starts_with(root))
}

/// A file uuid is a file name here: only what `random_uuid` makes.
fn plain(file_uuid: &str) -> bool {
    !file_uuid.is_empty()
        && file_uuid.len() <= 64
        && file_uuid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Saved {
    /// Saves under `root` (the storage directory), creating the directory.
    pub(crate) fn open(root: &Path) -> std::io::Result<Self> {
        let dir = root.join(DIR);
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The storage directory, canonical (stored paths are checked against it).
    fn root(&self) -> PathBuf {
        let root = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::canonicalize(&root).unwrap_or(root)
    }

    fn path(&self, file_uuid: &str) -> Option<PathBuf> {
        plain(file_uuid).then(|| self.dir.join(format!("{file_uuid}.json")))
    }

    /// Writes `entry`'s record; a failure is logged, never the request's.
    pub(crate) fn save(&self, entry: &Entry) {
        let Some(path) = self.path(&entry.target.file_uuid) else {
            return;
        };
        let record = Record {
            file_uuid: entry.target.file_uuid.clone(),
            name: entry.target.name.clone(),
            workspace: entry.target.workspace.clone(),
            content_type: entry.target.content_type.clone(),
            workspace_uuid: entry.workspace_uuid.clone(),
            original: entry.original.clone(),
            remote: Some(entry.remote),
            created_at_ms: millis(entry.created_at),
            stored_at_ms: entry.stored_at.map(millis),
            outcome: entry.outcome.clone(),
            size: entry.bytes.as_ref().map(|(size, _)| *size),
            sha256: entry.bytes.as_ref().map(|(_, sha)| sha.to_string()),
        };
        let written = serde_json::to_vec(&record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let temp = path.with_extension("json.part");
                std::fs::write(&temp, bytes)?;
                std::fs::rename(&temp, &path)
            });
        if let Err(err) = written {
            tracing::warn!(error = %err, path = %path.display(), "could not save the files API's record of a file");
        }
    }

    /// Writes the index of `uploads` (at shutdown), replacing the last one.
    pub(crate) fn save_uploads(&self, uploads: &[std::sync::Arc<UploadRecord>]) {
        use std::io::Write as _;
        let path = self.dir.join(UPLOADS);
        let temp = self.dir.join(format!("{UPLOADS}.part"));
        let written = (|| -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&temp)?);
            for record in uploads {
                let line = UploadLine {
                    file_uuid: record.target.file_uuid.clone(),
                    name: record.target.name.clone(),
                    workspace: record.target.workspace.clone(),
                    content_type: record.target.content_type.clone(),
                    size: record.size,
                    sha256: record.sha256.to_string(),
                    stored_at_ms: millis(record.stored_at),
                };
                serde_json::to_writer(&mut out, &line).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&temp, &path)
        })();
        if let Err(err) = written {
            tracing::warn!(error = %err, path = %path.display(), "could not save the index of stored uploads");
        }
    }

    /// The uploads indexed by the last shutdown whose bytes are still there.
    pub(crate) fn load_uploads(&self) -> Vec<UploadRecord> {
        use std::io::BufRead as _;
        let path = self.dir.join(UPLOADS);
        let file = match crate::regular_file::open(&path) {
            Ok((file, _)) => file,
            Err(err) => {
                if path.exists() {
                    tracing::warn!(path = %path.display(), error = %err, "skipping the index of stored uploads");
                }
                return Vec::new();
            }
        };
        let root = self.root();
        let mut records = Vec::new();
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            let Ok(line) = serde_json::from_str::<UploadLine>(&line) else {
                continue;
            };
            if line.stored_at_ms > MAX_TIME_MS
                || !stored_bytes_ok(&root, &line.file_uuid, &line.name, line.size)
            {
                continue;
            }
            records.push(UploadRecord {
                target: Target {
                    file_uuid: line.file_uuid,
                    name: line.name,
                    workspace: line.workspace,
                    content_type: line.content_type,
                },
                size: line.size,
                sha256: line.sha256.into_boxed_str(),
                duplicate_of: None,
                stored_at: time(line.stored_at_ms),
            });
        }
        records
    }

    /// Removes a file's record.
    pub(crate) fn forget(&self, file_uuid: &str) {
        if let Some(path) = self.path(file_uuid) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Records that a file was deleted (its tombstone); a failure is logged.
    pub(crate) fn bury(&self, file_uuid: &str) {
        use std::io::Write as _;
        if !plain(file_uuid) {
            return;
        }
        let path = self.dir.join(DELETED);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(format!("{file_uuid}\n").as_bytes()));
        if let Err(err) = written {
            tracing::warn!(error = %err, path = %path.display(), "could not record a deleted file");
        }
    }

    /// The deleted files' uuids, as [`bury`](Self::bury) recorded them.
    pub(crate) fn load_deleted(&self) -> std::collections::BTreeSet<String> {
        let path = self.dir.join(DELETED);
        let bytes = match crate::regular_file::read(&path, MAX_DELETED) {
            Ok(bytes) => bytes,
            Err(err) => {
                if path.exists() {
                    tracing::warn!(path = %path.display(), error = %err, "skipping the deleted files' list");
                }
                return Default::default();
            }
        };
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| plain(line))
            .map(str::to_owned)
            .collect()
    }

    /// Forgets every tombstone (reset, clearing the uploads).
    pub(crate) fn clear_deleted(&self) {
        let _ = std::fs::remove_file(self.dir.join(DELETED));
    }

    /// The entries saved by an earlier run; unreadable records are logged
    /// and skipped, and so are records whose bytes are gone.
    pub(crate) fn load(&self) -> Vec<Entry> {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let root = self.root();
        let mut entries = Vec::new();
        for item in listing.flatten() {
            let path = item.path();
            if path
                .file_name()
                .is_some_and(|n| n == UPLOADS || n == DELETED)
            {
                continue;
            }
            if path.extension().is_none_or(|e| e != "json") {
                let _ = std::fs::remove_file(&path); // a `.part` of a crash
                continue;
            }
            let record = crate::regular_file::read(&path, MAX_RECORD)
                .and_then(|bytes| {
                    serde_json::from_slice::<Record>(&bytes).map_err(|e| e.to_string())
                })
                .and_then(check_record);
            let record = match record {
                Ok(record) => record,
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "skipping an unreadable files API record");
                    continue;
                }
            };
            let bytes = match (record.size, record.sha256) {
                (Some(size), Some(sha)) => Some((size, sha.into_boxed_str())),
                _ => None,
            };
            let remote = record.remote.unwrap_or_else(|| {
                record
                    .original
                    .as_deref()
                    .is_some_and(|o| o.starts_with("http://"))
            });
            let target = Target {
                file_uuid: record.file_uuid,
                name: record.name,
                workspace: record.workspace,
                content_type: record.content_type,
            };
            if let Some((size, _)) = &bytes {
                if !stored_bytes_ok(&root, &target.file_uuid, &target.name, *size) {
                    tracing::warn!(file_uuid = %target.file_uuid, "its stored bytes are gone: forgetting the file");
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            }
            let mut entry = Entry::restored(
                target,
                record.workspace_uuid,
                record.original,
                remote,
                time(record.created_at_ms),
                record.stored_at_ms.map(time),
                record.outcome,
                bytes,
            );
            if entry.remote && entry.stored_at.is_none() {
                // Its fetch was cut by the end of the last run (a crash, a
                // kill): it will never come now.
                let uri = entry.original.clone().unwrap_or_default();
                entry.stored_at = Some(SystemTime::now());
                entry.outcome = Some(Processing {
                    status: crate::rules::model::ProcessingStatus::Failed,
                    error_message: Some(super::fetches::cut_short(&uri)),
                });
                self.save(&entry);
            }
            entries.push(entry);
        }
        entries
    }
}

/// A saved record as trusted as an upload: its uuid a plain file name, its
/// name what the upload sanitiser makes of it, its times within RFC 3339's
/// years.
fn check_record(record: Record) -> Result<Record, String> {
    if !plain(&record.file_uuid) {
        return Err(format!("file_uuid {:?} is not a uuid", record.file_uuid));
    }
    if !safe_name(&record.name) {
        return Err(format!("name {:?} is not a safe file name", record.name));
    }
    let times = std::iter::once(record.created_at_ms).chain(record.stored_at_ms);
    if times.into_iter().any(|ms| ms > MAX_TIME_MS) {
        return Err("a timestamp is past the year 9999".to_owned());
    }
    Ok(record)
}
