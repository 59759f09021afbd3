use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use super::local::{INLINE_LIMIT, PARTIAL_DIR, STEP_BYTES};
use super::*;

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn target(name: &str) -> Target {
    Target {
        file_uuid: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        workspace: "ws".to_owned(),
        content_type: "text/plain".to_owned(),
    }
}

fn local(dir: &Path, quota: Option<u64>) -> Storage {
    Storage::local(Some(dir), false, "bucket".into(), quota).unwrap()
}

/// What the server would list for `record` (`file_url` relative to the server).
fn listed(storage: &Storage, record: &UploadRecord) -> StoredUpload {
    storage.upload_of(record, crate::files::download_url("", &record.target))
}

/// Stores `data` in chunks of `chunk` bytes; returns what the server would list.
async fn put(storage: &Storage, name: &str, data: &[u8], chunk: usize) -> StoredUpload {
    listed(storage, &*put_record(storage, name, data, chunk).await)
}

/// Stores `data` in chunks of `chunk` bytes; returns the record the server keeps.
async fn put_record(storage: &Storage, name: &str, data: &[u8], chunk: usize) -> Arc<UploadRecord> {
    let mut file = storage.begin(target(name));
    for piece in data.chunks(chunk) {
        file.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    let done = file.finish().await.unwrap();
    assert_eq!(done.size, data.len() as u64);
    assert_eq!(done.sha256, crate::http_util::hex(&Sha256::digest(data)));
    let record = done.record();
    storage
        .commit(done, &listed(storage, &record))
        .await
        .unwrap();
    Arc::new(record)
}

async fn read_all(storage: &Storage, upload: &StoredUpload, start: u64, count: u64) -> Vec<u8> {
    let stream = storage.read(upload, start, count).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

fn data(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn small_and_large_files_hash_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let storage = local(dir.path(), None);
    for size in [0, 1, INLINE_LIMIT, INLINE_LIMIT + 1, 3 * INLINE_LIMIT + 7] {
        let data = data(size);
        let upload = put(&storage, "f.bin", &data, 10_000).await;
        let path = upload.local_file_path.clone().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(read_all(&storage, &upload, 0, size as u64).await, data);
        assert_eq!(
            upload.remote_uri,
            format!("s3://bucket/uploads/ws/{}/f.bin", upload.file_uuid)
        );
    }
    assert!(walk(&dir.path().join(PARTIAL_DIR)).is_empty());
}

#[tokio::test]
async fn files_spanning_batches_keep_every_byte_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let storage = local(dir.path(), None);
    // Chunks smaller than a batch, one that ends exactly on a batch edge, and
    // chunks larger than a whole batch.
    for (size, chunk) in [
        (STEP_BYTES, 10_000),
        (2 * STEP_BYTES + 5, 10_000),
        (3 * STEP_BYTES, STEP_BYTES / 4),
        (3 * STEP_BYTES + 1, STEP_BYTES + 3),
    ] {
        let data = data(size);
        let upload = put(&storage, "big.bin", &data, chunk).await;
        let path = upload.local_file_path.clone().unwrap();
        assert!(
            std::fs::read(&path).unwrap() == data,
            "{size} bytes in chunks of {chunk}"
        );
    }
    assert!(walk(&dir.path().join(PARTIAL_DIR)).is_empty());
}

#[tokio::test]
async fn dropped_partial_files_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = local(dir.path(), None);
    let mut file = storage.begin(target("a"));
    file.write(Bytes::from(vec![1u8; 3 * INLINE_LIMIT]))
        .await
        .unwrap();
    drop(file);
    let finished = {
        let mut f = storage.begin(target("b"));
        f.write(Bytes::from_static(b"abc")).await.unwrap();
        f.finish().await.unwrap()
    };
    drop(finished);
    // The write lane removes the file after its last write, on a pool
    // thread; wait for it by polling (bounded) rather than sleeping a fixed time.
    for _ in 0..200 {
        if walk(dir.path()).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(walk(dir.path()).is_empty(), "{:?}", walk(dir.path()));
}

#[tokio::test]
async fn quota_refuses_writes_past_the_limit_and_frees_on_remove() {
    let dir = tempfile::tempdir().unwrap();
    let storage = local(dir.path(), Some(10));
    let mut file = storage.begin(target("a"));
    file.write(Bytes::from_static(b"12345")).await.unwrap();
    let err = file.write(Bytes::from_static(b"123456")).await.unwrap_err();
    assert!(matches!(err, StorageError::QuotaFull));
    drop(file);
    // The quota is released by the dropped file; a stored one keeps it.
    let stored = put_record(&storage, "b", b"1234567890", 4).await;
    let mut file = storage.begin(target("c"));
    assert!(matches!(
        file.write(Bytes::from_static(b"1")).await,
        Err(StorageError::QuotaFull)
    ));
    drop(file);
    storage.remove(std::slice::from_ref(&stored)).await;
    put(&storage, "d", b"1234567890", 10).await;
}

fn in_memory(prefix: &str) -> (Arc<InMemory>, Storage) {
    let store = Arc::new(InMemory::new());
    let storage = Storage::object(
        ObjectStorage::new(store.clone(), "the-bucket", prefix),
        None,
    );
    (store, storage)
}

#[tokio::test]
async fn object_store_keeps_bytes_key_and_content_type() {
    let (store, storage) = in_memory("/team/staging/");
    // One PUT below a part, a multipart upload above (parts of 8 MiB).
    for size in [0, 5, 20 * 1024 * 1024 + 3] {
        let data = data(size);
        let kept = put_record(&storage, "report [final].txt", &data, 64 * 1024).await;
        let upload = listed(&storage, &kept);
        assert_eq!(upload.local_file_path, None);
        let key = format!(
            "team/staging/uploads/ws/{}/report [final].txt",
            upload.file_uuid
        );
        assert_eq!(upload.remote_file_path, key);
        assert_eq!(upload.remote_uri, format!("s3://the-bucket/{key}"));
        let got = store
            .get(&object_store::path::Path::parse(&key).unwrap())
            .await
            .unwrap();
        assert_eq!(
            got.attributes
                .get(&object_store::Attribute::ContentType)
                .map(|v| v.as_ref()),
            Some("text/plain")
        );
        assert_eq!(got.bytes().await.unwrap(), data);
        if size > 10 {
            assert_eq!(read_all(&storage, &upload, 7, 3).await, data[7..10]);
        }
        // Another server sharing the store finds it by file_uuid.
        let other = Storage::object(
            ObjectStorage::new(store.clone(), "the-bucket", "team/staging"),
            None,
        );
        assert_eq!(
            other.lookup(&upload.file_uuid).await.unwrap(),
            Some(upload.clone())
        );
        storage.remove(std::slice::from_ref(&kept)).await;
        assert_eq!(other.lookup(&upload.file_uuid).await.unwrap(), None);
    }
    let left: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn object_store_discards_what_is_not_committed() {
    let (store, storage) = in_memory("");
    let mut file = storage.begin(target("big.bin"));
    file.write(Bytes::from(vec![7u8; 9 * 1024 * 1024]))
        .await
        .unwrap();
    file.finish().await.unwrap().discard().await;
    let mut file = storage.begin(target("cut.bin"));
    file.write(Bytes::from(vec![7u8; 9 * 1024 * 1024]))
        .await
        .unwrap();
    file.abort().await;
    let left: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(storage.lookup("not-a-uuid").await.unwrap(), None);
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn unreachable_store_is_unavailable() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = S3Config::parse("s3://down-bucket/p")
        .unwrap()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .credentials("key", "secret");
    let store = config.build().unwrap();
    let storage = Storage::object(ObjectStorage::new(store, "down-bucket", "p"), None);
    let err = storage.probe().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let mut file = storage.begin(target("a"));
    file.write(Bytes::from_static(b"abc")).await.unwrap();
    let done = file.finish().await.unwrap();
    let upload = listed(&storage, &done.record());
    let err = storage.commit(done, &upload).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
}

#[cfg(feature = "s3")]
#[test]
fn s3_urls_parse() {
    let config = S3Config::parse("s3://my-bucket").unwrap();
    assert_eq!((config.bucket(), config.prefix()), ("my-bucket", ""));
    let config = S3Config::parse("s3://my.bucket/a/b/").unwrap();
    assert_eq!((config.bucket(), config.prefix()), ("my.bucket", "a/b"));
    for bad in [
        "my-bucket",
        "s3://",
        "s3://Up",
        "s3://ab",
        "s3://b_b/x",
        "s3://bucket/a//b",
    ] {
        assert!(S3Config::parse(bad).is_err(), "{bad}");
    }
}
