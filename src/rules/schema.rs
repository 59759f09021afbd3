//! The JSON Schema of fixture files (`aymara-mock schema`): the file
//! `fixtures/schema.json` itself, compiled in (the crate ships `fixtures/`),
//! so there is one copy to edit. Tests keep it in step with the serde model.

/// The JSON Schema of fixture files.
pub const SCHEMA: &str = include_str!("../../fixtures/schema.json");
