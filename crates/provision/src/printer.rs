//! Everything the user sees. Progress and diagnostics go to stderr; stdout carries only
//! results (outputs, plans, `--json`). Only this crate prints.
//!
//! On a terminal, progress is live: finished resources scroll up as permanent lines, and a
//! block at the bottom shows what is in flight, each with a spinner, its state and how long it
//! has taken. Elsewhere (CI, pipes, files) every change is one timestamped line.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provision_core::event::{Event, EventSink, Outcome};
use provision_core::plan::{Action, Change, Plan};
use provision_core::resource::LogicalId;
use provision_core::wait::human;
use serde_json::Value;

/// How much progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// How progress is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One line per change, with the time since the start.
    Plain,
    /// A live block of what is in flight, redrawn in place (terminals only).
    Live,
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
    fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
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

fn present(action: Action) -> &'static str {
    match action {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Replace => "replacing",
        Action::Delete => "deleting",
        Action::Wait => "waiting for",
        Action::Adopt => "recording",
        Action::Noop => "checking",
    }
}

fn past(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Replaced => "replaced",
        Outcome::Unchanged => "unchanged",
        Outcome::Adopted => "recorded",
        Outcome::Deleted => "deleted",
        Outcome::Failed(_) => "failed",
        Outcome::Skipped(_) => "skipped",
    }
}

/// Something in flight, as the live block shows it.
struct Activity {
    action: Action,
    noun: String,
    name: Option<String>,
    status: Option<String>,
    since: Instant,
}

struct Screen {
    out: Box<dyn Write + Send>,
    active: BTreeMap<LogicalId, Activity>,
    /// Lines of the live block currently on screen.
    drawn: usize,
    tick: usize,
}

pub struct Printer {
    verbosity: Verbosity,
    mode: Mode,
    color: bool,
    timestamps: bool,
    start: Instant,
    screen: Mutex<Screen>,
    ticking: AtomicBool,
}

const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Printer {
    /// A printer on stderr: live on a terminal, plain lines elsewhere.
    pub fn stderr(verbosity: Verbosity) -> Arc<Printer> {
        let terminal = std::io::stderr().is_terminal();
        let live = terminal
            && verbosity != Verbosity::Quiet
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let printer = Arc::new(Printer::new(
            Box::new(std::io::stderr()),
            verbosity,
            if live { Mode::Live } else { Mode::Plain },
            use_color(terminal),
            true,
        ));
        if live {
            Printer::start_ticking(&printer);
        }
        printer
    }

    /// A printer on any writer (tests, snapshots).
    pub fn new(
        out: Box<dyn Write + Send>,
        verbosity: Verbosity,
        mode: Mode,
        color: bool,
        timestamps: bool,
    ) -> Printer {
        Printer {
            verbosity,
            mode,
            color,
            timestamps,
            start: Instant::now(),
            screen: Mutex::new(Screen {
                out,
                active: BTreeMap::new(),
                drawn: 0,
                tick: 0,
            }),
            ticking: AtomicBool::new(false),
        }
    }

    /// Redraws the live block a few times a second, so spinners and timers move while AWS
    /// makes us wait.
    fn start_ticking(printer: &Arc<Printer>) {
        printer.ticking.store(true, Ordering::SeqCst);
        let weak = Arc::downgrade(printer);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(120));
                let Some(p) = weak.upgrade() else { break };
                if !p.ticking.load(Ordering::SeqCst) {
                    break;
                }
                p.with_screen(|screen, p| {
                    screen.tick = screen.tick.wrapping_add(1);
                    p.redraw(screen);
                });
            }
        });
    }

    /// Clears the live block for good (before the final summary and results).
    pub fn finish(&self) {
        self.ticking.store(false, Ordering::SeqCst);
        self.with_screen(|screen, p| {
            p.clear(screen);
            screen.active.clear();
        });
    }

    fn style(&self) -> Style {
        Style { on: self.color }
    }

    fn with_screen(&self, f: impl FnOnce(&mut Screen, &Printer)) {
        let mut guard = match self.screen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard, self);
        let _ = guard.out.flush();
    }

    fn clear(&self, screen: &mut Screen) {
        if screen.drawn > 0 {
            let _ = write!(screen.out, "\x1b[{}A\x1b[J", screen.drawn);
            screen.drawn = 0;
        }
    }

    fn redraw(&self, screen: &mut Screen) {
        if self.mode != Mode::Live {
            return;
        }
        self.clear(screen);
        let st = self.style();
        let width = terminal_width();
        let spinner = SPINNER[screen.tick % SPINNER.len()];
        let mut lines = Vec::new();
        for (id, a) in &screen.active {
            let name = a
                .name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            let status = a
                .status
                .as_deref()
                .map(|s| format!(" — {s}"))
                .unwrap_or_default();
            let line = format!(
                "{} {} {} {}{name}{status}",
                st.cyan(spinner),
                st.dim(&format!("{:>7}", human(a.since.elapsed()))),
                id,
                present(a.action).to_string() + " " + &a.noun,
            );
            lines.push(truncate(&line, width));
        }
        // Keep the block to a screenful; the rest is summarised.
        let max = 12;
        if lines.len() > max {
            let more = lines.len() - (max - 1);
            lines.truncate(max - 1);
            lines.push(st.dim(&format!("  … and {more} more in flight")));
        }
        for l in &lines {
            let _ = writeln!(screen.out, "{l}");
        }
        screen.drawn = lines.len();
    }

    /// Prints a permanent line (above the live block, if any).
    fn line(&self, text: &str) {
        self.with_screen(|screen, p| {
            p.clear(screen);
            if p.timestamps && p.mode == Mode::Plain {
                let stamp = p
                    .style()
                    .dim(&format!("[{:>6.1}s]", p.start.elapsed().as_secs_f64()));
                let _ = writeln!(screen.out, "{stamp} {text}");
            } else {
                let _ = writeln!(screen.out, "{text}");
            }
            p.redraw(screen);
        });
    }

    /// A message that always shows (unless quiet).
    pub fn info(&self, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.with_screen(|screen, p| {
                p.clear(screen);
                let _ = writeln!(screen.out, "{text}");
                p.redraw(screen);
            });
        }
    }

    pub fn warn(&self, text: &str) {
        let label = self.style().yellow("warning:");
        self.with_screen(|screen, p| {
            p.clear(screen);
            let _ = writeln!(screen.out, "{label} {text}");
            p.redraw(screen);
        });
    }

    pub fn summary(&self, verb: &str, s: &provision_core::engine::Summary) {
        self.finish();
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
        // The whole command's time, as the user waited it (and as the timestamps count it),
        // not only the engine's part of it.
        self.info(&format!(
            "{verb} in {}: {}.",
            human(self.start.elapsed()),
            parts.join(", ")
        ));
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Cuts a line to `width` visible characters (escape sequences do not count).
fn truncate(line: &str, width: usize) -> String {
    let mut out = String::new();
    let mut visible = 0;
    let mut in_escape = false;
    for c in line.chars() {
        if c == '\x1b' {
            in_escape = true;
        }
        if in_escape {
            out.push(c);
            if c == 'm' {
                in_escape = false;
            }
            continue;
        }
        if visible + 1 >= width {
            out.push('…');
            out.push_str("\x1b[0m");
            return out;
        }
        out.push(c);
        visible += 1;
    }
    out
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
                match self.mode {
                    Mode::Live => self.with_screen(|screen, p| {
                        screen.active.insert(
                            id,
                            Activity {
                                action,
                                noun,
                                name,
                                status: None,
                                since: Instant::now(),
                            },
                        );
                        p.redraw(screen);
                    }),
                    Mode::Plain => {
                        let name = name.map(|n| format!(" {n}")).unwrap_or_default();
                        self.line(&format!(
                            "{} {id}: {} {noun}{name}",
                            symbol(action),
                            present(action)
                        ));
                    }
                }
            }
            Event::Progress { id, message } => {
                if self.verbosity == Verbosity::Quiet {
                    return;
                }
                match self.mode {
                    Mode::Live => self.with_screen(|screen, p| {
                        if let Some(a) = screen.active.get_mut(&id) {
                            a.status = Some(message);
                        }
                        p.redraw(screen);
                    }),
                    Mode::Plain => self.line(&st.dim(&format!("  {id}: {message}"))),
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
                if self.mode == Mode::Live {
                    self.with_screen(|screen, _| {
                        screen.active.remove(&id);
                    });
                }
                let took = if elapsed >= Duration::from_millis(500) {
                    format!(" ({})", human(elapsed))
                } else {
                    String::new()
                };
                match &outcome {
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
                            self.line(&format!("{} {id}: {}{took}", st.green("✓"), past(other)));
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

/// The lines of one changed setting. Objects are compared key by key, so a changed
/// environment variable reads `environment.APP_TITLE: "Old" -> "New"`, not two whole maps.
fn change_lines(c: &Change, st: &Style) -> Vec<String> {
    let forces = if c.forces_replacement {
        st.magenta("  (forces replacement)")
    } else {
        String::new()
    };
    let mut lines = Vec::new();
    diff_values(
        &c.setting,
        c.old.as_ref(),
        c.new.as_ref(),
        &forces,
        st,
        &mut lines,
    );
    lines
}

fn diff_values(
    path: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    forces: &str,
    st: &Style,
    out: &mut Vec<String>,
) {
    if let (Some(Value::Object(a)), Some(Value::Object(b))) = (old, new) {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            let (x, y) = (a.get(k), b.get(k));
            if x != y {
                diff_values(&format!("{path}.{k}"), x, y, forces, st, out);
            }
        }
        return;
    }
    let new_text = match new {
        None if old.is_some() => "(removed)".to_string(),
        None => "(known after apply)".to_string(),
        Some(v) => value(&Some(v.clone())),
    };
    out.push(match old {
        None => format!("      {path}: {}{forces}", st.green(&new_text)),
        Some(o) => format!(
            "      {path}: {} -> {}{forces}",
            st.red(&value(&Some(o.clone()))),
            st.green(&new_text)
        ),
    });
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
                for line in change_lines(c, &st) {
                    writeln!(out, "{line}")?;
                }
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

/// Writing the result to stdout failed. A closed pipe (`provision outputs --json | head -c
/// 10`) is not an error: the reader has what it wanted, and the run ends with 0, as ripgrep's
/// does. `main` decides.
#[derive(Debug)]
pub struct StdoutError(pub std::io::Error);

impl StdoutError {
    /// The reader went away (the pipe is closed).
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes to stdout, all of it or an error: every stdout write goes through here.
fn write_stdout(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Prints outputs on stdout: `key = value` lines, or one JSON object.
pub fn print_outputs(outputs: &BTreeMap<String, Value>, json: bool) -> Result<(), StdoutError> {
    let mut text = String::new();
    if json {
        text = serde_json::to_string_pretty(outputs).unwrap_or_default();
        text.push('\n');
    } else {
        for (k, v) in outputs {
            match v {
                Value::String(s) => text.push_str(&format!("{k} = {s}\n")),
                other => text.push_str(&format!("{k} = {other}\n")),
            }
        }
    }
    write_stdout(text.as_bytes())
}

/// Prints a JSON document on stdout.
pub fn print_json(v: &Value) -> Result<(), StdoutError> {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_default();
    text.push('\n');
    write_stdout(text.as_bytes())
}

/// Prints text on stdout.
pub fn print_text(s: &str) -> Result<(), StdoutError> {
    write_stdout(s.as_bytes())
}

/// Reports the error a run ends with on stderr, naming the debug log of the run.
pub fn report(mut failure: crate::run::Failure, log: Option<&std::path::Path>) {
    if let Some(path) = log {
        let line = format!("the debug log of this run is at {}", path.display());
        failure.hint = Some(match failure.hint.take() {
            Some(hint) => format!("{hint}\n{line}"),
            None => line,
        });
    }
    let report = format!("{:?}\n", miette::Report::new(failure));
    // stderr may be closed too; then there is nobody left to tell.
    let _ = std::io::stderr().lock().write_all(report.as_bytes());
}
