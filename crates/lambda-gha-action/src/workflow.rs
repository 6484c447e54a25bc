//! GitHub's workflow commands (`::add-mask::`, `::group::`, annotations) and files
//! (`GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`). Everything printed passes through the masks too:
//! a secret registered here never reaches the log even where GitHub would not mask it (a
//! local run, a value split across lines).

use std::io::Write;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// Where the action writes.
pub struct Workflow<W: Write> {
    out: W,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    masks: Vec<String>,
    in_group: bool,
}

/// Escapes a command's message as GitHub reads it.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command's property value as GitHub reads it.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

impl<W: Write> Workflow<W> {
    /// Writes commands to `out` and files to the given paths (`GITHUB_OUTPUT`,
    /// `GITHUB_STEP_SUMMARY`); without an output file, outputs are printed.
    pub fn new(out: W, output_file: Option<PathBuf>, summary_file: Option<PathBuf>) -> Self {
        Workflow {
            out,
            output_file,
            summary_file,
            masks: Vec::new(),
            in_group: false,
        }
    }

    /// The writer, for tests.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Masks `secret` in the job log from now on (each line of it, as GitHub masks per line).
    pub fn mask(&mut self, secret: &SecretString) {
        for line in secret.expose_secret().lines() {
            let line = line.trim();
            // Very short values would mask ordinary words; GitHub does the same.
            if line.len() < 4 || self.masks.iter().any(|m| m == line) {
                continue;
            }
            let _ = writeln!(self.out, "::add-mask::{}", escape_data(line));
            self.masks.push(line.to_owned());
        }
        // Longest first, so a secret containing another is hidden whole.
        self.masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
    }

    /// `text` with every mask replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for mask in &self.masks {
            text = text.replace(mask.as_str(), "***");
        }
        text
    }

    /// Prints a log line.
    pub fn line(&mut self, text: &str) {
        let text = self.redact(text);
        let _ = writeln!(self.out, "{text}");
    }

    /// Opens a collapsible group, closing any open one.
    pub fn group(&mut self, title: &str) {
        self.end_group();
        let title = self.redact(title);
        let _ = writeln!(self.out, "::group::{}", escape_data(&title));
        self.in_group = true;
    }

    /// Closes the open group.
    pub fn end_group(&mut self) {
        if self.in_group {
            let _ = writeln!(self.out, "::endgroup::");
            self.in_group = false;
        }
    }

    fn annotation(&mut self, kind: &str, title: &str, message: &str) {
        self.end_group();
        let (title, message) = (self.redact(title), self.redact(message));
        let _ = writeln!(
            self.out,
            "::{kind} title={}::{}",
            escape_property(&title),
            escape_data(&message)
        );
    }

    /// An error annotation.
    pub fn error(&mut self, title: &str, message: &str) {
        self.annotation("error", title, message);
    }

    /// A warning annotation.
    pub fn warning(&mut self, title: &str, message: &str) {
        self.annotation("warning", title, message);
    }

    /// Sets a step output (multi-line values use a delimiter GitHub reads).
    pub fn output(&mut self, name: &str, value: &str) -> std::io::Result<()> {
        let value = self.redact(value);
        let entry = if value.contains('\n') {
            let delimiter = format!("LAMBDA_GHA_EOF_{}", fastrand::u64(..));
            format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
        } else {
            format!("{name}={value}\n")
        };
        if let Some(path) = &self.output_file {
            return append(path, &entry);
        }
        let _ = write!(self.out, "{entry}");
        Ok(())
    }

    /// Appends Markdown to the step summary (ignored outside Actions).
    pub fn summary(&mut self, markdown: &str) -> std::io::Result<()> {
        let markdown = self.redact(markdown);
        match &self.summary_file {
            Some(path) => append(path, &markdown),
            None => Ok(()),
        }
    }
}

fn append(path: &PathBuf, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_values_never_print_and_commands_are_escaped() {
        let mut w = Workflow::new(Vec::new(), None, None);
        w.mask(&SecretString::from("secret_abc\nline_two"));
        w.group("Launch");
        w.line("key is secret_abc, also line_two");
        w.error("bad, input: x", "50% done\nnext");
        w.output("label", "x secret_abc").unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(
            text,
            "::add-mask::secret_abc\n::add-mask::line_two\n::group::Launch\n\
             key is ***, also ***\n::endgroup::\n\
             ::error title=bad%2C input%3A x::50%25 done%0Anext\nlabel=x ***\n"
        );
    }

    #[test]
    fn multi_line_outputs_use_a_delimiter() {
        let dir = std::env::temp_dir().join(format!("workflow-out-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let mut w = Workflow::new(Vec::new(), Some(dir.clone()), None);
        w.output("a", "1").unwrap();
        w.output("b", "x\ny").unwrap();
        let text = std::fs::read_to_string(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "a=1");
        assert!(lines[1].starts_with("b<<LAMBDA_GHA_EOF_"));
        assert_eq!(&lines[2..4], ["x", "y"]);
        assert_eq!(lines[4], &lines[1][3..]);
    }
}
