//! The output of a command run over an SSH exec channel (`shell_hashes`), collected with caps
//! so a misbehaving server cannot make us buffer without bound.

use cloudsync_core::{Error, ErrorKind, Result};
use russh::ChannelMsg;

/// Most standard output a remote command may print (a hash line is well under 5 KiB).
const MAX_EXEC_OUTPUT: usize = 64 * 1024;
/// Standard error kept for an error message.
const MAX_EXEC_STDERR: usize = 4 * 1024;

/// What a remote command sent, collected within [`MAX_EXEC_OUTPUT`] and [`MAX_EXEC_STDERR`].
#[derive(Debug, Default)]
pub(crate) struct ExecOutput {
    out: Vec<u8>,
    err: Vec<u8>,
    status: Option<u32>,
}

impl ExecOutput {
    /// Takes one channel message; an error ends the command.
    pub(crate) fn take(&mut self, msg: ChannelMsg) -> Result<()> {
        match msg {
            ChannelMsg::Data { data } => {
                if self.out.len().saturating_add(data.len()) > MAX_EXEC_OUTPUT {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!(
                            "remote command printed more than {MAX_EXEC_OUTPUT} bytes; \
                             output discarded"
                        ),
                    ));
                }
                self.out.extend_from_slice(&data);
            }
            ChannelMsg::ExtendedData { data, .. } => {
                // Only for the error message: keep the start, drop the rest.
                let room = MAX_EXEC_STDERR.saturating_sub(self.err.len());
                self.err.extend_from_slice(&data[..data.len().min(room)]);
            }
            ChannelMsg::ExitStatus { exit_status } => self.status = Some(exit_status),
            ChannelMsg::Failure => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "the server refused to run a command (no shell access?)",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Standard output if the command exited with status 0.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        match self.status {
            Some(0) => Ok(self.out),
            Some(code) => Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "remote command exited with status {code}: {}",
                    String::from_utf8_lossy(&self.err).trim()
                ),
            )),
            None => Err(Error::new(
                ErrorKind::Unsupported,
                "remote command gave no exit status (no shell access?)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> ChannelMsg {
        ChannelMsg::Data {
            data: vec![b'x'; n].into(),
        }
    }

    #[test]
    fn output_is_capped() {
        let mut o = ExecOutput::default();
        o.take(data(MAX_EXEC_OUTPUT)).unwrap();
        let e = o.take(data(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");

        let mut o = ExecOutput::default();
        o.take(data(3)).unwrap();
        for _ in 0..100 {
            let msg = ChannelMsg::ExtendedData {
                data: vec![b'e'; 1024].into(),
                ext: 1,
            };
            o.take(msg).unwrap();
        }
        assert_eq!(o.err.len(), MAX_EXEC_STDERR);
        o.take(ChannelMsg::ExitStatus { exit_status: 0 }).unwrap();
        assert_eq!(o.finish().unwrap(), b"xxx");
    }

    #[test]
    fn exit_status_decides() {
        let mut o = ExecOutput::default();
        o.take(ChannelMsg::ExitStatus { exit_status: 1 }).unwrap();
        assert_eq!(o.finish().unwrap_err().kind(), ErrorKind::Unexpected);
        assert_eq!(
            ExecOutput::default().finish().unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        let e = ExecOutput::default().take(ChannelMsg::Failure).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
}
