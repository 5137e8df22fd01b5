//! Cache requests (modifier1 111, spec §6).

use uwsgi_protocol::packet::{CacheRequest, MagicCommand};

/// Magic-interface commands that only read.
pub fn is_read_only_magic(request: &CacheRequest<'_>) -> bool {
    matches!(request, CacheRequest::Magic(magic)
        if matches!(magic.command(), MagicCommand::Get | MagicCommand::Exists))
}
