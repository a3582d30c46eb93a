//! The second backend: the system `ssh` binary with the user's `ssh_args` verbatim, for
//! setups only OpenSSH understands (`~/.ssh/config` aliases, ProxyCommand, certificates,
//! smartcards). One `ssh` process per remote command.

use std::path::Path;
use std::process::Stdio;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::BoardError;
use super::exec::{Ending, Exec, Input, Output, queues};

/// How much of ssh's stderr is kept to explain a failure.
const STDERR_TAIL: usize = 4096;

/// Spawns `program [ssh_args…] -T destination command`.
pub(crate) fn exec_system(
    program: &Path,
    ssh_args: &[String],
    destination: &str,
    command: &str,
) -> Result<Exec, BoardError> {
    let mut child = Command::new(program)
        .args(ssh_args)
        .arg("-T")
        .arg(destination)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BoardError::Spawn {
            program: program.display().to_string(),
            reason: e.to_string(),
        })?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(BoardError::Spawn {
            program: program.display().to_string(),
            reason: "stdio pipes missing".to_owned(),
        });
    };
    let ((in_tx, mut in_rx), (out_tx, out_rx)) = queues();
    let (close_tx, mut close_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut close_tx = Some(close_tx);
        while let Some(input) = in_rx.recv().await {
            match input {
                Input::Data(data) => {
                    if stdin.write_all(&data).await.is_err() || stdin.flush().await.is_err() {
                        break;
                    }
                }
                Input::Eof => break,
                Input::Close => {
                    if let Some(tx) = close_tx.take() {
                        let _ = tx.send(());
                    }
                    break;
                }
            }
        }
        // Dropping stdin closes it (EOF for the remote command).
    });
    tokio::spawn(async move {
        let out = pump(stdout, out_tx.clone(), Output::Stdout);
        let err_tx = out_tx.clone();
        let err = async move {
            let mut tail: Vec<u8> = Vec::new();
            let mut rd = stderr;
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
                if err_tx
                    .send(Output::Stderr(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            tail
        };
        let status = async {
            tokio::select! {
                s = child.wait() => s,
                // Only an explicit close kills ssh; a dropped sender (stdin closed) does not.
                Ok(()) = &mut close_rx => {
                    let _ = child.kill().await;
                    child.wait().await
                }
            }
        };
        let ((), tail, status) = tokio::join!(out, err, status);
        let ending = match status.map(|s| s.code()) {
            // OpenSSH reports 255 for its own failures and for a missing exit status; only
            // the former leaves an error message.
            Ok(Some(255)) if tail.iter().any(|b| !b.is_ascii_whitespace()) => {
                Ending::Lost(String::from_utf8_lossy(&tail).trim().to_owned())
            }
            Ok(Some(255)) => Ending::NoStatus,
            Ok(Some(code)) => Ending::Exit(u32::try_from(code).unwrap_or(255)),
            Ok(None) => Ending::Lost("ssh was killed by a signal".to_owned()),
            Err(e) => Ending::Lost(format!("waiting for ssh: {e}")),
        };
        let _ = out_tx.send(Output::End(ending)).await;
    });
    Ok(Exec {
        input: in_tx,
        output: out_rx,
    })
}

async fn pump(
    mut reader: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Output>,
    wrap: fn(Bytes) -> Output,
) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0
            || tx
                .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                .await
                .is_err()
        {
            break;
        }
    }
}
