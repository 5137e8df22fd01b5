//! Explicit, configurable decoding limits.

/// Limits applied while decoding. Every field is public and documented with its default;
/// see docs/protocol.md for how they relate to uWSGI's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block a header may announce. Default 4096, like uWSGI's `--buffer-size`;
    /// at most 65535, the largest value the 16-bit field can hold.
    pub max_datasize: u16,
    /// Most key/value pairs in one vars block. Default 128 (uWSGI: 2 × `--max-vars`).
    pub max_vars: usize,
    /// Most items in one array. Default 255 (an RPC function name and 254 arguments,
    /// uWSGI's own RPC limit).
    pub max_array_items: usize,
    /// Largest body a request may announce through `CONTENT_LENGTH` (or a cache magic
    /// `size`). Default 1 GiB; uWSGI's `--limit-post`. The body is streamed, never
    /// buffered by the codec, so this is a policy limit, not a memory bound.
    pub max_body: u64,
}

impl Limits {
    /// uWSGI's defaults: 4096-byte blocks, 128 vars, 255 array items, 1 GiB bodies.
    pub const DEFAULT: Limits = Limits {
        max_datasize: 4096,
        max_vars: 128,
        max_array_items: 255,
        max_body: 1 << 30,
    };

    /// The widest limits the format allows: 65535-byte blocks and no count limits.
    /// Meant for tools that inspect captured traffic, not for servers.
    pub const PERMISSIVE: Limits = Limits {
        max_datasize: u16::MAX,
        max_vars: usize::MAX,
        max_array_items: usize::MAX,
        max_body: u64::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
