//! A minimal, allocation-light reader for the flat `<xml><Field>value</Field>…</xml>` documents that
//! WeCom/WeChat send (envelopes and decrypted messages). Refuses DOCTYPE so no entity can be declared.

use std::borrow::Cow;
use std::ops::ControlFlow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Why a document was refused.
#[derive(Debug)]
pub(crate) enum XmlError {
    /// A DOCTYPE (and with it any entity declaration) was present.
    Hostile,
    /// Not well-formed, or an entity reference that is not one of the five predefined ones.
    Syntax(String),
}

/// One child element of the root.
#[derive(Debug)]
pub(crate) struct Field<'a> {
    /// Text content (CDATA and text concatenated, references resolved). When `nested` is true this is the
    /// raw inner XML instead, so callers can keep structures such as `ExtAttr` or `Articles` verbatim.
    pub(crate) value: Cow<'a, str>,
    pub(crate) nested: bool,
}

fn syntax(e: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax(e.to_string())
}

/// Where `bytes` lies in `input`, when it is a slice of it on character boundaries (always the case for
/// text a `&str` reader did not need to copy): `(start, end)` byte offsets.
pub(crate) fn span_in(input: &str, bytes: &[u8]) -> Option<(usize, usize)> {
    let start = (bytes.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    let end = start.checked_add(bytes.len())?;
    input.get(start..end).map(|_| (start, end))
}

/// `bytes` re-borrowed as a `&str` slice of `input`: O(1) instead of validating UTF-8 again.
fn subslice<'a>(input: &'a str, bytes: &[u8]) -> Option<&'a str> {
    let (start, end) = span_in(input, bytes)?;
    input.get(start..end)
}

fn to_str<'a>(input: &'a str, bytes: Cow<'a, [u8]>) -> Result<Cow<'a, str>, XmlError> {
    if let Cow::Borrowed(b) = bytes
        && let Some(s) = subslice(input, b)
    {
        return Ok(Cow::Borrowed(s));
    }
    String::from_utf8(bytes.into_owned())
        .map(Cow::Owned)
        .map_err(syntax)
}

fn name_of<'a>(input: &'a str, start: &BytesStart<'a>) -> Result<&'a str, XmlError> {
    let name = start.name();
    subslice(input, name.as_ref()).ok_or_else(|| syntax("element name outside the document"))
}

fn push<'a>(acc: &mut Option<Cow<'a, str>>, piece: Cow<'a, str>) {
    match acc {
        None => *acc = Some(piece),
        Some(existing) => existing.to_mut().push_str(&piece),
    }
}

fn predefined_entity(name: &[u8]) -> Option<char> {
    Some(match name {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"apos" => '\'',
        b"quot" => '"',
        _ => return None,
    })
}

/// Walks the children of the root element, calling `visit(name, field)` for each in document order.
/// `visit` may stop the walk early with `ControlFlow::Break`. The root's own name is not checked (WeCom
/// uses `xml`), and anything after the root closes is ignored.
///
/// Documents in the plain shape the platforms send are scanned by [`scan_flat`]; anything else (a
/// declaration, comments, entities, attributes, DOCTYPE…) goes through quick-xml. Both give the same
/// fields for every document the scanner accepts (a differential property test checks it).
pub(crate) fn for_each_field<'a>(
    input: &'a str,
    mut visit: impl FnMut(&'a str, Field<'a>) -> ControlFlow<()>,
) -> Result<(), XmlError> {
    let mut flat = Vec::with_capacity(32);
    if scan_flat(input, &mut flat).is_some() {
        for (name, value, nested) in flat {
            let field = Field {
                value: Cow::Borrowed(value),
                nested,
            };
            if visit(name, field).is_break() {
                break;
            }
        }
        return Ok(());
    }
    for_each_field_general(input, visit)
}

/// The general walker over quick-xml events.
fn for_each_field_general<'a>(
    input: &'a str,
    mut visit: impl FnMut(&'a str, Field<'a>) -> ControlFlow<()>,
) -> Result<(), XmlError> {
    let mut reader = Reader::from_str(input);
    // Keep text exactly as sent: message bodies may start or end with spaces and newlines.
    reader.config_mut().trim_text(false);

    let mut depth = 0usize;
    let mut seen_root = false;
    let mut current: Option<BytesStart<'a>> = None;
    let mut value: Option<Cow<'a, str>> = None;
    let mut nested = false;
    let mut inner_start = 0usize;

    loop {
        let before = usize::try_from(reader.buffer_position()).map_err(syntax)?;
        let event = reader.read_event().map_err(syntax)?;
        match event {
            Event::DocType(_) => return Err(XmlError::Hostile),
            Event::Start(start) => {
                depth += 1;
                match depth {
                    1 => seen_root = true,
                    2 => {
                        current = Some(start);
                        value = None;
                        nested = false;
                        inner_start = usize::try_from(reader.buffer_position()).map_err(syntax)?;
                    }
                    _ => nested = true,
                }
            }
            Event::Empty(start) => match depth {
                0 => return Ok(()),
                1 => {
                    let field = Field {
                        value: Cow::Borrowed(""),
                        nested: false,
                    };
                    if visit(name_of(input, &start)?, field).is_break() {
                        return Ok(());
                    }
                }
                _ => nested = true,
            },
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                match depth {
                    0 => return Ok(()),
                    1 => {
                        let Some(start) = current.take() else {
                            return Err(syntax("unbalanced end tag"));
                        };
                        let field = if nested {
                            let raw = input
                                .get(inner_start..before)
                                .ok_or_else(|| syntax("bad element span"))?;
                            Field {
                                value: Cow::Borrowed(raw),
                                nested: true,
                            }
                        } else {
                            Field {
                                value: value.take().unwrap_or(Cow::Borrowed("")),
                                nested: false,
                            }
                        };
                        if visit(name_of(input, &start)?, field).is_break() {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(text) if depth == 2 && !nested => {
                push(&mut value, to_str(input, text.into_inner())?);
            }
            Event::CData(data) if depth == 2 && !nested => {
                push(&mut value, to_str(input, data.into_inner())?);
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(syntax)? {
                    Some(c) => c,
                    None => predefined_entity(&r).ok_or_else(|| {
                        syntax(format!(
                            "undefined entity &{};",
                            String::from_utf8_lossy(&r)
                                .chars()
                                .take(32)
                                .collect::<String>()
                        ))
                    })?,
                };
                if depth == 2 && !nested {
                    let mut buf = [0u8; 4];
                    push(&mut value, Cow::Owned(ch.encode_utf8(&mut buf).to_owned()));
                }
            }
            Event::Eof => {
                return if seen_root {
                    Err(syntax("document ended inside an element"))
                } else {
                    Err(syntax("no root element"))
                };
            }
            // Declarations, comments, processing instructions and whitespace between fields carry nothing.
            _ => {}
        }
    }
}

/// True when the (BOM- and whitespace-trimmed) document looks like XML rather than JSON.
pub(crate) fn looks_like_xml(input: &str) -> bool {
    input
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `NAME>` at `i`: the name and the index after `>`. `None` for anything else (attributes, `/>`, odd names).
fn open_tag(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if !is_name_start(*b.get(i)?) {
        return None;
    }
    let mut j = i + 1;
    while is_name_char(*b.get(j)?) {
        j += 1;
    }
    (b.get(j) == Some(&b'>')).then(|| (&b[i..j], j + 1))
}

/// Index just after `</name>` at `i`, if that is exactly what is there.
fn close_tag(b: &[u8], i: usize, name: &[u8]) -> Option<usize> {
    let rest = b.get(i..)?.strip_prefix(b"</")?.strip_prefix(name)?;
    (rest.first() == Some(&b'>')).then_some(i + 2 + name.len() + 1)
}

/// Index of the next `<` at or after `i`; `None` at the end or if an `&` comes first (entities need the
/// general reader).
fn text_end(b: &[u8], i: usize) -> Option<usize> {
    let off = b.get(i..)?.iter().position(|&c| c == b'<' || c == b'&')?;
    (b[i + off] == b'<').then_some(i + off)
}

/// Index of the `]]>` that ends a CDATA section opened before `from`. `str::find` with a `char` pattern
/// uses std's word-at-a-time memchr; an envelope's Encrypt CDATA is about 2 KB of base64 with no `]`.
fn cdata_end(input: &str, mut from: usize) -> Option<usize> {
    loop {
        let p = from + input.get(from..)?.find(']')?;
        if input.get(p..)?.starts_with("]]>") {
            return Some(p);
        }
        from = p + 1;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// The fast path: `<xml>` then fields of the form `<Name>text</Name>`, `<Name><![CDATA[text]]></Name>` or
/// `<Name>` + nested elements (no attributes, comments, CDATA beside elements, or entities) + `</Name>`,
/// separated by whitespace, then `</xml>`. Fills `out` with (name, value, nested) slices of `input` and
/// returns `None`, leaving the document to the general reader, at the first thing outside that shape.
fn scan_flat<'a>(input: &'a str, out: &mut Vec<(&'a str, &'a str, bool)>) -> Option<()> {
    let b = input.as_bytes();
    let mut i = skip_ws(b, 0);
    i = i + b.get(i..)?.strip_prefix(b"<xml>").map(|_| 5)?;
    loop {
        i = skip_ws(b, i);
        if close_tag(b, i, b"xml").is_some() {
            return Some(());
        }
        if b.get(i) != Some(&b'<') {
            return None;
        }
        let (name, start) = open_tag(b, i + 1)?;
        let (value, nested, next) = if b.get(start..)?.starts_with(b"<![CDATA[") {
            let end = cdata_end(input, start + 9)?;
            let next = close_tag(b, end + 3, name)?;
            (start + 9..end, false, next)
        } else {
            let t = text_end(b, start)?;
            if let Some(next) = close_tag(b, t, name) {
                (start..t, false, next)
            } else {
                let (end, next) = scan_nested(input, t, name)?;
                (start..end, true, next)
            }
        };
        // All indices sit next to ASCII markup, so these are char boundaries; `get` keeps it total anyway.
        out.push((
            input.get(i + 1..i + 1 + name.len())?,
            input.get(value)?,
            nested,
        ));
        i = next;
    }
}

/// Nested elements of field `field` starting at `i` (a `<`): returns where `</field>` starts and the index
/// after it. End names must match their start names, as the general reader requires.
fn scan_nested(input: &str, mut i: usize, field: &[u8]) -> Option<(usize, usize)> {
    let b = input.as_bytes();
    let mut open: Vec<&[u8]> = Vec::new();
    loop {
        let rest = b.get(i..)?;
        if rest.starts_with(b"<![CDATA[") && !open.is_empty() {
            i = cdata_end(input, i + 9)? + 3;
        } else if rest.starts_with(b"</") {
            match open.pop() {
                None => return close_tag(b, i, field).map(|next| (i, next)),
                Some(name) => i = close_tag(b, i, name)?,
            }
        } else {
            let (name, after) = open_tag(b, i + 1).or_else(|| {
                // `<name/>`: an empty element.
                let j = i + 1;
                let len = b.get(j..)?.iter().position(|&c| !is_name_char(c))?;
                (len > 0 && is_name_start(b[j]) && b.get(j + len..)?.starts_with(b"/>"))
                    .then(|| (&b[0..0], j + len + 2))
            })?;
            if !name.is_empty() {
                if open.len() >= 64 {
                    return None;
                }
                open.push(name);
            }
            i = after;
        }
        if open.is_empty() {
            // Between elements at the field's own level only whitespace is accepted, so mixed content goes to
            // the general reader.
            i = skip_ws(b, i);
            if b.get(i) != Some(&b'<') {
                return None;
            }
        } else {
            i = text_end(b, i)?;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Differential test: the fast scanner and quick-xml agree on every document the scanner accepts.

    use proptest::prelude::*;

    use super::*;

    type Fields = Vec<(String, String, bool)>;

    fn general(input: &str) -> Result<Fields, String> {
        let mut out = Vec::new();
        for_each_field_general(input, |name, f| {
            out.push((name.to_owned(), f.value.into_owned(), f.nested));
            ControlFlow::Continue(())
        })
        .map_err(|e| format!("{e:?}"))?;
        Ok(out)
    }

    fn fast(input: &str) -> Option<Fields> {
        let mut out = Vec::new();
        scan_flat(input, &mut out)?;
        Some(
            out.into_iter()
                .map(|(n, v, nested)| (n.to_owned(), v.to_owned(), nested))
                .collect(),
        )
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<xml>".to_owned()),
            Just("</xml>".to_owned()),
            Just("<A>".to_owned()),
            Just("</A>".to_owned()),
            Just("<B>".to_owned()),
            Just("</B>".to_owned()),
            Just("<Item>".to_owned()),
            Just("</Item>".to_owned()),
            Just("<C/>".to_owned()),
            Just("<![CDATA[".to_owned()),
            Just("]]>".to_owned()),
            Just("<!-- c -->".to_owned()),
            Just("&amp;".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("<".to_owned()),
            Just(">".to_owned()),
            "[a-z0-9 ]{1,4}",
            "\\PC{1,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn fast_scanner_agrees_with_quick_xml(pieces in prop::collection::vec(piece(), 0..24)) {
            // Wrapped in the root most of the time so that many documents reach the scanner's later stages.
            let body = pieces.concat();
            let doc = if body.len() % 4 == 0 { body } else { format!("<xml>{body}</xml>") };
            if let Some(fast) = fast(&doc) {
                prop_assert_eq!(Ok(fast), general(&doc), "document {:?}", doc);
            }
        }

        #[test]
        fn fast_scanner_agrees_on_wellformed_documents(
            fields in prop::collection::vec(("[A-Z][a-zA-Z_0-9]{0,6}", "[^<&\\]]{0,12}", 0u8..4), 0..8)
        ) {
            let mut doc = String::from("<xml>");
            for (name, value, kind) in &fields {
                match kind {
                    0 => doc.push_str(&format!("<{name}>{value}</{name}>")),
                    1 => doc.push_str(&format!("<{name}><![CDATA[{value}]]></{name}>\n")),
                    2 => doc.push_str(&format!("<{name}> <Item><V>{value}</V><E/></Item></{name}>")),
                    _ => doc.push_str(&format!("<{name}></{name}>")),
                }
            }
            doc.push_str("</xml>");
            let fast = fast(&doc);
            prop_assert!(fast.is_some(), "the plain shape must take the fast path: {:?}", doc);
            prop_assert_eq!(Ok(fast.unwrap_or_default()), general(&doc));
        }
    }
}
