//! The report: one line per check, then a summary.

use std::fmt;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What Replicate needs holds.
    Ok,
    /// It works here but not for Replicate, or it cannot be told from outside.
    Warn,
    /// A webhook would not arrive, or would not be handled.
    Fail,
    /// Not checked, because of an earlier failure or a missing `--secret`.
    Skip,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// How it came out.
    pub level: Level,
    /// What was checked: `url`, `dns`, `reachable`, `tcp`, `https`, `tls`, `redirect`,
    /// `signature`, `delivery <event>`, `replay`, `response time`.
    pub name: String,
    /// What was seen and, for a warning or failure, the fix.
    pub message: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4} {}: {}",
            self.level.as_str(),
            self.name,
            self.message
        )
    }
}

/// Every check, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The lines.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (warnings pass).
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.level == Level::Fail)
    }

    /// The check named `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub(super) fn push(&mut self, level: Level, name: &str, message: impl Into<String>) {
        self.checks.push(Check {
            level,
            name: name.to_owned(),
            message: message.into(),
        });
    }

    fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        let warnings = self.count(Level::Warn);
        write!(
            f,
            "doctor: {} ok, {warnings} warning{}, {} failed, {} skipped",
            self.count(Level::Ok),
            if warnings == 1 { "" } else { "s" },
            self.count(Level::Fail),
            self.count(Level::Skip)
        )
    }
}
