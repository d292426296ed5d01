//! Everything the user sees. Progress and diagnostics go to stderr; stdout carries only
//! results (outputs, plans, `--json`). Only this crate prints.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use provision_core::event::{Event, EventSink, Outcome};
use provision_core::plan::{Action, Change, Plan};
use provision_core::wait::human;
use serde_json::Value;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Printer {
    verbosity: Verbosity,
    color: bool,
    start: Instant,
    lock: Mutex<()>,
}

/// Whether to colour output written to a stream: only on a terminal, and never with `NO_COLOR`.
pub fn use_color(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn magenta(&self, s: &str) -> String {
        self.paint("35", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace => "±",
        Action::Delete => "-",
        Action::Wait => "…",
        Action::Adopt => "=",
        Action::Noop => " ",
    }
}

impl Printer {
    pub fn new(verbosity: Verbosity) -> Self {
        Printer {
            verbosity,
            color: use_color(std::io::stderr().is_terminal()),
            start: Instant::now(),
            lock: Mutex::new(()),
        }
    }

    fn style(&self) -> Style {
        Style { on: self.color }
    }

    fn line(&self, text: &str) {
        let _guard = self.lock.lock();
        let stamp = self
            .style()
            .dim(&format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64()));
        eprintln!("{stamp} {text}");
    }

    /// A message that always shows (unless quiet).
    pub fn info(&self, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            let _guard = self.lock.lock();
            eprintln!("{text}");
        }
    }

    pub fn warn(&self, text: &str) {
        let _guard = self.lock.lock();
        eprintln!("{} {text}", self.style().yellow("warning:"));
    }

    pub fn summary(&self, verb: &str, s: &provision_core::engine::Summary) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (s.created, "created"),
            (s.updated, "updated"),
            (s.replaced, "replaced"),
            (s.adopted, "recorded"),
            (s.deleted, "deleted"),
            (s.unchanged, "unchanged"),
            (s.failed, "failed"),
            (s.skipped, "skipped"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if parts.is_empty() {
            parts.push("nothing to do".into());
        }
        self.info(&format!(
            "{verb} in {}: {}.",
            human(s.elapsed),
            parts.join(", ")
        ));
    }
}

impl EventSink for Printer {
    fn emit(&self, event: Event) {
        let st = self.style();
        match event {
            Event::Started {
                id,
                noun,
                action,
                name,
            } => {
                if self.verbosity == Verbosity::Quiet || action == Action::Noop {
                    return;
                }
                let verb = match action {
                    Action::Create => "creating",
                    Action::Update => "updating",
                    Action::Replace => "replacing",
                    Action::Delete => "deleting",
                    Action::Wait => "waiting for",
                    Action::Adopt => "recording",
                    Action::Noop => "keeping",
                };
                let name = name.map(|n| format!(" {n}")).unwrap_or_default();
                self.line(&format!("{} {id}: {verb} {noun}{name}", symbol(action)));
            }
            Event::Progress { id, message } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(&st.dim(&format!("  {id}: {message}")));
                }
            }
            Event::Blocked { id, on } => {
                if self.verbosity == Verbosity::Verbose {
                    self.line(&st.dim(&format!("  {id}: waiting for {on}")));
                }
            }
            Event::Finished {
                id,
                outcome,
                elapsed,
            } => {
                let took = if elapsed > Duration::from_millis(500) {
                    format!(" ({})", human(elapsed))
                } else {
                    String::new()
                };
                match outcome {
                    Outcome::Unchanged if self.verbosity != Verbosity::Verbose => {}
                    Outcome::Failed(message) => self.line(&format!(
                        "{} {id}: {}",
                        st.red("✗"),
                        st.red(&format!("failed: {message}"))
                    )),
                    Outcome::Skipped(reason) => {
                        if self.verbosity != Verbosity::Quiet {
                            self.line(&st.yellow(&format!("- {id}: skipped: {reason}")));
                        }
                    }
                    other => {
                        if self.verbosity != Verbosity::Quiet {
                            let word = match other {
                                Outcome::Created => "created",
                                Outcome::Updated => "updated",
                                Outcome::Replaced => "replaced",
                                Outcome::Unchanged => "unchanged",
                                Outcome::Adopted => "recorded",
                                Outcome::Deleted => "deleted",
                                _ => "done",
                            };
                            self.line(&format!("{} {id}: {word}{took}", st.green("✓")));
                        }
                    }
                }
            }
            Event::Warning { id, message } => {
                let at = id.map(|i| format!("{i}: ")).unwrap_or_default();
                self.warn(&format!("{at}{message}"));
            }
        }
    }
}

fn value(v: &Option<Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

fn change_line(c: &Change, st: &Style) -> String {
    let new = match &c.new {
        None => "(known after apply)".to_string(),
        some => value(some),
    };
    let forces = if c.forces_replacement {
        st.magenta("  (forces replacement)")
    } else {
        String::new()
    };
    match &c.old {
        None => format!("      {}: {}{forces}", c.setting, st.green(&new)),
        old => format!(
            "      {}: {} -> {}{forces}",
            c.setting,
            st.red(&value(old)),
            st.green(&new)
        ),
    }
}

/// Renders a plan for people: each resource to change, and for updates each setting, old to
/// new. Resources that stay as they are are counted, not listed (unless `verbose`).
pub fn render_plan(
    plan: &Plan,
    heading: &str,
    color: bool,
    verbose: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let st = Style { on: color };
    writeln!(out, "{}", st.bold(heading))?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for step in &plan.steps {
        let word = match step.action {
            Action::Create => "to create",
            Action::Update => "to update",
            Action::Replace => "to replace",
            Action::Delete => "to delete",
            Action::Wait => "to wait for",
            Action::Adopt => "to record",
            Action::Noop => "unchanged",
        };
        *counts.entry(word).or_default() += 1;
        if step.action == Action::Noop && !verbose {
            continue;
        }
        let sym = symbol(step.action);
        let painted = match step.action {
            Action::Create | Action::Adopt => st.green(sym),
            Action::Update | Action::Wait => st.yellow(sym),
            Action::Replace => st.magenta(sym),
            Action::Delete => st.red(sym),
            Action::Noop => sym.to_string(),
        };
        let ident = match (&step.name, &step.physical_id) {
            (_, Some(p)) => format!(" {}", st.dim(p)),
            (Some(n), None) => format!(" {}", st.dim(n)),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {painted} {:<8} {} {}{ident}",
            step.action.verb(),
            step.noun,
            step.id
        )?;
        if let Some(reason) = &step.reason {
            writeln!(out, "      {}", st.dim(reason))?;
        }
        if step.action != Action::Create || verbose {
            for c in &step.changes {
                writeln!(out, "{}", change_line(c, &st))?;
            }
        }
    }
    let order = [
        "to create",
        "to update",
        "to replace",
        "to delete",
        "to wait for",
        "to record",
        "unchanged",
    ];
    let summary: Vec<String> = order
        .iter()
        .filter_map(|w| counts.get(w).map(|n| format!("{n} {w}")))
        .collect();
    if summary.is_empty() {
        writeln!(out, "  nothing recorded and nothing to create")?;
    } else {
        writeln!(out, "  {}.", summary.join(", "))?;
    }
    Ok(())
}

/// Prints outputs on stdout: `key = value` lines, or one JSON object.
pub fn print_outputs(outputs: &BTreeMap<String, Value>, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(outputs).unwrap_or_default()
        );
        return;
    }
    for (k, v) in outputs {
        match v {
            Value::String(s) => println!("{k} = {s}"),
            other => println!("{k} = {other}"),
        }
    }
}

/// Prints a JSON document on stdout.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Prints text on stdout.
pub fn print_text(s: &str) {
    print!("{s}");
    let _ = std::io::stdout().flush();
}
