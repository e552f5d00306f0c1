//! Source files and positions in them. Every diagnostic points into a `Sources` table.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Index of a file in `Sources`.
pub type FileId = usize;

/// A position: line and column are 1-based (column in characters), byte is 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub byte: usize,
}

/// A range in one file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub file: FileId,
    pub start: Pos,
    pub end: Pos,
}

#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user should read it (as given, or relative to the directory given).
    pub path: PathBuf,
    pub text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// Position from a 1-based line and 0-based character column (the parser's markers).
    pub fn pos(&self, line: usize, char_col: usize) -> Pos {
        let Some(&line_start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.end_pos();
        };
        let byte = self.text[line_start..]
            .char_indices()
            .nth(char_col)
            .map_or(self.text.len(), |(i, _)| line_start + i);
        Pos {
            line,
            column: char_col + 1,
            byte,
        }
    }

    /// Position of a byte offset (for errors found before parsing, e.g. bad UTF-8).
    pub fn pos_of_byte(&self, byte: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= byte).max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..byte)
            .map_or(1, |s| s.chars().count() + 1);
        Pos { line, column, byte }
    }

    pub fn end_pos(&self) -> Pos {
        self.pos_of_byte(self.text.len())
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next - 1);
        Some(self.text[start..end].trim_end_matches('\r'))
    }
}

#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        self.files.len() - 1
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    pub fn path(&self, id: FileId) -> &Path {
        &self.files[id].path
    }

    /// A span covering the first character of a file, for findings about a whole file.
    pub fn file_start(&self, id: FileId) -> Span {
        let file = &self.files[id];
        let start = Pos {
            line: 1,
            column: 1,
            byte: 0,
        };
        let end = file.text.chars().next().map_or(start, |c| Pos {
            line: 1,
            column: 2,
            byte: c.len_utf8(),
        });
        Span {
            file: id,
            start,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let f = SourceFile::new("a.yaml".into(), "ä: 1\nname: Zoë x\n".into());
        let p = f.pos(2, 10);
        assert_eq!((p.line, p.column), (2, 11));
        assert_eq!(&f.text[p.byte..], "x\n");
        let q = f.pos_of_byte(p.byte);
        assert_eq!(q, p);
        assert_eq!(f.line_text(2), Some("name: Zoë x"));
        assert_eq!(f.line_text(3), Some(""));
        assert_eq!(f.line_text(4), None);
    }
}
