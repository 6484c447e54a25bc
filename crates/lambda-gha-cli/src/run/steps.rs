//! What a run runs on the machine: project scripts by their kind, shell commands, and the
//! setup a Python project needs.

use std::path::PathBuf;

use crate::project::Project;
use crate::transport::shell_quote;

/// One thing to run in the project directory on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A project file: `.py` runs with `uv run`, `.sh` with bash, anything else executable
    /// as itself.
    Script(PathBuf),
    /// A shell command line.
    Command(String),
}

impl Step {
    /// Checks that `script` is a file of `project` (not ignored) that `run` knows how to run.
    pub fn script(project: &Project, script: &str) -> Result<Step, String> {
        let path = PathBuf::from(script.trim_start_matches("./"));
        if path.is_absolute() {
            return Err(format!(
                "{script}: name the script by its path inside the project ({})",
                project.root().display()
            ));
        }
        if !project.contains(&path) {
            return Err(if project.root().join(&path).exists() {
                format!(
                    "{script} is ignored (.gitignore or .ignore), so it would not be uploaded: un-ignore it or use --cmd"
                )
            } else {
                format!(
                    "{script} is not in the project {}: give a path inside it, or --project DIR",
                    project.root().display()
                )
            });
        }
        let known = matches!(path.extension().and_then(|e| e.to_str()), Some("py" | "sh"));
        let executable = project
            .files
            .iter()
            .any(|f| f.path == path && f.mode & 0o111 != 0);
        if !known && !executable {
            return Err(format!(
                "{script}: cannot tell how to run it: use a .py or .sh file, make it executable, or use --cmd"
            ));
        }
        Ok(Step::Script(path))
    }

    /// The shell command on the machine, run from the project directory.
    pub fn shell(&self) -> String {
        match self {
            Step::Script(path) => {
                let quoted = shell_quote(&path.display().to_string());
                match path.extension().and_then(|e| e.to_str()) {
                    Some("py") => format!("uv run {quoted}"),
                    Some("sh") => format!("bash {quoted}"),
                    _ => format!("./{quoted}"),
                }
            }
            Step::Command(line) => line.clone(),
        }
    }

    pub(super) fn needs_uv(&self) -> bool {
        matches!(self, Step::Script(p) if p.extension().is_some_and(|e| e == "py"))
    }
}

/// Installs uv for the login user unless it is there.
pub(super) const ENSURE_UV: &str = "export PATH=\"$HOME/.local/bin:$PATH\" && \
    { command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh; }";

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, u32)]) -> (PathBuf, Project) {
        let root = std::env::temp_dir().join(format!("lambda-gha-steps-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join(".gitignore"), "out/\n").expect("write");
        for (name, mode) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "x").expect("write");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(*mode))
                .expect("chmod");
        }
        let scanned = Project::scan(&root).expect("scan");
        (root, scanned)
    }

    #[test]
    fn steps_say_how_they_run_and_refuse_what_cannot_run() {
        let (root, p) = project(&[
            ("train.py", 0o644),
            ("setup.sh", 0o644),
            ("bin/go", 0o755),
            ("notes.txt", 0o644),
            ("out/x.py", 0o644),
        ]);
        assert_eq!(
            Step::script(&p, "train.py").expect("py").shell(),
            "uv run train.py"
        );
        assert_eq!(
            Step::script(&p, "./setup.sh").expect("sh").shell(),
            "bash setup.sh"
        );
        assert_eq!(Step::script(&p, "bin/go").expect("exe").shell(), "./bin/go");
        let unknown = Step::script(&p, "notes.txt").expect_err("txt");
        assert!(unknown.contains("use a .py or .sh file"), "{unknown}");
        let ignored = Step::script(&p, "out/x.py").expect_err("ignored");
        assert!(ignored.contains("is ignored"), "{ignored}");
        let missing = Step::script(&p, "nope.py").expect_err("missing");
        assert!(missing.contains("is not in the project"), "{missing}");
        assert_eq!(Step::Command("nvidia-smi".into()).shell(), "nvidia-smi");
        std::fs::remove_dir_all(root).expect("cleanup");
    }
}
