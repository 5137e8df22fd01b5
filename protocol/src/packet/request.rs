//! Application requests (modifier1 0 and the other language slots): vars, then a body of
//! `CONTENT_LENGTH` bytes that is not counted in the header's datasize.

use bytes::BufMut;

use super::number::content_length;
use super::payload::put_framed;
use crate::header::Modifier1;
use crate::vars::Vars;

/// A request for an application handler (WSGI, PSGI, Rack, CGI, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The application slot (0 for WSGI, 30 for WSGI with SCRIPT_NAME stripping, …).
    pub modifier1: Modifier1,
    /// Usually 0; nginx's `uwsgi_modifier2` sets it.
    pub modifier2: u8,
    /// The CGI-style variables.
    pub vars: Vars<'a>,
}

impl<'a> Request<'a> {
    /// A request for slot `modifier1` with modifier2 0.
    pub fn new(modifier1: Modifier1, vars: Vars<'a>) -> Self {
        Request {
            modifier1,
            modifier2: 0,
            vars,
        }
    }

    /// The body length: the last `CONTENT_LENGTH` var read as uWSGI reads it (leading
    /// digits; missing, empty or non-numeric is 0).
    pub fn content_length(&self) -> u64 {
        self.vars.get("CONTENT_LENGTH").map_or(0, content_length)
    }

    /// Writes the header and the vars block (the body, if any, is the caller's to write).
    pub fn encode(&self, dst: &mut impl BufMut) {
        put_framed(dst, self.modifier1, self.modifier2, self.vars.as_bytes());
    }
}
