//! The CLI's side of the control socket (blocking: one request, a stream of replies).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use anyhow::{Context, Result, bail};

use super::protocol::{API_VERSION, Envelope, Reply, Request};

/// Sends `request` and calls `each` for every reply until the end of the stream. A
/// [`Reply::Error`] becomes an error.
pub fn request(
    socket: &Path,
    request: &Request,
    mut each: impl FnMut(Reply) -> Result<()>,
) -> Result<()> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the daemon at {}: is `bgp-ctl daemon` running (and are you root)?",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_vec(&Envelope::new(request.clone()))?;
    line.push(b'\n');
    // A daemon that refuses the connection (not root) answers and closes without
    // reading: the write may fail, but its answer is there to read.
    if let Err(e) = stream.write_all(&line)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("sending the request");
    }
    for line in BufReader::new(stream).lines() {
        let line = line.context("reading the daemon's reply")?;
        let env: Envelope<Reply> =
            serde_json::from_str(&line).with_context(|| format!("malformed reply: {line}"))?;
        if env.version != API_VERSION {
            bail!(
                "the daemon speaks API version {}, this CLI version {API_VERSION}",
                env.version
            );
        }
        match env.body {
            Reply::End => return Ok(()),
            Reply::Error { message } => bail!("{message}"),
            other => each(other)?,
        }
    }
    bail!("the daemon closed the connection before the end of its reply")
}

/// Sends `request` and collects the replies.
pub fn collect(socket: &Path, req: &Request) -> Result<Vec<Reply>> {
    let mut out = Vec::new();
    request(socket, req, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}
