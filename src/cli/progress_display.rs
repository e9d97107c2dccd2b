//! Rendering progress for people: on a terminal the current step is one line rewritten in
//! place (`\r` + erase line) and finished steps stay as lines; anywhere else (a pipe, a log
//! file, `NO_COLOR`, `TERM=dumb`, `--verbose`) one plain line per event, with waits thinned
//! out so a poll every 50 ms does not flood the log.
//!
//! Owns: the choice of mode, the escape sequences, the certificate-name prefix when several
//! certificates are in flight, and the lock that keeps concurrent writers from interleaving
//! half lines. Does not own the wording of events (the workflow's) or the final summary.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::deploy::DeployProgress;
use crate::progress::{Progress, Stage, Waiting, human_duration};

/// Carriage return plus "erase the whole line" (ECMA-48 EL 2).
pub const CLEAR_LINE: &str = "\r\x1b[2K";

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The current step rewritten in place (a terminal).
    Live,
    /// One plain line per event, no escape sequences.
    Lines,
    /// Nothing (`--quiet`).
    Silent,
}

impl Mode {
    /// The mode for this process: `Live` only when stdout and stderr are terminals, colour is
    /// allowed (`NO_COLOR` unset or empty), `TERM` is not `dumb` and `--verbose` is off (log
    /// lines would tear the rewritten line).
    pub fn detect(quiet: bool, verbose: u8) -> Mode {
        if quiet {
            return Mode::Silent;
        }
        let tty = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if tty && !no_color && !dumb && verbose == 0 {
            Mode::Live
        } else {
            Mode::Lines
        }
    }
}

enum Kind {
    Update,
    Wait(String),
    Done,
}

struct State {
    out: Box<dyn Write + Send>,
    /// A live line is on screen without its newline.
    transient: bool,
    /// Lines mode: when each wait (by key) was last printed.
    waits: HashMap<String, Instant>,
}

/// The shared renderer; cheap to clone through `Arc`, safe to use from several tasks.
pub struct Renderer {
    mode: Mode,
    colour: bool,
    width: usize,
    in_flight: AtomicUsize,
    state: Mutex<State>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("mode", &self.mode)
            .finish()
    }
}

static SHARED: std::sync::OnceLock<Arc<Renderer>> = std::sync::OnceLock::new();

/// Ends the shared renderer's live line, if there is one (before an error or warning).
pub fn clear_shared() {
    if let Some(r) = SHARED.get() {
        r.clear();
    }
}

/// The width of the rewritten line: `COLUMNS` when set, else the terminal's own width, else
/// 100 (narrower than 20 is not believed).
pub fn line_width(columns: Option<&str>, tty_columns: Option<u16>) -> usize {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w >= 20)
        .or(tty_columns.map(usize::from).filter(|w| *w >= 20))
        .unwrap_or(100)
}

/// How often the same wait is repeated in `Lines` mode.
const LINES_WAIT_EVERY: Duration = Duration::from_secs(10);

impl Renderer {
    /// A renderer writing to stderr in the detected mode.
    pub fn for_cli(quiet: bool, verbose: u8) -> Arc<Renderer> {
        let mode = Mode::detect(quiet, verbose);
        let tty_columns = rustix::termios::tcgetwinsize(std::io::stderr())
            .ok()
            .map(|w| w.ws_col);
        let width = line_width(std::env::var("COLUMNS").ok().as_deref(), tty_columns);
        Arc::new(Renderer::new(mode, Box::new(std::io::stderr()), width))
    }

    /// The process-wide renderer (created on first use with these flags), so that every
    /// certificate renewed concurrently shares one lock and one in-flight count.
    pub fn shared(quiet: bool, verbose: u8) -> Arc<Renderer> {
        Arc::clone(SHARED.get_or_init(|| Renderer::for_cli(quiet, verbose)))
    }

    /// A renderer writing to `out` (tests use a buffer).
    pub fn new(mode: Mode, out: Box<dyn Write + Send>, width: usize) -> Renderer {
        Renderer {
            mode,
            colour: mode == Mode::Live,
            width,
            in_flight: AtomicUsize::new(0),
            state: Mutex::new(State {
                out,
                transient: false,
                waits: HashMap::new(),
            }),
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Progress of one certificate; while it lives it counts as in flight, and when more
    /// than one is, every line starts with the certificate's name.
    pub fn certificate(self: &Arc<Self>, name: &str) -> CertProgress {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        CertProgress {
            renderer: Arc::clone(self),
            name: name.to_string(),
            current: Mutex::new(None),
        }
    }

    /// Removes a live line from the screen (before printing anything else there).
    pub fn clear(&self) {
        if let Ok(mut st) = self.state.lock()
            && st.transient
        {
            let _ = st.out.write_all(CLEAR_LINE.as_bytes());
            let _ = st.out.flush();
            st.transient = false;
        }
    }

    /// A permanent line of text (a note between events), after clearing any live line.
    pub fn line(&self, text: &str) {
        if self.mode == Mode::Silent {
            return;
        }
        let text = crate::terminal_text::sanitize(text);
        if let Ok(mut st) = self.state.lock() {
            let clear = if st.transient { CLEAR_LINE } else { "" };
            let _ = writeln!(st.out, "{clear}{text}");
            let _ = st.out.flush();
            st.transient = false;
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn event(&self, name: &str, kind: Kind, stage: Stage, text: &str) {
        if self.mode == Mode::Silent {
            return;
        }
        let prefix = if self.in_flight.load(Ordering::SeqCst) > 1 {
            let name = crate::terminal_text::sanitize(name);
            format!("{} ", self.paint("2", &format!("[{name}]")))
        } else {
            String::new()
        };
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let mark = match kind {
            Kind::Done => self.paint("32", "✓"),
            _ => " ".to_string(),
        };
        let body = format!(
            "{mark} {:<18} {}",
            stage.as_str(),
            crate::terminal_text::sanitize(text)
        );
        match (self.mode, &kind) {
            (Mode::Live, Kind::Done) => {
                let clear = if st.transient { CLEAR_LINE } else { "" };
                let _ = writeln!(st.out, "{clear}{prefix}{body}");
                st.transient = false;
            }
            (Mode::Live, _) => {
                // One terminal row: a wrapped line could not be erased by `\r`.
                let plain_len = prefix.chars().count() + body.chars().count();
                let shown = if plain_len >= self.width {
                    let keep = self.width.saturating_sub(prefix.chars().count() + 2);
                    let mut b: String = body.chars().take(keep).collect();
                    b.push('…');
                    b
                } else {
                    body
                };
                let _ = write!(st.out, "{CLEAR_LINE}{prefix}{shown}");
                st.transient = true;
            }
            (_, Kind::Wait(key)) => {
                let key = format!("{name}\u{0}{key}");
                let now = Instant::now();
                let due = st
                    .waits
                    .get(&key)
                    .is_none_or(|t| now.duration_since(*t) >= LINES_WAIT_EVERY);
                if due {
                    st.waits.insert(key, now);
                    let _ = writeln!(st.out, "{prefix}{body}");
                }
            }
            _ => {
                let _ = writeln!(st.out, "{prefix}{body}");
            }
        }
        let _ = st.out.flush();
    }
}

/// Progress of one certificate, rendered by the shared [`Renderer`].
pub struct CertProgress {
    renderer: Arc<Renderer>,
    name: String,
    /// The step or wait in progress (`stage: text`), for saying what an interruption
    /// stopped; `None` once the step is done.
    current: Mutex<Option<String>>,
}

impl CertProgress {
    /// The renderer behind it.
    pub fn renderer(&self) -> &Arc<Renderer> {
        &self.renderer
    }

    /// The step or wait in progress, as last shown (`deploy: EMQX Cloud: pending (…)`).
    pub fn current(&self) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    fn set_current(&self, value: Option<String>) {
        if let Ok(mut c) = self.current.lock() {
            *c = value;
        }
    }
}

impl Drop for CertProgress {
    fn drop(&mut self) {
        self.renderer.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Progress for CertProgress {
    fn update(&self, stage: Stage, message: &str) {
        self.set_current(Some(format!("{}: {message}", stage.as_str())));
        self.renderer
            .event(&self.name, Kind::Update, stage, message);
    }

    fn done(&self, stage: Stage, message: &str, took: Duration) {
        self.set_current(None);
        self.renderer.event(
            &self.name,
            Kind::Done,
            stage,
            &format!("{message} ({})", human_duration(took)),
        );
    }

    fn waiting(&self, stage: Stage, wait: &Waiting<'_>) {
        let key = format!("{}\u{0}{}", wait.what, wait.waiting_for.unwrap_or(""));
        self.set_current(Some(format!("{}: {}", stage.as_str(), wait.text())));
        self.renderer
            .event(&self.name, Kind::Wait(key), stage, &wait.text());
    }

    fn pause(&self) {
        self.renderer.clear();
    }
}

impl DeployProgress for CertProgress {
    fn update(&self, message: &str) {
        Progress::update(self, Stage::Deploy, message);
    }

    fn waiting(&self, wait: &Waiting<'_>) {
        Progress::waiting(self, Stage::Deploy, wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default())
                .into_owned()
        }
    }

    fn wait(elapsed: u64) -> Waiting<'static> {
        Waiting {
            what: "Route 53 change in Z1",
            waiting_for: Some("INSYNC"),
            elapsed: Duration::from_secs(elapsed),
            next_check: Some(Duration::from_secs(1)),
        }
    }

    #[test]
    fn the_line_is_as_wide_as_the_terminal() {
        assert_eq!(line_width(None, Some(180)), 180, "the terminal's width");
        assert_eq!(line_width(Some("132"), Some(180)), 132, "COLUMNS wins");
        assert_eq!(line_width(None, None), 100);
        assert_eq!(line_width(Some("x"), Some(0)), 100);
    }

    #[test]
    fn live_rewrites_the_current_line_and_keeps_finished_steps() {
        let buf = Buf::default();
        let r = Arc::new(Renderer::new(Mode::Live, Box::new(buf.clone()), 100));
        let p = r.certificate("a");
        Progress::waiting(&p, Stage::AwaitPropagation, &wait(1));
        Progress::waiting(&p, Stage::AwaitPropagation, &wait(2));
        Progress::done(
            &p,
            Stage::AwaitPropagation,
            "visible",
            Duration::from_secs(2),
        );
        let t = buf.text();
        assert_eq!(t.matches(CLEAR_LINE).count(), 3, "{t:?}");
        assert!(t.contains("INSYNC (2.0 s; next check in 1.0 s)"), "{t:?}");
        assert!(t.ends_with("visible (2.0 s)\x1b[0m\n") || t.ends_with("visible (2.0 s)\n"));
    }

    #[test]
    fn lines_mode_is_plain_and_thins_repeated_waits() {
        let buf = Buf::default();
        let r = Arc::new(Renderer::new(Mode::Lines, Box::new(buf.clone()), 100));
        let p = r.certificate("a");
        for s in 0..5 {
            Progress::waiting(&p, Stage::AwaitPropagation, &wait(s));
        }
        Progress::done(
            &p,
            Stage::AwaitPropagation,
            "visible",
            Duration::from_secs(2),
        );
        let t = buf.text();
        assert!(!t.contains('\r') && !t.contains('\x1b'), "{t:?}");
        assert_eq!(t.lines().count(), 2, "{t:?}");
    }

    #[test]
    fn several_in_flight_are_prefixed_by_name() {
        let buf = Buf::default();
        let r = Arc::new(Renderer::new(Mode::Lines, Box::new(buf.clone()), 100));
        let a = r.certificate("alpha");
        Progress::update(&a, Stage::Order, "one");
        let b = r.certificate("beta");
        Progress::update(&b, Stage::Order, "two");
        drop(b);
        Progress::update(&a, Stage::Order, "three");
        let t = buf.text();
        let lines: Vec<&str> = t.lines().collect();
        assert!(!lines[0].starts_with('['), "{t}");
        assert!(lines[1].starts_with("[beta] "), "{t}");
        assert!(!lines[2].starts_with('['), "{t}");
    }

    #[test]
    fn concurrent_certificates_never_interleave_half_lines() {
        let buf = Buf::default();
        let r = Arc::new(Renderer::new(Mode::Lines, Box::new(buf.clone()), 100));
        let names = ["alpha", "beta", "gamma", "delta"];
        let progresses: Vec<CertProgress> = names.iter().map(|n| r.certificate(n)).collect();
        std::thread::scope(|s| {
            for p in &progresses {
                s.spawn(move || {
                    for i in 0..200 {
                        Progress::update(p, Stage::Order, &format!("step {i} of 200"));
                    }
                });
            }
        });
        let t = buf.text();
        assert_eq!(t.lines().count(), 800);
        for line in t.lines() {
            let name = line
                .strip_prefix('[')
                .and_then(|l| l.split_once("]   order"))
                .map(|(n, _)| n);
            assert!(
                name.is_some_and(|n| names.contains(&n)) && line.ends_with(" of 200"),
                "torn line: {line:?}"
            );
        }
    }

    #[test]
    fn long_live_lines_fit_one_row() {
        let buf = Buf::default();
        let r = Arc::new(Renderer::new(Mode::Live, Box::new(buf.clone()), 40));
        let p = r.certificate("a");
        Progress::update(&p, Stage::Order, &"x".repeat(200));
        let t = buf.text();
        let shown = t.trim_start_matches(CLEAR_LINE);
        assert!(shown.chars().count() <= 40, "{shown:?}");
    }
}
