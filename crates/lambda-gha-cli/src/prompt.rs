//! Questions on the terminal: a secret read with echo off (`login`), and the choices of
//! `launch --interactive`. The choices read lines from any reader and write to any writer, so
//! tests drive them with plain buffers as well as through a pseudo-terminal.

use std::io::{self, BufRead, Write};

/// Reads one line from the terminal on stdin with echo off, after writing `prompt` to
/// stderr. Echo is turned off before the prompt shows, so a reply typed after the prompt is
/// never echoed; it is turned back on before returning, error or not.
pub fn read_hidden(prompt: &str) -> io::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    let saved = tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    let mut line = String::new();
    let read = write_prompt(prompt).and_then(|()| stdin.lock().read_line(&mut line));
    let restored = tcsetattr(&stdin, OptionalActions::Now, &saved);
    // The newline the user typed was not echoed either.
    let ended = write_prompt("\n");
    read?;
    ended?;
    restored?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn write_prompt(prompt: &str) -> io::Result<()> {
    let mut stderr = io::stderr().lock();
    stderr.write_all(prompt.as_bytes())?;
    stderr.flush()
}

/// One option of a question: what is chosen, and how it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<T> {
    /// The value chosen.
    pub value: T,
    /// Its line in the list.
    pub label: String,
}

/// Asks questions on `input`/`output`.
pub struct Prompter<R, W> {
    input: R,
    output: W,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    /// A prompter reading replies from `input` and writing questions to `output`.
    pub fn new(input: R, output: W) -> Self {
        Prompter { input, output }
    }

    /// One reply line, trimmed; end of input is an error (the questions were not answered).
    fn reply(&mut self) -> io::Result<String> {
        self.output.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the questions were not answered (input ended)",
            ));
        }
        Ok(line.trim().to_owned())
    }

    /// Lists `choices` numbered from 1 and asks for one; an empty reply takes the first.
    /// A reply out of range, or not a number, asks again.
    pub fn choose<T: Clone>(&mut self, question: &str, choices: &[Choice<T>]) -> io::Result<T> {
        let Some(first) = choices.first() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("nothing to choose for {question:?}"),
            ));
        };
        writeln!(self.output, "{question}")?;
        for (number, choice) in choices.iter().enumerate() {
            writeln!(self.output, "  {:>2}) {}", number + 1, choice.label)?;
        }
        loop {
            write!(self.output, "Choose 1-{} [1]: ", choices.len())?;
            let reply = self.reply()?;
            if reply.is_empty() {
                return Ok(first.value.clone());
            }
            match reply.parse::<usize>() {
                Ok(n) if (1..=choices.len()).contains(&n) => {
                    return Ok(choices[n - 1].value.clone());
                }
                _ => writeln!(self.output, "  {reply:?} is not one of 1-{}", choices.len())?,
            }
        }
    }

    /// Lists `choices` and asks for any number of them (`1,3`), or none (an empty reply).
    pub fn choose_many<T: Clone>(
        &mut self,
        question: &str,
        choices: &[Choice<T>],
    ) -> io::Result<Vec<T>> {
        if choices.is_empty() {
            return Ok(Vec::new());
        }
        writeln!(self.output, "{question}")?;
        for (number, choice) in choices.iter().enumerate() {
            writeln!(self.output, "  {:>2}) {}", number + 1, choice.label)?;
        }
        'ask: loop {
            write!(self.output, "Choose any, comma-separated, or none [none]: ")?;
            let reply = self.reply()?;
            let mut chosen = Vec::new();
            for part in reply.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<usize>() {
                    Ok(n) if (1..=choices.len()).contains(&n) => {
                        chosen.push(choices[n - 1].value.clone());
                    }
                    _ => {
                        writeln!(self.output, "  {part:?} is not one of 1-{}", choices.len())?;
                        continue 'ask;
                    }
                }
            }
            return Ok(chosen);
        }
    }

    /// Asks for free text; an empty reply is `None`.
    pub fn text(&mut self, question: &str) -> io::Result<Option<String>> {
        write!(self.output, "{question}: ")?;
        let reply = self.reply()?;
        Ok((!reply.is_empty()).then_some(reply))
    }

    /// Asks yes or no; only `y` or `yes` is yes.
    pub fn confirm(&mut self, question: &str) -> io::Result<bool> {
        write!(self.output, "{question} [y/N]: ")?;
        let reply = self.reply()?.to_ascii_lowercase();
        Ok(reply == "y" || reply == "yes")
    }

    /// A line of information between questions.
    pub fn say(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.output, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Vec<Choice<&'static str>> {
        ["a", "b", "c"]
            .into_iter()
            .map(|v| Choice {
                value: v,
                label: format!("option {v}"),
            })
            .collect()
    }

    #[test]
    fn a_bad_reply_asks_again_and_an_empty_one_takes_the_default() {
        let mut shown = Vec::new();
        let mut prompter = Prompter::new("7\nx\n2\n\n1, 3\n\nname\nyes\n".as_bytes(), &mut shown);
        assert_eq!(prompter.choose("Which?", &choices()).unwrap(), "b");
        assert_eq!(prompter.choose("Which?", &choices()).unwrap(), "a");
        assert_eq!(
            prompter.choose_many("Any?", &choices()).unwrap(),
            ["a", "c"]
        );
        assert_eq!(prompter.text("Name").unwrap(), None);
        assert_eq!(prompter.text("Name").unwrap().as_deref(), Some("name"));
        assert!(prompter.confirm("Go?").unwrap());
        assert!(prompter.confirm("Again?").is_err(), "input ended");
        let shown = String::from_utf8(shown).unwrap();
        assert!(shown.contains("   2) option b\n"), "{shown}");
        assert!(shown.contains("\"7\" is not one of 1-3"), "{shown}");
        assert!(shown.contains("\"x\" is not one of 1-3"), "{shown}");
    }
}
