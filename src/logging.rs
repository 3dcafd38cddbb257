//! Log output as configured by `STATUS_LOG_*`: level, json or text, stdout or an appended file.
//!
//! Text is coloured only on a terminal: the journal and files get plain text.
//! The file is opened once, for appending; it is not reopened, so rotate it
//! with logrotate's `copytruncate`.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Fails only when the log file cannot be opened.
pub fn init(cfg: &LogConfig) -> Result<(), String> {
    // Our own level applies to this crate; dependencies stay at warn unless asked for more.
    let directive = format!("warn,status={}", cfg.level);
    let filter = EnvFilter::try_new(&directive).map_err(|e| format!("STATUS_LOG_LEVEL={:?}: {e}", cfg.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = match (&cfg.file, cfg.format) {
        (None, LogFormat::Json) => builder.json().with_ansi(false).with_writer(std::io::stdout).try_init(),
        (None, LogFormat::Text) => builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
            .try_init(),
        (Some(path), format) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("STATUS_LOG_FILE={:?}: cannot open for appending: {e}", path.display()))?;
            let writer = Mutex::new(file);
            match format {
                LogFormat::Json => builder.json().with_ansi(false).with_writer(writer).try_init(),
                LogFormat::Text => builder.with_ansi(false).with_writer(writer).try_init(),
            }
        }
    };
    result.map_err(|e| format!("logging already initialised: {e}"))
}
