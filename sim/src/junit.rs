//! `--junit FILE`: a sweep as a JUnit XML report, one test case per seed, so CI systems (GitHub
//! Actions, GitLab, Jenkins) list failing seeds natively. A failure carries the replay command as
//! its message and the run's report as its text.
//!
//! Format: the de-facto JUnit schema CI systems read (`testsuites` > `testsuite` per scenario >
//! `testcase` with an optional `failure`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::timeline::esc;

/// One seed's result, as the report shows it.
#[derive(Clone, Debug)]
pub struct Case {
    pub scenario: String,
    pub seed: u64,
    pub wall: Duration,
    /// `None` when the seed passed; else the replay command and the full report.
    pub failure: Option<(String, String)>,
}

/// Renders `cases` (in sweep order) as JUnit XML, one `testsuite` per scenario in order of first
/// appearance.
pub fn render(cases: &[Case]) -> String {
    let mut scenarios: Vec<&str> = Vec::new();
    for c in cases {
        if !scenarios.contains(&c.scenario.as_str()) {
            scenarios.push(&c.scenario);
        }
    }
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"concord-sim\" tests=\"{}\" failures=\"{failures}\">", cases.len());
    for scenario in scenarios {
        let mine: Vec<&Case> = cases.iter().filter(|c| c.scenario == scenario).collect();
        let failed = mine.iter().filter(|c| c.failure.is_some()).count();
        let time: f64 = mine.iter().map(|c| c.wall.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" time=\"{time:.3}\">",
            esc(scenario),
            mine.len()
        );
        for c in mine {
            let head = format!(
                "    <testcase classname=\"sim.{}\" name=\"seed {}\" time=\"{:.3}\"",
                esc(&c.scenario),
                c.seed,
                c.wall.as_secs_f64()
            );
            match &c.failure {
                None => {
                    let _ = writeln!(out, "{head}/>");
                }
                Some((replay, report)) => {
                    let _ = writeln!(out, "{head}>");
                    let _ = writeln!(out, "      <failure message=\"{}\">{}</failure>", esc(replay), esc(report));
                    let _ = writeln!(out, "    </testcase>");
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_case_per_seed_with_the_replay_line_in_each_failure() {
        let cases = vec![
            Case { scenario: "bridge".into(), seed: 1, wall: Duration::from_millis(120), failure: None },
            Case {
                scenario: "bridge".into(),
                seed: 2,
                wall: Duration::from_millis(80),
                failure: Some(("cargo run -p sim -- --seed 2 --scenario bridge".into(), "read <k1> & \"x\"\u{1}".into())),
            },
            Case { scenario: "one-way".into(), seed: 1, wall: Duration::from_millis(5), failure: None },
        ];
        let xml = render(&cases);
        assert!(xml.contains("<testsuites name=\"concord-sim\" tests=\"3\" failures=\"1\">"), "{xml}");
        assert!(xml.contains("<testsuite name=\"bridge\" tests=\"2\" failures=\"1\" time=\"0.200\">"), "{xml}");
        assert!(xml.contains("<testcase classname=\"sim.bridge\" name=\"seed 1\" time=\"0.120\"/>"), "{xml}");
        assert!(xml.contains("<failure message=\"cargo run -p sim -- --seed 2 --scenario bridge\">read &lt;k1&gt; &amp; &quot;x&quot;?</failure>"), "{xml}");
        assert!(xml.contains("<testsuite name=\"one-way\" tests=\"1\" failures=\"0\""), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 3);
    }
}
