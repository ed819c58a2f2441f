//! The results table: printed as the run goes, written to bench/results.md.

use std::fmt::Write as _;
use std::path::Path;

/// One figure: our number next to its baseline from the same run.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub ours: f64,
    pub baseline: Option<f64>,
    pub unit: &'static str,
    /// `ours / baseline` compared against this; `None` when the target is
    /// an absolute bound stated in `target`.
    pub target: String,
    /// Whether the target was met (`None`: no target).
    pub met: Option<bool>,
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.filter(|b| *b != 0.0).map(|b| self.ours / b)
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn print(row: &Row) {
    let ratio = row.ratio().map_or("-".into(), |r| format!("{r:.2}"));
    let base = row.baseline.map_or("-".into(), num);
    let verdict = match row.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    };
    println!(
        "{:<58} ours {:>10} {:<6} baseline {:>10}  ratio {:>6}  target {} {}",
        row.figure,
        num(row.ours),
        row.unit,
        base,
        ratio,
        row.target,
        verdict
    );
}

/// Renders the table as Markdown.
pub fn markdown(rows: &[Row], machine: &str, date: &str, mode: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Mode: {mode}. Each figure is ours next to its baseline measured in the same run; \
         ratio = ours / baseline. Regenerate with the commands in the README.\n"
    );
    let _ = writeln!(
        s,
        "| figure | ours | baseline | ratio | target | met | machine | date |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} {} | {} | {} | {} | {} | {} | {} |",
            r.figure,
            num(r.ours),
            r.unit,
            r.baseline
                .map_or("-".into(), |b| format!("{} {}", num(b), r.unit)),
            r.ratio().map_or("-".into(), |x| format!("{x:.2}")),
            r.target,
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            },
            machine,
            date
        );
    }
    s
}

/// The one heading of the results file.
const TITLE: &str = "# Benchmark results";

/// Replaces the section of `path` between the markers for this suite, so
/// the root-free and the namespace suites can write one file.
pub fn write_section(path: &Path, suite: &str, body: &str) -> std::io::Result<()> {
    let begin = format!("<!-- begin {suite} -->");
    let end = format!("<!-- end {suite} -->");
    let mut old = std::fs::read_to_string(path).unwrap_or_default();
    if !old.starts_with(TITLE) {
        old = format!("{TITLE}\n\n{old}");
    }
    let section = format!("{begin}\n## `fip-bench {suite}`\n\n{body}{end}\n");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!(
            "{}{}{}",
            &old[..b],
            section,
            &old[e + end.len()..].trim_start_matches('\n')
        ),
        _ => format!("{old}{}{section}", if old.is_empty() { "" } else { "\n" }),
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("fip-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.md");
        write_section(&p, "a", "one\n").unwrap();
        write_section(&p, "b", "two\n").unwrap();
        write_section(&p, "a", "three\n").unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(
            s.contains("three") && s.contains("two") && !s.contains("one"),
            "{s}"
        );
        assert_eq!(s.matches(TITLE).count(), 1, "one title: {s}");
        assert!(
            s.starts_with(TITLE) && s.contains("## `fip-bench b`"),
            "{s}"
        );
        assert!(
            s.find("three").unwrap() < s.find("two").unwrap(),
            "order kept"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ratio_is_ours_over_baseline() {
        let r = Row {
            figure: "x".into(),
            ours: 50.0,
            baseline: Some(100.0),
            unit: "op/s",
            target: "≥ 0.5".into(),
            met: Some(true),
        };
        assert_eq!(r.ratio(), Some(0.5));
        assert!(markdown(&[r], "m", "d", "quick").contains("| x | 50.0 op/s | 100 op/s | 0.50 |"));
    }
}
