//! Decrypted callback plaintexts (XML or JSON) as a [`CallbackMessage`]: common fields, every other field
//! as a string, typed `change_contact` accessors, a de-duplication key, and [`XmlBuilder`] for writing
//! events (used by the simulator).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::ControlFlow;

use crate::CryptoError;
use crate::xml::{XmlError, for_each_field, looks_like_xml, span_in};

/// The format the plaintext was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    Xml,
    Json,
}

/// A piece of text of a message: most names and values are slices of the plaintext (kept once in the
/// message), so parsing a typical event allocates a handful of times rather than twice per field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Text {
    /// Byte range into `CallbackMessage::source`.
    Span(usize, usize),
    /// Text that differs from the source bytes (entities resolved, JSON values).
    Owned(String),
}

impl Text {
    /// A span when `piece` lies inside `source` (a borrowed slice), else an owned copy.
    fn of(piece: Cow<'_, str>, source: &str) -> Text {
        if let Cow::Borrowed(b) = piece
            && let Some((start, end)) = span_in(source, b.as_bytes())
        {
            return Text::Span(start, end);
        }
        Text::Owned(piece.into_owned())
    }

    fn resolve<'s>(&'s self, source: &'s str) -> &'s str {
        match self {
            Text::Span(a, b) => source.get(*a..*b).unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }
}

/// One top-level field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: Text,
    value: Text,
    /// The value is raw inner XML (or JSON text) of a structured field such as `ExtAttr`.
    nested: bool,
}

/// A parsed callback message or event. Field names are kept as sent (`ToUserName`, `AgentID`…); values are
/// strings exactly as sent (numbers in JSON plaintexts are rendered in decimal). `Debug` shows the kind of
/// message and its field names, not the values, which may hold personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackMessage {
    format: PayloadFormat,
    /// The plaintext the spans of `fields` point into.
    source: String,
    fields: Vec<Field>,
    /// `Event` lower-cased, only when that differs from the raw value: WeCom sends `click`, WeChat `CLICK`.
    event_lower: Option<String>,
}

impl std::fmt::Debug for CallbackMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackMessage")
            .field("format", &self.format)
            .field("msg_type", &self.msg_type())
            .field("event", &self.event())
            .field("fields", &self.fields().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

fn message_error(e: XmlError) -> CryptoError {
    match e {
        XmlError::Hostile => CryptoError::HostileXml,
        XmlError::Syntax(s) => CryptoError::ParseMessage(s),
    }
}

/// Parses a decrypted plaintext, XML or JSON (auto-detected). Same as [`CallbackMessage::parse`].
pub fn parse(plaintext: &str) -> Result<CallbackMessage, CryptoError> {
    CallbackMessage::parse(plaintext)
}

impl CallbackMessage {
    /// Parses a decrypted plaintext, XML or JSON, detected by its first non-blank character.
    pub fn parse(plaintext: &str) -> Result<CallbackMessage, CryptoError> {
        Self::parse_owned(plaintext.to_owned())
    }

    /// [`Self::parse`] taking ownership of the plaintext, which the message keeps without copying.
    pub fn parse_owned(plaintext: String) -> Result<CallbackMessage, CryptoError> {
        if looks_like_xml(&plaintext) {
            Self::xml_owned(plaintext)
        } else {
            Self::json_owned(plaintext)
        }
    }

    /// Parses `<xml><Field>…</Field>…</xml>`. DOCTYPE is refused ([`CryptoError::HostileXml`]).
    pub fn from_xml(xml: &str) -> Result<CallbackMessage, CryptoError> {
        Self::xml_owned(xml.to_owned())
    }

    fn xml_owned(source: String) -> Result<CallbackMessage, CryptoError> {
        let mut fields = Vec::with_capacity(32);
        for_each_field(&source, |name, field| {
            fields.push(Field {
                name: Text::of(Cow::Borrowed(name), &source),
                value: Text::of(field.value, &source),
                nested: field.nested,
            });
            ControlFlow::Continue(())
        })
        .map_err(message_error)?;
        Ok(Self::from_fields(PayloadFormat::Xml, source, fields))
    }

    /// Parses a JSON object plaintext. Scalars become strings; arrays and objects keep their JSON text.
    pub fn from_json(json: &str) -> Result<CallbackMessage, CryptoError> {
        Self::json_owned(json.to_owned())
    }

    fn json_owned(source: String) -> Result<CallbackMessage, CryptoError> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(source.trim_start_matches('\u{feff}'))
                .map_err(|e| CryptoError::ParseMessage(format!("not a JSON object: {e}")))?;
        let fields = map
            .into_iter()
            .map(|(name, value)| {
                let (value, nested) = match value {
                    serde_json::Value::String(s) => (s, false),
                    serde_json::Value::Null => (String::new(), false),
                    v @ (serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
                        (v.to_string(), true)
                    }
                    v => (v.to_string(), false),
                };
                Field {
                    name: Text::Owned(name),
                    value: Text::Owned(value),
                    nested,
                }
            })
            .collect();
        Ok(Self::from_fields(PayloadFormat::Json, source, fields))
    }

    fn from_fields(format: PayloadFormat, source: String, fields: Vec<Field>) -> CallbackMessage {
        let mut msg = CallbackMessage {
            format,
            source,
            fields,
            event_lower: None,
        };
        msg.event_lower = msg
            .get("Event")
            .filter(|e| e.bytes().any(|b| b.is_ascii_uppercase()))
            .map(str::to_ascii_lowercase);
        msg
    }

    /// The format of the plaintext.
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// The plaintext this message was parsed from.
    pub fn plaintext(&self) -> &str {
        &self.source
    }

    /// The first field with this exact name (case-sensitive, as sent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name.resolve(&self.source) == name)
            .map(|f| f.value.resolve(&self.source))
    }

    /// True when the field is structured (nested XML elements or a JSON array/object) and its value is the
    /// raw inner text.
    pub fn is_nested(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|f| f.nested && f.name.resolve(&self.source) == name)
    }

    /// All fields in document order (JSON: key order of the parser) as `(name, value)`.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|f| (f.name.resolve(&self.source), f.value.resolve(&self.source)))
    }

    /// `MsgType`: `text`, `image`, `event`…
    pub fn msg_type(&self) -> Option<&str> {
        self.get("MsgType")
    }

    /// `Event` lower-cased for matching (`click` on WeCom and `CLICK` on WeChat both give `click`).
    pub fn event(&self) -> Option<&str> {
        self.event_lower.as_deref().or_else(|| self.event_raw())
    }

    /// `Event` exactly as sent.
    pub fn event_raw(&self) -> Option<&str> {
        self.get("Event")
    }

    /// `FromUserName`: userid / openid, or `sys` for contact changes.
    pub fn from_user(&self) -> Option<&str> {
        self.get("FromUserName")
    }

    /// `ToUserName`: corpid or the account's `gh_` id.
    pub fn to_user(&self) -> Option<&str> {
        self.get("ToUserName")
    }

    /// `CreateTime` in Unix seconds, when present and numeric.
    pub fn create_time(&self) -> Option<i64> {
        self.get("CreateTime").and_then(|v| v.trim().parse().ok())
    }

    /// `MsgId` (a 64-bit number, kept as text), for messages; events have none.
    pub fn msg_id(&self) -> Option<&str> {
        self.get("MsgId").filter(|v| !v.is_empty())
    }

    /// `AgentID` (WeCom). JSON plaintexts may spell it `AgentId`.
    pub fn agent_id(&self) -> Option<&str> {
        self.get("AgentID").or_else(|| self.get("AgentId"))
    }

    /// `ChangeType` of `change_contact` / `change_external_contact` events.
    pub fn change_type(&self) -> Option<&str> {
        self.get("ChangeType")
    }

    /// `EventKey` of menu and QR events.
    pub fn event_key(&self) -> Option<&str> {
        self.get("EventKey")
    }

    /// Typed access to a WeCom `change_contact` event; `None` for any other message.
    pub fn change_contact(&self) -> Option<ContactChange<'_>> {
        (self.event() == Some("change_contact")).then_some(ContactChange { msg: self })
    }

    /// A key that is equal for redeliveries of the same message and different for different ones.
    ///
    /// Messages: `msg:<ToUserName>:<MsgId>`. Events (no MsgId) follow the platforms' advice of
    /// FromUserName + CreateTime, extended with the event's identity (event, ChangeType, EventKey and the
    /// changed object's UserID / Id / TagId / ExternalUserID) because WeCom sends many `change_contact`
    /// events from `sys` within one second during bulk edits.
    pub fn dedup_key(&self) -> String {
        let part = |name: &str| self.get(name).unwrap_or_default();
        let mut key = String::with_capacity(96);
        match self.msg_id() {
            Some(id) => {
                let _ = write!(key, "msg:{}:{}", part("ToUserName"), id);
            }
            None => {
                let _ = write!(
                    key,
                    "evt:{}:{}:{}:{}",
                    part("ToUserName"),
                    part("FromUserName"),
                    part("CreateTime"),
                    self.event().unwrap_or_default()
                );
                for name in [
                    "ChangeType",
                    "EventKey",
                    "UserID",
                    "Id",
                    "TagId",
                    "ExternalUserID",
                ] {
                    let _ = write!(key, ":{}", part(name));
                }
            }
        }
        key
    }
}

/// The `ChangeType` of a `change_contact` event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeType {
    CreateUser,
    UpdateUser,
    DeleteUser,
    CreateParty,
    UpdateParty,
    DeleteParty,
    UpdateTag,
    /// A change type this version does not know, kept as sent.
    Other(String),
}

impl ChangeType {
    fn parse(s: &str) -> ChangeType {
        match s {
            "create_user" => ChangeType::CreateUser,
            "update_user" => ChangeType::UpdateUser,
            "delete_user" => ChangeType::DeleteUser,
            "create_party" => ChangeType::CreateParty,
            "update_party" => ChangeType::UpdateParty,
            "delete_party" => ChangeType::DeleteParty,
            "update_tag" => ChangeType::UpdateTag,
            other => ChangeType::Other(other.to_owned()),
        }
    }
}

/// A view of a `change_contact` event with typed fields. Lists arrive as comma-joined strings.
#[derive(Debug, Clone, Copy)]
pub struct ContactChange<'a> {
    msg: &'a CallbackMessage,
}

fn number_list<T: std::str::FromStr>(name: &str, value: &str) -> Result<Vec<T>, CryptoError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| {
                CryptoError::ParseMessage(format!(
                    "{name} is not a comma-separated list of numbers"
                ))
            })
        })
        .collect()
}

fn text_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

impl<'a> ContactChange<'a> {
    /// The change type (`ChangeType` missing gives `Other("")`).
    pub fn change_type(&self) -> ChangeType {
        ChangeType::parse(self.msg.change_type().unwrap_or_default())
    }

    /// Any field, as in [`CallbackMessage::get`].
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.msg.get(name)
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, CryptoError> {
        match self.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| CryptoError::ParseMessage(format!("{name} is not a number"))),
        }
    }

    fn numbers<T: std::str::FromStr>(&self, name: &str) -> Result<Option<Vec<T>>, CryptoError> {
        self.get(name).map(|v| number_list(name, v)).transpose()
    }

    /// `UserID` (member events).
    pub fn user_id(&self) -> Option<&'a str> {
        self.get("UserID")
    }

    /// `NewUserID`, present on `update_user` only when the userid changed.
    pub fn new_user_id(&self) -> Option<&'a str> {
        self.get("NewUserID").filter(|v| !v.is_empty())
    }

    /// `Name` of the member or department.
    pub fn name(&self) -> Option<&'a str> {
        self.get("Name")
    }

    /// `Department` ("1,2,3") of a member.
    pub fn departments(&self) -> Result<Option<Vec<u32>>, CryptoError> {
        self.numbers("Department")
    }

    /// `MainDepartment` of a member.
    pub fn main_department(&self) -> Result<Option<u32>, CryptoError> {
        self.number("MainDepartment")
    }

    /// `IsLeaderInDept` ("1,0,0"), aligned with [`Self::departments`].
    pub fn is_leader_in_dept(&self) -> Result<Option<Vec<bool>>, CryptoError> {
        Ok(self
            .numbers::<u8>("IsLeaderInDept")?
            .map(|v| v.into_iter().map(|x| x != 0).collect()))
    }

    /// `DirectLeader` ("lisi,wangwu").
    pub fn direct_leader(&self) -> Option<Vec<&'a str>> {
        self.get("DirectLeader").map(text_list)
    }

    /// `Id` of a department (party events).
    pub fn party_id(&self) -> Result<Option<u32>, CryptoError> {
        self.number("Id")
    }

    /// `ParentId` of a department.
    pub fn parent_id(&self) -> Result<Option<u32>, CryptoError> {
        self.number("ParentId")
    }

    /// `Order` of a department.
    pub fn order(&self) -> Result<Option<u64>, CryptoError> {
        self.number("Order")
    }

    /// `TagId` (update_tag).
    pub fn tag_id(&self) -> Result<Option<u32>, CryptoError> {
        self.number("TagId")
    }

    /// `AddUserItems` (update_tag): userids added to the tag.
    pub fn add_user_items(&self) -> Vec<&'a str> {
        self.get("AddUserItems").map(text_list).unwrap_or_default()
    }

    /// `DelUserItems` (update_tag): userids removed from the tag.
    pub fn del_user_items(&self) -> Vec<&'a str> {
        self.get("DelUserItems").map(text_list).unwrap_or_default()
    }

    /// `AddPartyItems` (update_tag): department ids added to the tag.
    pub fn add_party_items(&self) -> Result<Vec<u32>, CryptoError> {
        Ok(self.numbers("AddPartyItems")?.unwrap_or_default())
    }

    /// `DelPartyItems` (update_tag): department ids removed from the tag.
    pub fn del_party_items(&self) -> Result<Vec<u32>, CryptoError> {
        Ok(self.numbers("DelPartyItems")?.unwrap_or_default())
    }
}

/// Writes `<xml>…</xml>` documents in the platforms' style: string values in CDATA, numbers as text.
///
/// Element names are written as given and must be XML names (the simulator passes literals such as
/// `"ToUserName"`); values are always escaped, so no value can break out of its element.
#[derive(Debug, Clone)]
pub struct XmlBuilder {
    out: String,
}

impl Default for XmlBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlBuilder {
    /// Starts a document with the `<xml>` root.
    pub fn new() -> XmlBuilder {
        let mut out = String::with_capacity(512);
        out.push_str("<xml>");
        XmlBuilder { out }
    }

    /// `<name><![CDATA[value]]></name>`; a `]]>` inside the value is split across two CDATA sections.
    pub fn cdata(&mut self, name: &str, value: &str) -> &mut Self {
        self.open(name);
        self.out.push_str("<![CDATA[");
        self.out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
        self.out.push_str("]]>");
        self.close(name)
    }

    /// `<name>value</name>` with `&`, `<` and `>` escaped; for numbers such as `CreateTime`.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.open(name);
        for c in value.chars() {
            match c {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                c => self.out.push(c),
            }
        }
        self.close(name)
    }

    /// A structured element such as `ExtAttr` or `Articles`, whose children `children` writes.
    pub fn nested(&mut self, name: &str, children: impl FnOnce(&mut XmlBuilder)) -> &mut Self {
        self.open(name);
        children(self);
        self.close(name)
    }

    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Closes the root and returns the document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</xml>");
        self.out
    }
}
