//! `sshpod audit play ID`: a terminal session replayed to standard output at its recorded pace
//! (or faster), as the client saw it.
//!
//! The waits here are the replay itself: each event is written when its recorded time, divided
//! by the speed, has passed since the start. Times are kept against the start, not added up
//! from one event to the next, so a long replay does not drift.

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use sshpod_audit::asciicast::{self, Cast, Code};
use sshpod_audit::store::Store;
use sshpod_audit::summary::{cast_name, summarize, RecordingFormat, Summary};
use tokio::time::Instant;

use super::source::find;
use super::Outcome;

/// The slowest and fastest factors accepted (past these, a replay never ends or is `max`).
const SLOWEST: f64 = 0.01;
const FASTEST: f64 = 1000.0;

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Speed {
    /// Recorded time divided by this factor.
    Factor(f64),
    /// No waiting at all.
    Max,
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = text.strip_suffix(['x', 'X']).unwrap_or(text);
        match number.parse::<f64>() {
            Ok(factor) if (SLOWEST..=FASTEST).contains(&factor) => Ok(Speed::Factor(factor)),
            _ => Err(format!(
                "`{text}` is not a speed: write a factor from {SLOWEST} to {FASTEST} (`1`, `2`, \
                 `0.5`) or `max`"
            )),
        }
    }
}

/// The speed and how long a pause may last.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    /// How fast.
    pub(super) speed: Speed,
    /// Pauses longer than this (in recorded time) are shortened to it.
    pub(super) idle_limit: Option<Duration>,
}

pub(super) async fn run(
    store: &dyn Store,
    id: &str,
    channel: Option<u32>,
    pace: Pace,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let id = find(store, id).await?;
    let (name, cast) = read_cast(store, &id, channel).await?;
    eprintln!(
        "sshpod: playing {id}/{name} ({}x{}); Ctrl-C stops",
        cast.header.width, cast.header.height
    );
    replay(&cast, pace, out).await?;
    if cast.cut_short {
        eprintln!("sshpod: the recording's last event was cut short and is left out");
    }
    Ok(Outcome::Success)
}

/// The cast of `channel` (default: the first terminal session) in recording `id`, with its
/// file's name.
pub(super) async fn read_cast_bytes(
    store: &dyn Store,
    id: &str,
    channel: Option<u32>,
) -> anyhow::Result<(String, Vec<u8>)> {
    let summary = summarize(store, id)
        .await
        .with_context(|| format!("reading {id}"))?;
    let name = cast_file(&summary, channel)?;
    let bytes = store
        .read(id, &name)
        .await
        .with_context(|| format!("reading {id}/{name}"))?;
    Ok((name, bytes))
}

async fn read_cast(
    store: &dyn Store,
    id: &str,
    channel: Option<u32>,
) -> anyhow::Result<(String, Cast)> {
    let (name, bytes) = read_cast_bytes(store, id, channel).await?;
    let cast = asciicast::parse(&bytes).with_context(|| format!("reading {id}/{name}"))?;
    Ok((name, cast))
}

/// Which file holds the terminal session asked for.
fn cast_file(summary: &Summary, channel: Option<u32>) -> anyhow::Result<String> {
    let id = &summary.connection;
    match summary.format {
        // ContainerSSH's asciinema format: the recording is one cast.
        RecordingFormat::Asciinema => return Ok(id.clone()),
        RecordingFormat::Binary | RecordingFormat::Unknown => {
            bail!("{id} is not an asciicast nor in sshpod's format: it has no terminal session")
        }
        RecordingFormat::Sshpod => {}
    }
    let casts = summary.casts();
    let available = || {
        casts
            .iter()
            .map(|(channel, _)| channel.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (channel, casts.first()) {
        (_, None) => bail!("{id} has no terminal session (no channel-N.cast file)"),
        (Some(channel), _) => {
            let name = cast_name(channel);
            if casts.iter().any(|(_, file)| *file == name) {
                Ok(name)
            } else {
                bail!(
                    "{id} has no terminal session on channel {channel}; it has: {}",
                    available()
                )
            }
        }
        (None, Some((first, name))) => {
            if casts.len() > 1 {
                eprintln!(
                    "sshpod: {id} has terminal sessions on channels {}; this is channel {first} \
                     (--channel N for another)",
                    available()
                );
            }
            Ok((*name).to_owned())
        }
    }
}

/// Writes the cast's output at its pace.
async fn replay(cast: &Cast, pace: Pace, out: &mut impl Write) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut recorded = 0.0_f64;
    let mut elapsed = 0.0_f64;
    for event in &cast.events {
        // Events out of order play at once rather than going back in time.
        let mut gap = (event.time - recorded).max(0.0);
        recorded = recorded.max(event.time);
        if let Some(limit) = pace.idle_limit {
            gap = gap.min(limit.as_secs_f64());
        }
        elapsed += gap;
        if event.code != Code::Output {
            continue;
        }
        if let Speed::Factor(factor) = pace.speed {
            if let Ok(offset) = Duration::try_from_secs_f64(elapsed / factor) {
                tokio::time::sleep_until(start + offset).await;
            }
        }
        out.write_all(event.data.as_bytes())
            .and_then(|()| out.flush())
            .context("writing to standard output")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_factors_or_max() {
        assert_eq!("max".parse(), Ok(Speed::Max));
        assert_eq!("2".parse(), Ok(Speed::Factor(2.0)));
        assert_eq!("2x".parse(), Ok(Speed::Factor(2.0)));
        assert_eq!("0.5".parse(), Ok(Speed::Factor(0.5)));
        for bad in ["0", "-1", "fast", "inf", "NaN", "1e9"] {
            assert!(bad.parse::<Speed>().is_err(), "{bad}");
        }
    }

    fn cast(events: &str) -> Cast {
        let text = format!("{{\"version\":2,\"width\":80,\"height\":24}}\n{events}");
        asciicast::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test(start_paused = true)]
    async fn output_comes_at_its_recorded_time_divided_by_the_speed() {
        let recorded = cast(
            "[1.0,\"o\",\"a\"]\n[1.5,\"i\",\"typed\"]\n[3.0,\"o\",\"b\"]\n[3.0,\"r\",\"90x30\"]\n",
        );
        let start = Instant::now();
        let mut out = Vec::new();
        let pace = Pace {
            speed: Speed::Factor(2.0),
            idle_limit: None,
        };
        if let Err(e) = replay(&recorded, pace, &mut out).await {
            panic!("{e:#}");
        }
        assert_eq!(out, b"ab");
        assert_eq!(start.elapsed(), Duration::from_millis(1500));

        let start = Instant::now();
        let pace = Pace {
            speed: Speed::Factor(1.0),
            idle_limit: Some(Duration::from_millis(500)),
        };
        let mut out = Vec::new();
        if let Err(e) = replay(&recorded, pace, &mut out).await {
            panic!("{e:#}");
        }
        // Pauses of 1 s, 0.5 s and 1.5 s, each cut to 0.5 s.
        assert_eq!(start.elapsed(), Duration::from_millis(1500));

        let start = Instant::now();
        let pace = Pace {
            speed: Speed::Max,
            idle_limit: None,
        };
        let mut out = Vec::new();
        if let Err(e) = replay(&recorded, pace, &mut out).await {
            panic!("{e:#}");
        }
        assert_eq!(out, b"ab");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
