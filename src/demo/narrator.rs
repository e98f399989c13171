//! How the walkthrough speaks: numbered steps, the command a person would type (and its real output),
//! and the checks it makes, which become the summary.

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use anyhow::bail;

use super::stage::{Persona, Stage};

/// How long one step may wait for the operator or Azure.
pub const STEP_DEADLINE: Duration = Duration::from_secs(90);

#[derive(Default)]
pub struct Narrator {
    step: u32,
    checks: Vec<(String, bool)>,
}

impl Narrator {
    pub fn step(&mut self, title: &str, why: &str) {
        self.step += 1;
        println!("\n━━ {}. {title}", self.step);
        for line in textwrap(why, 100) {
            println!("   {line}");
        }
    }

    pub fn say(&self, text: &str) {
        for line in textwrap(text, 100) {
            println!("   {line}");
        }
    }

    /// Prints a command line as `persona` would type it.
    pub fn typed(&self, persona: Persona, command: &str) {
        println!("\n   {} $ {command}", persona.user.name);
    }

    pub fn output(&self, text: &str) {
        for line in text.trim_end().lines() {
            println!("     {line}");
        }
    }

    /// Records a check for the summary; a failed check fails the walkthrough at the end.
    pub fn check(&mut self, what: &str, ok: bool) {
        println!("   {} {what}", if ok { "✔" } else { "✘" });
        self.checks.push((what.to_string(), ok));
    }

    /// Runs `kubectl args` as `persona`, printing the command (without the demo's own flags) and its output.
    pub async fn kubectl(&self, stage: &Stage<'_>, persona: Persona, args: &[&str]) -> anyhow::Result<String> {
        self.typed(persona, &format!("kubectl {}", shell_words(args)));
        let output = stage.kubectl(persona).args(args).output().await?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        self.output(&text);
        if !output.status.success() {
            bail!(
                "`kubectl {}` as {} failed ({})",
                args.join(" "),
                persona.user.name,
                output.status
            );
        }
        Ok(text)
    }

    /// Shows a manifest, then applies it as `persona`.
    pub async fn apply(&self, stage: &Stage<'_>, persona: Persona, file: &str, yaml: &str) -> anyhow::Result<()> {
        let path = stage.manifest(file, yaml)?;
        println!("\n   {file}:");
        self.output(yaml);
        self.typed(persona, &format!("kubectl apply -f {file}"));
        let output = stage
            .kubectl(persona)
            .arg("apply")
            .arg("-f")
            .arg(&path)
            .output()
            .await?;
        self.output(&String::from_utf8_lossy(&output.stdout));
        self.output(&String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            bail!("applying {file} as {} failed ({})", persona.user.name, output.status);
        }
        Ok(())
    }

    /// Prints the summary; an error when a check failed.
    pub fn summary(&self) -> anyhow::Result<()> {
        let passed = self.checks.iter().filter(|(_, ok)| *ok).count();
        println!("\n━━ Summary");
        for (what, ok) in &self.checks {
            println!("   {} {what}", if *ok { "✔" } else { "✘" });
        }
        if passed == self.checks.len() {
            println!("\n   All {passed} checks passed.");
            Ok(())
        } else {
            bail!("{} of {} checks failed", self.checks.len() - passed, self.checks.len())
        }
    }
}

/// Polls `probe` until it returns `Some`, for at most [`STEP_DEADLINE`]; the error names `what`.
pub async fn until<T, F: Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + STEP_DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {STEP_DEADLINE:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Arguments as a person would type them: quoted when they hold spaces or shell characters.
fn shell_words(args: &[&str]) -> String {
    let mut line = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        if arg.chars().any(|c| c.is_whitespace() || "'\"{}$*;&|<>()".contains(c)) {
            let _ = write!(line, "'{}'", arg.replace('\'', r"'\''"));
        } else {
            line.push_str(arg);
        }
    }
    line
}

/// Greedy word wrap for the narration.
fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_with_spaces_or_shell_characters_are_quoted() {
        assert_eq!(
            shell_words(&["mua", "request", "--justification", "it's a test"]),
            r"mua request --justification 'it'\''s a test'"
        );
        assert_eq!(shell_words(&["-p", r#"{"a":1}"#]), r#"-p '{"a":1}'"#);
    }

    #[test]
    fn narration_wraps_at_word_boundaries() {
        assert_eq!(textwrap("one two three", 7), ["one two", "three"]);
    }
}
