//! One-shot payload transfers, wire-compatible with future.p2p (magic-wormhole file transfer v1).
//!
//! The sender picks the code ([`WormholeCode::future_code`] / [`WormholeCode::result_code`]); both
//! sides *claim* the nameplate, so the receiver may arrive before the sender. Every call is
//! bounded by [`TransferOptions::timeout`], can be cancelled through
//! [`TransferOptions::cancel`], reports progress, refuses offers above
//! [`TransferOptions::max_size`] before a byte is written, and ends in a [`TransferError`].

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use magic_wormhole::transfer::{self, APP_CONFIG};
use magic_wormhole::{MailboxConnection, Wormhole, WormholeError};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
use tokio_util::sync::CancellationToken;

use super::config::{RelayUrlError, WormholeConfig};
use p2p_proto::id::WormholeCode;

/// How long a cancelled transfer may take to tell its peer before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Progress callback: `(bytes done, bytes total)`.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Limits and hooks for one transfer.
#[derive(Clone)]
pub struct TransferOptions {
    /// Upper bound for the whole transfer, rendezvous included.
    pub timeout: Duration,
    /// Largest payload a receiver accepts; larger offers are rejected unread.
    pub max_size: u64,
    /// Cancel the transfer from elsewhere; the peer is told when the crate gets the chance.
    pub cancel: CancellationToken,
    /// Called as bytes move; `None` for no reporting.
    pub progress: Option<ProgressFn>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            timeout: Duration::from_secs(600),
            max_size: p2p_proto::limits::DEFAULT_MAX_PAYLOAD,
            cancel: CancellationToken::new(),
            progress: None,
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("timeout", &self.timeout)
            .field("max_size", &self.max_size)
            .field("cancelled", &self.cancel.is_cancelled())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// How a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The transfer did not finish within its timeout (no peer, stalled peer, ...).
    #[error("wormhole transfer timed out after {0:?}")]
    Timeout(Duration),
    /// [`TransferOptions::cancel`] fired.
    #[error("wormhole transfer cancelled")]
    Cancelled,
    /// The peer offered more than [`TransferOptions::max_size`]; the offer was rejected.
    #[error("offered payload of {offered} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size in the peer's offer.
        offered: u64,
        /// Our limit.
        max: u64,
    },
    /// Key confirmation failed: the peer used another code (or an attacker guessed).
    #[error("wrong wormhole code: key confirmation with the peer failed")]
    WrongCode,
    /// The peer aborted with an error message (for example `transfer rejected`).
    #[error("peer aborted the transfer: {0}")]
    Peer(String),
    /// The relay configuration is unusable.
    #[error(transparent)]
    Config(#[from] RelayUrlError),
    /// Talking to the mailbox server failed.
    #[error("mailbox: {0}")]
    Mailbox(#[source] WormholeError),
    /// The file-transfer protocol or transit failed.
    #[error("transfer: {0}")]
    Protocol(#[source] transfer::TransferError),
    /// Local file I/O failed.
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The `magic-wormhole` crate panicked; the panic was caught so the caller survives.
    #[error("the wormhole library failed internally: {0}")]
    Internal(String),
}

impl From<WormholeError> for TransferError {
    fn from(err: WormholeError) -> Self {
        match err {
            WormholeError::PakeFailed => TransferError::WrongCode,
            other => TransferError::Mailbox(other),
        }
    }
}

impl From<transfer::TransferError> for TransferError {
    fn from(err: transfer::TransferError) -> Self {
        match err {
            transfer::TransferError::Wormhole(inner) => inner.into(),
            transfer::TransferError::PeerError(msg) => TransferError::Peer(msg),
            other => TransferError::Protocol(other),
        }
    }
}

/// A payload received into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The file name the sender offered.
    pub name: String,
    /// The payload.
    pub data: Bytes,
}

/// A payload received into a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    /// The file name the sender offered (the data went to the path the caller chose).
    pub name: String,
    /// Bytes written.
    pub size: u64,
}

/// Send `data` as a file named `name` under `code`.
pub async fn send_bytes(
    config: &WormholeConfig,
    code: &WormholeCode,
    name: &str,
    data: Bytes,
    options: &TransferOptions,
) -> Result<(), TransferError> {
    let size = data.len() as u64;
    send_reader(
        config,
        code,
        name,
        futures::io::Cursor::new(data),
        size,
        options,
    )
    .await
}

/// Send the file at `path` (under its file name) under `code`; returns its size.
pub async fn send_file(
    config: &WormholeConfig,
    code: &WormholeCode,
    path: &Path,
    options: &TransferOptions,
) -> Result<u64, TransferError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "payload".to_owned());
    let file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    send_reader(config, code, &name, file.compat(), size, options).await?;
    Ok(size)
}

/// The sending side of both: rendezvous, then the crate's file-transfer protocol.
async fn send_reader(
    config: &WormholeConfig,
    code: &WormholeCode,
    name: &str,
    mut reader: impl futures::AsyncRead + Unpin + Send,
    size: u64,
    options: &TransferOptions,
) -> Result<(), TransferError> {
    bounded(options, async {
        let wormhole = rendezvous(config, code).await?;
        transfer::send_file(
            wormhole,
            config.relay_hints()?,
            &mut reader,
            name,
            size,
            config.transit.abilities(),
            |info| super::nodelay::on_transit_connected(&info),
            progress_handler(options),
            options.cancel.clone().cancelled_owned(),
        )
        .await?;
        Ok(())
    })
    .await
}

/// Receive a payload under `code` into memory.
pub async fn receive_bytes(
    config: &WormholeConfig,
    code: &WormholeCode,
    options: &TransferOptions,
) -> Result<Received, TransferError> {
    bounded(options, async {
        let request = offer(config, code, options).await?;
        let name = request.file_name();
        let size = request.file_size();
        // The size is bounded by max_size already; cap the up-front reservation anyway so
        // a large limit does not mean a large allocation before data arrives.
        let mut sink = Vec::with_capacity(size.min(16 << 20) as usize);
        request
            .accept(
                |info| super::nodelay::on_transit_connected(&info),
                progress_handler(options),
                &mut sink,
                options.cancel.clone().cancelled_owned(),
            )
            .await?;
        Ok(Received {
            name,
            data: Bytes::from(sink),
        })
    })
    .await
}

/// Receive a payload under `code` into the file at `dest` (created or truncated).
///
/// On failure the partial file is removed, so a file at `dest` means a complete payload.
pub async fn receive_file(
    config: &WormholeConfig,
    code: &WormholeCode,
    dest: &Path,
    options: &TransferOptions,
) -> Result<ReceivedFile, TransferError> {
    let result = bounded(options, async {
        let request = offer(config, code, options).await?;
        let name = request.file_name();
        let size = request.file_size();
        let file = tokio::fs::File::create(dest).await?;
        let mut writer = file.compat_write();
        request
            .accept(
                |info| super::nodelay::on_transit_connected(&info),
                progress_handler(options),
                &mut writer,
                options.cancel.clone().cancelled_owned(),
            )
            .await?;
        futures::AsyncWriteExt::close(&mut writer).await?;
        Ok(ReceivedFile { name, size })
    })
    .await;
    if result.is_err() {
        // Best effort: the file may not exist (rejected before creation).
        let _ = tokio::fs::remove_file(dest).await;
    }
    result
}

/// Mailbox connection plus PAKE, as the claiming side (arrival order does not matter).
pub(crate) async fn rendezvous(
    config: &WormholeConfig,
    code: &WormholeCode,
) -> Result<Wormhole, TransferError> {
    let app = APP_CONFIG.rendezvous_url(config.mailbox_url.clone().into());
    let mailbox = MailboxConnection::connect(app, super::code::to_crate(code), true).await?;
    tracing::debug!(nameplate = %code.nameplate(), "mailbox claimed, waiting for peer");
    Ok(Wormhole::connect(mailbox).await?)
}

/// Rendezvous, then wait for the sender's offer and enforce the size limit.
async fn offer(
    config: &WormholeConfig,
    code: &WormholeCode,
    options: &TransferOptions,
) -> Result<transfer::ReceiveRequestV1, TransferError> {
    let wormhole = rendezvous(config, code).await?;
    let request = transfer::request_file(
        wormhole,
        config.relay_hints()?,
        config.transit.abilities(),
        options.cancel.clone().cancelled_owned(),
    )
    .await?
    .ok_or(TransferError::Cancelled)?;
    let offered = request.file_size();
    if offered > options.max_size {
        tracing::info!(offered, max = options.max_size, "rejecting oversized offer");
        request.reject().await?;
        return Err(TransferError::TooLarge {
            offered,
            max: options.max_size,
        });
    }
    Ok(request)
}

fn progress_handler(options: &TransferOptions) -> impl FnMut(u64, u64) + 'static {
    let progress = options.progress.clone();
    move |done, total| {
        if let Some(progress) = &progress {
            progress(done, total);
        }
    }
}

/// Apply the timeout and the cancel token to a whole transfer.
///
/// The crate reports its own cancellation as success, so a cancelled token wins over `Ok`.
/// Turns a panic inside the `magic-wormhole` crate into [`TransferError::Internal`].
///
/// magic-wormhole 0.8.1 panics ("Internal error: socket must be IP") when the peer closes a
/// direct transit connection between accept and `peer_addr()`, which happens when the peer
/// picks another of the candidate connections. One failed transfer is recoverable (the
/// scheduler retries); a panic that kills the caller's task is not.
pub(crate) async fn catch_panic<T, E: From<PanicError>>(
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(E::from(PanicError::from_payload(&*panic))))
}

/// What a caught panic said.
#[derive(Debug)]
pub(crate) struct PanicError(pub(crate) String);

impl PanicError {
    fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic without a message".to_owned());
        PanicError(text)
    }
}

impl From<PanicError> for TransferError {
    fn from(panic: PanicError) -> Self {
        TransferError::Internal(panic.0)
    }
}

async fn bounded<T>(
    options: &TransferOptions,
    work: impl Future<Output = Result<T, TransferError>>,
) -> Result<T, TransferError> {
    let work = tokio::time::timeout(options.timeout, catch_panic(work));
    tokio::pin!(work);
    let result = tokio::select! {
        result = &mut work => result.map_err(|_| TransferError::Timeout(options.timeout))?,
        () = options.cancel.cancelled() => {
            // The crate sees the same token and tells the peer; give it a moment to do so.
            let _ = tokio::time::timeout(CANCEL_GRACE, &mut work).await;
            return Err(TransferError::Cancelled);
        }
    };
    if options.cancel.is_cancelled() {
        return Err(TransferError::Cancelled);
    }
    result
}
