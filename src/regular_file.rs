//! Opening files the emulator reads but did not just write (fixtures, the
//! files API's saved records): only a regular file is read. A FIFO would
//! block the opener until a writer comes, a device may never end, and a
//! symlink's own size says nothing of what it points to; so the file is
//! opened non-blocking and its type and size are checked on what was
//! opened (the symlink's target), not on the path.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

/// Opens `path` for reading if it is (or links to) a regular file; else
/// says what it is ("it is a FIFO, not a regular file").
pub(crate) fn open(path: &Path) -> Result<(File, u64), String> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "a directory"
        };
        return Err(format!("it is {what}, not a regular file"));
    }
    Ok((file, meta.len()))
}

/// The bytes of the regular file at `path`, if it holds at most `max`.
pub(crate) fn read(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let (file, len) = open(path)?;
    if len > max {
        return Err(format!("it is {len} bytes long, more than {max}"));
    }
    let mut bytes = Vec::new();
    // `take`: a file growing while it is read is cut at the limit.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("it is more than {max} bytes long"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        assert_eq!(read(&small, 3).unwrap(), b"abc");
        assert!(read(&small, 2).unwrap_err().contains("more than 2"));
        // A link's size is its target's: /dev/zero is a device, never read.
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(read(&zero, 1 << 16).unwrap_err().contains("a device"));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert!(read(&fifo, 10).unwrap_err().contains("a FIFO"));
        assert!(read(dir.path(), 10).unwrap_err().contains("a directory"));
    }
}
