//! One file as the files API knows it ([`Entry`]), and its processing
//! status at any instant: what the catalog holds and the saved records
//! (`persist`) restore, apart from both.

use std::time::{Duration, SystemTime};

use super::FileStatus;
use crate::rules::model::{Processing, ProcessingStatus};
use crate::storage::{Target, UploadRecord};

/// What a failed file reports when its rule gave no `error_message`.
pub(super) const DEFAULT_FAILURE: &str = "Processing failed (decided by an aymara-mock rule).";

/// One file as the files API knows it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Where its bytes are (or will be) stored.
    pub(crate) target: Target,
    /// The `workspace_uuid` the client gave, if any.
    pub(crate) workspace_uuid: Option<String>,
    /// What the client named as its source (`local_file_path` or `remote_uri`).
    pub(crate) original: Option<String>,
    /// Whether its bytes are fetched from `original` (a `remote_uri`)
    /// rather than PUT by the client.
    pub(crate) remote: bool,
    pub(crate) created_at: SystemTime,
    /// When its bytes were stored (last stored, after an overwrite).
    pub(crate) stored_at: Option<SystemTime>,
    /// A rule's verdict on its processing.
    pub(crate) outcome: Option<Processing>,
    /// Size and SHA-256 of its stored bytes (kept so that a restart can
    /// index them again without reading them).
    pub(crate) bytes: Option<(u64, Box<str>)>,
    /// Its place in the catalog's order (set by the catalog).
    pub(super) seq: u64,
}

/// A file's processing status at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusNow {
    pub(crate) status: FileStatus,
    /// When it entered that status.
    pub(crate) since: SystemTime,
    pub(crate) error_message: Option<String>,
}

impl Entry {
    /// An upload the catalog does not hold (through the multipart endpoint),
    /// seen as the files API sees it: created when stored, no verdict.
    pub(crate) fn of_upload(record: &UploadRecord) -> Self {
        let target = record.target.clone();
        let workspace_uuid = (target.workspace != crate::storage::DEFAULT_WORKSPACE)
            .then(|| target.workspace.clone());
        Self {
            target,
            workspace_uuid,
            original: None,
            remote: false,
            created_at: record.stored_at,
            stored_at: Some(record.stored_at),
            outcome: None,
            bytes: Some((record.size, record.sha256.clone())),
            seq: 0,
        }
    }

    /// An entry saved by an earlier run (`super::persist`).
    #[allow(clippy::too_many_arguments, reason = "one per saved field")]
    pub(crate) fn restored(
        target: Target,
        workspace_uuid: Option<String>,
        original: Option<String>,
        remote: bool,
        created_at: SystemTime,
        stored_at: Option<SystemTime>,
        outcome: Option<Processing>,
        bytes: Option<(u64, Box<str>)>,
    ) -> Self {
        Self {
            target,
            workspace_uuid,
            original,
            remote,
            created_at,
            stored_at,
            outcome,
            bytes,
            seq: 0,
        }
    }

    /// Whether its content type is a video's.
    pub(crate) fn is_video(&self) -> bool {
        file_type(&self.target.content_type) == "video"
    }

    /// Its status at `now`. Without bytes: `pending`. A rule's verdict,
    /// when there is one, holds from the moment the bytes were stored.
    /// Otherwise a non-video is `completed` at once, and a video is
    /// `pending` for the first third of `video_time`, then `processing`,
    /// then `completed`.
    pub(crate) fn status_at(&self, now: SystemTime, video_time: Duration) -> StatusNow {
        let at = |status, since| StatusNow {
            status,
            since,
            error_message: None,
        };
        let Some(stored) = self.stored_at else {
            return at(FileStatus::Pending, self.created_at);
        };
        if let Some(outcome) = &self.outcome {
            return match outcome.status {
                ProcessingStatus::Processing => at(FileStatus::Processing, stored),
                ProcessingStatus::Completed => at(FileStatus::Completed, stored),
                ProcessingStatus::Failed => StatusNow {
                    status: FileStatus::Failed,
                    since: stored,
                    error_message: Some(
                        outcome
                            .error_message
                            .clone()
                            .unwrap_or_else(|| DEFAULT_FAILURE.to_owned()),
                    ),
                },
            };
        }
        if !self.is_video() || video_time.is_zero() {
            return at(FileStatus::Completed, stored);
        }
        let elapsed = now.duration_since(stored).unwrap_or_default();
        let processing_from = video_time / 3;
        if elapsed < processing_from {
            at(FileStatus::Pending, stored)
        } else if elapsed < video_time {
            at(FileStatus::Processing, stored + processing_from)
        } else {
            at(FileStatus::Completed, stored + video_time)
        }
    }
}

/// `file_type` from a content type: `image`, `video`, `text` (text/*, JSON,
/// XML, CSV) or `document` (anything else).
pub(crate) fn file_type(content_type: &str) -> &'static str {
    let essence = crate::http_util::essence(content_type).to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("image", _)) => "image",
        Some(("video", _)) => "video",
        Some(("text", _)) => "text",
        Some(("application", sub))
            if matches!(sub, "json" | "xml" | "csv" | "x-ndjson" | "yaml")
                || sub.ends_with("+json")
                || sub.ends_with("+xml") =>
        {
            "text"
        }
        _ => "document",
    }
}
