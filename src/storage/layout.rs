//! Where things live in a bucket: the one place that knows the key layout.
//!
//! - `uploads/<workspace>/<file_uuid>/<name>`: an upload's bytes, the key the
//!   API reports as `remote_file_path` (with the local backend too, which
//!   keeps the bytes at `<storage dir>/<file_uuid>/<name>` but reports the
//!   key the real service would have used);
//! - `.aymara-mock/uploads/<file_uuid>.json`: an upload's record, in an object
//!   store only, so that any server sharing the bucket can find the upload.
//!
//! An object store may percent-encode a segment (a `/` in a workspace, say):
//! [`super::object`] turns these segments into its paths.

use super::Target;

/// The directory of the emulator's own objects in a bucket.
const INDEX_DIR: &str = ".aymara-mock";

/// The workspace of an upload that names none.
pub(crate) const DEFAULT_WORKSPACE: &str = "default";

/// The segments of the key of `target`'s bytes.
pub(crate) fn upload_key(target: &Target) -> [&str; 4] {
    [
        "uploads",
        &target.workspace,
        &target.file_uuid,
        &target.name,
    ]
}

/// The segments of the key of the record of upload `file_uuid`.
pub(crate) fn record_key(file_uuid: &str) -> [String; 3] {
    [
        INDEX_DIR.to_owned(),
        "uploads".to_owned(),
        format!("{file_uuid}.json"),
    ]
}

/// The workspace of upload `file_uuid` from the key of its bytes (the
/// segment before the uuid), or [`DEFAULT_WORKSPACE`] when the key has none.
pub(crate) fn workspace_of(key: &str, file_uuid: &str) -> String {
    let segments: Vec<&str> = key.split('/').collect();
    segments
        .iter()
        .position(|s| *s == file_uuid)
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| segments.get(i))
        .map_or(DEFAULT_WORKSPACE, |w| *w)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_read_back_from_the_key_it_made() {
        let target = Target {
            file_uuid: "6f1c0e9e-1d2b-4c1a-9d7e-0a1b2c3d4e5f".into(),
            name: "clip.mp4".into(),
            workspace: "ws-1".into(),
            content_type: "video/mp4".into(),
        };
        let key = upload_key(&target).join("/");
        assert_eq!(
            key,
            "uploads/ws-1/6f1c0e9e-1d2b-4c1a-9d7e-0a1b2c3d4e5f/clip.mp4"
        );
        assert_eq!(workspace_of(&key, &target.file_uuid), "ws-1");
        // Under a prefix too.
        assert_eq!(
            workspace_of(&format!("team/a/{key}"), &target.file_uuid),
            "ws-1"
        );
        // A key without the uuid (a record written by hand): the default.
        assert_eq!(
            workspace_of("elsewhere/x.bin", &target.file_uuid),
            "default"
        );
        assert_eq!(
            record_key(&target.file_uuid).join("/"),
            ".aymara-mock/uploads/6f1c0e9e-1d2b-4c1a-9d7e-0a1b2c3d4e5f.json"
        );
    }
}
