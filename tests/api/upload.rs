//! Tests: upload.
