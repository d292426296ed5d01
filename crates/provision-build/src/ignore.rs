//! `.dockerignore`, with Docker's semantics (moby's `patternmatcher` and `ignorefile`), so the
//! files that count for an image's tag are exactly the files the builder is sent:
//!
//! - one pattern a line; lines starting with `#` are comments; blank lines are skipped;
//! - patterns are cleaned like paths (`./a/` is `a`, a leading `/` is dropped);
//! - `*` and `?` match within one path component, `[a-z]` classes, `\` escapes;
//! - `**` matches any number of components, including none;
//! - a pattern that matches a directory matches everything under it;
//! - `!pattern` re-includes what an earlier pattern excluded; the last match wins.

use std::fmt;

/// A pattern that cannot be compiled (Docker refuses the build for these too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore line {line}: `{pattern}` is not a valid pattern: {reason}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

/// The parsed patterns of a `.dockerignore` file.
#[derive(Clone, Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum MatchKind {
    /// No wildcard: the whole path.
    Exact,
    /// `prefix**`: anything starting with the prefix.
    Prefix,
    /// `**suffix` with no other wildcard: anything ending with the suffix.
    Suffix,
    /// Anything else: the tokens.
    Glob,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    Question,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` or `**` inside a pattern: nothing, or anything ending in `/`.
    AnyDirectories,
    /// A trailing `**` after a wildcard: anything.
    AnyRest,
}

#[derive(Clone, Debug)]
struct Pattern {
    exclusion: bool,
    cleaned: String,
    kind: MatchKind,
    tokens: Vec<Token>,
}

impl fmt::Display for DockerIgnore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.patterns {
            writeln!(f, "{}{}", if p.exclusion { "!" } else { "" }, p.cleaned)?;
        }
        Ok(())
    }
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut patterns = Vec::new();
        for (n, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let raw = if n == 0 {
                raw.strip_prefix('\u{feff}').unwrap_or(raw)
            } else {
                raw
            };
            // Comments are recognised before trimming, as Docker does.
            if raw.starts_with('#') {
                continue;
            }
            let mut line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let exclusion = line.starts_with('!');
            if exclusion {
                line = line[1..].trim();
            }
            let mut cleaned = if line.is_empty() {
                String::new()
            } else {
                clean(line)
            };
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            if cleaned.is_empty() {
                // `!` alone: nothing to match.
                continue;
            }
            let (kind, tokens) = compile(&cleaned).map_err(|reason| PatternError {
                line: n + 1,
                pattern: raw.to_string(),
                reason,
            })?;
            patterns.push(Pattern {
                exclusion,
                cleaned,
                kind,
                tokens,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether any `!` pattern exists: only then can something under an excluded directory
    /// come back, so only then must an excluded directory be walked.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded: the last pattern
    /// that matches it or one of its parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        let parent = match path.rfind('/') {
            Some(i) => &path[..i],
            None => "",
        };
        let mut excluded = false;
        for p in &self.patterns {
            // An exclusion pattern can only undo a match, a plain one only make one.
            if p.exclusion != excluded {
                continue;
            }
            let mut matched = p.matches(path);
            if !matched && !parent.is_empty() {
                let mut end = 0;
                for component in parent.split('/') {
                    end += component.len();
                    if p.matches(&parent[..end]) {
                        matched = true;
                        break;
                    }
                    end += 1;
                }
            }
            if matched {
                excluded = !p.exclusion;
            }
        }
        excluded
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchKind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            MatchKind::Glob => {
                let chars: Vec<char> = path.chars().collect();
                glob(&self.tokens, &chars)
            }
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Translates a cleaned pattern the way moby's `Pattern.compile` does.
fn compile(pattern: &str) -> Result<(MatchKind, Vec<Token>), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut kind = MatchKind::Exact;
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == MatchKind::Exact {
                        kind = MatchKind::Prefix;
                    } else {
                        tokens.push(Token::AnyRest);
                        kind = MatchKind::Glob;
                    }
                } else {
                    tokens.push(Token::AnyDirectories);
                    kind = MatchKind::Glob;
                }
                if first {
                    kind = MatchKind::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                kind = MatchKind::Glob;
            }
            '?' => {
                tokens.push(Token::Question);
                kind = MatchKind::Glob;
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    tokens.push(Token::Literal(next));
                    i += 1;
                    kind = MatchKind::Glob;
                }
                None => tokens.push(Token::Literal('\\')),
            },
            '[' => {
                let (token, next) = class(&chars, i)?;
                tokens.push(token);
                i = next;
                kind = MatchKind::Glob;
            }
            ']' => {
                tokens.push(Token::Literal(']'));
                kind = MatchKind::Glob;
            }
            other => tokens.push(Token::Literal(other)),
        }
        first = false;
    }
    Ok((kind, tokens))
}

/// Parses a character class starting just after its `[`; returns it and the index after `]`.
fn class(chars: &[char], mut i: usize) -> Result<(Token, usize), String> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("a `[` has no closing `]`".to_string());
        };
        if c == ']' && !first {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *chars
                .get(i)
                .ok_or("a `\\` ends the pattern inside `[...]`")?
        } else {
            c
        };
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            i += 1;
            let mut hi = chars[i];
            if hi == '\\' {
                i += 1;
                hi = *chars
                    .get(i)
                    .ok_or("a `\\` ends the pattern inside `[...]`")?;
            }
            i += 1;
            if hi < lo {
                return Err(format!("the range `{lo}-{hi}` is backwards"));
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
}

fn glob(tokens: &[Token], path: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return path.is_empty();
    };
    match token {
        Token::Literal(c) => path.first() == Some(c) && glob(rest, &path[1..]),
        Token::Question => path.first().is_some_and(|&c| c != '/') && glob(rest, &path[1..]),
        Token::Class { negated, ranges } => {
            path.first().is_some_and(|&c| {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated
            }) && glob(rest, &path[1..])
        }
        Token::Star => {
            let mut n = 0;
            loop {
                if glob(rest, &path[n..]) {
                    return true;
                }
                if n == path.len() || path[n] == '/' {
                    return false;
                }
                n += 1;
            }
        }
        Token::AnyDirectories => {
            if glob(rest, path) {
                return true;
            }
            (0..path.len()).any(|n| path[n] == '/' && glob(rest, &path[n + 1..]))
        }
        Token::AnyRest => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn plain_names_match_the_path_and_everything_under_it() {
        let i = ignore("node_modules\n");
        assert!(i.excludes("node_modules"));
        assert!(i.excludes("node_modules/a/b.js"));
        // Only from the root, unlike .gitignore.
        assert!(!i.excludes("src/node_modules"));
        assert!(!i.excludes("node_modules2"));
    }

    #[test]
    fn comments_blank_lines_and_cleaning() {
        let i = ignore("# a comment\n\n   \n  ./build/  \n/dist\r\n #not a comment\n");
        assert!(i.excludes("build/x"));
        assert!(i.excludes("dist"));
        assert!(!i.excludes("# a comment"));
        assert!(
            i.excludes("#not a comment"),
            "only a leading # makes a comment"
        );
    }

    #[test]
    fn star_and_question_stay_within_a_component() {
        let i = ignore("*.pyc\ndocs/?.md\n");
        assert!(i.excludes("a.pyc"));
        assert!(!i.excludes("pkg/a.pyc"), "*.pyc is anchored at the root");
        assert!(i.excludes("docs/a.md"));
        assert!(!i.excludes("docs/ab.md"));
        assert!(!i.excludes("docs/a/b.md"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let i = ignore("**/*.pyc\n**/__pycache__\n");
        assert!(i.excludes("a.pyc"));
        assert!(i.excludes("pkg/sub/a.pyc"));
        assert!(i.excludes("__pycache__/x"));
        assert!(i.excludes("pkg/__pycache__/x.cpython.pyc"));
        assert!(!i.excludes("pkg/a.py"));

        let i = ignore("a/**/b\n");
        assert!(i.excludes("a/b"));
        assert!(i.excludes("a/x/y/b"));
        assert!(!i.excludes("b"));

        let i = ignore("**\n!keep.txt\n");
        assert!(i.excludes("anything/at/all"));
        assert!(!i.excludes("keep.txt"));
    }

    #[test]
    fn prefix_patterns() {
        let i = ignore("tmp**\n");
        assert!(i.excludes("tmp"));
        assert!(i.excludes("tmpfile"));
        assert!(i.excludes("tmp/x"));
        assert!(!i.excludes("a/tmp"));
    }

    #[test]
    fn exceptions_reinclude_and_the_last_match_wins() {
        let i = ignore("*.md\n!README.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(!i.excludes("README.md"));

        let i = ignore("!README.md\n*.md\n");
        assert!(
            i.excludes("README.md"),
            "a later pattern overrides an earlier exception"
        );

        let i = ignore("data\n!data/keep\n");
        assert!(i.excludes("data/other"));
        assert!(!i.excludes("data/keep"));
        assert!(!i.excludes("data/keep/inner"));
        assert!(i.has_exceptions());
    }

    #[test]
    fn classes_and_escapes() {
        let i = ignore("file[0-9].txt\nx[^a]\nlit\\*\n");
        assert!(i.excludes("file3.txt"));
        assert!(!i.excludes("filea.txt"));
        assert!(i.excludes("xb"));
        assert!(!i.excludes("xa"));
        assert!(i.excludes("lit*"));
        assert!(!i.excludes("litx"));
    }

    #[test]
    fn regex_characters_are_literal() {
        let i = ignore("a.b\n(x)+\n");
        assert!(i.excludes("a.b"));
        assert!(!i.excludes("axb"));
        assert!(i.excludes("(x)+"));
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_line() {
        let err = DockerIgnore::parse("ok\n[abc\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("a/../b"), "b");
        assert_eq!(clean("/a"), "/a");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("../a"), "../a");
    }
}
