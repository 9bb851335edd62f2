//! Code compiled into both crates, so that what `#[secure_endpoint]` accepts at compile time
//! and what the runtime accepts can never drift apart.
//!
//! The files live here, in `secure-api-runtime/src/shared/`; `secure-api-macros/src/shared`
//! is a symbolic link to this directory, as `serde_derive_internals/src` links to
//! `serde_derive/src/internals`. `cargo package` follows the link and packs the files into
//! each crate, so both published crates build on their own. Paths inside stay relative
//! (`super::`), so the files compile wherever they are mounted, and their unit tests run in
//! both crates' test binaries. A Windows checkout needs `git config core.symlinks true`
//! (and the right to create links) to build the macros from the repository.
//!
//! - `units`: the grammar of rates (`"100/s"`), durations (`"24h"`) and sizes (`"16KiB"`).
//! - `limits`: the defaults and bounds both crates apply.
//! - `suggest`: "did you mean" for unknown names.

pub mod limits;
pub mod suggest;
pub mod units;
