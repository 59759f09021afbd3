//! Reading fixture files: files and directories in order, strict JSON, errors
//! that name the file, line, column and field.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::model::{Fixture, Rule};

/// A fixture that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureError {
    /// The file (or `<admin>`, `<rule>` for rules not from a file).
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl FixtureError {
    pub(crate) fn whole(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.path, self.message),
            _ => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for FixtureError {}

/// Rules read from one source.
#[derive(Debug, Clone)]
pub(crate) struct LoadedFile {
    pub(crate) source: String,
    pub(crate) rules: Vec<Rule>,
}

/// The fixture files a path stands for: itself, or a directory's `*.json`
/// files (recursively, sorted by path). A directory's `schema.json` is the
/// JSON Schema, not a fixture, and is skipped. Symbolic links are followed,
/// but a directory reached twice (a link back to a parent: a loop) is an error.
pub(crate) fn expand(path: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| FixtureError::whole(&display, format!("cannot read fixture path: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    collect_json(path, &meta, &mut seen, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect_json(
    dir: &Path,
    meta: &std::fs::Metadata,
    seen: &mut HashSet<(u64, u64)>,
    out: &mut Vec<PathBuf>,
) -> Result<(), FixtureError> {
    let display = dir.display().to_string();
    if !seen.insert((meta.dev(), meta.ino())) {
        return Err(FixtureError::whole(
            &display,
            "this directory was already read through another path: a symbolic link loop (or a second link to it); remove the link",
        ));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| FixtureError::whole(&display, format!("cannot list directory: {e}")))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| FixtureError::whole(&display, format!("cannot list directory: {e}")))?;
        let path = entry.path();
        // Follows links; a dangling one is left to `load_file` to report if it is a fixture.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => collect_json(&path, &meta, seen, out)?,
            _ if path.extension().is_some_and(|e| e == "json")
                && path.file_name().is_some_and(|n| n != "schema.json") =>
            {
                out.push(path)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads a fixture file's bytes. Only a regular file is read: a FIFO, socket
/// or device is refused (opening a FIFO for reading blocks until a writer
/// comes; a device may never end); see `crate::regular_file`.
pub(crate) fn read_fixture_bytes(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let (mut file, _) =
        crate::regular_file::open(path).map_err(|e| format!("cannot read fixture: {e}"))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read fixture: {e}"))?;
    Ok(bytes)
}

/// Loads every fixture path, in order. Rule ids must be unique across all of them.
pub(crate) fn load_paths(paths: &[PathBuf]) -> Result<Vec<LoadedFile>, FixtureError> {
    let mut loaded = Vec::new();
    for path in paths {
        for file in expand(path)? {
            loaded.push(load_file(&file)?);
        }
    }
    check_unique_ids(&loaded)?;
    Ok(loaded)
}

/// Loads one fixture file.
pub(crate) fn load_file(path: &Path) -> Result<LoadedFile, FixtureError> {
    let source = path.display().to_string();
    let bytes = read_fixture_bytes(path).map_err(|e| FixtureError::whole(&source, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| FixtureError::whole(&source, "cannot read fixture: it is not UTF-8 text"))?;
    let rules = parse_fixture(&source, &text)?;
    Ok(LoadedFile { source, rules })
}

/// Parses a fixture document (`{"rules": […]}`).
pub(crate) fn parse_fixture(source: &str, text: &str) -> Result<Vec<Rule>, FixtureError> {
    let fixture: Fixture = parse_json(source, text)?;
    let rules = fixture.rules;
    check_unique_ids(&[LoadedFile {
        source: source.to_owned(),
        rules: rules.clone(),
    }])
    .map_err(|mut e| {
        locate_id(&mut e, text);
        e
    })?;
    Ok(rules)
}

// Here rather than in model.rs, so that the model does not import the loader
// that imports it: the loader owns every way text becomes rules.
impl Rule {
    /// Parses one rule from JSON, with the same checks as fixture files.
    pub fn from_json(json: &str) -> Result<Self, FixtureError> {
        parse_rules("<rule>", json).and_then(|mut rules| {
            if rules.len() == 1 {
                Ok(rules.remove(0))
            } else {
                Err(FixtureError::whole(
                    "<rule>",
                    "expected one rule, not a list",
                ))
            }
        })
    }
}

/// Parses what `POST /__admin/rules` accepts: one rule, or `{"rules": […]}`.
pub(crate) fn parse_rules(source: &str, text: &str) -> Result<Vec<Rule>, FixtureError> {
    let value: serde_json::Value = parse_json(source, text)?;
    if value.get("rules").is_some() {
        parse_fixture(source, text)
    } else {
        Ok(vec![parse_json::<Rule>(source, text)?])
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(source: &str, text: &str) -> Result<T, FixtureError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        describe(source, text, &field, &inner)
    })?;
    de.end().map_err(|err| describe(source, text, ".", &err))?;
    Ok(value)
}

/// Turns a serde_json error into a `FixtureError` with a helpful message.
fn describe(source: &str, text: &str, field: &str, err: &serde_json::Error) -> FixtureError {
    let (line, column) = (err.line(), err.column());
    let full = err.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    let located = |line: usize, column: usize, message: String| FixtureError {
        path: source.to_owned(),
        line: (line > 0).then_some(line),
        column: (line > 0).then_some(column.max(1)),
        message,
    };
    if let Some((unknown, expected)) = parse_unknown(&message, "unknown field `") {
        let column = key_start(text, line, column, &unknown).unwrap_or(column);
        let hint = hint(&unknown, &expected);
        return located(line, column, format!("unknown field \"{unknown}\"{hint}"));
    }
    if let Some((unknown, expected)) = parse_unknown(&message, "unknown variant `") {
        let hint = hint(&unknown, &expected);
        return located(
            line,
            column,
            format!("{field}: unknown value \"{unknown}\"{hint}"),
        );
    }
    let message = if field.is_empty() || field == "." {
        message
    } else {
        format!("{field}: {message}")
    };
    located(line, column, message)
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into (x, [a, b]).
fn parse_unknown(message: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((unknown.to_owned(), expected))
}

fn hint(unknown: &str, expected: &[String]) -> String {
    let best = expected
        .iter()
        .map(|e| (strsim::levenshtein(unknown, e), e))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, name)) if d <= 2.max(unknown.len() / 3) => format!(", did you mean \"{name}\"?"),
        _ if expected.is_empty() => ", no fields are allowed here".to_owned(),
        _ => {
            let list: Vec<String> = expected.iter().map(|e| format!("\"{e}\"")).collect();
            format!("; expected one of {}", list.join(", "))
        }
    }
}

/// serde_json reports an unknown key just after it; point at its opening quote.
fn key_start(text: &str, line: usize, column: usize, key: &str) -> Option<usize> {
    let line_text = text.lines().nth(line.checked_sub(1)?)?;
    let quoted = format!("\"{key}\"");
    let upto: String = line_text.chars().take(column).collect();
    let byte = upto.rfind(&quoted)?;
    Some(upto[..byte].chars().count() + 1)
}

fn check_unique_ids(files: &[LoadedFile]) -> Result<(), FixtureError> {
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for file in files {
        for rule in &file.rules {
            if let Some(id) = rule.id.as_deref() {
                if let Some(first) = seen.insert(id, &file.source) {
                    let also = if first == file.source {
                        "earlier in this file".to_owned()
                    } else {
                        format!("also in {first}")
                    };
                    return Err(FixtureError::whole(
                        &file.source,
                        format!("duplicate rule id \"{id}\" ({also}); ids must be unique"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Points a duplicate-id error at the last place the id is written.
fn locate_id(err: &mut FixtureError, text: &str) {
    let Some(id) = err.message.split('"').nth(1) else {
        return;
    };
    let quoted = format!("\"{id}\"");
    for (n, line) in text.lines().enumerate() {
        if let Some(byte) = line.find(&quoted) {
            if line[..byte].contains("\"id\"") {
                err.line = Some(n + 1);
                err.column = Some(line[..byte].chars().count() + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_is_reported_with_position_and_hint() {
        let text =
            "{\n  \"rules\": [\n    {\"respond\": {\n      \"stauts\": 429\n    }}\n  ]\n}\n";
        let err = parse_fixture("fixtures/x.json", text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fixtures/x.json:4:7: unknown field \"stauts\", did you mean \"status\"?"
        );
    }

    #[test]
    fn far_off_unknown_field_lists_the_choices() {
        let err = parse_fixture("f.json", r#"{"rules":[{"pass":{},"zzzzzzzz":1}]}"#).unwrap_err();
        assert!(err.message.contains("expected one of"), "{err}");
        assert!(err.message.contains("\"delay_ms\""), "{err}");
    }

    #[test]
    fn a_bad_wait_names_its_field_line_and_forms() {
        let text =
            "{\"rules\": [\n {\"fault\": {\"kind\": \"hang\",\n  \"for_ms\": \"timeout+5\"}}\n]}";
        let err = parse_fixture("f.json", text).unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.message.starts_with("rules[0].fault"), "{err}");
        assert!(err.message.contains("\"read_timeout+N\""), "{err}");
        let err = parse_fixture("f.json", r#"{"rules":[{"pass":{},"delay_ms":-5}]}"#).unwrap_err();
        assert!(err.message.starts_with("rules[0].delay_ms: "), "{err}");
        let err = parse_fixture(
            "f.json",
            r#"{"rules":[{"pass":{},"delay_ms":99999999999999}]}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("longest wait"), "{err}");
    }

    #[test]
    fn value_errors_name_the_field() {
        let text = "{\"rules\": [\n {\"pass\": {}, \"when\": {\"probability\": 2}}\n]}";
        let err = parse_fixture("f.json", text).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            err.message.starts_with("rules[0].when.probability: "),
            "{err}"
        );
        assert!(err.message.contains("between 0 and 1"), "{err}");
    }

    #[test]
    fn unknown_fault_kind_gets_a_hint() {
        let err = parse_fixture("f.json", r#"{"rules":[{"fault":{"kind":"rest"}}]}"#).unwrap_err();
        assert!(err.message.contains("did you mean \"reset\""), "{err}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_fixture("f.json", "{\"rules\": [\n  {\"pass\": {},}\n]}").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.column.is_some());
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let text =
            "{\"rules\": [\n{\"id\": \"a\", \"pass\": {}},\n{\"id\": \"a\", \"pass\": {}}\n]}";
        let err = parse_fixture("f.json", text).unwrap_err();
        assert!(err.message.contains("duplicate rule id \"a\""), "{err}");
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn admin_body_may_be_one_rule_or_a_list() {
        assert_eq!(parse_rules("<admin>", r#"{"pass":{}}"#).unwrap().len(), 1);
        assert_eq!(
            parse_rules("<admin>", r#"{"rules":[{"pass":{}},{"pass":{}}]}"#)
                .unwrap()
                .len(),
            2
        );
        assert!(parse_rules("<admin>", r#"[1]"#).is_err());
    }
}
