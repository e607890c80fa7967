//! Rendering of every virtual file for the container a caller belongs to.

use crate::error::{FsError, FsResult};
use crate::fs::Caller;
use crate::options::Options;
use crate::tree::VFile;

/// Computes file contents for callers.
pub struct Renderer {
    opts: Options,
}

impl Renderer {
    /// A renderer for the host described by `opts`.
    pub fn new(opts: &Options) -> FsResult<Renderer> {
        Ok(Renderer { opts: opts.clone() })
    }

    /// The bytes of `file` as `caller` should see them.
    pub fn render(&self, file: VFile, _caller: Caller) -> FsResult<Vec<u8>> {
        let p = file.host_path(&self.opts.proc_root, &self.opts.sys_cpu_root);
        std::fs::read(&p).map_err(|e| FsError::io(format!("read {}", p.display()), &e))
    }

    /// Stop background work.
    pub fn shutdown(&self) {}
}
