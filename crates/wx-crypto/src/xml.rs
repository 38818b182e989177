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

/// `bytes` as a `&str` slice of `input` when it points into it (always the case for a `&str` reader that
/// did not need to copy): an O(1) re-borrow instead of validating UTF-8 again.
fn subslice<'a>(input: &'a str, bytes: &[u8]) -> Option<&'a str> {
    let start = (bytes.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    let end = start.checked_add(bytes.len())?;
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
pub(crate) fn for_each_field<'a>(
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
