//! Reading fixture files: files and directories in order, strict JSON, errors
//! that name the file, line, column and field.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::model::Rule;
pub(crate) use crate::config::FixtureSource;
use crate::scenarios::Scenario;

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
    /// The other errors found in the same check, in file order: a fixture
    /// is checked whole, so that three typos are three errors of one run.
    pub more: Vec<FixtureError>,
}

impl FixtureError {
    pub(crate) fn whole(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: None,
            column: None,
            message: message.into(),
            more: Vec::new(),
        }
    }

    /// This error, then the [`more`](Self::more) found with it.
    pub fn all(&self) -> impl Iterator<Item = &FixtureError> {
        std::iter::once(self).chain(self.more.iter().flat_map(|e| e.all().collect::<Vec<_>>()))
    }

    /// This error alone, as `path:line:column: message`.
    pub fn line(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", self.path, self.message),
            _ => format!("{}: {}", self.path, self.message),
        }
    }

    /// One error of several (`None` if there are none).
    pub(crate) fn gather(errors: Vec<FixtureError>) -> Option<FixtureError> {
        let mut flat = errors.into_iter().flat_map(|mut e| {
            let more = std::mem::take(&mut e.more);
            std::iter::once(e).chain(more)
        });
        let mut first = flat.next()?;
        first.more = flat.collect();
        Some(first)
    }
}

/// One line per error: `path:line:column: message`.
impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.all().map(FixtureError::line).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for FixtureError {}

/// What [`check_fixtures`] found: every fixture file the paths stand for,
/// each valid (with its number of rules) or not (with every error in it).
#[derive(Debug)]
#[non_exhaustive]
pub struct FixtureCheck {
    /// Paths that stand for no fixture file: unreadable, a directory with no
    /// `*.json` file, a symbolic link loop. In the order given.
    pub path_errors: Vec<FixtureError>,
    /// Each fixture file, in order: its number of rules, or what is wrong.
    pub files: Vec<(PathBuf, Result<usize, FixtureError>)>,
    /// What is wrong across the files served together (a rule id used
    /// twice); looked for only when every path and file is valid.
    pub across_files: Option<FixtureError>,
}

impl FixtureCheck {
    /// No error anywhere: the paths can be given to a server as they are.
    pub fn is_valid(&self) -> bool {
        self.path_errors.is_empty()
            && self.files.iter().all(|(_, result)| result.is_ok())
            && self.across_files.is_none()
    }

    /// The rules of the valid files.
    pub fn rule_count(&self) -> usize {
        self.files
            .iter()
            .filter_map(|(_, result)| result.as_ref().ok())
            .sum()
    }
}

/// Checks fixture files and directories without starting a server (what
/// `aymara-mock check` prints): a directory stands for its `*.json` files
/// (recursively, sorted, its `schema.json` left out), every file is read
/// and every error kept, then rule ids are checked across the files.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let fixture = dir.path().join("typo.json");
/// std::fs::write(&fixture, "{\"rules\": [\n  {\"respond\": {\"stauts\": 503}}\n]}")?;
///
/// let check = aymara_mock::check_fixtures(&[dir.path()]);
///
/// assert!(!check.is_valid());
/// let (path, result) = &check.files[0];
/// assert_eq!(path, &fixture);
/// let error = result.as_ref().unwrap_err();
/// assert_eq!(error.line, Some(2));
/// assert!(error.message.contains("stauts"), "{error}");
/// # Ok(())
/// # }
/// ```
pub fn check_fixtures(paths: &[impl AsRef<Path>]) -> FixtureCheck {
    let mut path_errors = Vec::new();
    let mut found = Vec::new();
    for path in paths {
        let path = path.as_ref();
        match expand(path) {
            Ok(files) if files.is_empty() => path_errors.push(FixtureError::whole(
                &path.display().to_string(),
                "no fixture files (*.json) found",
            )),
            Ok(files) => found.extend(files),
            Err(err) => path_errors.push(err),
        }
    }
    let files: Vec<_> = found
        .into_iter()
        .map(|file| {
            let result = load_file(&file).map(|loaded| loaded.rules.len());
            (file, result)
        })
        .collect();
    let mut check = FixtureCheck {
        path_errors,
        files,
        across_files: None,
    };
    if check.is_valid() {
        let files: Vec<PathBuf> = check.files.iter().map(|(f, _)| f.clone()).collect();
        check.across_files = load_paths(&files).err();
    }
    check
}

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
    let meta = std::fs::metadata(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            scenario_hint(path)
        } else {
            String::new()
        };
        FixtureError::whole(&display, format!("cannot read fixture path: {e}{hint}"))
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    collect_json(path, &meta, &mut seen, &mut files)?;
    files.sort();
    Ok(files)
}

/// For a fixture path that does not exist: the shipped scenarios, which
/// need no file (the path may be one of the clone's `fixtures/`, used
/// outside the clone). The scenario of the path's stem, if there is one.
fn scenario_hint(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    if let Some(scenario) = stem.and_then(|stem| Scenario::named(&stem).ok()) {
        return format!(
            ". The shipped scenario {name:?} is built in: name it instead of its file (--scenario {name}, MockServerBuilder::scenario, scenarios=[...] in Python)",
            name = scenario.name()
        );
    }
    let names: Vec<&str> = Scenario::all().iter().map(|s| s.name()).collect();
    format!(
        ". Did you mean a shipped scenario? They are built in, named with --scenario NAME (MockServerBuilder::scenario): {}",
        names.join(", ")
    )
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
    let sources: Vec<FixtureSource> = paths.iter().cloned().map(FixtureSource::Path).collect();
    load_sources(&sources)
}

/// Loads every source, in order. Rule ids must be unique across all of them.
/// Every file is read, and every error of each is reported together.
pub(crate) fn load_sources(sources: &[FixtureSource]) -> Result<Vec<LoadedFile>, FixtureError> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    let mut keep = |result: Result<LoadedFile, FixtureError>| match result {
        Ok(file) => loaded.push(file),
        Err(err) => errors.push(err),
    };
    for source in sources {
        match source {
            FixtureSource::Path(path) => match expand(path) {
                Ok(files) => files.iter().for_each(|file| keep(load_file(file))),
                Err(err) => keep(Err(err)),
            },
            FixtureSource::Scenario(scenario) => keep(scenario.rules().map(|rules| LoadedFile {
                source: scenario.source(),
                rules,
            })),
        }
    }
    if let Some(err) = FixtureError::gather(errors) {
        return Err(err);
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

/// Parses a fixture document (`{"rules": […]}`), reporting every error in
/// it: the top level is read with each value kept as text (its place in the
/// file known), then each rule is checked on its own, so that an error in
/// one rule does not hide those of the next.
pub(crate) fn parse_fixture(source: &str, text: &str) -> Result<Vec<Rule>, FixtureError> {
    let top = Located::whole(source, text);
    top.shape("a fixture is an object `{\"rules\": [...]}`")?;
    let entries: Entries<'_> = top.parse()?;
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut seen_rules = false;
    let mut seen_keys: Vec<&str> = Vec::new();
    for (key, raw) in &entries.0 {
        let value = top.at(raw);
        if seen_keys.contains(&key.as_str()) {
            errors.push(value.error(format!("duplicate field \"{key}\"")));
            continue;
        }
        seen_keys.push(key);
        match key.as_str() {
            "$schema" | "description" => {
                if let Err(err) = value.parse::<String>() {
                    errors.push(value.error(format!("{key}: {}", err.message)));
                }
            }
            "rules" => {
                seen_rules = true;
                let list: Vec<&serde_json::value::RawValue> =
                    match value.parse() {
                        Ok(list) => list,
                        Err(_) => {
                            errors.push(value.error(
                                "rules: a list of rules `[{...}, ...]`, one object per rule",
                            ));
                            continue;
                        }
                    };
                for (n, raw_rule) in list.iter().enumerate() {
                    match top.at(raw_rule).parse_as::<Rule>(&format!("rules[{n}]")) {
                        Ok(rule) => rules.push(rule),
                        Err(err) => errors.push(err),
                    }
                }
            }
            unknown => {
                let expected = ["$schema", "description", "rules"].map(str::to_owned);
                let mut err = value.error(format!(
                    "unknown field \"{unknown}\"{}",
                    hint(unknown, &expected)
                ));
                if let Some((line, column)) = top.key_before(raw, unknown) {
                    (err.line, err.column) = (Some(line), Some(column));
                }
                errors.push(err);
            }
        }
    }
    if !seen_rules && errors.is_empty() {
        errors.push(top.error("a fixture needs \"rules\": [...], the list of its rules"));
    }
    if errors.is_empty() {
        errors = duplicate_ids(source, text, &rules);
    }
    match FixtureError::gather(errors) {
        Some(err) => Err(err),
        None => Ok(rules),
    }
}

/// Every rule id given twice in one file, each at its second place.
fn duplicate_ids(source: &str, text: &str, rules: &[Rule]) -> Vec<FixtureError> {
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for id in rules.iter().filter_map(|r| r.id.as_deref()) {
        if !seen.insert(id) {
            let mut err = FixtureError::whole(
                source,
                format!("duplicate rule id \"{id}\" (earlier in this file); ids must be unique"),
            );
            locate_id(&mut err, text);
            errors.push(err);
        }
    }
    errors
}

/// A fixture's top-level fields, in file order, each value as its text.
struct Entries<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A piece of a fixture's text with its place in the file, so that an
/// error found in the piece is reported at its line and column in the file.
#[derive(Clone, Copy)]
struct Located<'a> {
    source: &'a str,
    /// The whole file.
    file: &'a str,
    /// The piece, a slice of `file`.
    text: &'a str,
}

impl<'a> Located<'a> {
    fn whole(source: &'a str, file: &'a str) -> Self {
        Located {
            source,
            file,
            text: file,
        }
    }

    /// The piece `raw` (a slice of the file, as serde_json's borrowed
    /// `RawValue`s are).
    fn at(&self, raw: &'a serde_json::value::RawValue) -> Located<'a> {
        Located {
            text: raw.get(),
            ..*self
        }
    }

    /// Where the piece starts in the file, in bytes.
    fn offset(&self) -> usize {
        (self.text.as_ptr() as usize)
            .checked_sub(self.file.as_ptr() as usize)
            .filter(|&o| o <= self.file.len())
            .unwrap_or(0)
    }

    /// 1-based (line, column) in the file of the piece's `line`:`column`.
    fn place(&self, line: usize, column: usize) -> (usize, usize) {
        let before = &self.file[..self.offset()];
        let base_line = before.matches('\n').count() + 1;
        let base_column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        if line <= 1 {
            (base_line, base_column + column.saturating_sub(1))
        } else {
            (base_line + line - 1, column)
        }
    }

    /// An error at the piece's first character.
    fn error(&self, message: impl Into<String>) -> FixtureError {
        let start = self.text.len() - self.text.trim_start().len();
        let (line, column) = self.place(1, start + 1);
        FixtureError {
            path: self.source.to_owned(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
            more: Vec::new(),
        }
    }

    /// Refuses a piece that is not a JSON object, saying what it should be.
    fn shape(&self, should_be: &str) -> Result<(), FixtureError> {
        let what = match self.text.trim_start().chars().next() {
            Some('{') | None => return Ok(()),
            Some('[') => "an array",
            Some('"') => "a string",
            Some('t' | 'f') => "a boolean",
            Some('n') => "null",
            Some(_) => "a number",
        };
        // A syntax error is reported as such, not as a shape.
        serde_json::from_str::<serde::de::IgnoredAny>(self.text)
            .map_err(|err| describe(self.source, self.file, ".", &err))?;
        Err(self.error(format!("{should_be}, not {what}")))
    }

    /// The piece as a `T`, errors placed in the file.
    fn parse<T: Deserialize<'a>>(&self) -> Result<T, FixtureError> {
        self.parse_as("")
    }

    /// The piece as a `T` at `field` (`rules[2]`), errors placed in the
    /// file and naming the field's path from the top.
    fn parse_as<T: Deserialize<'a>>(&self, field: &str) -> Result<T, FixtureError> {
        let mut de = serde_json::Deserializer::from_str(self.text);
        let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
        let value = result.map_err(|err| {
            let inner_path = err.path().to_string();
            let path = match (field, inner_path.as_str()) {
                ("", p) => p.to_owned(),
                (f, "" | ".") => f.to_owned(),
                (f, p) if p.starts_with('[') => format!("{f}{p}"),
                (f, p) => format!("{f}.{p}"),
            };
            self.placed(describe(self.source, self.text, &path, &err.into_inner()))
        })?;
        de.end()
            .map_err(|err| self.placed(describe(self.source, self.text, field, &err)))?;
        Ok(value)
    }

    /// An error found in the piece, moved to its place in the file.
    fn placed(&self, mut err: FixtureError) -> FixtureError {
        if let (Some(line), Some(column)) = (err.line, err.column) {
            let (line, column) = self.place(line, column);
            (err.line, err.column) = (Some(line), Some(column));
        }
        err
    }

    /// The place of the key `"key"` written just before the value `raw`.
    fn key_before(&self, raw: &serde_json::value::RawValue, key: &str) -> Option<(usize, usize)> {
        let value_at = self.at(raw).offset();
        let quoted = format!("\"{key}\"");
        let key_at = self.file[..value_at].rfind(&quoted)?;
        let piece = Located {
            text: &self.file[key_at..],
            ..*self
        };
        Some(piece.place(1, 1))
    }
}

// Here rather than in scenarios.rs, so that the settings can name a scenario
// without importing the loader (which imports the settings).
impl Scenario {
    /// Its rules, in evaluation order.
    ///
    /// ```
    /// let rules = aymara_mock::Scenario::named("rate-limit-burst")?.rules()?;
    /// assert_eq!(rules[0].id.as_deref(), Some("rate-limit-burst"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rules(&self) -> Result<Vec<Rule>, FixtureError> {
        parse_fixture(&self.source(), self.json())
    }

    /// The `source` its rules are listed with: `scenario:NAME`.
    pub(crate) fn source(&self) -> String {
        format!("scenario:{}", self.name())
    }
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
    Located::whole(source, text).shape("expected one rule `{...}`, or `{\"rules\": [...]}`")?;
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
        more: Vec::new(),
    };
    let at_field = |message: String| {
        if field.is_empty() || field == "." {
            message
        } else {
            format!("{field}: {message}")
        }
    };
    if let Some((unknown, expected)) = parse_unknown(&message, "unknown field `") {
        let column = key_start(text, line, column, &unknown).unwrap_or(column);
        let hint = hint(&unknown, &expected);
        // The path names the object the unknown key is in.
        let field = field
            .strip_suffix(unknown.as_str())
            .map_or(field, |f| f.strip_suffix('.').unwrap_or(f));
        let at_field = |message: String| {
            if field.is_empty() || field == "." {
                message
            } else {
                format!("{field}: {message}")
            }
        };
        return located(
            line,
            column,
            at_field(format!("unknown field \"{unknown}\"{hint}")),
        );
    }
    if let Some((unknown, expected)) = parse_unknown(&message, "unknown variant `") {
        let hint = hint(&unknown, &expected);
        return located(
            line,
            column,
            format!("{field}: unknown value \"{unknown}\"{hint}"),
        );
    }
    located(line, column, at_field(message))
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
            "fixtures/x.json:4:7: rules[0].respond: unknown field \"stauts\", did you mean \"status\"?"
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
    fn every_error_of_a_file_is_reported_in_one_go() {
        let text = "{\n  \"rules\": [\n    {\"respond\": {\"stauts\": 429}},\n    {\"pass\": {}, \"whne\": {}},\n    {\"fault\": {\"kind\": \"rest\"}}\n  ],\n  \"descripton\": \"x\"\n}\n";
        let err = parse_fixture("f.json", text).unwrap_err();
        let all: Vec<String> = err.all().map(FixtureError::line).collect();
        assert_eq!(
            all,
            [
                "f.json:3:18: rules[0].respond: unknown field \"stauts\", did you mean \"status\"?",
                "f.json:4:18: rules[1]: unknown field \"whne\", did you mean \"when\"?",
                "f.json:5:29: rules[2].fault.kind: unknown value \"rest\", did you mean \"reset\"?",
                "f.json:7:3: unknown field \"descripton\", did you mean \"description\"?",
            ],
            "{err}"
        );
        assert_eq!(err.to_string().lines().count(), 4);
    }

    #[test]
    fn a_wrong_top_level_shape_says_the_shape() {
        for (text, what) in [
            ("[{\"pass\": {}}]", "not an array"),
            ("\"rules\"", "not a string"),
            ("42", "not a number"),
        ] {
            let err = parse_fixture("f.json", text).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("f.json:1:1: a fixture is an object `{{\"rules\": [...]}}`, {what}")
            );
        }
        let err = parse_fixture("f.json", "{\"rules\": {\"pass\": {}}}").unwrap_err();
        assert!(err.message.starts_with("rules: a list of rules"), "{err}");
        let err = parse_fixture("f.json", "{}").unwrap_err();
        assert!(err.message.contains("needs \"rules\""), "{err}");
        // A syntax error stays one.
        let err = parse_fixture("f.json", "[1,").unwrap_err();
        assert!(!err.message.contains("a fixture is"), "{err}");
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
