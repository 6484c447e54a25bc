//! A container's start command from the string RunPod takes (`args`). RunPod's description
//! says only "Arguments passed to the container entrypoint"; its console's start-command field
//! is written like a shell command, so the fake splits it into words as a POSIX shell does
//! (quotes and backslashes, no expansions). A real pod may split differently: the provider's
//! start command is `bash -c '<one single-quoted script>'`, which any such splitting reads alike.

/// The words of `text`, or why it has none that make sense.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("an unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("an unclosed double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("an unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn words_split_as_a_shell_splits_them() {
        assert_eq!(
            split(r#"bash -c 'echo "$X"; exit 3'"#).unwrap(),
            ["bash", "-c", r#"echo "$X"; exit 3"#]
        );
        assert_eq!(
            split(r#"a "b c" d\ e ''"#).unwrap(),
            ["a", "b c", "d e", ""]
        );
        assert_eq!(split(r#""\$x \q""#).unwrap(), [r"$x \q"]);
        assert!(split("'open").is_err());
        assert!(split("  ").unwrap().is_empty());
    }
}
