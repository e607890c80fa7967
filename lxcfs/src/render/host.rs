//! The host's copy of a file: the fallback when a controller is missing, and the source of
//! every line a renderer does not virtualise.

use super::Ctx;
use crate::error::{FsError, FsResult};
use crate::tree::VFile;

/// The host's version of `file`.
pub fn read(ctx: &Ctx, file: VFile) -> FsResult<String> {
    read_path(&file.host_path(&ctx.opts.proc_root, &ctx.opts.sys_cpu_root))
}

/// Read a host file as text.
pub fn read_path(path: &std::path::Path) -> FsResult<String> {
    cgroups::parse::read_to_string(path).map_err(FsError::from)
}
