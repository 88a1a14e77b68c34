//! Structured logs: JSON lines by default (one object per event, with the current span's fields,
//! so every line of a request carries its `op_id`), or a human format.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

pub(crate) fn init(settings: &LogSettings, serving: bool) {
    let level = if serving {
        settings.level.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    // `try_init` fails only if a subscriber is already set (tests); keeping that one is right.
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
}
