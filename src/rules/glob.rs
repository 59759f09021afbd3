//! `Glob`: `*` and `?` wildcards, with `\` to escape either.

use std::collections::HashMap;
use std::fmt;

/// Longest pattern accepted, in bytes. Matching costs up to ⌈pattern/64⌉
/// steps per character of the text, so this bounds it (a header value is at
/// most ~400 KiB, hyper's limit on a request head).
pub(crate) const MAX_GLOB_LEN: usize = 1024;

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
        if pattern.len() > MAX_GLOB_LEN {
            let mut shown: String = pattern.chars().take(32).collect();
            shown.push('…');
            return Err(GlobError {
                pattern: shown,
                reason: "it is longer than 1024 bytes, the most a pattern may have",
            });
        }
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

    /// How many leading characters of `text` agree with the pattern, up to
    /// its first `*` (a `?` agrees with any character): where a near miss
    /// starts to differ.
    ///
    /// ```
    /// let g = aymara_mock::Glob::parse("limited-*").unwrap();
    /// assert_eq!(g.matching_prefix("limted-key"), 3);
    /// assert_eq!(g.matching_prefix("limited"), 7);
    /// ```
    pub fn matching_prefix(&self, text: &str) -> usize {
        self.tokens
            .iter()
            .zip(text.chars())
            .take_while(|(token, c)| match token {
                Token::Literal(p) => p == c,
                Token::One => true,
                Token::Any => false,
            })
            .count()
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
        self.matches_counting(text, ignore_case, &mut 0)
    }

    fn matches_counting(&self, text: &str, ignore_case: bool, steps: &mut u64) -> bool {
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
        // ASCII text (nearly every header, path and name) is matched as its
        // bytes, one per character; other text as its chars, collected.
        if text.is_ascii() {
            self.matches_units(text.as_bytes(), ignore_case, steps)
        } else {
            let text: Vec<char> = text.chars().collect();
            self.matches_units(&text, ignore_case, steps)
        }
    }

    /// The star case of [`matches_counting`](Self::matches_counting) over
    /// the text's characters, as chars or as ASCII bytes.
    fn matches_units<C: Copy + Into<char>>(
        &self,
        text: &[C],
        ignore_case: bool,
        steps: &mut u64,
    ) -> bool {
        let eq = |a: char, b: char| {
            if ignore_case {
                a.eq_ignore_ascii_case(&b)
            } else {
                a == b
            }
        };
        let fits = |segment: &[Token], at: usize| {
            segment
                .iter()
                .zip(&text[at..])
                .all(|(token, c)| match token {
                    Token::Literal(p) => eq(*p, (*c).into()),
                    Token::One => true,
                    Token::Any => false,
                })
        };
        // `P0*P1*…*Pk`: P0 anchored at the start, Pk at the end, and each
        // segment between stars at its leftmost occurrence after the previous
        // one. Greedy is exact here: an earlier end never rules out a match
        // that a later one allows, so no backtracking is needed.
        let mut segments = self.tokens.split(|t| *t == Token::Any);
        let first = segments.next().unwrap_or_default();
        *steps += first.len() as u64;
        let Some(last) = segments.next_back() else {
            return text.len() == first.len() && fits(first, 0);
        };
        *steps += last.len() as u64;
        let Some(end) = text.len().checked_sub(first.len() + last.len()) else {
            return false;
        };
        let end = end + first.len();
        if !fits(first, 0) || !fits(last, end) {
            return false;
        }
        let mut at = first.len();
        for segment in segments {
            match find(segment, &text[at..end], ignore_case, steps) {
                Some(pos) => at += pos + segment.len(),
                None => return false,
            }
        }
        true
    }
}

/// Where `segment` (literals and `?`, no `*`) first occurs in `text`: a
/// bit-parallel shift-and search, one pass over `text` costing
/// ⌈segment length / 64⌉ word operations per character.
fn find<C: Copy + Into<char>>(
    segment: &[Token],
    text: &[C],
    ignore_case: bool,
    steps: &mut u64,
) -> Option<usize> {
    let len = segment.len();
    if len == 0 {
        return Some(0);
    }
    let key = |c: char| {
        if ignore_case {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    let words = len.div_ceil(64);
    let set = |mask: &mut [u64], bit: usize| mask[bit / 64] |= 1 << (bit % 64);
    // Bit i of a character's mask: segment position i accepts it.
    let mut one = vec![0u64; words];
    let mut masks: HashMap<char, Vec<u64>> = HashMap::new();
    for (i, token) in segment.iter().enumerate() {
        match token {
            Token::Literal(c) => set(masks.entry(key(*c)).or_insert_with(|| vec![0; words]), i),
            Token::One => set(&mut one, i),
            Token::Any => return None,
        }
    }
    for mask in masks.values_mut() {
        for (m, o) in mask.iter_mut().zip(&one) {
            *m |= o;
        }
    }
    // Bit i of `state`: the last i + 1 characters match the segment's first i + 1.
    let mut state = vec![0u64; words];
    let (top_word, top_bit) = ((len - 1) / 64, (len - 1) % 64);
    for (i, c) in text.iter().enumerate() {
        let mask = masks.get(&key((*c).into())).unwrap_or(&one);
        let mut carry = 1;
        for (s, m) in state.iter_mut().zip(mask) {
            let next = *s >> 63;
            *s = ((*s << 1) | carry) & m;
            carry = next;
        }
        *steps += words as u64;
        if (state[top_word] >> top_bit) & 1 == 1 {
            return Some(i + 1 - len);
        }
    }
    None
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
    fn a_crafted_pattern_costs_linear_work() {
        // 180 KB of `a`s against `*aaa…ab` (1,000 `a`s): backtracking to the
        // last `*` retried the whole segment at every offset, n·m steps.
        let text = "a".repeat(180_000);
        for pattern in [
            format!("*{}b", "a".repeat(1_000)),
            format!("*{}b*", "a".repeat(1_000)),
            format!("*{}?b*", "a?".repeat(500)),
            "*a*a*a*a*a*a*a*a*a*a*b".to_owned(),
        ] {
            let g = Glob::parse(&pattern).unwrap();
            let mut steps = 0;
            assert!(!g.matches_counting(&text, false, &mut steps));
            // Each text character costs at most one step per 64 pattern
            // characters of the segment being searched for.
            assert!(steps <= 20 * 180_000, "{pattern:.30}…: {steps} steps");
        }
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
    fn patterns_over_the_cap_are_refused() {
        assert!(Glob::parse(&"a".repeat(MAX_GLOB_LEN)).is_ok());
        let err = Glob::parse(&"a".repeat(MAX_GLOB_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("longer than 1024 bytes"), "{err}");
    }

    #[test]
    fn matches_what_backtracking_matches() {
        // The old backtracking matcher, as the reference.
        fn reference(p: &[char], t: &[char]) -> bool {
            match (p.first(), t.first()) {
                (None, _) => t.is_empty(),
                (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
                (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
                (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
                _ => false,
            }
        }
        // Texts with an `é` take the char path, the others the ASCII one.
        let alphabet = ['a', 'b', '*', '?', 'é'];
        let letters = ['a', 'b', 'é'];
        let mut seed = 12_345u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let p: String = (0..next(8)).map(|_| alphabet[next(5)]).collect();
            let t: String = (0..next(10)).map(|_| letters[next(3)]).collect();
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            assert_eq!(m(&p, &t), reference(&pc, &tc), "{p:?} vs {t:?}");
        }
        let long = format!("x{}y", "ab".repeat(100));
        assert!(m(&format!("*{}*", "ab".repeat(70)), &long));
        assert!(m(&format!("x*{}?", "?b".repeat(70)), &long));
        assert!(!m(&format!("*{}c*", "ab".repeat(70)), &long));
    }

    #[test]
    fn case_insensitive_on_request() {
        let g = Glob::parse("Video/*").unwrap();
        assert!(g.matches_ignore_case("video/MP4"));
        assert!(!g.matches("video/MP4"));
    }
}
