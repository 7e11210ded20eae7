//! Statements: each exercise's `README.md` has a Spanish section, an English section
//! and hints, each with some text. Sections are the README's `##` headings, recognised
//! by the words they contain (`Español`, `English`, `Pistas`/`Hints`), as every
//! exercise of the course writes them.

use super::{Aspect, Outcome};
use crate::course::Course;

/// The sections a statement needs: what the report calls each, and the words (lower
/// case) of which its heading contains one.
const SECTIONS: [(&str, &[&str]); 3] = [
    ("Spanish", &["español", "espanol"]),
    ("English", &["english"]),
    ("hints", &["pistas", "hints"]),
];

/// Checks every exercise's statement.
pub fn check(course: &Course) -> Outcome {
    let mut outcome = Outcome::new(
        Aspect::Statement,
        "README.md with Spanish, English and hints sections".to_owned(),
    );
    for exercise in &course.exercises {
        let path = course
            .root
            .join("exercises")
            .join(&exercise.name)
            .join("README.md");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for missing in missing_sections(&text) {
                    outcome.problem(&exercise.name, missing);
                }
            }
            Err(_) => outcome.problem(&exercise.name, "no README.md"),
        }
    }
    outcome
}

/// What the statement `text` lacks, one sentence per missing or empty section.
pub fn missing_sections(text: &str) -> Vec<String> {
    let sections = sections(text);
    SECTIONS
        .iter()
        .filter_map(|(what, words)| {
            let found = sections.iter().find(|(heading, _)| {
                let heading = heading.to_lowercase();
                words.iter().any(|w| heading.contains(w))
            });
            match found {
                None => Some(format!(
                    "README.md has no {what} section (a `## ` heading naming it)"
                )),
                Some((heading, body)) if body.trim().is_empty() => {
                    Some(format!("README.md section `## {heading}` is empty"))
                }
                Some(_) => None,
            }
        })
        .collect()
}

/// The `## ` sections of a Markdown text: heading and body (up to the next `## `
/// heading or the end), ignoring headings inside fenced code blocks.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        match line.strip_prefix("## ") {
            Some(heading) if !in_code => sections.push((heading.trim().to_owned(), String::new())),
            _ => {
                if let Some((_, body)) = sections.last_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::missing_sections;

    #[test]
    fn a_statement_with_all_sections_lacks_nothing() {
        let text = "# t\n## Español\nhola\n## English\nhi\n## Pistas / Hints\n1. x\n";
        assert!(missing_sections(text).is_empty());
    }

    #[test]
    fn missing_and_empty_sections_are_named() {
        let text = "# t\n## Español\nhola\n```\n## English\n```\n## Hints\n\n";
        let missing = missing_sections(text);
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing[0].contains("no English section"));
        assert!(missing[1].contains("`## Hints` is empty"));
    }
}
