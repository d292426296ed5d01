//! One request as the strict checks read it: the query protocols' parameters, the JSON
//! body, or Route 53's XML, whichever the service speaks.

use serde_json::Value;

use super::super::call::Call;

/// What a rule or an injection reads of a request.
pub(crate) struct Request<'a> {
    pub call: &'a Call,
    /// Query-protocol parameters (EC2, IAM, ELBv2), percent-decoded.
    pub form: &'a [(String, String)],
    /// The JSON body (JSON and REST-JSON services), if it parses.
    pub json: Option<Value>,
    /// The raw body (Route 53's XML).
    pub body: &'a [u8],
    pub path: &'a str,
}

impl<'a> Request<'a> {
    pub(crate) fn new(
        call: &'a Call,
        form: &'a [(String, String)],
        body: &'a [u8],
        path: &'a str,
    ) -> Request<'a> {
        let json = if body.first().is_some_and(|b| *b == b'{') {
            serde_json::from_slice(body).ok()
        } else {
            None
        };
        Request {
            call,
            form,
            json,
            body,
            path,
        }
    }

    /// The SigV4 signing name (`ec2`, `elasticloadbalancing`...).
    pub(crate) fn signing_name(&self) -> &str {
        &self.call.signing_name
    }

    pub(crate) fn operation(&self) -> &str {
        &self.call.operation
    }

    /// A query parameter.
    pub(crate) fn param(&self, key: &str) -> Option<&'a str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters whose name passes `f`.
    pub(crate) fn params(
        &self,
        f: impl Fn(&str) -> bool,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.form
            .iter()
            .filter(move |(k, _)| f(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A JSON value by RFC 6901 pointer (`/ServerlessConfig/MemorySizeInMB`).
    pub(crate) fn at(&self, pointer: &str) -> Option<&Value> {
        self.json.as_ref()?.pointer(pointer)
    }

    /// A top-level JSON string field.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.json.as_ref()?.get(key)?.as_str()
    }

    /// The request body as text.
    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(self.body).unwrap_or("")
    }
}
