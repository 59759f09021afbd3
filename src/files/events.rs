//! The files' changes as the other replicas learn them (`--state
//! redis://`): each change to the catalog or the index of stored files is
//! made here first, then written to the shared state store as one event; the
//! other replicas read the events in the store's order and make the same
//! change ([`FileEvent::apply`]), so that every replica lists, finds and
//! serves every replica's files. The bytes themselves are in the storage the
//! replicas share (an S3-compatible bucket); an event never deletes them.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::entry::Entry;
use super::fetches::{Cancelled, Fetches};
use super::Files;
use crate::rules::model::Processing;
use crate::storage::{Target, UploadRecord};

/// One change to the files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum FileEvent {
    /// Files announced together with `POST /v2/files`, bytes to come.
    Announced { files: Vec<Announced> },
    /// A file's bytes stored (by an upload, a presigned PUT or a fetch).
    Stored {
        record: UploadRecord,
        /// Whether the file was announced (its entry is in the catalog).
        announced: bool,
        /// A rule's verdict on its processing.
        verdict: Option<Processing>,
    },
    /// A file whose bytes never came (a `remote_uri` not fetched).
    Failed {
        file_uuid: String,
        error_message: String,
    },
    /// A file deleted through the files API.
    Removed { file_uuid: String },
    /// Every file forgotten (`DELETE /__admin/uploads`).
    Cleared,
}

/// A file as `POST /v2/files` announced it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Announced {
    pub(crate) target: Target,
    pub(crate) workspace_uuid: Option<String>,
    pub(crate) original: Option<String>,
    pub(crate) remote: bool,
    pub(crate) created_at: SystemTime,
}

impl Announced {
    /// The event's view of a catalog entry just created.
    pub(crate) fn of(entry: &Entry) -> Self {
        Announced {
            target: entry.target.clone(),
            workspace_uuid: entry.workspace_uuid.clone(),
            original: entry.original.clone(),
            remote: entry.remote,
            created_at: entry.created_at,
        }
    }
}

impl FileEvent {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Makes another replica's change here: in the catalog, the index and
    /// the fetches (one being deleted stops), never in the storage.
    pub(crate) fn apply(self, catalog: &Catalog, files: &Files, fetches: &Fetches) {
        match self {
            FileEvent::Announced { files: announced } => {
                catalog.add_announced(announced.into_iter().map(|a| Entry {
                    target: a.target,
                    workspace_uuid: a.workspace_uuid,
                    original: a.original,
                    remote: a.remote,
                    created_at: a.created_at,
                    stored_at: None,
                    outcome: None,
                    bytes: None,
                    seq: 0,
                }));
            }
            FileEvent::Stored {
                record,
                announced,
                verdict,
            } => {
                if announced {
                    files.remove(&record.target.file_uuid);
                }
                if announced || verdict.is_some() {
                    catalog.stored(&record, verdict);
                }
                let _ = files.insert(record);
            }
            FileEvent::Failed {
                file_uuid,
                error_message,
            } => catalog.failed(&file_uuid, error_message),
            FileEvent::Removed { file_uuid } => {
                fetches.cancel(&file_uuid);
                catalog.remove(&file_uuid);
                files.remove(&file_uuid);
            }
            FileEvent::Cleared => {
                fetches.cancel_all(Cancelled::Removed);
                catalog.clear();
                files.take_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file_uuid: &str) -> UploadRecord {
        UploadRecord {
            target: Target {
                file_uuid: file_uuid.into(),
                name: "a.txt".into(),
                workspace: "default".into(),
                content_type: "text/plain".into(),
            },
            size: 3,
            sha256: "ab".into(),
            duplicate_of: None,
            stored_at: SystemTime::now(),
        }
    }

    /// What one replica does and another replays from the events' JSON:
    /// both end with the same catalog and index.
    #[test]
    fn a_replayed_change_gives_the_same_files() {
        let fetches = Fetches::new(1, 1, std::time::Duration::from_secs(1));
        let (catalog, files) = (Catalog::default(), Files::default());
        let target = record("f1").target;
        let events = vec![
            FileEvent::Announced {
                files: vec![Announced {
                    target,
                    workspace_uuid: None,
                    original: Some("a.txt".into()),
                    remote: false,
                    created_at: SystemTime::now(),
                }],
            },
            FileEvent::Stored {
                record: record("f1"),
                announced: true,
                verdict: None,
            },
            FileEvent::Stored {
                record: record("u2"),
                announced: false,
                verdict: None,
            },
            FileEvent::Removed {
                file_uuid: "u2".into(),
            },
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            let replayed: FileEvent = serde_json::from_str(&text).unwrap();
            replayed.apply(&catalog, &files, &fetches);
        }
        let entry = catalog.get("f1").unwrap();
        assert_eq!(entry.bytes.as_ref().map(|b| b.0), Some(3));
        assert_eq!(entry.original.as_deref(), Some("a.txt"));
        assert!(files.get("f1").is_some());
        assert!(files.get("u2").is_none());
        FileEvent::Cleared.apply(&catalog, &files, &fetches);
        assert!(catalog.get("f1").is_none() && files.get("f1").is_none());
    }
}
