//! Reading a request, whatever the route: [`body::UploadBody`] reads its body
//! under the size limit, the body timeout and a rule's throttle or reset;
//! [`multipart`] parses `multipart/form-data` from it as it streams; [`name`]
//! makes a sent file name safe to store. The upload endpoint itself is
//! `crate::routes::upload`; the pipeline to storage is `crate::files::ingest`.

use std::time::Duration;

pub(crate) mod body;
pub(crate) mod multipart;
pub(crate) mod name;

/// Bounds on reading a body we will not use, so its client can read our answer.
pub(crate) const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
pub(crate) const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);
