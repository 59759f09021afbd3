//! The JSON Schema of fixture files (`aymara-mock schema`), committed as
//! `fixtures/schema.json`. Tests keep it in step with the serde model.

/// The JSON Schema of fixture files.
pub const SCHEMA: &str = include_str!("schema.json");
