//! `Glob`: `*` and `?` wildcards, with `\` to escape either.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, including none.
    Any,
}

/// A glob pattern: `*` matches any run of characters, `?` exactly one, and `\`
/// makes the next character literal.
///
/// ```
/// use aymara_mock::Glob;
/// let g = Glob::parse("limited-*").unwrap();
/// assert!(g.matches("limited-key-1"));
/// assert!(!g.matches("unlimited"));
/// assert!(Glob::parse("trailing\\").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    /// Set when the pattern has no wildcard: a plain comparison suffices.
    literal: bool,
}

/// Why a pattern is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    pattern: String,
    reason: &'static str,
}

impl Glob {
    /// Parses a pattern.
    pub fn parse(pattern: &str) -> Result<Self, GlobError> {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => {
                    if tokens.last() == Some(&Token::Any) {
                        continue;
                    }
                    Token::Any
                }
                '?' => Token::One,
                '\\' => match chars.next() {
                    Some(next) => Token::Literal(next),
                    None => {
                        return Err(GlobError {
                            pattern: pattern.to_owned(),
                            reason: "it ends with a lone `\\` (write `\\\\` for a backslash)",
                        })
                    }
                },
                other => Token::Literal(other),
            });
        }
        let literal = tokens.iter().all(|t| matches!(t, Token::Literal(_)));
        Ok(Self {
            source: pattern.to_owned(),
            tokens,
            literal,
        })
    }

    /// The exact text this pattern matches, when it has no wildcard.
    pub(crate) fn literal(&self) -> Option<String> {
        self.literal.then(|| {
            self.tokens
                .iter()
                .filter_map(|t| match t {
                    Token::Literal(c) => Some(*c),
                    _ => None,
                })
                .collect()
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Does `text` match, case-sensitively?
    pub fn matches(&self, text: &str) -> bool {
        self.matches_with(text, false)
    }

    /// Does `text` match, ignoring ASCII case?
    pub fn matches_ignore_case(&self, text: &str) -> bool {
        self.matches_with(text, true)
    }

    fn matches_with(&self, text: &str, ignore_case: bool) -> bool {
        let eq = |a: char, b: char| {
            if ignore_case {
                a.eq_ignore_ascii_case(&b)
            } else {
                a == b
            }
        };
        if self.literal {
            let mut pattern = self.tokens.iter();
            let mut chars = text.chars();
            loop {
                match (pattern.next(), chars.next()) {
                    (None, None) => return true,
                    (Some(Token::Literal(p)), Some(c)) if eq(*p, c) => {}
                    _ => return false,
                }
            }
        }
        // Greedy matching with backtracking to the last `*`: linear in practice,
        // O(n·m) at worst, never exponential.
        let text: Vec<char> = text.chars().collect();
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Any) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(Token::One) => {
                    p += 1;
                    t += 1;
                }
                Some(Token::Literal(c)) if eq(*c, text[t]) => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|tok| *tok == Token::Any)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl TryFrom<String> for Glob {
    type Error = GlobError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Glob> for String {
    fn from(glob: Glob) -> Self {
        glob.source
    }
}

impl serde::Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> serde::Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Glob::parse(p).unwrap().matches(t)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("*.mp4", "clip.mp4"));
        assert!(!m("*.mp4", "clip.mp4.txt"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("?", "é"));
        assert!(!m("?", ""));
        assert!(m("video/*", "video/mp4"));
        assert!(!m("video/*", "audio/mp4"));
        assert!(m("*a*a*a*a*b", &"a".repeat(40).replace("aaaa", "aaab")));
    }

    #[test]
    fn escapes_and_literals() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("plain", "plain"));
        assert!(!m("plain", "plai"));
        assert!(!m("plain", "plainer"));
        assert!(Glob::parse("x\\").is_err());
    }

    #[test]
    fn case_insensitive_on_request() {
        let g = Glob::parse("Video/*").unwrap();
        assert!(g.matches_ignore_case("video/MP4"));
        assert!(!g.matches("video/MP4"));
    }
}
