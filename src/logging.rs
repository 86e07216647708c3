//! Logging: tracing to journald (with structured fields) when running under systemd,
//! human-readable lines on stderr otherwise. The level can change at runtime (SIGHUP).

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogLevel;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    Journald,
    Stderr,
}

impl LogTarget {
    /// Journald when our stderr is the journal stream systemd gave us.
    pub fn detect() -> LogTarget {
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
            return LogTarget::Stderr;
        };
        let stream = stream.to_string_lossy().into_owned();
        let Some((dev, ino)) = stream.split_once(':') else {
            return LogTarget::Stderr;
        };
        match nix::sys::stat::fstat(libc::STDERR_FILENO) {
            Ok(st) if st.st_dev.to_string() == dev && st.st_ino.to_string() == ino => {
                LogTarget::Journald
            }
            _ => LogTarget::Stderr,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogTarget::Journald => "journald",
            LogTarget::Stderr => "stderr",
        }
    }
}

/// Changes the level of an installed logger.
#[derive(Debug, Clone)]
pub struct LogHandle {
    filter: reload::Handle<LevelFilter, tracing_subscriber::Registry>,
}

impl LogHandle {
    pub fn set_level(&self, level: LogLevel) {
        if let Err(e) = self.filter.reload(level.as_filter()) {
            tracing::warn!(error = %e, "log level could not be changed");
        }
    }
}

/// Installs the global logger for process `name` ("supervisor", "audit", ...).
pub fn init(name: &'static str, level: LogLevel, target: LogTarget) -> LogHandle {
    let (filter, handle) = reload::Layer::new(level.as_filter());
    let registry = tracing_subscriber::registry().with(filter);
    let journald = match target {
        LogTarget::Journald => match tracing_journald::layer() {
            Ok(layer) => Some(
                layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("coworkd".to_string())
                    .with_custom_fields([("COMPONENT", name)]),
            ),
            Err(e) => {
                eprintln!("coworkd {name}: journald unavailable ({e}); logging to stderr");
                None
            }
        },
        LogTarget::Stderr => None,
    };
    let result = match journald {
        Some(layer) => registry.with(layer).try_init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .event_format(Prefixed {
                        name,
                        inner: Format::default().with_target(false),
                    }),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("coworkd {name}: logger already installed: {e}");
    }
    LogHandle { filter: handle }
}

/// The default line format, prefixed with the process name so interleaved lines of
/// the supervisor and its components stay readable.
struct Prefixed {
    name: &'static str,
    inner: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for Prefixed
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "{}: ", self.name)?;
        self.inner.format_event(ctx, writer, event)
    }
}

// Keep the type parameter of `Format` nameable.
#[allow(dead_code)]
type _Fields = DefaultFields;
