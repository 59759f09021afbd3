//! The one storing protocol. A file arrives three ways — the multipart
//! upload, the PUT to a presigned URL, the fetch of a `remote_uri` — and
//! each runs the same steps:
//!
//! 1. [`receive`]: the bytes from a [`Source`] into a partial file
//!    (`files::ingest`: the size limit, the SHA-256, the body timeout), what
//!    was seen of it recorded for the journal;
//! 2. for the two routes, [`conclude`]: the `complete` phase's rule, then
//!    from what the rules decided, whether the file is kept and what the
//!    client is answered;
//! 3. [`keep`]: committed to storage and made visible in the registries.
//!
//! A route supplies only what is its own: the facts its rules see, its
//! answer, and for an announced file (`POST /v2/files`) the check, under the
//! file's lock, that it was not deleted meanwhile.

use http::request::Parts;

use crate::error::ApiError;
use crate::files::ingest::{self, Source};
use crate::request::body::{BodyControl, UploadBody};
use crate::rules::model::{Phase, Processing};
use crate::rules::Decision;
use crate::state::AppState;
use crate::storage::{FinishedFile, StorageError, StoredUpload, Target, UploadRecord};

use super::answer::{Answer, Exchange, Finish};
use super::apply::{self, Step};

/// A request whose body a route receives and stores, its request phase
/// passed: what the route's handler is given.
pub(crate) struct Incoming<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) parts: &'a Parts,
    pub(crate) body: &'a mut UploadBody,
    pub(crate) ctl: &'a BodyControl,
    /// What the rules decided (`ex.effects`) and what the journal records.
    pub(crate) ex: &'a mut Exchange,
}

impl<'a> Incoming<'a> {
    /// The request's pieces, in the order of the fields.
    #[allow(clippy::type_complexity, reason = "the fields, for one `let`")]
    pub(crate) fn into_parts(
        self,
    ) -> (
        &'a AppState,
        &'a Parts,
        &'a mut UploadBody,
        &'a BodyControl,
        &'a mut Exchange,
    ) {
        let Incoming {
            state,
            parts,
            body,
            ctl,
            ex,
        } = self;
        (state, parts, body, ctl, ex)
    }
}

/// Receives `target`'s bytes from `source` (see [`ingest::receive`]) and
/// records in the exchange's `file_seen` how many arrived and whether the
/// file was whole. The error is how the request ends.
pub(crate) async fn receive<S: Source>(
    state: &AppState,
    source: &mut S,
    target: Target,
    ctl: &BodyControl,
    ex: &mut Exchange,
) -> Result<FinishedFile, Finish> {
    let max = state.settings.max_upload_size;
    let mut bytes = 0;
    let result = ingest::receive(&state.storage, source, target, max, ctl, &mut bytes).await;
    if let Some(seen) = &mut ex.file_seen {
        seen.bytes = bytes;
        seen.complete = result.is_ok();
    }
    result.map_err(Finish::from)
}

/// Ends a route whose file is received: carries out `decision` (the rule
/// that fired at `complete`, if any), then keeps the file with `keep` when
/// the client is told it succeeded or a rule says `keep_upload` (also before
/// a `reset` or `hang` at `complete`), and discards it otherwise. `normal` is
/// the route's answer, which a deferred `respond` rule reshapes.
pub(crate) async fn conclude(
    file: FinishedFile,
    decision: Option<Decision>,
    normal: Answer,
    keep: impl AsyncFnOnce(FinishedFile, &mut Exchange) -> Result<(), ApiError>,
    ctl: &BodyControl,
    ex: &mut Exchange,
) -> Result<Answer, Finish> {
    if let Step::Stop(finish) = apply::apply(decision, ctl, ex, Phase::Complete) {
        if ex.effects.keep_upload && matches!(finish, Finish::Reset | Finish::Hang(_)) {
            // Stored, then the fault is carried out.
            keep(file, ex).await?;
        } else {
            file.discard().await;
        }
        return Err(finish);
    }
    // `reset` with `after_bytes` larger than the whole body: close once it is read.
    if ctl.reset_pending() {
        file.discard().await;
        return Err(Finish::Reset);
    }
    let reply = ex.effects.shape(normal);
    let client_sees_success = reply.status.is_success() && !ex.effects.truncate;
    if !(client_sees_success || ex.effects.keep_upload) {
        file.discard().await;
        return Ok(reply);
    }
    keep(file, ex).await?;
    Ok(reply)
}

/// Commits `file` to storage and makes it visible: in the index (replacing
/// an earlier upload of the same file, as a second PUT to one URL does) and,
/// for an `announced` file or one a rule gave a `verdict`, in the catalog.
/// An announced file's caller holds its lock (`AppState::file_locks`), so a
/// `DELETE` of it comes wholly before or after.
pub(crate) async fn keep(
    state: &AppState,
    file: FinishedFile,
    announced: bool,
    verdict: Option<Processing>,
) -> Result<StoredUpload, StorageError> {
    let record = file.record();
    let stored = state.upload_of(&record);
    keep_as(state, file, record, stored, announced, verdict).await
}

/// [`keep`], for a caller that has already spelled the file out
/// (`record`, and `stored` from `AppState::upload_of`) to answer with it.
pub(crate) async fn keep_as(
    state: &AppState,
    file: FinishedFile,
    record: UploadRecord,
    mut stored: StoredUpload,
    announced: bool,
    verdict: Option<Processing>,
) -> Result<StoredUpload, StorageError> {
    state.storage.commit(file, &stored).await?;
    if announced {
        if let Some(old) = state.files.remove(&record.target.file_uuid) {
            state.storage.replaced(&old);
        }
    }
    // Only an announced file, or an upload a rule gave a verdict, needs the
    // catalog: the files API sees the others through the index (one record
    // per upload, not two).
    state.publish(|| crate::files::events::FileEvent::Stored {
        record: record.clone(),
        announced,
        verdict: verdict.clone(),
    });
    if announced || verdict.is_some() {
        state.catalog.stored(&record, verdict);
    }
    stored.duplicate_of = state.files.insert(record);
    Ok(stored)
}
