//! Parsing decrypted plaintexts: common fields, change_contact accessors, nested fields, entities, the
//! de-duplication key and the XML builder.

use wx_crypto::message::{self, ChangeType, PayloadFormat, XmlBuilder};
use wx_crypto::{CallbackCrypto, CallbackMessage, CryptoError, EnvelopeFormat};

const CREATE_USER: &str = r#"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>
<FromUserName><![CDATA[sys]]></FromUserName>
<CreateTime>1403610513</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[change_contact]]></Event>
<ChangeType>create_user</ChangeType>
<UserID><![CDATA[zhangsan]]></UserID>
<Name><![CDATA[张三]]></Name>
<Department><![CDATA[1,2,3]]></Department>
<MainDepartment>1</MainDepartment>
<IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept>
<DirectLeader><![CDATA[lisi,wangwu]]></DirectLeader>
<Position><![CDATA[产品经理]]></Position>
<Mobile>13800000000</Mobile>
<Gender>1</Gender>
<Email><![CDATA[zhangsan@gzdev.com]]></Email>
<Status>1</Status>
<Avatar><![CDATA[http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0]]></Avatar>
<Alias><![CDATA[jackzhang]]></Alias>
<Telephone><![CDATA[020-3456788]]></Telephone>
<ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item><Item><Name><![CDATA[卡号]]></Name><Type>1</Type><Web><Title><![CDATA[企业微信]]></Title><Url><![CDATA[https://work.weixin.qq.com]]></Url></Web></Item></ExtAttr>
<Address><![CDATA[广州市]]></Address>
</xml>"#;

#[test]
fn create_user_event_gives_typed_fields() {
    let m = CallbackMessage::parse(CREATE_USER).unwrap();
    assert_eq!(m.format(), PayloadFormat::Xml);
    assert_eq!(m.msg_type(), Some("event"));
    assert_eq!(m.event(), Some("change_contact"));
    assert_eq!(m.from_user(), Some("sys"));
    assert_eq!(m.to_user(), Some("ww1436e0e65a779aee"));
    assert_eq!(m.create_time(), Some(1403610513));
    assert_eq!(m.msg_id(), None);
    assert_eq!(m.change_type(), Some("create_user"));
    let c = m.change_contact().unwrap();
    assert_eq!(c.change_type(), ChangeType::CreateUser);
    assert_eq!(c.user_id(), Some("zhangsan"));
    assert_eq!(c.name(), Some("张三"));
    assert_eq!(c.departments().unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(c.main_department().unwrap(), Some(1));
    assert_eq!(
        c.is_leader_in_dept().unwrap(),
        Some(vec![true, false, false])
    );
    assert_eq!(c.direct_leader(), Some(vec!["lisi", "wangwu"]));
    assert_eq!(c.new_user_id(), None);
    assert_eq!(c.get("Mobile"), Some("13800000000"));
    // ExtAttr is structured: kept as its raw inner XML.
    assert!(m.is_nested("ExtAttr"));
    let ext = m.get("ExtAttr").unwrap();
    assert!(
        ext.starts_with("<Item><Name><![CDATA[爱好]]></Name>"),
        "{ext}"
    );
    assert!(ext.ends_with("</Web></Item>"), "{ext}");
    assert!(!m.is_nested("Name"));
    // Every field is reachable, in document order.
    let names: Vec<&str> = m.fields().map(|(n, _)| n).collect();
    assert_eq!(names.first(), Some(&"ToUserName"));
    assert_eq!(names.last(), Some(&"Address"));
    assert_eq!(names.len(), 22);
    // Debug names the fields but never shows personal data such as the mobile number.
    let dbg = format!("{m:?}");
    assert!(
        dbg.contains("Mobile") && dbg.contains("change_contact"),
        "{dbg}"
    );
    assert!(
        !dbg.contains("13800000000") && !dbg.contains("张三"),
        "{dbg}"
    );
}

#[test]
fn party_tag_and_update_events() {
    let party = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>create_party</ChangeType><Id>2</Id><Name><![CDATA[张三]]></Name><ParentId><![CDATA[1]]></ParentId><Order>1</Order></xml>";
    let m = message::parse(party).unwrap();
    let c = m.change_contact().unwrap();
    assert_eq!(c.change_type(), ChangeType::CreateParty);
    assert_eq!(c.party_id().unwrap(), Some(2));
    assert_eq!(c.parent_id().unwrap(), Some(1));
    assert_eq!(c.order().unwrap(), Some(1));

    let tag = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_tag]]></ChangeType><TagId>1</TagId><AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems><DelUserItems><![CDATA[]]></DelUserItems><AddPartyItems><![CDATA[1,2]]></AddPartyItems><DelPartyItems><![CDATA[3]]></DelPartyItems></xml>";
    let m = message::parse(tag).unwrap();
    let c = m.change_contact().unwrap();
    assert_eq!(c.change_type(), ChangeType::UpdateTag);
    assert_eq!(c.tag_id().unwrap(), Some(1));
    assert_eq!(c.add_user_items(), vec!["zhangsan", "lisi"]);
    assert!(c.del_user_items().is_empty());
    assert_eq!(c.add_party_items().unwrap(), vec![1, 2]);
    assert_eq!(c.del_party_items().unwrap(), vec![3]);

    let update = "<xml><Event>change_contact</Event><ChangeType>update_user</ChangeType><UserID>a</UserID><NewUserID>b</NewUserID><Department>1,x</Department></xml>";
    let m = message::parse(update).unwrap();
    let c = m.change_contact().unwrap();
    assert_eq!(c.change_type(), ChangeType::UpdateUser);
    assert_eq!(c.new_user_id(), Some("b"));
    let err = c.departments().unwrap_err();
    assert!(matches!(err, CryptoError::ParseMessage(_)));
    assert_eq!(err.code(), -40002);

    let other = message::parse(
        "<xml><Event>change_contact</Event><ChangeType>brand_new</ChangeType></xml>",
    )
    .unwrap();
    assert_eq!(
        other.change_contact().unwrap().change_type(),
        ChangeType::Other("brand_new".into())
    );
    // Not a contact change.
    assert!(
        message::parse("<xml><MsgType>text</MsgType></xml>")
            .unwrap()
            .change_contact()
            .is_none()
    );
}

#[test]
fn events_are_lower_cased_for_matching_and_kept_raw() {
    let mp = message::parse("<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[V1001]]></EventKey></xml>").unwrap();
    let wecom = message::parse("<xml><MsgType>event</MsgType><Event>click</Event><EventKey>V1001</EventKey><AgentID>1000002</AgentID></xml>").unwrap();
    assert_eq!(mp.event(), Some("click"));
    assert_eq!(mp.event_raw(), Some("CLICK"));
    assert_eq!(wecom.event(), mp.event());
    assert_eq!(wecom.event_key(), Some("V1001"));
    assert_eq!(wecom.agent_id(), Some("1000002"));
}

#[test]
fn json_plaintexts_become_string_fields() {
    let m = message::parse(r#"{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1714112445,"MsgType":"text","Content":"hi","MsgId":4561255354251345929,"AgentID":218,"Extra":{"a":[1,2]},"Flag":true,"Nothing":null}"#).unwrap();
    assert_eq!(m.format(), PayloadFormat::Json);
    assert_eq!(m.create_time(), Some(1714112445));
    assert_eq!(m.msg_id(), Some("4561255354251345929"));
    assert_eq!(m.agent_id(), Some("218"));
    assert_eq!(m.get("Content"), Some("hi"));
    assert_eq!(m.get("Flag"), Some("true"));
    assert_eq!(m.get("Nothing"), Some(""));
    assert!(m.is_nested("Extra"));
    assert_eq!(m.get("Extra"), Some(r#"{"a":[1,2]}"#));
}

#[test]
fn entities_and_character_references_are_resolved_unknown_ones_refused() {
    let m = message::parse(
        "<xml><Content>a &amp; b &lt;c&gt; &quot;&apos; &#20320;&#x597D;</Content></xml>",
    )
    .unwrap();
    assert_eq!(m.get("Content"), Some("a & b <c> \"' 你好"));
    let err = message::parse("<xml><Content>&nbsp;</Content></xml>").unwrap_err();
    assert!(matches!(err, CryptoError::ParseMessage(_)), "{err:?}");
    // Whitespace and newlines inside values are data, not formatting.
    let m = message::parse("<xml><Content>\n  two\nlines  </Content><Empty/><Blank></Blank></xml>")
        .unwrap();
    assert_eq!(m.get("Content"), Some("\n  two\nlines  "));
    assert_eq!(m.get("Empty"), Some(""));
    assert_eq!(m.get("Blank"), Some(""));
}

#[test]
fn dedup_key_is_stable_for_redeliveries_and_distinct_for_different_events() {
    let a = message::parse(CREATE_USER).unwrap();
    let again = message::parse(CREATE_USER).unwrap();
    assert_eq!(a.dedup_key(), again.dedup_key());
    // Same second, same sender "sys", another member: must not collide.
    let b =
        message::parse(&CREATE_USER.replace("zhangsan]]></UserID>", "lisi]]></UserID>")).unwrap();
    assert_ne!(a.dedup_key(), b.dedup_key());
    // Same member, other change type.
    let c = message::parse(&CREATE_USER.replace("create_user", "update_user")).unwrap();
    assert_ne!(a.dedup_key(), c.dedup_key());
    // Messages use MsgId: two deliveries of one text with different CreateTime still match.
    let t1 = message::parse("<xml><ToUserName>ww1</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>42</MsgId></xml>").unwrap();
    let t2 = message::parse("<xml><ToUserName>ww1</ToUserName><FromUserName>u</FromUserName><CreateTime>2</CreateTime><MsgType>text</MsgType><MsgId>42</MsgId></xml>").unwrap();
    let t3 = message::parse("<xml><ToUserName>ww1</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>43</MsgId></xml>").unwrap();
    assert_eq!(t1.dedup_key(), t2.dedup_key());
    assert_ne!(t1.dedup_key(), t3.dedup_key());
    assert!(t1.dedup_key().starts_with("msg:"));
    assert!(a.dedup_key().starts_with("evt:"));
}

#[test]
fn xml_builder_escapes_values_and_round_trips() {
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", "ww1")
        .text("CreateTime", "1403610513")
        .cdata("Content", "tricky ]]> <b>&amp;</b> ]]]>")
        .text("Escaped", "a<b&c>d")
        .nested("ExtAttr", |b| {
            b.nested("Item", |b| {
                b.cdata("Name", "爱好");
            });
        });
    let xml = b.finish();
    assert!(
        xml.starts_with(
            "<xml><ToUserName><![CDATA[ww1]]></ToUserName><CreateTime>1403610513</CreateTime>"
        ),
        "{xml}"
    );
    assert!(xml.ends_with("</xml>"));
    let m = message::parse(&xml).unwrap();
    assert_eq!(m.get("Content"), Some("tricky ]]> <b>&amp;</b> ]]]>"));
    assert_eq!(m.get("Escaped"), Some("a<b&c>d"));
    assert_eq!(m.create_time(), Some(1403610513));
    assert_eq!(
        m.get("ExtAttr"),
        Some("<Item><Name><![CDATA[爱好]]></Name></Item>")
    );
}

#[test]
fn full_path_from_simulated_push_to_typed_event() {
    // What the simulator does (build, encrypt, envelope) and what the server does (decrypt, parse).
    let wecom = CallbackCrypto::new(
        "token",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "ww1436e0e65a779aee",
    )
    .unwrap();
    for format in [
        EnvelopeFormat::Xml,
        EnvelopeFormat::Json,
        EnvelopeFormat::MpJson,
    ] {
        let body = wecom
            .encrypt_envelope(
                CREATE_USER,
                "1403610513",
                "n1",
                *b"0123456789abcdef",
                format,
            )
            .unwrap();
        // The envelope carries its own signature; a receiver reads it from the query string.
        let sig = match format {
            EnvelopeFormat::Xml => {
                body.split("<MsgSignature><![CDATA[").nth(1).unwrap()[..40].to_owned()
            }
            _ => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v.get("msgsignature")
                    .or_else(|| v.get("MsgSignature"))
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let verified = wecom
            .decrypt_body(&sig, "1403610513", "n1", body.as_bytes())
            .unwrap();
        assert_eq!(verified.format(), format);
        assert_eq!(verified.plaintext(), CREATE_USER);
        let msg = verified.parse_message().unwrap();
        assert_eq!(msg.change_contact().unwrap().user_id(), Some("zhangsan"));
        assert_eq!(verified.into_plaintext(), CREATE_USER);
    }
}
