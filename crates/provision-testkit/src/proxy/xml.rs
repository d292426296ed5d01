//! Just enough XML to find one element in an AWS response and replace its text, leaving
//! every other byte as it was. AWS XML has no DTDs or entities beyond the five predefined
//! ones, so a scanner that understands tags, comments, CDATA and processing instructions is
//! enough; anything it cannot make sense of ends the scan (the response is then left alone).

use std::ops::Range;

/// One element: where it starts and ends in the document, and where its content is.
#[derive(Clone, Debug)]
pub(crate) struct Element {
    /// The local name (without a namespace prefix).
    pub name: String,
    /// The content between the start and end tags (empty for `<a/>`).
    pub inner: Range<usize>,
    /// `<a/>`: there is no content to replace.
    pub self_closing: bool,
}

/// The elements directly inside `range` (depth one), in document order.
pub(crate) fn children(doc: &str, range: Range<usize>) -> Vec<Element> {
    let bytes = doc.as_bytes();
    let end = range.end.min(doc.len());
    let mut out = Vec::new();
    let mut pos = range.start;
    let mut depth = 0usize;
    // The element open at depth one: its name and where its content starts.
    let mut open: Option<(String, usize)> = None;
    while pos < end {
        let Some(lt) = doc[pos..end].find('<').map(|i| pos + i) else {
            break;
        };
        let rest = &doc[lt..end];
        let skip_to = |marker: &str| rest.find(marker).map(|i| lt + i + marker.len());
        let next = if rest.starts_with("<?") {
            skip_to("?>")
        } else if rest.starts_with("<!--") {
            skip_to("-->")
        } else if rest.starts_with("<![CDATA[") {
            skip_to("]]>")
        } else if rest.starts_with("<!") {
            skip_to(">")
        } else if rest.starts_with("</") {
            let Some(gt) = rest.find('>').map(|i| lt + i) else {
                break;
            };
            let Some(d) = depth.checked_sub(1) else {
                break;
            };
            depth = d;
            if depth == 0
                && let Some((name, inner_start)) = open.take()
            {
                out.push(Element {
                    name,
                    inner: inner_start..lt,
                    self_closing: false,
                });
            }
            Some(gt + 1)
        } else {
            let Some(gt) = tag_end(bytes, lt, end) else {
                break;
            };
            let self_closing = gt > lt && bytes[gt - 1] == b'/';
            let raw_name = doc[lt + 1..gt]
                .split(|c: char| c.is_whitespace() || c == '/' || c == '>')
                .next()
                .unwrap_or("");
            let name = raw_name.rsplit(':').next().unwrap_or(raw_name).to_string();
            if depth == 0 {
                if self_closing {
                    out.push(Element {
                        name,
                        inner: gt..gt,
                        self_closing: true,
                    });
                } else {
                    open = Some((name, gt + 1));
                    depth = 1;
                }
            } else if !self_closing {
                depth += 1;
            }
            Some(gt + 1)
        };
        match next {
            Some(n) => pos = n,
            None => break,
        }
    }
    out
}

/// The index of the `>` that ends the tag starting at `lt`, skipping quoted attribute values.
fn tag_end(bytes: &[u8], lt: usize, end: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate().take(end).skip(lt + 1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i),
            None => {}
        }
    }
    None
}

/// The document's root element.
pub(crate) fn root(doc: &str) -> Option<Element> {
    children(doc, 0..doc.len()).into_iter().next()
}

/// The first child of `parent` named `name`.
pub(crate) fn child(doc: &str, parent: &Element, name: &str) -> Option<Element> {
    children(doc, parent.inner.clone())
        .into_iter()
        .find(|e| e.name == name)
}

/// Every element reached from `parent` through `path` (each step: children of that name).
pub(crate) fn descend(doc: &str, parent: &Element, path: &[&str]) -> Vec<Element> {
    let mut level = vec![parent.clone()];
    for step in path {
        level = level
            .iter()
            .flat_map(|e| children(doc, e.inner.clone()))
            .filter(|e| e.name == *step)
            .collect();
    }
    level
}

/// An element's text, trimmed and with the predefined entities decoded.
pub(crate) fn text(doc: &str, element: &Element) -> String {
    unescape(doc[element.inner.clone()].trim())
}

/// The text of the child `name` of `parent`, if there is one.
pub(crate) fn child_text(doc: &str, parent: &Element, name: &str) -> Option<String> {
    child(doc, parent, name).map(|e| text(doc, &e))
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Text replacements to apply to one document, each over a range no other one overlaps.
#[derive(Default)]
pub(crate) struct Edits {
    edits: Vec<(Range<usize>, String)>,
}

impl Edits {
    /// Replaces the text of `element` (which must not be self-closing, or the element is left
    /// as it is: a value cannot be put into `<a/>` without rewriting its tag).
    pub(crate) fn set_text(&mut self, element: &Element, value: &str) {
        if element.self_closing {
            return;
        }
        self.edits.push((element.inner.clone(), value.to_string()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The document with every edit applied; `None` if two edits overlap (a bug: then the
    /// response is better left untouched than corrupted).
    pub(crate) fn apply(mut self, doc: &str) -> Option<String> {
        self.edits.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(doc.len());
        let mut pos = 0;
        for (range, value) in &self.edits {
            if range.start < pos || range.end > doc.len() {
                return None;
            }
            out.push_str(&doc[pos..range.start]);
            out.push_str(value);
            pos = range.end;
        }
        out.push_str(&doc[pos..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeNatGatewaysResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><natGatewaySet><item><natGatewayAddressSet><item><state>x</state></item></natGatewayAddressSet><natGatewayId>nat-1</natGatewayId><state>available</state><tagSet/></item><item><natGatewayId>nat-2</natGatewayId><!-- <state>no</state> --><state a="x>y">deleted</state></item></natGatewaySet></DescribeNatGatewaysResponse>"#;

    #[test]
    fn finds_elements_at_the_right_depth_and_replaces_only_their_text() {
        let root = root(DOC).unwrap();
        assert_eq!(root.name, "DescribeNatGatewaysResponse");
        let items = descend(DOC, &root, &["natGatewaySet", "item"]);
        assert_eq!(items.len(), 2);
        assert_eq!(child_text(DOC, &items[0], "natGatewayId").unwrap(), "nat-1");
        assert_eq!(child_text(DOC, &items[0], "state").unwrap(), "available");
        assert_eq!(child_text(DOC, &items[1], "state").unwrap(), "deleted");
        let mut edits = Edits::default();
        edits.set_text(&child(DOC, &items[0], "state").unwrap(), "pending");
        let out = edits.apply(DOC).unwrap();
        assert_eq!(
            out,
            DOC.replace("<state>available</state>", "<state>pending</state>")
        );
    }

    #[test]
    fn malformed_documents_end_the_scan_without_panicking() {
        for doc in ["<a><b>", "<a", "</a>", "<a></b></a></c>", "<<<>>>", ""] {
            let _ = root(doc).map(|r| descend(doc, &r, &["b", "c"]));
        }
    }
}
