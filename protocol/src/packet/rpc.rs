//! RPC packets (modifier1 173).

use bytes::BufMut;

use super::payload::put_framed;
use crate::array::{Array, ArrayBuilder};
use crate::error::{EncodeError, InvalidPacket};
use crate::header::{Header, Modifier1};
use crate::limits::Limits;
use crate::vars::Vars;

/// RPC modifier2 values.
pub mod mode {
    /// Call; the result comes back framed (`ad LLLL 00`).
    pub const FRAMED: u8 = 0;
    /// Call; the result comes back raw, with no header (nginx `uwsgi_modifier2 1`).
    /// uWSGI treats every value other than 0, 2 and 3 this way.
    pub const RAW: u8 = 1;
    /// uWSGI 2.0: the block is vars; `PATH_INFO=/func/arg/...` names the call and the
    /// reply is an HTTP response.
    pub const HTTP: u8 = 2;
    /// uWSGI 2.0: XML-RPC in the request body (vars + body).
    pub const XMLRPC: u8 = 3;
    /// Reply only: a result over 65535 bytes, announced by a `CONTENT_LENGTH` var.
    pub const BIG_RESULT: u8 = 5;
}

/// An RPC request, by modifier2.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcRequest<'a> {
    /// modifier2 0 (framed reply) or any value but 2 and 3 (raw reply): an array
    /// `[function, arg...]`.
    Call(RpcCall<'a>),
    /// modifier2 2: vars whose `PATH_INFO` is `/function/arg/...`.
    Http {
        /// The request vars.
        vars: Vars<'a>,
    },
    /// modifier2 3: vars followed by an XML-RPC body of `CONTENT_LENGTH` bytes.
    XmlRpc {
        /// The request vars.
        vars: Vars<'a>,
    },
}

impl<'a> RpcRequest<'a> {
    pub(crate) fn parse(
        modifier2: u8,
        block: &'a [u8],
        limits: &Limits,
    ) -> Result<Self, InvalidPacket> {
        let base = Header::LEN;
        Ok(match modifier2 {
            mode::HTTP => RpcRequest::Http {
                vars: Vars::parse_at(block, base, limits.max_vars)?,
            },
            mode::XMLRPC => RpcRequest::XmlRpc {
                vars: Vars::parse_at(block, base, limits.max_vars)?,
            },
            _ => {
                if block.is_empty() {
                    return Err(InvalidPacket::EmptyBlock { what: "rpc call" });
                }
                let items = Array::parse_at(block, base, limits.max_array_items)?;
                RpcRequest::Call(RpcCall::from_array(modifier2, items)?)
            }
        })
    }

    /// The header's modifier2.
    pub fn modifier2(&self) -> u8 {
        match self {
            RpcRequest::Call(call) => call.modifier2,
            RpcRequest::Http { .. } => mode::HTTP,
            RpcRequest::XmlRpc { .. } => mode::XMLRPC,
        }
    }

    /// The block.
    pub fn block(&self) -> &'a [u8] {
        match self {
            RpcRequest::Call(call) => call.items.as_bytes(),
            RpcRequest::Http { vars } | RpcRequest::XmlRpc { vars } => vars.as_bytes(),
        }
    }

    /// Bytes following the block (the XML-RPC body).
    pub fn body_len(&self) -> u64 {
        match self {
            RpcRequest::XmlRpc { vars } => vars
                .get("CONTENT_LENGTH")
                .map_or(0, super::number::content_length),
            _ => 0,
        }
    }

    /// Writes header and block.
    pub fn encode(&self, dst: &mut impl BufMut) {
        put_framed(dst, Modifier1::Rpc, self.modifier2(), self.block());
    }
}

/// An RPC call: a function name and up to 254 arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcCall<'a> {
    modifier2: u8,
    items: Array<'a>,
    function: &'a [u8],
}

impl<'a> RpcCall<'a> {
    fn from_array(modifier2: u8, items: Array<'a>) -> Result<Self, InvalidPacket> {
        // An array of only empty items has no function name: uWSGI reads an
        // uninitialised pointer there; we reject it.
        let function = items
            .first()
            .ok_or(InvalidPacket::EmptyBlock { what: "rpc call" })?;
        Ok(RpcCall {
            modifier2,
            items,
            function,
        })
    }

    /// Builds the array `[function, args...]`.
    pub fn build<A: AsRef<[u8]>>(
        function: &[u8],
        args: impl IntoIterator<Item = A>,
    ) -> Result<ArrayBuilder, EncodeError> {
        let mut items = ArrayBuilder::new().with(function)?;
        for arg in args {
            items.push(arg)?;
        }
        Ok(items)
    }

    /// A call whose result comes back framed.
    pub fn framed(items: Array<'a>) -> Result<Self, EncodeError> {
        Self::new(mode::FRAMED, items)
    }

    /// A call whose result comes back raw.
    pub fn raw(items: Array<'a>) -> Result<Self, EncodeError> {
        Self::new(mode::RAW, items)
    }

    fn new(modifier2: u8, items: Array<'a>) -> Result<Self, EncodeError> {
        Self::from_array(modifier2, items).map_err(|_| EncodeError::EmptyArray { what: "rpc call" })
    }

    /// The header's modifier2.
    pub fn modifier2(&self) -> u8 {
        self.modifier2
    }

    /// `true` when the result comes back framed.
    pub fn wants_framed_reply(&self) -> bool {
        self.modifier2 == mode::FRAMED
    }

    /// The function name.
    pub fn function(&self) -> &'a [u8] {
        self.function
    }

    /// The arguments.
    pub fn args(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let mut iter = self.items.iter();
        iter.next();
        iter
    }

    /// The whole array, function name first.
    pub fn items(&self) -> Array<'a> {
        self.items
    }
}
