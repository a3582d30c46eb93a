//! One remote command as a pair of queues, the same for both backends: bytes and EOF go in,
//! stdout, stderr and a final [`Ending`] come out. The Board logic above never sees SSH.

use bytes::Bytes;
use russh::ChannelMsg;
use russh::client::{Handle, Handler};
use tokio::sync::mpsc;

/// What the caller sends to the remote command.
#[derive(Debug)]
pub(crate) enum Input {
    /// Bytes for its stdin.
    Data(Bytes),
    /// Close its stdin.
    Eof,
    /// Close the channel (or end the ssh process).
    Close,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The server reported this exit status.
    Exit(u32),
    /// The channel closed without an exit status, or with 255 from OpenSSH: the server ended
    /// the stream (pico.sh since 2026-08-15 closes pipes without an exit status,
    /// docs/pico-compat.md §10).
    NoStatus,
    /// The connection dropped (or ssh failed): worth reconnecting.
    Lost(String),
}

/// What the remote command produced.
#[derive(Debug)]
pub(crate) enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
    End(Ending),
}

/// A running remote command.
#[derive(Debug)]
pub(crate) struct Exec {
    pub input: mpsc::Sender<Input>,
    pub output: mpsc::Receiver<Output>,
}

/// Queue depths: enough to keep a busy topic moving, small enough that a caller who stops
/// reading pushes back on the SSH window (and, past the server's bound, gets cut off).
const INPUT_DEPTH: usize = 64;
const OUTPUT_DEPTH: usize = 256;
/// Largest SSH message assembled from queued lines (OpenSSH's maximum packet payload).
const WRITE_BATCH: usize = 32 * 1024;

/// Both ends of a command's input queue.
pub(crate) type InputQueue = (mpsc::Sender<Input>, mpsc::Receiver<Input>);
/// Both ends of a command's output queue.
pub(crate) type OutputQueue = (mpsc::Sender<Output>, mpsc::Receiver<Output>);

pub(crate) fn queues() -> (InputQueue, OutputQueue) {
    (mpsc::channel(INPUT_DEPTH), mpsc::channel(OUTPUT_DEPTH))
}

/// Runs `command` on a new session channel of `handle`. No PTY is requested; unknown
/// channel requests from the server (`ping@pico.sh`) are ignored by russh.
pub(crate) async fn exec_channel<H: Handler>(
    handle: &Handle<H>,
    command: &str,
) -> Result<Exec, russh::Error> {
    let channel = handle.channel_open_session().await?;
    channel.exec(true, command.as_bytes()).await?;
    let (mut rx, tx) = channel.split();
    let ((in_tx, mut in_rx), (out_tx, out_rx)) = queues();
    tokio::spawn(async move {
        let mut held: Option<Input> = None;
        loop {
            let input = match held.take() {
                Some(input) => input,
                None => match in_rx.recv().await {
                    Some(input) => input,
                    None => break,
                },
            };
            let sent = match input {
                Input::Data(first) => {
                    // Join lines already queued into one SSH message: whole lines stay
                    // whole, and a busy writer sends one packet instead of hundreds.
                    let mut batch = first.to_vec();
                    while batch.len() < WRITE_BATCH {
                        match in_rx.try_recv() {
                            Ok(Input::Data(more)) => batch.extend_from_slice(&more),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    tx.data_bytes(Bytes::from(batch)).await
                }
                Input::Eof => tx.eof().await,
                Input::Close => {
                    let _ = tx.close().await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut status = None;
        let ending = loop {
            match rx.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if out_tx.send(Output::Stdout(data)).await.is_err() {
                        return;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    if out_tx.send(Output::Stderr(data)).await.is_err() {
                        return;
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                Some(ChannelMsg::Close) => {
                    break match status {
                        Some(s) if s != 255 => Ending::Exit(s),
                        _ => Ending::NoStatus,
                    };
                }
                Some(_) => {}
                None => {
                    break match status {
                        Some(s) if s != 255 => Ending::Exit(s),
                        _ => Ending::Lost("connection closed".to_owned()),
                    };
                }
            }
        };
        let _ = out_tx.send(Output::End(ending)).await;
    });
    Ok(Exec {
        input: in_tx,
        output: out_rx,
    })
}
