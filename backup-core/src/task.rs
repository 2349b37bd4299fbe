//! Joining the pipeline's tasks and threads: a panic is a bug (an internal error, exit
//! 101, "please report"), never "interrupted".

use std::sync::Mutex;

use crate::error::{Error, ErrorKind};

/// Where the last panic happened (`file:line:column`), recorded by [`install_panic_hook`].
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Records each panic's location so [`join_error`] can name it, and keeps the previous
/// hook (which prints the panic). Front-ends call it once at start; calling it again is
/// harmless.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location() {
                if let Ok(mut last) = LAST_PANIC.lock() {
                    *last = Some(format!("{}:{}:{}", loc.file(), loc.line(), loc.column()));
                }
            }
            previous(info);
        }));
    });
}

/// The error for a task or thread that did not finish: cancelled (the operation was
/// interrupted) or panicked (an internal error naming `what`, the panic's message and,
/// with [`install_panic_hook`], its location).
pub fn join_error(e: tokio::task::JoinError, what: &str) -> Error {
    if e.is_cancelled() {
        return Error::Interrupted(format!("{what} cancelled"));
    }
    let message = match e.try_into_panic() {
        Ok(payload) => panic_message(payload.as_ref()),
        Err(other) => other.to_string(),
    };
    internal(what, &message)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

fn internal(what: &str, message: &str) -> Error {
    let at = LAST_PANIC
        .lock()
        .ok()
        .and_then(|l| l.clone())
        .map(|l| format!(" at {l}"))
        .unwrap_or_default();
    Error::datastore(
        "dbseal",
        ErrorKind::Internal,
        format!("internal error, please report: {what} panicked{at}: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_an_internal_error_with_its_location() {
        install_panic_hook();
        let handle = tokio::task::spawn_blocking(|| panic!("boom in a reader"));
        let err = join_error(handle.await.unwrap_err(), "the format reader");
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.kind().exit_code(), 101);
        let text = err.to_string();
        assert!(text.contains("please report"), "{text}");
        assert!(text.contains("boom in a reader"), "{text}");
        assert!(text.contains("task.rs:"), "{text}");
        assert!(!text.contains("interrupted"), "{text}");
    }

    #[tokio::test]
    async fn a_cancelled_task_is_interrupted() {
        let handle =
            tokio::spawn(async { tokio::time::sleep(std::time::Duration::from_secs(60)).await });
        handle.abort();
        let err = join_error(handle.await.unwrap_err(), "the upload");
        assert_eq!(err.kind(), ErrorKind::Interrupted);
    }
}
